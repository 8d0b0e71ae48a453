/**
 * The normalisation statistics of a volume that is not in memory (a RegionSource), from a deterministic sample:
 * the one function that out-of-core training and densify (main/services, main/pipeline) use for "the statistics
 * of the whole volume", so that they are the same numbers whoever asks.
 *
 * Small volumes (at most `maxVoxels` values, all channels counted) are read whole and give exactly
 * computeNormalisation's result for the volume in memory, voxel for voxel the same input. Bigger ones are sampled,
 * at most `maxVoxels` values in all: whole z-planes (the bright spots that set the upper percentile are local in
 * x and y, so a plane sees all of those at its depth; blocks of chunks measured worse on the nuclei), evenly
 * spread over z in chunk rows of the source (its natural read unit: a TIFF strip or page, an HDF5 or Zarr chunk)
 * and within them, with the rows held to DECODE_FACTOR times the planes kept so thick chunks are not all decoded;
 * planes too big for MIN_UNITS of them are read as at least MIN_BLOCKS blocks within chunks, spread over z, y, x. The sample goes to
 * computeNormalisation as one volume, so the percentiles and the clipped mean/std are computed as in memory.
 *
 * Streamed segment does not call this: a model folder carries the normalisation of its training volumes
 * (model.json), and segment applies those numbers to every stack (the in-memory path does the same), so no pass
 * over the stack is made for statistics. See docs/batch.md.
 */
import type { CancelSignal } from '../common/progress.js';
import { allocTyped, type Volume } from '../common/volume.js';
import { CancelledError } from '../common/errors.js';
import type { RegionBox, RegionSource } from '../io/region.js';
import { computeNormalisation, type Normalisation } from '../volume/preprocess.js';

/** Values (voxels x channels) read at most, and the size up to which a volume is read whole: 64 M. */
export const NORMALISATION_SAMPLE_VOXELS = 64 * 2 ** 20;
/** A sampled volume is read as whole z-planes when at least this many fit in the budget, else as blocks of planes. */
export const MIN_UNITS = 16;
/** Whole planes: chunk rows are decoded for at most this many times the planes kept (thick Zarr/HDF5 chunks). */
export const DECODE_FACTOR = 8;
/** Planes too big for MIN_UNITS of them: the sample is at least this many blocks. */
export const MIN_BLOCKS = 64;

export interface SampleOptions {
  /** values (voxels x channels) to read at most; volumes up to this size are read whole (default 64 M) */
  maxVoxels?: number;
  /** percentiles of the normalisation (default computeNormalisation's [1, 99.8]) */
  percentiles?: [number, number];
  signal?: CancelSignal;
}

export interface SourceNormalisation {
  normalisation: Normalisation;
  /** true when the whole volume was read (then equal to computeNormalisation of it in memory) */
  whole: boolean;
  /** the boxes read, in z-major order */
  boxes: RegionBox[];
  /** voxels read (spatial; times channels for the values) */
  voxels: number;
}

/** Half-open intervals along one axis: units of at most `unit` that never cross a multiple of `chunk`. */
function axisUnits(size: number, chunk: number, unit: number): [number, number][] {
  const out: [number, number][] = [];
  for (let cs = 0; cs < size; cs += chunk) {
    const ce = Math.min(size, cs + chunk);
    const n = Math.ceil((ce - cs) / unit);
    if (n === 1) {
      out.push([cs, ce]);
      continue;
    }
    for (let s = cs; s < ce; s += unit) out.push([s, Math.min(ce, s + unit)]);
  }
  return out;
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

/**
 * The boxes sourceNormalisation reads for a volume of `shape` whose source reads `chunk` ([z, y, x]) at a time.
 * Pure and deterministic; exported for tests and for callers that want to know the cost first.
 */
export function normalisationSamplePlan(
  shape: { x: number; y: number; z: number; c: number },
  chunk: [number, number, number],
  maxVoxels = NORMALISATION_SAMPLE_VOXELS,
): { whole: boolean; boxes: RegionBox[] } {
  const { x: X, y: Y, z: Z, c: C } = shape;
  if (!(maxVoxels >= C)) throw new RangeError(`normalisation sample: maxVoxels ${maxVoxels} is below one voxel of ${C} channels`);
  if (X * Y * Z * C <= maxVoxels) return { whole: true, boxes: [{ x0: 0, y0: 0, z0: 0, x1: X, y1: Y, z1: Z }] };
  const size = [Z, Y, X];
  const ch = chunk.map((c, i) => Math.max(1, Math.min(size[i]!, Math.floor(c)))) as [number, number, number];
  const planeV = X * Y * C;
  if (planeV * MIN_UNITS <= maxVoxels) {
    // whole planes (bright spots are local in x and y: a plane sees all of them at its depth), in T chunk rows
    // spread over z, m planes spread within each row: decoding a row of chunks costs cz planes, so T is held to
    // DECODE_FACTOR times the planes kept
    const P = Math.floor(maxVoxels / planeV);
    const cz = ch[0];
    const R = Math.ceil(Z / cz);
    const T = Math.max(1, Math.min(R, P, Math.floor((DECODE_FACTOR * P) / cz)));
    const boxes: RegionBox[] = [];
    for (let t = 0; t < T; t++) {
      const r = Math.floor(((t + 0.5) * R) / T);
      const a = r * cz;
      const depth = Math.min(Z, a + cz) - a;
      const m = Math.min(depth, Math.floor(P / T));
      for (let i = 0; i < m; i++) {
        const z = a + Math.floor(((i + 0.5) * depth) / m);
        boxes.push({ z0: z, z1: z + 1, y0: 0, y1: Y, x0: 0, x1: X });
      }
    }
    return { whole: false, boxes };
  }
  // planes too big for MIN_UNITS of them: at least MIN_BLOCKS blocks, each inside one chunk and at least
  // 1/DECODE_FACTOR of its depth (shrunk z first, then y, then x, to fit), spread over z, y and x by a Halton
  // point per block (no aliasing of a fixed stride)
  const target = Math.max(C, Math.floor(maxVoxels / MIN_BLOCKS));
  const unit = [Math.max(1, Math.ceil(ch[0] / DECODE_FACTOR)), ch[1], ch[2]];
  for (let a = 0; a < 3; a++) {
    const rest = unit.reduce((p, u, i) => (i === a ? p : p * u), C);
    if (rest * unit[a]! <= target) break;
    unit[a] = Math.max(1, Math.floor(target / rest));
    if (rest * unit[a]! <= target) break;
  }
  const units = [0, 1, 2].map((a) => axisUnits(size[a]!, ch[a]!, unit[a]!));
  const g = units.map((u) => u.length);
  const n = g[0]! * g[1]! * g[2]!;
  const k = Math.min(n, Math.max(1, Math.floor(maxVoxels / (unit[0]! * unit[1]! * unit[2]! * C))));
  const picked = new Set<number>();
  for (let j = 1; picked.size < k && j <= 64 * k + 1024; j++) {
    const iz = Math.min(g[0]! - 1, Math.floor(halton(j, 2) * g[0]!));
    const iy = Math.min(g[1]! - 1, Math.floor(halton(j, 3) * g[1]!));
    const ix = Math.min(g[2]! - 1, Math.floor(halton(j, 5) * g[2]!));
    picked.add((iz * g[1]! + iy) * g[2]! + ix);
  }
  for (let i = 0; picked.size < k; i++) picked.add(i % n);
  const boxes = [...picked]
    .sort((a, b) => a - b)
    .map((i) => {
      const ix = i % g[2]!;
      const iy = Math.floor(i / g[2]!) % g[1]!;
      const iz = Math.floor(i / (g[1]! * g[2]!));
      const [z0, z1] = units[0]![iz]!;
      const [y0, y1] = units[1]![iy]!;
      const [x0, x1] = units[2]![ix]!;
      return { z0, z1, y0, y1, x0, x1 };
    });
  return { whole: false, boxes };
}

/**
 * The normalisation (computeNormalisation's percentile-standardise) of a RegionSource's whole volume, from the
 * deterministic sample of normalisationSamplePlan: exact for volumes up to `maxVoxels` values.
 */
export async function sourceNormalisation(source: RegionSource, o: SampleOptions = {}): Promise<SourceNormalisation> {
  const info = source.info;
  const C = info.shape.c;
  const { whole, boxes } = normalisationSamplePlan(info.shape, source.chunk, o.maxVoxels ?? NORMALISATION_SAMPLE_VOXELS);
  const sizes = boxes.map((b) => (b.x1 - b.x0) * (b.y1 - b.y0) * (b.z1 - b.z0));
  const L = sizes.reduce((a, b) => a + b, 0);
  const data = allocTyped(info.dtype, C * L);
  let at = 0;
  for (let i = 0; i < boxes.length; i++) {
    if (o.signal?.aborted) throw new CancelledError('normalisation sample cancelled');
    const d = await source.read(boxes[i]!, { signal: o.signal });
    const n = sizes[i]!;
    // channel-planar in the box and in the sample: channel c of every box goes to channel c's run
    for (let c = 0; c < C; c++) data.set(d.subarray(c * n, (c + 1) * n) as never, c * L + at);
    at += n;
  }
  // whole: the volume's own layout; sampled: one row of L voxels per channel (only the values matter)
  const vol: Volume = { ...info, shape: whole ? info.shape : { ...info.shape, x: L, y: 1, z: 1 }, data };
  return { normalisation: computeNormalisation([vol], o.percentiles), whole, boxes, voxels: L };
}
