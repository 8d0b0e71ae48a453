/**
 * The normalisation statistics of a whole volume behind a RegionSource (main/io/region.ts), at the working
 * resolution of a recipe, from a deterministic sample: the whole volume when its working-resolution image has
 * at most `maxVoxels` voxels (then the statistics are exactly those the in-memory recipe computes from the
 * downsampled stack), otherwise evenly spaced groups of z-planes (each group as deep as the z factor, so the box
 * average is the one the in-memory path computes) up to that budget. Training on crops of an out-of-core volume
 * (main/pipeline/crops.ts) uses it so that the model's normalisation is the volume's, not the crops'; streamed
 * segment then applies the model's (stored) normalisation to the same volume.
 */
import { computeNormalisation, type Normalisation } from '../volume/preprocess.js';
import { downsampleVolume, isIdentity, type Factors } from '../volume/resample.js';
import { allocTyped, type TypedArray, type Volume } from '../common/volume.js';
import type { CancelSignal } from '../common/progress.js';
import { CancelledError } from '../common/errors.js';
import type { RegionSource } from '../io/region.js';

/** Working-resolution voxels (all channels) read for the statistics at most: 2^26 (64 M). */
export const NORM_SAMPLE_VOXELS = 2 ** 26;

export interface SourceNormalisation {
  normalisation: Normalisation;
  /** z-plane groups read (each `factors[0]` planes deep) of all groups */
  groups: { read: number; total: number };
  /** full-resolution voxels read (all channels) */
  voxelsRead: number;
  /** whether every voxel was read (then equal to the in-memory statistics) */
  whole: boolean;
}

/** Indices of `k` of `n` groups, evenly spaced and deterministic (all when k >= n). */
export function sampleGroups(n: number, k: number): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  for (let i = 0; i < k; i++) out.push(Math.min(n - 1, Math.floor(((i + 0.5) * n) / k)));
  return [...new Set(out)];
}

export async function sourceNormalisation(
  source: RegionSource,
  factors: Factors = [1, 1, 1],
  opts: { maxVoxels?: number; signal?: CancelSignal } = {},
): Promise<SourceNormalisation> {
  const info = source.info;
  const { x: X, y: Y, z: Z, c: C } = info.shape;
  const [fz, fy, fx] = factors;
  const ox = Math.ceil(X / fx),
    oy = Math.ceil(Y / fy);
  const G = Math.ceil(Z / fz);
  const perGroup = C * ox * oy;
  const k = Math.max(1, Math.floor((opts.maxVoxels ?? NORM_SAMPLE_VOXELS) / perGroup));
  const groups = sampleGroups(G, k);
  const identity = isIdentity(factors);
  // the sampled working-resolution planes, channel-planar in z order (the in-memory layout of the low image)
  const n = groups.length;
  const plane = ox * oy;
  const data: TypedArray = identity ? allocTyped(info.dtype, C * n * plane) : new Float32Array(C * n * plane);
  let voxelsRead = 0;
  // consecutive groups are read together in slabs of at most ~32 M voxels
  const perRead = Math.max(1, Math.floor(32_000_000 / (C * X * Y * fz)));
  for (let i = 0; i < n; ) {
    if (opts.signal?.aborted) throw new CancelledError('normalisation statistics cancelled');
    let j = i + 1;
    while (j < n && j - i < perRead && groups[j] === groups[j - 1]! + 1) j++;
    const z0 = groups[i]! * fz;
    const z1 = Math.min(Z, groups[j - 1]! * fz + fz);
    const slab = await source.read({ x0: 0, x1: X, y0: 0, y1: Y, z0, z1 }, { signal: opts.signal });
    voxelsRead += C * X * Y * (z1 - z0);
    const v: Volume = { ...info, shape: { ...info.shape, z: z1 - z0 }, data: slab };
    const low = identity ? v : downsampleVolume(v, factors);
    const lz = low.shape.z; // j - i groups
    for (let c = 0; c < C; c++) data.set(low.data.subarray(c * lz * plane, (c + 1) * lz * plane) as never, (c * n + i) * plane);
    i = j;
  }
  const sample: Volume = { ...info, dtype: identity ? info.dtype : 'float32', shape: { ...info.shape, x: ox, y: oy, z: n }, data };
  return { normalisation: computeNormalisation([sample]), groups: { read: n, total: G }, voxelsRead, whole: n === G };
}
