/**
 * What the sparse annotation looks like: class frequencies, fully or largely annotated planes (the usual case:
 * a few painted xy/xz/yz slices) and scattered annotated voxels. Drives tile sampling and class weights. Pure.
 */
import type { Vec3 } from './augment.js';

export interface AnnotatedPlane {
  volume: number;
  /** normal axis: 0 = z (an xy slice), 1 = y (xz), 2 = x (yz) */
  axis: 0 | 1 | 2;
  index: number;
  /** annotated voxels in the plane */
  count: number;
  /** flat voxel indices of the annotated voxels in the plane (for centring tiles) */
  voxels: Uint32Array;
}

export interface LabelSummary {
  /** classCounts[k] = annotated voxels of class k (index 0 unused) */
  classCounts: number[];
  annotated: number;
  planes: AnnotatedPlane[];
  /** annotated voxels on no detected plane */
  scattered: Uint32Array;
}

export const AXIS_NAMES = ['z', 'y', 'x'] as const;
export const PLANE_NAMES = ['xy', 'xz', 'yz'] as const;

/**
 * A plane counts as annotated when at least 10 % of it is labelled and it holds at least 4x the mean
 * annotation of its axis' planes (so dense labels are not mistaken for slices).
 */
export function analyseLabels(labels: ArrayLike<number>, shape: Vec3, numClasses: number, volume = 0): LabelSummary {
  const [Z, Y, X] = shape;
  const classCounts = new Array<number>(numClasses + 1).fill(0);
  const perAxis = [new Float64Array(Z), new Float64Array(Y), new Float64Array(X)];
  let annotated = 0;
  for (let z = 0, i = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++, i++) {
        const l = labels[i]!;
        if (l === 0) continue;
        if (l > numClasses) throw new RangeError(`label ${l} at voxel (x=${x}, y=${y}, z=${z}) exceeds the ${numClasses} classes`);
        classCounts[l]!++;
        annotated++;
        perAxis[0][z]!++;
        perAxis[1][y]!++;
        perAxis[2][x]!++;
      }
  const dims = [Z, Y, X];
  const area = [Y * X, Z * X, Z * Y];
  const isPlane: boolean[][] = [];
  for (let a = 0; a < 3; a++) {
    const counts = perAxis[a]!;
    const mean = annotated / dims[a]!;
    isPlane.push(Array.from(counts, (c) => c >= 0.1 * area[a]! && c >= 4 * mean));
  }
  const planeVoxels: number[][][] = [0, 1, 2].map((a) => Array.from({ length: dims[a]! }, () => [] as number[]));
  const scattered: number[] = [];
  for (let z = 0, i = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++, i++) {
        if (labels[i] === 0) continue;
        const c = [z, y, x];
        let on = false;
        for (let a = 0; a < 3; a++)
          if (isPlane[a]![c[a]!]) {
            planeVoxels[a]![c[a]!]!.push(i);
            on = true;
          }
        if (!on) scattered.push(i);
      }
  const planes: AnnotatedPlane[] = [];
  for (let a = 0; a < 3; a++)
    for (let k = 0; k < dims[a]!; k++)
      if (isPlane[a]![k])
        planes.push({ volume, axis: a as 0 | 1 | 2, index: k, count: perAxis[a]![k]!, voxels: Uint32Array.from(planeVoxels[a]![k]!) });
  return { classCounts, annotated, planes, scattered: Uint32Array.from(scattered) };
}

/**
 * Class weights from annotated frequencies: w_k = (N / (K n_k))^power, clamped to [0.1, 10], then scaled so
 * the frequency-weighted mean is 1 (the loss keeps its scale). power 0.5 softens the balancing; the frequent
 * class (usually background) gets a weight below 1, rare classes above. Absent classes get weight 1.
 */
export function classWeights(classCounts: number[], power = 0.5): number[] {
  const K = classCounts.length - 1;
  const counts = classCounts.slice(1);
  const N = counts.reduce((a, b) => a + b, 0);
  if (N === 0) return new Array<number>(K).fill(1);
  const present = counts.filter((c) => c > 0).length;
  const w = counts.map((c) => (c > 0 ? Math.min(10, Math.max(0.1, (N / (present * c)) ** power)) : 1));
  const mean = counts.reduce((s, c, k) => s + c * w[k]!, 0) / N;
  return w.map((x) => x / mean);
}

/** Removes held-out planes from a label volume (sets them to 0 = unannotated); returns a copy. */
export function withoutPlanes<T extends Uint8Array | Uint16Array>(labels: T, shape: Vec3, planes: { axis: number; index: number }[]): T {
  const out = labels.slice() as T;
  const [Z, Y, X] = shape;
  for (const p of planes) {
    for (let z = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++) {
          const c = [z, y, x];
          if (c[p.axis] === p.index) out[(z * Y + y) * X + x] = 0;
        }
  }
  return out;
}

/**
 * Held-out planes chosen automatically: one plane from every axis that has at least `minPerAxis` annotated
 * planes (the one nearest the middle of that axis' annotated planes, so training keeps the spread).
 */
export function chooseHoldout(planes: AnnotatedPlane[], minPerAxis = 4): AnnotatedPlane[] {
  const out: AnnotatedPlane[] = [];
  const byKey = new Map<string, AnnotatedPlane[]>();
  for (const p of planes) {
    const k = `${p.volume}:${p.axis}`;
    byKey.set(k, [...(byKey.get(k) ?? []), p]);
  }
  for (const list of byKey.values()) {
    if (list.length < minPerAxis) continue;
    const sorted = [...list].sort((a, b) => a.index - b.index);
    // an interior plane, not the middle one (keeps the central plane for training)
    out.push(sorted[Math.floor(sorted.length / 2) - 1]!);
  }
  return out;
}
