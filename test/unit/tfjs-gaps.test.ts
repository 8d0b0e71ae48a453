/**
 * The tfjs 4.22 gaps the TF.js engine works around (issue 7), each checked on its own.
 * Synthetic tensors: these are op-level checks, no image data is involved.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import type * as TF from '@tensorflow/tfjs';
import { assertCanTrain, loadTf, type Tf } from '../../main/engine/tfjs/backend.js';
import { batchNorm, centreCrop, normalSampler } from '../../main/engine/tfjs/unet.js';
import { createTfjsEngine } from '../../main/engine/tfjs.js';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadTf('cpu')).tf;
});

const randn = (n: number, seed: number) => {
  const r = normalSampler(seed);
  return Float32Array.from({ length: n }, () => r());
};

/**
 * f(x, w) = sum(conv3dTranspose(x, w) * r) is bilinear, so central differences are exact up to fp32 rounding:
 * the registered gradient must match them closely.
 */
function checkTransposeGrad(xShape: number[], wShape: number[], stride: number, pad: 'valid' | 'same') {
  const [n, d, h, w] = xShape as [number, number, number, number, number];
  const outDepth = wShape[3]!;
  const outSpatial = pad === 'same' ? [d * stride, h * stride, w * stride] : [d, h, w].map((s) => (s - 1) * stride + wShape[0]!);
  const outShape = [n, ...outSpatial, outDepth] as [number, number, number, number, number];
  const xv = randn(xShape.reduce((a, b) => a * b), 1);
  const wv = randn(wShape.reduce((a, b) => a * b), 2);
  const rv = randn(outShape.reduce((a, b) => a * b), 3);
  const f = (x: TF.Tensor, wt: TF.Tensor) =>
    tf.sum(tf.mul(tf.conv3dTranspose(x as TF.Tensor5D, wt as TF.Tensor5D, outShape, stride, pad), tf.tensor(rv, outShape)));
  const [gx, gw] = tf.tidy(() =>
    tf.grads((x: TF.Tensor, wt: TF.Tensor) => f(x, wt))([tf.tensor(xv, xShape), tf.tensor(wv, wShape)]).map((g) => g.dataSync()),
  );
  const val = (x: Float32Array, wt: Float32Array) => tf.tidy(() => f(tf.tensor(x, xShape), tf.tensor(wt, wShape)).dataSync()[0]!);
  const eps = 0.5; // exact for a bilinear function; a large step keeps fp32 rounding relatively small
  let maxErr = 0;
  let maxG = 0;
  for (const i of [0, 3, Math.floor(xv.length / 2), xv.length - 1]) {
    const p = xv.slice();
    const m = xv.slice();
    p[i]! += eps;
    m[i]! -= eps;
    const fd = (val(p, wv) - val(m, wv)) / (2 * eps);
    maxErr = Math.max(maxErr, Math.abs(fd - gx![i]!));
    maxG = Math.max(maxG, Math.abs(gx![i]!));
  }
  for (const i of [0, 1, Math.floor(wv.length / 2), wv.length - 1]) {
    const p = wv.slice();
    const m = wv.slice();
    p[i]! += eps;
    m[i]! -= eps;
    const fd = (val(xv, p) - val(xv, m)) / (2 * eps);
    maxErr = Math.max(maxErr, Math.abs(fd - gw![i]!));
    maxG = Math.max(maxG, Math.abs(gw![i]!));
  }
  return { maxErr, maxG };
}

describe('tfjs gap: no gradient for Conv3DBackpropInputV2 (conv3dTranspose)', () => {
  it('is registered by the engine', () => {
    expect(tf.getGradient('Conv3DBackpropInputV2')).toBeDefined();
  });
  it('matches finite differences for the U-Net up-convolution (2x2x2, stride 2, valid)', () => {
    const { maxErr, maxG } = checkTransposeGrad([2, 3, 2, 3, 3], [2, 2, 2, 4, 3], 2, 'valid');
    expect(maxG).toBeGreaterThan(0.1);
    expect(maxErr).toBeLessThan(1e-3 * Math.max(1, maxG));
  });
  it('matches finite differences for a 3x3x3 stride-1 same-padded transpose', () => {
    const { maxErr, maxG } = checkTransposeGrad([1, 4, 3, 3, 2], [3, 3, 3, 2, 2], 1, 'same');
    expect(maxG).toBeGreaterThan(0.1);
    expect(maxErr).toBeLessThan(1e-3 * Math.max(1, maxG));
  });
});

describe('tfjs gap: batch norm of rank-5 tensors', () => {
  it('stock tf.batchNorm has no rank-5 gradient (why the engine uses moments ops)', () => {
    const x = tf.randomNormal([1, 2, 2, 2, 3]);
    const mean = tf.zeros([3]);
    const v = tf.ones([3]);
    const stock = () => tf.grad((t: TF.Tensor) => tf.sum(tf.batchNorm(t, mean, v)))(x);
    let stockFails = false;
    try {
      stock().dispose();
    } catch {
      stockFails = true;
    }
    // if tfjs ever fixes this the workaround can go; until then, document the failure
    expect(stockFails).toBe(true);
    tf.dispose([x, mean, v]);
  });
  it('engine batch norm normalises each channel of an NDHWC tensor and is differentiable', () => {
    const shape = [2, 3, 4, 5, 3];
    const n = shape.reduce((a, b) => a * b);
    // channel c has mean 10*c and std c+1
    const raw = randn(n, 7).map((v, i) => v * ((i % 3) + 1) + 10 * (i % 3));
    const params = new Map<string, TF.Tensor>([
      ['b.weight', tf.tensor([1, 2, 0.5])],
      ['b.bias', tf.tensor([0, 1, -1])],
    ]);
    const y = tf.tidy(() => batchNorm(tf, tf.tensor(raw, shape), params, 'b', { batchStats: true }));
    const m = tf.moments(y, [0, 1, 2, 3]);
    expect(Array.from(m.mean.dataSync()).map((v) => +v.toFixed(4))).toEqual([0, 1, -1]);
    const sd = Array.from(m.variance.dataSync()).map(Math.sqrt);
    expect(sd[0]).toBeCloseTo(1, 3);
    expect(sd[1]).toBeCloseTo(2, 3);
    expect(sd[2]).toBeCloseTo(0.5, 3);
    const g = tf.grad((t: TF.Tensor) => tf.sum(tf.square(batchNorm(tf, t, params, 'b', { batchStats: true }))))(tf.tensor(raw, shape));
    expect(g.shape).toEqual(shape);
    // sum of squares of a normalised channel is count*gamma^2 whatever x is: its gradient must vanish
    expect(Math.max(...Array.from(g.dataSync()).map(Math.abs))).toBeLessThan(1e-3);
    tf.dispose([y, m.mean, m.variance, g, ...params.values()]);
  });
});

describe('tfjs gap: no Cropping3D', () => {
  it('centreCrop takes the centre of every spatial axis of NDHWC, like the native narrow()', () => {
    const t = tf.reshape(tf.range(0, 6 * 6 * 6), [1, 6, 6, 6, 1]);
    const c = centreCrop(tf, t, [1, 2, 4, 6, 1]);
    expect(c.shape).toEqual([1, 2, 4, 6, 1]);
    const v = c.dataSync();
    // first element at (2, 1, 0)
    expect(v[0]).toBe(2 * 36 + 1 * 6 + 0);
    expect(v[v.length - 1]).toBe(3 * 36 + 4 * 6 + 5);
    tf.dispose([t, c]);
  });
});

describe('tfjs gap: the wasm backend computes wrong 3D conv gradients', () => {
  it('training on wasm is refused with a clear error', () => {
    expect(() => assertCanTrain('wasm')).toThrow(/wasm.*refusing to train.*Conv3DBackpropInputV2/);
    expect(() => assertCanTrain('cpu')).not.toThrow();
  });
  it('asking for the wasm backend when it is not installed says so', async () => {
    // @tensorflow/tfjs-backend-wasm is not a dependency of Sliceform
    await expect(createTfjsEngine({ backend: 'wasm' })).rejects.toThrow(/wasm' backend is not available.*tfjs-backend-wasm/);
  });
});

describe('optional tensorflow backend', () => {
  it('asking for it when neither tfjs-node package is installed says how to get it', async () => {
    await expect(loadTf('tensorflow')).rejects.toThrow(
      /'tensorflow' backend is not available \(@tensorflow\/tfjs-node-gpu: not installed; @tensorflow\/tfjs-node: not installed\).*docs\/tfjs\.md/,
    );
    // and the cpu engine loaded earlier in this process keeps working
    expect((await loadTf('auto')).backend).toBe('cpu');
  });
});
