/**
 * Annotated slices: the unit of the paper's evaluation protocols. Pure (no Node), so every rule here is unit
 * tested on toy volumes.
 *
 * Volumes are x fastest: index = (z * Y + y) * X + x. An axis-aligned slice is named by the axis it is normal
 * to: 'z' = an xy plane at z = index, 'y' = an xz plane, 'x' = a yz plane.
 */
export type Axis = 'z' | 'y' | 'x';
export const AXES: readonly Axis[] = ['z', 'y', 'x'];

export interface Dims {
  x: number;
  y: number;
  z: number;
}

export interface AnnotatedSlice {
  /** which training volume (index into the --image list) */
  volume: number;
  axis: Axis;
  index: number;
}

export function sliceKey(s: AnnotatedSlice): string {
  return `v${s.volume}:${s.axis}${s.index}`;
}

export function axisLength(d: Dims, axis: Axis): number {
  return d[axis];
}

/**
 * k indices evenly spaced in [0, n): the centres of k equal parts, so k = 1 is the middle slice and k = 3 of
 * 100 gives 16, 50, 83. Never returns duplicates; k is clamped to n.
 */
export function evenlySpaced(n: number, k: number): number[] {
  const m = Math.max(0, Math.min(n, Math.floor(k)));
  const out: number[] = [];
  for (let i = 0; i < m; i++) out.push(Math.floor(((i + 0.5) * n) / m));
  return out;
}

/** Calls fn(voxelIndex) for every voxel of a slice. */
export function forEachVoxelOfSlice(d: Dims, axis: Axis, index: number, fn: (i: number) => void): void {
  const { x: X, y: Y, z: Z } = d;
  if (axis === 'z') {
    const base = index * Y * X;
    for (let i = 0; i < Y * X; i++) fn(base + i);
  } else if (axis === 'y') {
    for (let z = 0; z < Z; z++) {
      const base = (z * Y + index) * X;
      for (let x = 0; x < X; x++) fn(base + x);
    }
  } else {
    for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) fn((z * Y + y) * X + index);
  }
}

/** 1 on every voxel that lies on one of the slices (of one volume), else 0. */
export function sliceMask(d: Dims, slices: { axis: Axis; index: number }[]): Uint8Array {
  const m = new Uint8Array(d.x * d.y * d.z);
  for (const s of slices) forEachVoxelOfSlice(d, s.axis, s.index, (i) => (m[i] = 1));
  return m;
}

/**
 * Semantic classes from a ground-truth volume. 'instances': 0 = background → class 1, any instance id > 0 →
 * class 2 (the plant-nuclei rule, nucleus = label > 0). 'classes': the values are already classes 1..K and 0
 * stays 0 (unannotated).
 */
export function classesFromTruth(truth: ArrayLike<number>, mode: 'instances' | 'classes'): Uint8Array {
  const out = new Uint8Array(truth.length);
  if (mode === 'instances') {
    for (let i = 0; i < truth.length; i++) out[i] = truth[i]! > 0 ? 2 : 1;
  } else {
    for (let i = 0; i < truth.length; i++) {
      const v = truth[i]!;
      if (v > 255 || v < 0 || !Number.isInteger(v)) throw new RangeError(`class value ${v} is not an integer class in 0..255`);
      out[i] = v;
    }
  }
  return out;
}

/** A sparse label volume: the dense classes copied on the given slices, 0 (unannotated) elsewhere. */
export function sparseFromSlices(dense: ArrayLike<number>, d: Dims, slices: { axis: Axis; index: number }[]): Uint8Array {
  const out = new Uint8Array(d.x * d.y * d.z);
  for (const s of slices) forEachVoxelOfSlice(d, s.axis, s.index, (i) => (out[i] = dense[i]!));
  return out;
}

/** k evenly spaced slices along each of the three axes (3k slices), the protocol of the Densify issue. */
export function slicesFromTruth(d: Dims, k: number, volume = 0): AnnotatedSlice[] {
  const out: AnnotatedSlice[] = [];
  for (const axis of AXES) for (const index of evenlySpaced(d[axis], k)) out.push({ volume, axis, index });
  return out;
}

/**
 * Finds the annotated slices of a sparse label volume: planes in which at least `minFraction` of the voxels
 * carry a label and that stand out from their axis (at least 4x the mean labelled voxels per plane of that
 * axis, or at least 90 % labelled). The default 0.2 separates a painted plane from a plane crossed only by the
 * lines where orthogonal annotated planes cut it (1/X + 1/Y of a plane each) and admits planes that are only
 * partly painted; the stand-out rule keeps an instance labelling or dense ground truth from passing for slices.
 */
export function detectAnnotatedSlices(labels: ArrayLike<number>, d: Dims, volume = 0, minFraction = 0.2): AnnotatedSlice[] {
  const counts: Record<Axis, Float64Array> = { z: new Float64Array(d.z), y: new Float64Array(d.y), x: new Float64Array(d.x) };
  let total = 0;
  let i = 0;
  for (let z = 0; z < d.z; z++)
    for (let y = 0; y < d.y; y++)
      for (let x = 0; x < d.x; x++, i++) {
        if (labels[i]! > 0) {
          counts.z[z]!++;
          counts.y[y]!++;
          counts.x[x]!++;
          total++;
        }
      }
  const area: Record<Axis, number> = { z: d.x * d.y, y: d.x * d.z, x: d.y * d.z };
  const out: AnnotatedSlice[] = [];
  for (const axis of AXES) {
    const c = counts[axis];
    const mean = total / c.length;
    for (let j = 0; j < c.length; j++) {
      const n = c[j]!;
      if (n > 0 && n >= minFraction * area[axis] && (n >= 4 * mean || n >= 0.9 * area[axis])) out.push({ volume, axis, index: j });
    }
  }
  return out;
}

/** Share of voxels labelled (> 0). */
export function labelledFraction(labels: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > 0) n++;
  return labels.length ? n / labels.length : 0;
}

/**
 * Splits annotated slices into `folds` folds as evenly as possible: slices are ordered by volume, axis and
 * position, and dealt round-robin, so each fold gets the same share of every volume and every axis where the
 * counts allow (the paper's "split evenly"). Deterministic.
 */
export function splitFolds(slices: AnnotatedSlice[], folds: number): AnnotatedSlice[][] {
  if (!Number.isInteger(folds) || folds < 2) throw new RangeError(`folds must be an integer >= 2, got ${folds}`);
  if (slices.length < folds) throw new RangeError(`${slices.length} annotated slices cannot be split into ${folds} folds`);
  const order = { z: 0, y: 1, x: 2 } as const;
  const sorted = [...slices].sort((a, b) => a.volume - b.volume || order[a.axis] - order[b.axis] || a.index - b.index);
  const out: AnnotatedSlice[][] = Array.from({ length: folds }, () => []);
  // Continue the deal across groups so that leftovers do not always land in fold 0.
  sorted.forEach((s, i) => out[i % folds]!.push(s));
  return out;
}

/**
 * A nested, well-spread order of the positions 0..n-1: the van der Corput sequence (1/2, 1/4, 3/4, 1/8, …)
 * scaled to n, duplicates dropped, then any positions it missed. Any prefix is spread over the range and
 * starts with the middle, and the prefix of length a is contained in the prefix of length b > a.
 */
export function spreadOrder(n: number): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  for (let i = 1; out.length < n && i < 64 * n + 64; i++) {
    let v = 0;
    let denom = 1;
    for (let k = i; k > 0; k >>= 1) {
      denom *= 2;
      if (k & 1) v += 1 / denom;
    }
    const p = Math.min(n - 1, Math.floor(v * n));
    if (!seen.has(p)) {
      seen.add(p);
      out.push(p);
    }
  }
  for (let p = 0; p < n; p++) if (!seen.has(p)) out.push(p);
  return out;
}

/**
 * The slice-count curve (paper Table 2): for each count n in `counts` (slices per axis and volume) the
 * training slices are the first n of a nested, well-spread order of the `pool` slices of that axis (so the
 * sets grow by adding slices, as an annotator would), and the test slices are the pool slices not used for
 * training at ANY count — every point of the curve is scored on the same slices, none of them ever trained on.
 */
export function sliceCurveSplit(
  pool: AnnotatedSlice[],
  counts: number[],
): { test: AnnotatedSlice[]; train: Map<number, AnnotatedSlice[]> } {
  const train = new Map<number, AnnotatedSlice[]>();
  const used = new Set<string>();
  const groups = new Map<string, AnnotatedSlice[]>();
  for (const s of pool) {
    const g = `${s.volume}:${s.axis}`;
    groups.set(g, [...(groups.get(g) ?? []), s]);
  }
  const orders = new Map<string, AnnotatedSlice[]>();
  for (const [k, g] of groups) {
    g.sort((a, b) => a.index - b.index);
    orders.set(k, spreadOrder(g.length).map((j) => g[j]!));
  }
  for (const n of counts) {
    const chosen: AnnotatedSlice[] = [];
    for (const o of orders.values()) chosen.push(...o.slice(0, n));
    train.set(n, chosen);
    for (const s of chosen) used.add(sliceKey(s));
  }
  const test = pool.filter((s) => !used.has(sliceKey(s)));
  return { test, train };
}

/** Power-of-two counts 1, 2, 4, … up to `max` (inclusive if it is one). */
export function powersOfTwoUpTo(max: number): number[] {
  const out: number[] = [];
  for (let n = 1; n <= max; n *= 2) out.push(n);
  return out;
}
