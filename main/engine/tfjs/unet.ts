/**
 * The 3D (and 2D) U-Net of Çiçek et al. 2016 written with tfjs core ops, so batch norm, names and layouts are
 * under our control (tf.layers cannot batch-normalise rank-5 tensors and has no Cropping3D).
 *
 * Internal layout is channels-last (NDHWC / NHWC), the only one tfjs' 3D kernels accept. Exported parameters use
 * the PyTorch/libtorch layouts of the native engine: conv weight [Cout, Cin, k, k, k], up-conv weight
 * [Cin, Cout, 2, 2, 2], see `PARAM_LAYOUT`. Names are listed by `paramSpecs`.
 */
import type * as TF from '@tensorflow/tfjs';
import type { NetConfig } from '../../common/engine.js';
import type { Tf } from './backend.js';

export const BN_EPS = 1e-5;
/** PyTorch's default: running = (1 - m) * running + m * batch, running_var uses the unbiased batch variance */
export const BN_MOMENTUM = 0.1;

export type ParamKind = 'conv' | 'upconv' | 'bias' | 'bn_weight' | 'bn_bias' | 'bn_mean' | 'bn_var';

export interface ParamSpec {
  name: string;
  kind: ParamKind;
  /** shape in the exported (PyTorch) layout */
  shape: number[];
  /** trained by the optimiser (false for BN running statistics) */
  trainable: boolean;
  /** fan-in for weight init */
  fanIn: number;
}

export interface ConvDef {
  prefix: string;
  cin: number;
  cout: number;
}

export interface NetPlan {
  encoder: { conv1: ConvDef; conv2: ConvDef }[];
  decoder: { up: { prefix: string; ch: number }; conv1: ConvDef; conv2: ConvDef }[];
  out: ConvDef;
}

/** Channel plan: level l (0 = top) has conv1 -> base*2^l, conv2 -> base*2^(l+1); the decoder mirrors it. */
export function netPlan(c: NetConfig): NetPlan {
  const f = (l: number) => c.baseFilters * 2 ** l;
  const encoder: NetPlan['encoder'] = [];
  let cin = c.inChannels;
  for (let l = 0; l < c.levels; l++) {
    encoder.push({
      conv1: { prefix: `enc${l}.conv1`, cin, cout: f(l) },
      conv2: { prefix: `enc${l}.conv2`, cin: f(l), cout: f(l + 1) },
    });
    cin = f(l + 1);
  }
  const decoder: NetPlan['decoder'] = [];
  for (let l = c.levels - 2; l >= 0; l--) {
    const below = f(l + 2);
    decoder.push({
      up: { prefix: `dec${l}.upconv`, ch: below },
      conv1: { prefix: `dec${l}.conv1`, cin: below + f(l + 1), cout: f(l + 1) },
      conv2: { prefix: `dec${l}.conv2`, cin: f(l + 1), cout: f(l + 1) },
    });
  }
  return { encoder, decoder, out: { prefix: 'out', cin: f(1), cout: c.numClasses } };
}

/** Every tensor of the model in a fixed order, PyTorch layouts. */
export function paramSpecs(c: NetConfig): ParamSpec[] {
  const k = c.dims === 3 ? [3, 3, 3] : [3, 3];
  const k2 = c.dims === 3 ? [2, 2, 2] : [2, 2];
  const k1 = c.dims === 3 ? [1, 1, 1] : [1, 1];
  const vol = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const out: ParamSpec[] = [];
  const conv = (d: ConvDef, bn: boolean, ks = k) => {
    out.push({ name: `${d.prefix}.weight`, kind: 'conv', shape: [d.cout, d.cin, ...ks], trainable: true, fanIn: d.cin * vol(ks) });
    out.push({ name: `${d.prefix}.bias`, kind: 'bias', shape: [d.cout], trainable: true, fanIn: d.cin * vol(ks) });
    if (bn) {
      const b = d.prefix.replace(/conv(\d)$/, 'bn$1');
      out.push({ name: `${b}.weight`, kind: 'bn_weight', shape: [d.cout], trainable: true, fanIn: 1 });
      out.push({ name: `${b}.bias`, kind: 'bn_bias', shape: [d.cout], trainable: true, fanIn: 1 });
      out.push({ name: `${b}.running_mean`, kind: 'bn_mean', shape: [d.cout], trainable: false, fanIn: 1 });
      out.push({ name: `${b}.running_var`, kind: 'bn_var', shape: [d.cout], trainable: false, fanIn: 1 });
    }
  };
  const p = netPlan(c);
  for (const e of p.encoder) {
    conv(e.conv1, c.batchNorm);
    conv(e.conv2, c.batchNorm);
  }
  for (const d of p.decoder) {
    out.push({ name: `${d.up.prefix}.weight`, kind: 'upconv', shape: [d.up.ch, d.up.ch, ...k2], trainable: true, fanIn: d.up.ch * vol(k2) });
    conv(d.conv1, c.batchNorm);
    conv(d.conv2, c.batchNorm);
  }
  conv(p.out, false, k1);
  return out;
}

export function countParams(c: NetConfig): { params: number; bnParams: number } {
  let params = 0;
  let bnParams = 0;
  for (const s of paramSpecs(c)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.kind === 'conv' || s.kind === 'upconv' || s.kind === 'bias') params += n;
    else if (s.kind === 'bn_weight' || s.kind === 'bn_bias') bnParams += n;
  }
  return { params, bnParams };
}

/** Permutation from the exported (PyTorch) layout to the tfjs filter layout, for conv and up-conv alike. */
export function toTfPerm(rank: number): number[] {
  // conv   [Cout, Cin, kd, kh, kw] -> [kd, kh, kw, Cin, Cout]
  // upconv [Cin, Cout, kd, kh, kw] -> [kd, kh, kw, Cout, Cin] (tfjs transpose filter: [.., outDepth, inDepth])
  return rank === 5 ? [2, 3, 4, 1, 0] : [2, 3, 1, 0];
}
export function fromTfPerm(rank: number): number[] {
  return rank === 5 ? [4, 3, 0, 1, 2] : [3, 2, 0, 1];
}

/** Deterministic PRNG (mulberry32) + Box-Muller normals for seeded He init. */
export function normalSampler(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  const uni = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => {
    const u = Math.max(uni(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uni());
  };
}

export function initValue(spec: ParamSpec, rnd: () => number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  if (spec.kind === 'conv' || spec.kind === 'upconv') {
    const std = Math.sqrt(2 / spec.fanIn); // He (kaiming normal, fan-in) for ReLU nets
    for (let i = 0; i < n; i++) d[i] = rnd() * std;
  } else if (spec.kind === 'bn_weight' || spec.kind === 'bn_var') d.fill(1);
  return d;
}

export interface BnStat {
  name: string; // BN prefix, e.g. enc0.bn1
  mean: TF.Tensor1D;
  /** biased batch variance (what normalises) */
  variance: TF.Tensor1D;
  /** elements per channel in the batch (for the unbiased running variance) */
  count: number;
}

export interface ForwardOptions {
  /** normalise with batch statistics (training, or bnAtTest = 'batch') instead of the running ones */
  batchStats: boolean;
  /** collect batch statistics (training) */
  stats?: BnStat[];
}

/** Parameters in tfjs layout, by exported name. */
export type ParamMap = Map<string, TF.Tensor>;

/**
 * Forward pass, channels-last input [N, (D,) H, W, C] -> logits [N, (D',) H', W', K]. Must run inside a tidy /
 * gradient scope; uses only ops with gradients in tfjs (plus the patched Conv3DBackpropInputV2).
 */
export function forward(tf: Tf, c: NetConfig, params: ParamMap, x: TF.Tensor, opt: ForwardOptions): TF.Tensor {
  // The 2D network runs through the 3D kernels with a depth of 1: tfjs 4.22's cpu Conv2DBackpropFilter is ~20x
  // slower than its Conv3DBackpropFilterV2 on the same work (measured: 1.9 s vs 0.1 s per step of a 44^2 net).
  const two = c.dims === 2;
  const P = (n: string) => {
    const t = params.get(n);
    if (!t) throw new Error(`internal: missing parameter ${n}`);
    return (two && t.rank === 4 ? tf.expandDims(t, 0) : t) as TF.Tensor5D;
  };
  const pad = c.padding;
  const conv = (h: TF.Tensor, prefix: string, bn: boolean): TF.Tensor => {
    let y: TF.Tensor = tf.conv3d(h as TF.Tensor5D, P(`${prefix}.weight`), 1, pad);
    y = tf.add(y, P(`${prefix}.bias`));
    if (bn) y = batchNorm(tf, y, params, prefix.replace(/conv(\d)$/, 'bn$1'), opt);
    return tf.relu(y);
  };
  const s2: [number, number, number] = two ? [1, 2, 2] : [2, 2, 2];
  const plan = netPlan(c);
  const skips: TF.Tensor[] = [];
  let h = two ? tf.expandDims(x, 1) : x;
  plan.encoder.forEach((e, l) => {
    h = conv(h, e.conv1.prefix, c.batchNorm);
    h = conv(h, e.conv2.prefix, c.batchNorm);
    if (l < c.levels - 1) {
      skips.push(h);
      h = tf.maxPool3d(h as TF.Tensor5D, s2, s2, 'valid');
    }
  });
  for (const d of plan.decoder) {
    const s = h.shape as number[];
    const outShape: [number, number, number, number, number] = [s[0]!, s[1]! * s2[0], s[2]! * 2, s[3]! * 2, d.up.ch];
    h = tf.conv3dTranspose(h as TF.Tensor5D, P(`${d.up.prefix}.weight`), outShape, s2, 'valid');
    const skip = skips.pop()!;
    h = tf.concat([centreCrop(tf, skip, h.shape), h], -1);
    h = conv(h, d.conv1.prefix, c.batchNorm);
    h = conv(h, d.conv2.prefix, c.batchNorm);
  }
  const o = plan.out.prefix;
  const logits = tf.add(tf.conv3d(h as TF.Tensor5D, P(`${o}.weight`), 1, 'valid'), P(`${o}.bias`));
  return two ? tf.squeeze(logits, [1]) : logits;
}

/** Centre crop of the spatial axes of a channels-last tensor to `target`'s spatial size (no Cropping3D in tfjs). */
export function centreCrop(tf: Tf, t: TF.Tensor, target: number[]): TF.Tensor {
  const begin = t.shape.map((n, i) => (i === 0 || i === t.rank - 1 ? 0 : Math.floor((n - target[i]!) / 2)));
  const size = t.shape.map((n, i) => (i === 0 || i === t.rank - 1 ? -1 : target[i]!));
  if (begin.every((b) => b === 0) && size.every((s, i) => s === -1 || s === t.shape[i])) return t;
  return tf.slice(t, begin, size);
}

/**
 * Batch norm over every axis but the last, written with moments ops because tf.batchNorm's gradient (and
 * tf.layers.batchNormalization) reject rank-5 tensors in tfjs 4.22.
 */
export function batchNorm(tf: Tf, y: TF.Tensor, params: ParamMap, bn: string, opt: ForwardOptions): TF.Tensor {
  const axes = y.shape.slice(0, -1).map((_, i) => i);
  const gamma = params.get(`${bn}.weight`)!;
  const beta = params.get(`${bn}.bias`)!;
  let mean: TF.Tensor;
  let variance: TF.Tensor;
  if (opt.batchStats) {
    const m = tf.moments(y, axes);
    mean = m.mean;
    variance = m.variance;
    if (opt.stats) {
      const count = y.size / y.shape[y.rank - 1]!;
      opt.stats.push({ name: bn, mean: tf.keep(tf.clone(mean)) as TF.Tensor1D, variance: tf.keep(tf.clone(variance)) as TF.Tensor1D, count });
    }
  } else {
    mean = params.get(`${bn}.running_mean`)!;
    variance = params.get(`${bn}.running_var`)!;
  }
  const inv = tf.rsqrt(tf.add(variance, BN_EPS));
  return tf.add(tf.mul(tf.mul(tf.sub(y, mean), inv), gamma), beta);
}

/**
 * Loss = sum_i w[label_i] * CE_i / (number of annotated voxels); label 0 = unannotated (weight exactly 0),
 * label k = class k-1. `onehotW` holds w[label_i] at the label's class channel and 0 elsewhere.
 */
export function weightedCE(tf: Tf, logits: TF.Tensor, onehotW: TF.Tensor, annotated: number): TF.Scalar {
  const logp = tf.logSoftmax(logits, -1);
  return tf.div(tf.neg(tf.sum(tf.mul(logp, onehotW))), Math.max(annotated, 1)) as TF.Scalar;
}

/**
 * Soft Dice term over the annotated voxels of the whole batch, as the native engine: 1 - mean over classes
 * 2..K of (2 I_k + s) / (P_k + G_k + s). `onehot` is the unweighted one-hot label (channels last, all zero at
 * unannotated voxels), which is also the annotation mask summed over classes.
 */
export function diceLoss(tf: Tf, logits: TF.Tensor, onehot: TF.Tensor): TF.Scalar {
  const K = logits.shape[logits.rank - 1]!;
  const axes = Array.from({ length: logits.rank - 1 }, (_, i) => i);
  const prob = tf.softmax(logits, -1);
  const mask = tf.sum(onehot, -1, true);
  const p = tf.mul(prob, mask);
  const inter = tf.sum(tf.mul(p, onehot), axes);
  const denom = tf.add(tf.sum(p, axes), tf.sum(onehot, axes));
  const s = 1e-5;
  const dice = tf.div(tf.add(tf.mul(inter, 2), s), tf.add(denom, s));
  return tf.sub(1, tf.mean(tf.slice(dice, [1], [K - 1]))) as TF.Scalar;
}
