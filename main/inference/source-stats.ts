/**
 * The normalisation statistics of a whole volume behind a RegionSource (main/io/region.ts), at the working
 * resolution of a recipe, from a deterministic sample: the one function for "the statistics of the whole volume"
 * (training on crops of an out-of-core volume, main/pipeline/crops.ts, so that the model's normalisation is the
 * volume's, not the crops'). Streamed segment does not call it: it applies the model's stored normalisation
 * (model.json, from the training volumes) to every stack, as the in-memory path does, so no pass over the stack
 * is made for statistics.
 *
 * The unit is a group of z-planes as deep as the z factor (so the box average is the one the in-memory path
 * computes), at full y and x. When the working-resolution image has at most `maxVoxels` values (voxels x
 * channels) every group is read (slab by slab) and the statistics are exactly those the in-memory recipe
 * computes from the downsampled stack. Otherwise:
 * - groups of whole planes, up to the budget: the voxels that set the upper percentile are local in x and y (on
 *   1135 a sample of 25³ chunks missed its saturated corner: upper percentile 17-28 % of the range off), so a plane
 *   sees all of those at its depth. The groups are evenly spaced over z; when decoding every chunk row of the
 *   source (its read unit: a TIFF strip or page, an HDF5 or Zarr chunk) would cost more than DECODE_VALUES, they
 *   lie in as many chunk rows as that allows, spread evenly over z, and evenly within each row (thick 64-plane
 *   Zarr rows of a 100 GB volume are not all decoded for a few planes).
 * - when even one group is over the budget (huge planes): at least MIN_BLOCKS blocks on the chunk grid where the
 *   factors allow, a multiple of the factors (so their box averages are the whole image's), spread over z, y and x by
 *   a Halton point per block (no aliasing of a fixed stride), together within the budget.
 * The sample goes to computeNormalisation as one volume, so percentiles and the clipped mean/std are computed as
 * in memory.
 */
import { computeNormalisation, type Normalisation } from '../volume/preprocess.js';
import { downsampleVolume, isIdentity, type Factors } from '../volume/resample.js';
import { allocTyped, type TypedArray, type Volume } from '../common/volume.js';
import type { CancelSignal } from '../common/progress.js';
import { CancelledError } from '../common/errors.js';
import type { RegionBox, RegionSource } from '../io/region.js';

/** Working-resolution values (voxels x channels) read for the statistics at most: 2^26 (64 M). */
export const NORM_SAMPLE_VOXELS = 2 ** 26;
/** Groups of planes: full-resolution values of the chunk rows decoded at most (1 G: 2 GiB of uint16). */
export const DECODE_VALUES = 2 ** 30;
/** Blocks: each at least 1/DECODE_FACTOR of its chunk's depth, so decoding costs at most this many times the kept. */
export const DECODE_FACTOR = 8;
/** Planes too big for one group in the budget: the sample is at least this many blocks. */
export const MIN_BLOCKS = 64;

export interface SourceNormalisation {
  normalisation: Normalisation;
  /** z-plane groups read (each `factors[0]` planes deep) of all groups; blocks: groups touched */
  groups: { read: number; total: number };
  /** full-resolution voxels read (all channels) */
  voxelsRead: number;
  /** whether every voxel was read (then equal to the in-memory statistics) */
  whole: boolean;
  /** the full-resolution boxes read, in z-major order */
  boxes: RegionBox[];
}

export interface NormalisationSamplePlan {
  whole: boolean;
  /** groups of planes (indices of fz-plane groups, ascending), or blocks (full-resolution boxes) */
  groups?: number[];
  blocks?: RegionBox[];
  total: number;
}

/** Indices of `k` of `n` groups, evenly spaced and deterministic (all when k >= n). */
export function sampleGroups(n: number, k: number): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  for (let i = 0; i < k; i++) out.push(Math.min(n - 1, Math.floor(((i + 0.5) * n) / k)));
  return [...new Set(out)];
}

function halton(i: number, base: number): number {
  let f = 1;
  let r = 0;
  while (i > 0) {
    f /= base;
    r += f * (i % base);
    i = Math.floor(i / base);
  }
  return r;
}

/** Half-open intervals along one axis: units of at most `unit` that never cross a multiple of `chunk`. */
function axisUnits(size: number, chunk: number, unit: number): [number, number][] {
  const out: [number, number][] = [];
  for (let cs = 0; cs < size; cs += chunk) {
    const ce = Math.min(size, cs + chunk);
    for (let s = cs; s < ce; s += unit) out.push([s, Math.min(ce, s + unit)]);
  }
  return out;
}

/**
 * What sourceNormalisation reads for a volume of `shape` whose source reads `chunk` ([z, y, x]) at a time, at
 * working-resolution `factors`. Pure and deterministic; exported for tests and for callers that want the cost.
 */
export function normalisationSamplePlan(
  shape: { x: number; y: number; z: number; c: number },
  chunk: [number, number, number],
  factors: Factors = [1, 1, 1],
  maxVoxels = NORM_SAMPLE_VOXELS,
): NormalisationSamplePlan {
  const { x: X, y: Y, z: Z, c: C } = shape;
  const [fz, fy, fx] = factors;
  const ox = Math.ceil(X / fx);
  const oy = Math.ceil(Y / fy);
  const G = Math.ceil(Z / fz);
  const perGroup = C * ox * oy;
  if (G * perGroup <= maxVoxels) return { whole: true, groups: sampleGroups(G, G), total: G };
  const cz = Math.max(1, Math.min(Z, Math.floor(chunk[0])));
  if (perGroup <= maxVoxels) {
    const k = Math.floor(maxVoxels / perGroup);
    // decoding every chunk row is affordable: k groups evenly spaced over z
    if (X * Y * Z * C <= DECODE_VALUES) return { whole: false, groups: sampleGroups(G, k), total: G };
    // else T chunk rows (a row of cz planes holds about cz / fz groups) spread over z, within DECODE_VALUES
    const gpr = Math.max(1, Math.round(cz / fz));
    const R = Math.ceil(G / gpr);
    const T = Math.max(1, Math.min(R, k, Math.floor(DECODE_VALUES / (cz * X * Y * C))));
    const groups: number[] = [];
    for (let t = 0; t < T; t++) {
      const r = Math.floor(((t + 0.5) * R) / T);
      const a = r * gpr;
      const n = Math.min(G, a + gpr) - a;
      // k groups in all: the first k mod T rows get one more
      const m = Math.min(n, Math.floor(k / T) + (t < k % T ? 1 : 0));
      for (let i = 0; i < m; i++) groups.push(a + Math.floor(((i + 0.5) * n) / m));
    }
    return { whole: false, groups: [...new Set(groups)].sort((p, q) => p - q), total: G };
  }
  // blocks: fz-aligned depth (at least 1/DECODE_FACTOR of a chunk row), y and x multiples of the factors,
  // shrunk y first, then x, to fit MIN_BLOCKS of them (in working-resolution values)
  const target = Math.max(C, Math.floor(maxVoxels / MIN_BLOCKS));
  const dz = fz * Math.max(1, Math.ceil(Math.ceil(cz / DECODE_FACTOR) / fz));
  const lowOf = (n: number, f: number) => Math.ceil(n / f);
  let by = Math.max(fy, Math.floor(Math.max(1, Math.min(Y, chunk[1])) / fy) * fy);
  let bx = Math.max(fx, Math.floor(Math.max(1, Math.min(X, chunk[2])) / fx) * fx);
  let bz = dz;
  const vals = () => C * lowOf(bz, fz) * lowOf(by, fy) * lowOf(bx, fx);
  if (vals() > target) bz = fz;
  if (vals() > target) by = Math.max(fy, Math.floor(target / (C * lowOf(bx, fx))) * fy);
  if (vals() > target) bx = Math.max(fx, Math.floor(target / C) * fx);
  const cy = Math.max(by, Math.floor(Math.max(1, Math.min(Y, chunk[1])) / by) * by);
  const cx = Math.max(bx, Math.floor(Math.max(1, Math.min(X, chunk[2])) / bx) * bx);
  const czA = Math.max(bz, Math.floor(cz / bz) * bz);
  const units = [axisUnits(Z, czA, bz), axisUnits(Y, cy, by), axisUnits(X, cx, bx)];
  const g = units.map((u) => u.length);
  const n = g[0]! * g[1]! * g[2]!;
  const k = Math.min(n, Math.max(1, Math.floor(maxVoxels / vals())));
  const picked = new Set<number>();
  for (let j = 1; picked.size < k && j <= 64 * k + 1024; j++) {
    const iz = Math.min(g[0]! - 1, Math.floor(halton(j, 2) * g[0]!));
    const iy = Math.min(g[1]! - 1, Math.floor(halton(j, 3) * g[1]!));
    const ix = Math.min(g[2]! - 1, Math.floor(halton(j, 5) * g[2]!));
    picked.add((iz * g[1]! + iy) * g[2]! + ix);
  }
  for (let i = 0; picked.size < k; i++) picked.add(i % n);
  const blocks = [...picked]
    .sort((a, b) => a - b)
    .map((i) => {
      const [x0, x1] = units[2]![i % g[2]!]!;
      const [y0, y1] = units[1]![Math.floor(i / g[2]!) % g[1]!]!;
      const [z0, z1] = units[0]![Math.floor(i / (g[1]! * g[2]!))]!;
      return { z0, z1, y0, y1, x0, x1 };
    });
  return { whole: false, blocks, total: G };
}

export async function sourceNormalisation(
  source: RegionSource,
  factors: Factors = [1, 1, 1],
  opts: { maxVoxels?: number; percentiles?: [number, number]; signal?: CancelSignal } = {},
): Promise<SourceNormalisation> {
  const info = source.info;
  const { x: X, y: Y, z: Z, c: C } = info.shape;
  const [fz, fy, fx] = factors;
  const identity = isIdentity(factors);
  const plan = normalisationSamplePlan(info.shape, source.chunk, factors, opts.maxVoxels ?? NORM_SAMPLE_VOXELS);
  const boxes: RegionBox[] = [];
  let voxelsRead = 0;
  const read = async (box: RegionBox): Promise<Volume> => {
    if (opts.signal?.aborted) throw new CancelledError('normalisation statistics cancelled');
    const d = await source.read(box, { signal: opts.signal });
    boxes.push(box);
    voxelsRead += C * (box.x1 - box.x0) * (box.y1 - box.y0) * (box.z1 - box.z0);
    const v: Volume = { ...info, shape: { ...info.shape, x: box.x1 - box.x0, y: box.y1 - box.y0, z: box.z1 - box.z0 }, data: d };
    return identity ? v : downsampleVolume(v, factors);
  };
  let sample: Volume;
  if (plan.groups) {
    // the sampled working-resolution planes, channel-planar in z order (the in-memory layout of the low image)
    const groups = plan.groups;
    const ox = Math.ceil(X / fx);
    const oy = Math.ceil(Y / fy);
    const n = groups.length;
    const plane = ox * oy;
    const data: TypedArray = identity ? allocTyped(info.dtype, C * n * plane) : new Float32Array(C * n * plane);
    // consecutive groups are read together in slabs of at most ~32 M voxels
    const perRead = Math.max(1, Math.floor(32_000_000 / (C * X * Y * fz)));
    for (let i = 0; i < n; ) {
      let j = i + 1;
      while (j < n && j - i < perRead && groups[j] === groups[j - 1]! + 1) j++;
      const low = await read({ x0: 0, x1: X, y0: 0, y1: Y, z0: groups[i]! * fz, z1: Math.min(Z, groups[j - 1]! * fz + fz) });
      const lz = low.shape.z; // j - i groups
      for (let c = 0; c < C; c++) data.set(low.data.subarray(c * lz * plane, (c + 1) * lz * plane) as never, (c * n + i) * plane);
      i = j;
    }
    sample = { ...info, dtype: identity ? info.dtype : 'float32', shape: { ...info.shape, x: ox, y: oy, z: n }, data };
  } else {
    // blocks: one row of L working-resolution voxels per channel (only the values matter)
    const lows: Volume[] = [];
    for (const b of plan.blocks!) lows.push(await read(b));
    const sizes = lows.map((l) => l.shape.x * l.shape.y * l.shape.z);
    const L = sizes.reduce((a, b) => a + b, 0);
    const data: TypedArray = identity ? allocTyped(info.dtype, C * L) : new Float32Array(C * L);
    let at = 0;
    lows.forEach((l, i) => {
      const m = sizes[i]!;
      for (let c = 0; c < C; c++) data.set(l.data.subarray(c * m, (c + 1) * m) as never, c * L + at);
      at += m;
    });
    sample = { ...info, dtype: identity ? info.dtype : 'float32', shape: { ...info.shape, x: L, y: 1, z: 1 }, data };
  }
  const touched = plan.groups ? plan.groups.length : new Set(plan.blocks!.map((b) => Math.floor(b.z0 / fz))).size;
  return { normalisation: computeNormalisation([sample], opts.percentiles), groups: { read: touched, total: plan.total }, voxelsRead, whole: plan.whole, boxes };
}
