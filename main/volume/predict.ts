/**
 * Overlap-tile prediction of whole volumes (or sub-regions), streamed in z-slabs so that memory for the output
 * stays bounded by one slab of tiles: the caller's `onSlab` writes each slab to disk.
 */
import type { Model } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { CancelledError, SliceformError } from '../common/errors.js';
import { EtaEstimator, type CancelSignal, type ProgressCallback } from '../common/progress.js';
import type { Normalisation } from './preprocess.js';
import { mirrorIndex } from './mirror.js';
import { planTiles, type TilePlan, type Vec3 } from './tiling.js';

/** Image data and the affine map to the network's input: v = data * scale[c] + offset[c]. */
export interface ImageSource {
  shape: Vec3;
  channels: number;
  data: ArrayLike<number>;
  scale: number[];
  offset: number[];
  /**
   * when set, `data` holds only this window of the volume (channel-planar over the window's shape): streamed
   * prediction reads a tile row with its halo from a RegionSource. Mirroring is still about the whole `shape`,
   * so a tile extracted from a window equals the one extracted from the whole volume, bit for bit.
   */
  window?: { origin: Vec3; shape: Vec3 };
}

export function sourceFromVolume(v: Volume, norm: Normalisation): ImageSource {
  if (norm.channels.length !== v.shape.c) {
    throw new SliceformError(
      'bad-input',
      `the model expects ${norm.channels.length} channel(s), but the stack has ${v.shape.c}`,
      { file: v.source },
    );
  }
  return { shape: [v.shape.z, v.shape.y, v.shape.x], channels: v.shape.c, data: v.data, ...normAffine(norm) };
}

/** The normalisation as the affine map v = x * scale[c] + offset[c] that tiles apply (one formula for all paths). */
export function normAffine(norm: Normalisation): { scale: number[]; offset: number[] } {
  return {
    scale: norm.channels.map((c) => 1 / ((c.hi - c.lo) * c.std)),
    offset: norm.channels.map((c) => -(c.lo / (c.hi - c.lo) + c.mean) / c.std),
  };
}

export function sourceFromNormalised(data: Float32Array, shape: Vec3, channels: number): ImageSource {
  return { shape, channels, data, scale: new Array(channels).fill(1), offset: new Array(channels).fill(0) };
}

/** Mirror-padded, normalised input tile starting at `origin` (input coordinates, may be negative). */
export function extractTile(
  src: ImageSource,
  origin: Vec3,
  shape: Vec3,
  flip?: [boolean, boolean, boolean],
): Float32Array {
  const [Z, Y, X] = src.shape;
  const [D, H, W] = shape;
  const n = D * H * W;
  const out = new Float32Array(src.channels * n);
  const [wz, wy, wx] = src.window?.origin ?? [0, 0, 0];
  const [WZ, WY, WX] = src.window?.shape ?? src.shape;
  const xi = new Int32Array(W);
  for (let x = 0; x < W; x++) xi[x] = mirrorIndex(origin[2] + (flip?.[2] ? W - 1 - x : x), X) - wx;
  const plane = WZ * WY * WX;
  for (let c = 0; c < src.channels; c++) {
    const a = src.scale[c]!;
    const b = src.offset[c]!;
    for (let z = 0; z < D; z++) {
      const sz = mirrorIndex(origin[0] + (flip?.[0] ? D - 1 - z : z), Z) - wz;
      for (let y = 0; y < H; y++) {
        const sy = mirrorIndex(origin[1] + (flip?.[1] ? H - 1 - y : y), Y) - wy;
        const base = c * plane + (sz * WY + sy) * WX;
        const ob = c * n + (z * H + y) * W;
        for (let x = 0; x < W; x++) out[ob + x] = src.data[base + xi[x]!]! * a + b;
      }
    }
  }
  return out;
}

/**
 * Labels 1..K = argmax_k w_k p_k of class-planar probabilities (K x n; w all 1 when absent) into `out`, counting
 * each class into counts[k] when given. The one decision rule of prediction, densify and the recipe's fits.
 */
export function decideInto(
  p: Float32Array,
  n: number,
  K: number,
  w: ArrayLike<number> | undefined,
  out: Uint8Array | Uint16Array,
  counts?: number[],
): void {
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = p[i]! * (w ? w[0]! : 1);
    for (let k = 1; k < K; k++) {
      const v = p[k * n + i]! * (w ? w[k]! : 1);
      if (v > bv) {
        bv = v;
        best = k;
      }
    }
    out[i] = best + 1;
    if (counts) counts[best + 1]!++;
  }
}

export interface Slab {
  /** first z of the slab (region coordinates) */
  z0: number;
  depth: number;
  /** argmax labels 1..K, depth*Y*X of the region (uint16 when K > 255, so classes never wrap) */
  labels: Uint8Array | Uint16Array;
  /** per-class probabilities K*depth*Y*X, when requested */
  probabilities?: Float32Array;
}

export interface PredictOptions {
  numClasses: number;
  levels: number;
  padding: 'valid' | 'same';
  /** budget for one input tile in voxels (default 3 M; memory ~ 1 KB per input voxel for the desktop net) */
  maxTileInputVoxels?: number;
  /** cap on the output tile per axis */
  maxTileOutput?: Vec3;
  /** average the probabilities over mirrored copies (x, y, xy flips): 4x the time, usually a bit better */
  testTimeFlips?: boolean;
  probabilities?: boolean;
  /**
   * calibrated decision: labels are argmax_k w_k p_k (index k-1 = class k; main/pipeline/calibration.ts);
   * the probabilities handed to onSlab stay the network's
   */
  decisionWeights?: number[];
  /**
   * a second learner's class probabilities over the whole region (class-planar K x region voxels, x fastest),
   * mixed in before the decision: p = (1 - weight) p_network + weight p_mix (main/pipeline/ensemble.ts)
   */
  mix?: { data: Float32Array; weight: number };
  signal?: CancelSignal;
  onProgress?: ProgressCallback;
}

export interface PredictResult {
  plan: TilePlan;
  /** voxels per class, index k = class k (0 unused) */
  classCounts: number[];
  seconds: number;
  tilesPredicted: number;
}

/** the test-time flips (z, y, x): identity first, so `FLIPS.slice(0, 1)` is no flip */
export const FLIPS: [boolean, boolean, boolean][] = [
  [false, false, false],
  [false, false, true],
  [false, true, false],
  [false, true, true],
];

/** Where a tile's valid output is added: value (k, z, y, x) goes to data[k*k + z*z + y*y + base + x]. */
export interface TileTarget {
  data: Float32Array;
  k: number;
  z: number;
  y: number;
  base: number;
}

/**
 * Predicts one tile (input flipped by `flip`) and adds the valid `size` = [depth, h, w] corner of its output,
 * flipped back, into `into`. `at` (z, y, x of the tile's output) only names the tile in errors.
 */
export async function addTilePrediction(
  model: Model,
  src: ImageSource,
  tileOrigin: Vec3,
  plan: TilePlan,
  flip: [boolean, boolean, boolean],
  K: number,
  at: Vec3,
  size: Vec3,
  into: TileTarget,
): Promise<void> {
  const input = extractTile(src, tileOrigin, plan.in, flip);
  let out: Float32Array;
  try {
    out = await model.predict(input, [1, src.channels, ...plan.in]);
  } catch (e) {
    throw new SliceformError(
      'engine',
      `prediction of tile at z=${at[0]}, y=${at[1]}, x=${at[2]} (input ${plan.in.join('x')}) failed: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const [oD, oH, oW] = plan.out;
  if (out.length !== K * oD * oH * oW)
    throw new SliceformError('engine', `model returned ${out.length} values for a ${plan.out.join('x')} output with ${K} classes`);
  const [depth, h, w] = size;
  const t = into.data;
  for (let k = 0; k < K; k++) {
    for (let z = 0; z < depth; z++) {
      const tz = flip[0] ? oD - 1 - z : z;
      for (let y = 0; y < h; y++) {
        const ty = flip[1] ? oH - 1 - y : y;
        const ib = ((k * oD + tz) * oH + ty) * oW;
        const ob = k * into.k + z * into.z + y * into.y + into.base;
        if (flip[2]) for (let x = 0; x < w; x++) t[ob + x]! += out[ib + oW - 1 - x]!;
        else for (let x = 0; x < w; x++) t[ob + x]! += out[ib + x]!;
      }
    }
  }
}

/**
 * Predicts the region [origin, origin+shape) of a source tile by tile, in z-rows, calling `onSlab` for each
 * finished z-row (in order). Labels are argmax + 1 (1..K).
 */
export async function predictRegion(
  model: Model,
  src: ImageSource,
  origin: Vec3,
  shape: Vec3,
  opts: PredictOptions,
  onSlab: (slab: Slab) => void | Promise<void>,
): Promise<PredictResult> {
  const K = opts.numClasses;
  const plan = planTiles(
    shape,
    { levels: opts.levels, padding: opts.padding },
    opts.maxTileInputVoxels ?? 3_000_000,
    opts.maxTileOutput,
  );
  const [, RY, RX] = shape;
  const [oD, oH, oW] = plan.out;
  const flips = opts.testTimeFlips ? FLIPS : FLIPS.slice(0, 1);
  const eta = new EtaEstimator();
  const counts = new Array<number>(K + 1).fill(0);
  let done = 0;
  const total = plan.count * flips.length;
  for (const z0 of plan.starts[0]) {
    const depth = Math.min(oD, shape[0] - z0);
    const slabN = depth * RY * RX;
    const probs = new Float32Array(K * slabN);
    for (const y0 of plan.starts[1]) {
      for (const x0 of plan.starts[2]) {
        const tileOrigin: Vec3 = [
          origin[0] + z0 - plan.before[0],
          origin[1] + y0 - plan.before[1],
          origin[2] + x0 - plan.before[2],
        ];
        for (const flip of flips) {
          if (opts.signal?.aborted) throw new CancelledError('prediction cancelled');
          await addTilePrediction(model, src, tileOrigin, plan, flip, K, [z0, y0, x0], [depth, Math.min(oH, shape[1] - y0), Math.min(oW, shape[2] - x0)], {
            data: probs,
            k: slabN,
            z: RY * RX,
            y: RX,
            base: y0 * RX + x0,
          });
          done++;
          const fraction = done / total;
          opts.onProgress?.({
            fraction,
            etaSeconds: eta.eta(fraction),
            stage: 'predicting',
            details: { tile: done, tiles: total },
          });
        }
      }
    }
    if (flips.length > 1) {
      const s = 1 / flips.length;
      for (let i = 0; i < probs.length; i++) probs[i]! *= s;
    }
    if (opts.mix && opts.mix.weight > 0) {
      const w = opts.mix.weight;
      const RN = shape[0] * RY * RX;
      const base = z0 * RY * RX;
      for (let k = 0; k < K; k++) {
        const m = opts.mix.data.subarray(k * RN + base, k * RN + base + slabN);
        for (let i = 0; i < slabN; i++) probs[k * slabN + i] = (1 - w) * probs[k * slabN + i]! + w * m[i]!;
      }
    }
    const labels = K > 255 ? new Uint16Array(slabN) : new Uint8Array(slabN);
    decideInto(probs, slabN, K, opts.decisionWeights, labels, counts);
    await onSlab({ z0, depth, labels, ...(opts.probabilities ? { probabilities: probs } : {}) });
  }
  return { plan, classCounts: counts, seconds: eta.elapsedSeconds(), tilesPredicted: done };
}
