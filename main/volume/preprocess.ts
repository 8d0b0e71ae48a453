/**
 * Intensity normalisation and optional downsampling. Pure.
 *
 * Normalisation (per channel, stored in the model so that segmenting new stacks uses the same mapping):
 *   u = (x - p_lo) / (p_hi - p_lo)   with p_lo, p_hi the 1st and 99.8th percentiles of the training volume(s),
 *   v = (u - mean_u) / std_u         mean and std of u over voxels inside [p_lo, p_hi] (robust to hot pixels).
 *
 * Anisotropic spacing: the network works in voxel space and is not resampled by default (resampling z up by
 * 2.2x would cost 2.2x the compute). Spacing enters the augmentation (rotations are done in physical space,
 * large rotations only in planes with isotropic axes) and is stored in the model; `segment` warns when a
 * stack's spacing differs from the training spacing by more than 25 %. `downsample` (integer factors per axis)
 * trades detail for context and speed, as the paper did (half resolution).
 */
import type { TypedArray, Volume } from '../common/volume.js';

export interface ChannelNorm {
  lo: number;
  hi: number;
  mean: number;
  std: number;
}

export interface Normalisation {
  method: 'percentile-standardise';
  percentiles: [number, number];
  channels: ChannelNorm[];
}

/** Percentiles of a set of values; large arrays are subsampled with a fixed stride (deterministic). */
export function percentiles(values: ArrayLike<number>, ps: number[], maxSamples = 2_000_000): number[] {
  const n = values.length;
  if (n === 0) throw new RangeError('percentiles of an empty array');
  const stride = Math.max(1, Math.floor(n / maxSamples));
  const m = Math.ceil(n / stride);
  const s = new Float64Array(m);
  for (let i = 0, j = 0; i < n && j < m; i += stride, j++) s[j] = values[i]!;
  s.sort();
  return ps.map((p) => {
    const pos = (p / 100) * (m - 1);
    const i = Math.floor(pos);
    const f = pos - i;
    return i + 1 < m ? s[i]! * (1 - f) + s[i + 1]! * f : s[i]!;
  });
}

/** Computes the normalisation from one or more volumes with the same channel count. */
export function computeNormalisation(volumes: Volume[], p: [number, number] = [1, 99.8]): Normalisation {
  if (volumes.length === 0) throw new RangeError('computeNormalisation: no volumes');
  const C = volumes[0]!.shape.c;
  const channels: ChannelNorm[] = [];
  for (let c = 0; c < C; c++) {
    const parts = volumes.map((v) => channelView(v, c));
    const all = concatSampled(parts);
    const [lo, p99] = percentiles(all, p) as [number, number];
    let hi = p99;
    // a constant channel: any positive range keeps the mapping finite
    if (!(hi > lo)) hi = lo + 1;
    let sum = 0;
    let sum2 = 0;
    let k = 0;
    for (const part of parts) {
      const stride = Math.max(1, Math.floor(part.length / 2_000_000));
      for (let i = 0; i < part.length; i += stride) {
        const x = part[i]!;
        if (x < lo || x > hi) continue;
        const u = (x - lo) / (hi - lo);
        sum += u;
        sum2 += u * u;
        k++;
      }
    }
    const mean = k ? sum / k : 0;
    const std = k ? Math.sqrt(Math.max(sum2 / k - mean * mean, 1e-12)) : 1;
    channels.push({ lo, hi, mean, std: std > 1e-6 ? std : 1 });
  }
  return { method: 'percentile-standardise', percentiles: p, channels };
}

function channelView(v: Volume, c: number): TypedArray {
  const n = v.shape.x * v.shape.y * v.shape.z;
  return v.data.subarray(c * n, (c + 1) * n) as TypedArray;
}

function concatSampled(parts: TypedArray[]): Float64Array {
  const total = parts.reduce((s, p) => s + p.length, 0);
  const stride = Math.max(1, Math.floor(total / 4_000_000));
  const out: number[] = [];
  for (const p of parts) for (let i = 0; i < p.length; i += stride) out.push(p[i]!);
  return Float64Array.from(out);
}

/**
 * Applies the normalisation to voxels [start, start+count) of every channel (z-slab friendly), writing
 * channel-planar float32 (C * count).
 */
export function normaliseRange(v: Volume, norm: Normalisation, start: number, count: number, out?: Float32Array): Float32Array {
  const C = v.shape.c;
  if (norm.channels.length !== C) {
    throw new RangeError(`the model expects ${norm.channels.length} channel(s), the volume has ${C}`);
  }
  const n = v.shape.x * v.shape.y * v.shape.z;
  const res = out ?? new Float32Array(C * count);
  for (let c = 0; c < C; c++) {
    const { lo, hi, mean, std } = norm.channels[c]!;
    const a = 1 / ((hi - lo) * std);
    const b = -(lo / (hi - lo) + mean) / std;
    const src = v.data;
    const base = c * n + start;
    const ob = c * count;
    for (let i = 0; i < count; i++) res[ob + i] = src[base + i]! * a + b;
  }
  return res;
}

export function normaliseVolume(v: Volume, norm: Normalisation): Float32Array {
  return normaliseRange(v, norm, 0, v.shape.x * v.shape.y * v.shape.z);
}
