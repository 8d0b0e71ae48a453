/**
 * Self-validation on the user's own paint. Blocks of the annotated voxels (cubes of a 3D grid, so on a painted
 * plane they are square patches) are kept out of training; the trained model is scored there. That gives an
 * honest estimate of the IoU the user will get, and honest voxels on which to fit the decision (calibration.ts)
 * and to choose between candidates (ensemble weight). The scored voxels of a benchmark (unannotated) are never
 * used. Pure.
 */
import type { Vec3 } from '../volume/tiling.js';

export interface BlockSplit {
  /** labels for training (held-out voxels set to 0) */
  train: Uint8Array;
  /** labels of the held-out voxels only (0 elsewhere) */
  heldOut: Uint8Array;
  heldOutVoxels: number;
  /** held-out voxels per class (index k = class k) */
  heldOutCounts: number[];
  /** all painted voxels per class (index k = class k) */
  paintedCounts: number[];
}

export interface BlockSplitOptions {
  /** share of annotated blocks held out (default 0.2) */
  fraction?: number;
  /** block edge in voxels (default 12) */
  block?: number;
  seed?: number;
  /** no hold-out below this many annotated voxels (default 2000): the paint is too thin to spare any */
  minAnnotated?: number;
  /** every class keeps at least this share of its voxels in training (default 0.5) */
  keepPerClass?: number;
}

function hash3(a: number, b: number, c: number, seed: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [a, b, c]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h / 4294967296;
}

/** Splits sparse labels (0 = unannotated, 1..K) into training and held-out blocks. */
export function splitBlocks(
  labels: ArrayLike<number>,
  shape: Vec3,
  K: number,
  o: BlockSplitOptions = {},
): BlockSplit {
  const [Z, Y, X] = shape;
  const n = Z * Y * X;
  const fraction = o.fraction ?? 0.2;
  const b = o.block ?? 12;
  const seed = o.seed ?? 1;
  const train = Uint8Array.from(labels as ArrayLike<number>);
  const heldOut = new Uint8Array(n);
  const counts = new Array<number>(K + 1).fill(0);
  const total = new Array<number>(K + 1).fill(0);
  let annotated = 0;
  for (let i = 0; i < n; i++) {
    const l = train[i]!;
    if (l) {
      annotated++;
      total[l]!++;
    }
  }
  if (annotated < (o.minAnnotated ?? 2000) || fraction <= 0)
    return { train, heldOut, heldOutVoxels: 0, heldOutCounts: counts, paintedCounts: total };
  // a random offset of the grid so that block borders do not sit on the same voxels for every seed
  const off = [
    Math.floor(hash3(1, 2, 3, seed) * b),
    Math.floor(hash3(4, 5, 6, seed) * b),
    Math.floor(hash3(7, 8, 9, seed) * b),
  ];
  for (let z = 0, i = 0; z < Z; z++) {
    const bz = Math.floor((z + off[0]!) / b);
    for (let y = 0; y < Y; y++) {
      const by = Math.floor((y + off[1]!) / b);
      for (let x = 0; x < X; x++, i++) {
        const l = train[i]!;
        if (!l) continue;
        if (hash3(bz, by, Math.floor((x + off[2]!) / b), seed) >= fraction) continue;
        heldOut[i] = l;
        counts[l]!++;
      }
    }
  }
  // a class that would lose too much of its paint keeps all of it
  const keep = o.keepPerClass ?? 0.5;
  for (let k = 1; k <= K; k++) {
    if (total[k]! > 0 && counts[k]! > (1 - keep) * total[k]!) {
      for (let i = 0; i < n; i++) if (heldOut[i] === k) heldOut[i] = 0;
      counts[k] = 0;
    }
  }
  let held = 0;
  for (let i = 0; i < n; i++)
    if (heldOut[i]) {
      train[i] = 0;
      held++;
    }
  return { train, heldOut, heldOutVoxels: held, heldOutCounts: counts, paintedCounts: total };
}

/** Mean IoU over the classes 2..K (the foreground classes) of decisions vs labels on the given voxels. */
export function foregroundIoU(pred: ArrayLike<number>, truth: ArrayLike<number>, K: number): number | null {
  const tp = new Float64Array(K + 1);
  const fp = new Float64Array(K + 1);
  const fn = new Float64Array(K + 1);
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i]!;
    const p = pred[i]!;
    if (p === t) tp[t]!++;
    else {
      fp[p]!++;
      fn[t]!++;
    }
  }
  let s = 0;
  let c = 0;
  for (let k = 2; k <= K; k++) {
    const d = tp[k]! + fp[k]! + fn[k]!;
    if (d > 0) {
      s += tp[k]! / d;
      c++;
    }
  }
  return c ? s / c : null;
}
