/**
 * The paper's 2D baseline: every annotated slice is an independent 2D image for the 2D variant of the U-Net
 * (same levels, filters, BN and padding as the 3D net, 2D ops); prediction runs slice by slice, each slice
 * in its own orientation. A `Learner` for the protocols in ./protocols.ts.
 */
import type { Engine, Model, NetConfig, OptimConfig, Device } from '../common/engine.js';
import { CancelledError, SliceformError } from '../common/errors.js';
import { computeNormalisation, normaliseVolume, type Normalisation } from '../volume/preprocess.js';
import { classWeights } from '../training/sparse.js';
import { inputForOutput, validOutputAtMost } from '../volume/geometry.js';
import { mirrorIndex } from '../volume/mirror.js';
import { Rng } from '../training/rng.js';
import type { EvalVolume, Learner, PlaneRef, Predictor, RunContext, TrainEntry } from './protocols.js';
import type { Axis, Dims } from './slices.js';

/** In-plane size of a slice: rows (H) and columns (W). z: H = y, W = x; y: H = z, W = x; x: H = z, W = y. */
export function planeSize(d: Dims, axis: Axis): { H: number; W: number } {
  return axis === 'z' ? { H: d.y, W: d.x } : axis === 'y' ? { H: d.z, W: d.x } : { H: d.z, W: d.y };
}

/** Volume voxel index of in-plane position (r, c) of slice `index` along `axis`. */
export function planeVoxel(d: Dims, axis: Axis, index: number, r: number, c: number): number {
  if (axis === 'z') return (index * d.y + r) * d.x + c;
  if (axis === 'y') return (r * d.y + index) * d.x + c;
  return (r * d.y + c) * d.x + index;
}

/** Copies a slice out of a C-channel CZYX array: C*H*W, column fastest. */
export function extractPlane<T extends Float32Array | Uint8Array>(data: T, channels: number, d: Dims, axis: Axis, index: number): T {
  const { H, W } = planeSize(d, axis);
  const n = d.x * d.y * d.z;
  const out = new (data.constructor as { new (n: number): T })(channels * H * W);
  for (let c = 0; c < channels; c++)
    for (let r = 0; r < H; r++)
      for (let q = 0; q < W; q++) out[(c * H + r) * W + q] = data[c * n + planeVoxel(d, axis, index, r, q)]!;
  return out;
}

interface TrainPlane {
  H: number;
  W: number;
  image: Float32Array;
  labels: Uint8Array;
  annotated: number;
}

export interface Learner2DOptions {
  engine: Engine;
  /** a 3D preset or config; its 2D variant is used */
  net: NetConfig;
  optim?: OptimConfig;
  minutes?: number;
  iterations?: number;
  /** 2D tiles per step (default 4) */
  batch?: number;
  /** output tile edge (default 64, rounded down to a valid size) */
  tileOut?: number;
  seed?: number;
  device?: Device;
  threads?: number;
  onProgress?: (p: { label: string; iteration: number; loss: number; seconds: number }) => void;
}

export function create2DLearner(opts: Learner2DOptions): Learner {
  const net: NetConfig = { ...opts.net, dims: 2 };
  const g = { levels: net.levels, padding: net.padding };
  const out = validOutputAtMost(opts.tileOut ?? 64, g);
  const inp = inputForOutput(out, g);
  if (inp === null) throw new SliceformError('internal', `no 2D input size for output ${out}`);
  const before = Math.floor((inp - out) / 2);
  const B = opts.batch ?? 4;
  const K = net.numClasses;
  const C = net.inChannels;

  return {
    async fit(train: TrainEntry[], ctx: RunContext): Promise<Predictor> {
      if (train.length === 0) throw new SliceformError('bad-input', `${ctx.label}: no annotated slices to train on`);
      for (const e of train)
        if (e.volume.image.shape.c !== C)
          throw new SliceformError('bad-input', `${e.volume.name}: has ${e.volume.image.shape.c} channels, the network expects ${C}`);
      const norm: Normalisation = computeNormalisation(train.map((e) => e.volume.image));
      const normed = new Map<EvalVolume, Float32Array>();
      const normOf = (v: EvalVolume) => {
        let a = normed.get(v);
        if (!a) {
          a = normaliseVolume(v.image, norm);
          normed.set(v, a);
        }
        return a;
      };
      const planes: TrainPlane[] = [];
      const counts = new Array<number>(K + 1).fill(0);
      for (const e of train) {
        const data = normOf(e.volume);
        for (const s of e.slices) {
          const labels = extractPlane(e.labels, 1, e.volume.dims, s.axis, s.index);
          let annotated = 0;
          for (const l of labels) {
            if (l > 0) {
              annotated++;
              if (l <= K) counts[l]!++;
            }
          }
          if (!annotated) continue;
          const { H, W } = planeSize(e.volume.dims, s.axis);
          planes.push({ H, W, image: extractPlane(data, C, e.volume.dims, s.axis, s.index), labels, annotated });
        }
      }
      if (planes.length === 0) throw new SliceformError('bad-input', `${ctx.label}: the training slices carry no labels`);
      const weights = classWeights(counts);
      const totalAnnotated = planes.reduce((s, p) => s + p.annotated, 0);
      const rng = new Rng(opts.seed ?? 1);
      const model = await opts.engine.createModel(net, opts.optim ?? { optimizer: 'adam', lr: 1e-3 }, {
        device: opts.device,
        threads: opts.threads,
        seed: opts.seed ?? 1,
      });
      let it = 0;
      try {
        const t0 = Date.now();
        const deadline = opts.minutes !== undefined ? t0 + opts.minutes * 60_000 : Infinity;
        const maxIt = opts.iterations ?? (opts.minutes !== undefined ? Infinity : 200);
        const input = new Float32Array(B * C * inp * inp);
        const labels = new Uint8Array(B * out * out);
        let loss = NaN;
        while (it < maxIt && Date.now() < deadline) {
          if (ctx.signal?.aborted) throw new CancelledError();
          labels.fill(0);
          for (let b = 0; b < B; b++) {
            // a plane with probability proportional to its annotation, a window overlapping it
            let r = rng.next() * totalAnnotated;
            let p = planes[0]!;
            for (const q of planes) {
              p = q;
              if ((r -= q.annotated) < 0) break;
            }
            const r0 = p.H > out ? rng.int(p.H - out + 1) : 0;
            const c0 = p.W > out ? rng.int(p.W - out + 1) : 0;
            const flipR = rng.bool();
            const flipC = rng.bool();
            const gain = 1 + 0.1 * rng.normal();
            const bias = 0.1 * rng.normal();
            for (let ch = 0; ch < C; ch++)
              for (let y = 0; y < inp; y++) {
                const yy = flipR ? inp - 1 - y : y;
                const sr = mirrorIndex(r0 - before + yy, p.H);
                const base = ((b * C + ch) * inp + y) * inp;
                for (let x = 0; x < inp; x++) {
                  const xx = flipC ? inp - 1 - x : x;
                  const sc = mirrorIndex(c0 - before + xx, p.W);
                  input[base + x] = p.image[(ch * p.H + sr) * p.W + sc]! * gain + bias;
                }
              }
            for (let y = 0; y < out; y++) {
              const yy = flipR ? out - 1 - y : y;
              const sr = r0 + yy;
              if (sr >= p.H) continue;
              for (let x = 0; x < out; x++) {
                const xx = flipC ? out - 1 - x : x;
                const sc = c0 + xx;
                if (sc >= p.W) continue;
                labels[(b * out + y) * out + x] = p.labels[sr * p.W + sc]!;
              }
            }
          }
          const res = await model.trainStep({ input, inputShape: [B, C, inp, inp], labels, classWeights: weights });
          loss = res.loss;
          it++;
          if (it % 10 === 0) opts.onProgress?.({ label: ctx.label, iteration: it, loss, seconds: (Date.now() - t0) / 1000 });
        }
        ctx.log?.(`${ctx.label}: 2D training ${it} iterations in ${((Date.now() - t0) / 1000).toFixed(0)} s, loss ${loss.toFixed(4)}`);
      } catch (e) {
        model.dispose();
        throw e;
      }
      return { ...make2DPredictor(model, { C, K, inp, out, before }, normOf), iterations: it };
    },
  };
}

/** Predicts slices one at a time with overlap-free output tiles (mirror-padded input), argmax + 1. */
function make2DPredictor(
  model: Model,
  geo: { C: number; K: number; inp: number; out: number; before: number },
  normOf: (v: EvalVolume) => Float32Array,
): Predictor {
  const { C, K, inp, out, before } = geo;
  const starts = (n: number) => {
    const s: number[] = [];
    for (let p = 0; p < n; p += out) s.push(Math.min(p, Math.max(0, n - out)));
    return [...new Set(s)];
  };
  return {
    async predict(v: EvalVolume, planes: PlaneRef[] | 'all', ctx: RunContext): Promise<Uint8Array> {
      const list: PlaneRef[] = planes === 'all' ? Array.from({ length: v.dims.z }, (_, index) => ({ axis: 'z' as const, index })) : planes;
      const data = normOf(v);
      const result = new Uint8Array(v.dims.x * v.dims.y * v.dims.z);
      for (const pl of list) {
        if (ctx.signal?.aborted) throw new CancelledError();
        const { H, W } = planeSize(v.dims, pl.axis);
        const img = extractPlane(data, C, v.dims, pl.axis, pl.index);
        const tiles: [number, number][] = [];
        for (const r0 of starts(H)) for (const c0 of starts(W)) tiles.push([r0, c0]);
        const input = new Float32Array(tiles.length * C * inp * inp);
        tiles.forEach(([r0, c0], b) => {
          for (let ch = 0; ch < C; ch++)
            for (let y = 0; y < inp; y++) {
              const sr = mirrorIndex(r0 - before + y, H);
              const base = ((b * C + ch) * inp + y) * inp;
              for (let x = 0; x < inp; x++) input[base + x] = img[(ch * H + sr) * W + mirrorIndex(c0 - before + x, W)]!;
            }
        });
        const prob = await model.predict(input, [tiles.length, C, inp, inp]);
        const nOut = out * out;
        tiles.forEach(([r0, c0], b) => {
          for (let y = 0; y < out && r0 + y < H; y++)
            for (let x = 0; x < out && c0 + x < W; x++) {
              let best = 0;
              let bv = -Infinity;
              for (let k = 0; k < K; k++) {
                const pv = prob[(b * K + k) * nOut + y * out + x]!;
                if (pv > bv) {
                  bv = pv;
                  best = k;
                }
              }
              result[planeVoxel(v.dims, pl.axis, pl.index, r0 + y, c0 + x)] = best + 1;
            }
        });
      }
      return result;
    },
    dispose() {
      model.dispose();
    },
  };
}
