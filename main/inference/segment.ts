/**
 * segmentVolume: a trained model applied to a whole stack (the reusable entry for `segment`, `densify` and
 * batch segmentation). Overlap tiles with mirror padding, streamed in z-slabs to an optional sink; argmax labels
 * 1..K and, on request, per-class probabilities.
 */
import type { Model } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { CancelledError, SliceformError } from '../common/errors.js';
import type { CancelSignal, ProgressCallback } from '../common/progress.js';
import type { Normalisation } from '../volume/preprocess.js';
import {
  decideInto,
  predictRegion,
  sourceFromVolume,
  type PredictResult,
  type Slab,
} from '../volume/predict.js';
import { downsampleVolume, isIdentity, upsampleSlab, type Factors } from '../volume/resample.js';

export interface SegmentOptions {
  normalisation: Normalisation;
  /** integer downsampling [z, y, x] the model was trained at (from its manifest; default none) */
  downsample?: Factors;
  /** tile input budget in voxels (default 3 M) */
  maxTileInputVoxels?: number;
  testTimeFlips?: boolean;
  probabilities?: boolean;
  /**
   * calibrated decision weights (main/pipeline/calibration.ts): labels = argmax_k w_k p_k, and the probabilities
   * handed to onSlab are the re-normalised w_k p_k, so that their argmax is the label
   */
  decisionWeights?: number[];
  /**
   * a second learner (main/pipeline/ensemble.ts): its class probabilities for the image at the working
   * resolution (class-planar K x voxels), mixed into the network's before the decision with this weight;
   * `halo` (z-planes) is how far its features reach, so that streamed segment can feed it z-slabs
   */
  mixer?: {
    weight: number;
    halo?: number;
    /**
     * the grid the second learner works on: 'working' (old model folders, the default) gives probabilities of
     * the working-resolution image, mixed before the interpolation back to full resolution; 'full' gives them
     * for the full-resolution image, mixed after the network's interpolation (the same at factors 1)
     */
    resolution?: 'working' | 'full';
    /** streamed 'full' mixing: output planes per forest slab (default: from a 32 M-voxel budget, at least 2 halos) */
    slabPlanes?: number;
    probabilities(image: Volume, source: Volume): Float32Array;
  };
  /** receives every finished z-slab in order (write it to disk here); without a sink labels are collected */
  onSlab?: (slab: Slab) => void | Promise<void>;
  /** collect the full label volume in memory (default: true when there is no onSlab) */
  collect?: boolean;
  signal?: CancelSignal;
  onProgress?: ProgressCallback;
}

export interface SegmentResult extends PredictResult {
  /** Z*Y*X labels (when collected; up to 255 classes: more are streamed to disk as uint16 only) */
  labels?: Uint8Array;
}

export async function segmentVolume(
  model: Model,
  volume: Volume,
  opts: SegmentOptions,
): Promise<SegmentResult> {
  const net = model.config;
  if (volume.shape.c !== net.inChannels) {
    throw new SliceformError(
      'bad-input',
      `the model expects ${net.inChannels} channel(s), the stack has ${volume.shape.c}`,
      { file: volume.source },
    );
  }
  const { x: X, y: Y, z: Z } = volume.shape;
  const collect = opts.collect ?? !opts.onSlab;
  // collected labels are uint8 (scoring, evaluation); a model with more classes must stream (uint16 slabs)
  if (collect && net.numClasses > 255) {
    throw new SliceformError(
      'unsupported',
      `the model has ${net.numClasses} classes; labels held in memory support at most 255 (write them to a file instead)`,
    );
  }
  const labels = collect ? new Uint8Array(X * Y * Z) : undefined;
  const f = opts.downsample ?? [1, 1, 1];
  if (!isIdentity(f)) return segmentDownsampled(model, volume, f, opts, labels);
  const src = sourceFromVolume(volume, opts.normalisation);
  const res = await predictRegion(
    model,
    src,
    [0, 0, 0],
    [Z, Y, X],
    {
      numClasses: net.numClasses,
      levels: net.levels,
      padding: net.padding,
      maxTileInputVoxels: opts.maxTileInputVoxels,
      testTimeFlips: opts.testTimeFlips,
      probabilities: opts.probabilities,
      decisionWeights: opts.decisionWeights,
      ...(opts.mixer && opts.mixer.weight > 0
        ? { mix: { data: opts.mixer.probabilities(volume, volume), weight: opts.mixer.weight } }
        : {}),
      signal: opts.signal,
      onProgress: opts.onProgress,
    },
    async (slab) => {
      labels?.set(slab.labels, slab.z0 * Y * X);
      if (slab.probabilities && opts.decisionWeights)
        reweight(slab.probabilities, net.numClasses, opts.decisionWeights);
      await opts.onSlab?.(slab);
    },
  );
  return { ...res, ...(labels ? { labels } : {}) };
}

/**
 * Prediction at reduced resolution: the low-resolution probabilities are held in memory (1/(fz*fy*fx) of the
 * full-resolution size per class), then interpolated back to full resolution slab by slab.
 */
async function segmentDownsampled(
  model: Model,
  volume: Volume,
  f: Factors,
  opts: SegmentOptions,
  labels: Uint8Array | undefined,
): Promise<SegmentResult> {
  return predictDownsampled(model, downsampleVolume(volume, f), volume, [volume.shape.z, volume.shape.y, volume.shape.x], f, opts, labels);
}

/**
 * The full-resolution image a second learner reads: the whole volume (in memory: its features are cached with
 * the stack), or a reader of the planes [z0, z1) (streamed segment: slabs with the features' halo).
 */
export type FullImage = Volume | ((z0: number, z1: number) => Promise<Volume>);

/**
 * A full-resolution mixer's class probabilities for output planes [z0, z0 + depth) (class-planar K x planes),
 * asked for in increasing z: the whole volume's once (in memory), or slab by slab with the features' halo so
 * that every inner voxel sees what it sees in the whole stack (streamed).
 */
function fullMixSource(
  mixer: NonNullable<SegmentOptions['mixer']>,
  image: FullImage,
  full: Factors,
  K: number,
): (z0: number, depth: number) => Promise<Float32Array> {
  const [Z, Y, X] = full;
  const plane = Y * X;
  const N = Z * plane;
  if (typeof image !== 'function') {
    let all: Float32Array | null = null;
    return async (z0, depth) => {
      all ??= mixer.probabilities(image, image);
      if (all.length !== K * N)
        throw new SliceformError('internal', `the second learner gave ${all.length} probabilities for ${K * N}`);
      const out = new Float32Array(K * depth * plane);
      for (let k = 0; k < K; k++) out.set(all.subarray(k * N + z0 * plane, k * N + (z0 + depth) * plane), k * depth * plane);
      return out;
    };
  }
  const h = mixer.halo ?? 40;
  const D = Math.max(1, mixer.slabPlanes ?? Math.max(2 * h, Math.floor(32_000_000 / plane)));
  let c0 = 0;
  let c1 = 0;
  let chunk: Float32Array | null = null;
  return async (z0, depth) => {
    const out = new Float32Array(K * depth * plane);
    for (let z = z0; z < z0 + depth; ) {
      if (!chunk || z < c0 || z >= c1) {
        c0 = z;
        c1 = Math.min(Z, z + D);
        const a = Math.max(0, c0 - h);
        const b = Math.min(Z, c1 + h);
        const vol = await image(a, b);
        const p = mixer.probabilities(vol, vol);
        const n = (b - a) * plane;
        if (p.length !== K * n)
          throw new SliceformError('internal', `the second learner gave ${p.length} probabilities for ${K * n}`);
        const m = (c1 - c0) * plane;
        chunk = new Float32Array(K * m);
        for (let k = 0; k < K; k++) chunk.set(p.subarray(k * n + (c0 - a) * plane, k * n + (c0 - a) * plane + m), k * m);
      }
      const e = Math.min(z0 + depth, c1);
      const m = (c1 - c0) * plane;
      for (let k = 0; k < K; k++)
        out.set(chunk.subarray(k * m + (z - c0) * plane, k * m + (e - c0) * plane), k * depth * plane + (z - z0) * plane);
      z = e;
    }
    return out;
  };
}

/**
 * The downsampled path from the low-resolution image on: prediction at low resolution, the second learner,
 * then interpolation back to the full grid `full` ([Z, Y, X]) slab by slab, over the planes of `zRange` only
 * (a shard; `labels`, when given, hold the whole volume). Streamed segment builds `low` region by region.
 * A working-resolution second learner is mixed into the low-resolution probabilities (`fullImage`, when a
 * volume, is its feature cache's owner); a full-resolution one reads `fullImage` and is mixed into every
 * interpolated slab: p = (1 - w) up(p_network) + w p_forest.
 */
export async function predictDownsampled(
  model: Model,
  low: Volume,
  fullImage: FullImage,
  full: Factors,
  f: Factors,
  opts: SegmentOptions,
  labels: Uint8Array | undefined,
  zRange?: [number, number],
): Promise<SegmentResult> {
  const net = model.config;
  const K = net.numClasses;
  const lowShape: Factors = [low.shape.z, low.shape.y, low.shape.x];
  const lowN = lowShape[0] * lowShape[1] * lowShape[2];
  const lowProbs = new Float32Array(K * lowN);
  const plane = lowShape[1] * lowShape[2];
  const res = await predictRegion(
    model,
    sourceFromVolume(low, opts.normalisation),
    [0, 0, 0],
    lowShape,
    {
      numClasses: K,
      levels: net.levels,
      padding: net.padding,
      maxTileInputVoxels: opts.maxTileInputVoxels,
      testTimeFlips: opts.testTimeFlips,
      probabilities: true,
      signal: opts.signal,
      onProgress: opts.onProgress,
    },
    (slab) => {
      const n = slab.depth * plane;
      for (let k = 0; k < K; k++)
        lowProbs.set(slab.probabilities!.subarray(k * n, (k + 1) * n), k * lowN + slab.z0 * plane);
    },
  );
  const fullMixer = opts.mixer && opts.mixer.weight > 0 && opts.mixer.resolution === 'full' ? opts.mixer : undefined;
  if (opts.mixer && opts.mixer.weight > 0 && !fullMixer) {
    const w = opts.mixer.weight;
    const m = opts.mixer.probabilities(low, typeof fullImage === 'function' ? low : fullImage);
    if (m.length !== lowProbs.length)
      throw new SliceformError(
        'internal',
        `the second learner gave ${m.length} probabilities for ${lowProbs.length}`,
      );
    for (let i = 0; i < lowProbs.length; i++) lowProbs[i] = (1 - w) * lowProbs[i]! + w * m[i]!;
  }
  const [Z, Y, X] = full;
  const [zr0, zr1] = zRange ?? [0, Z];
  const counts = new Array<number>(K + 1).fill(0);
  const step = Math.max(1, Math.min(Z, Math.floor(4_000_000 / (K * X * Y)) || 1));
  const mixAt = fullMixer ? fullMixSource(fullMixer, fullImage, full, K) : undefined;
  for (let z0 = zr0; z0 < zr1; z0 += step) {
    const depth = Math.min(step, zr1 - z0);
    const probs = upsampleSlab(lowProbs, K, lowShape, [Z, Y, X], f, z0, depth);
    const n = depth * Y * X;
    if (mixAt) {
      if (opts.signal?.aborted) throw new CancelledError('prediction cancelled');
      const w = fullMixer!.weight;
      const m = await mixAt(z0, depth);
      for (let i = 0; i < probs.length; i++) probs[i] = (1 - w) * probs[i]! + w * m[i]!;
    }
    const lab = K > 255 ? new Uint16Array(n) : new Uint8Array(n);
    decideInto(probs, n, K, opts.decisionWeights, lab, counts);
    labels?.set(lab, z0 * Y * X);
    if (opts.probabilities && opts.decisionWeights) reweight(probs, K, opts.decisionWeights);
    await opts.onSlab?.({ z0, depth, labels: lab, ...(opts.probabilities ? { probabilities: probs } : {}) });
  }
  return { ...res, classCounts: counts, ...(labels ? { labels } : {}) };
}

/** In place: p_k <- w_k p_k / sum_j w_j p_j (class-planar K x n). */
export function reweight(p: Float32Array, K: number, w: number[]): void {
  const n = p.length / K;
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = 0; k < K; k++) sum += p[k * n + i]! * w[k]!;
    if (!(sum > 0)) continue;
    for (let k = 0; k < K; k++) p[k * n + i] = (p[k * n + i]! * w[k]!) / sum;
  }
}
