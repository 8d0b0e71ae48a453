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
  /** grid blocks holding held-out voxels */
  heldOutBlocks: number;
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
    return { train, heldOut, heldOutVoxels: 0, heldOutBlocks: 0, heldOutCounts: counts, paintedCounts: total };
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
  const blocks = new Set<string>();
  for (let z = 0, i = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++, i++)
        if (heldOut[i]) {
          train[i] = 0;
          held++;
          blocks.add(`${Math.floor((z + off[0]!) / b)},${Math.floor((y + off[1]!) / b)},${Math.floor((x + off[2]!) / b)}`);
        }
  return { train, heldOut, heldOutVoxels: held, heldOutBlocks: blocks.size, heldOutCounts: counts, paintedCounts: total };
}

/** Fewest painted voxels a plane needs to count as a painted plane (a stroke or two at least). */
export const MIN_PLANE_VOXELS = 100;

/**
 * How many planes (xy, xz or yz slices) the paint lies on: the fewest planes, chosen greedily (the plane with the
 * most paint not yet covered, any axis), that cover 95 % of the painted voxels, each with at least
 * MIN_PLANE_VOXELS of them. Whole painted slices and strokes on a slice count alike; paint scattered in 3D
 * covers no plane well and counts few (only planes holding MIN_PLANE_VOXELS uncovered voxels count).
 */
export function paintedPlanes(labels: ArrayLike<number>, shape: Vec3, cover = 0.95): number {
  const [Z, Y, X] = shape;
  const dims = [Z, Y, X];
  let total = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]) total++;
  if (total === 0) return 0;
  const covered = new Uint8Array(total);
  // painted voxels' coordinates by axis: pos[a][j]
  const pos = [new Int32Array(total), new Int32Array(total), new Int32Array(total)];
  for (let i = 0, j = 0; i < labels.length; i++)
    if (labels[i]) {
      pos[0][j] = Math.floor(i / (Y * X));
      pos[1][j] = Math.floor(i / X) % Y;
      pos[2][j] = i % X;
      j++;
    }
  let done = 0;
  let planes = 0;
  while (done < cover * total) {
    const counts = dims.map((d) => new Float64Array(d));
    for (let j = 0; j < total; j++) if (!covered[j]) for (let a = 0; a < 3; a++) counts[a]![pos[a]![j]!]!++;
    let best = -1;
    let bestAxis = 0;
    let bestIndex = 0;
    for (let a = 0; a < 3; a++)
      for (let k = 0; k < dims[a]!; k++)
        if (counts[a]![k]! > best) {
          best = counts[a]![k]!;
          bestAxis = a;
          bestIndex = k;
        }
    if (best < MIN_PLANE_VOXELS) break;
    planes++;
    for (let j = 0; j < total; j++)
      if (!covered[j] && pos[bestAxis]![j] === bestIndex) {
        covered[j] = 1;
        done++;
      }
  }
  return planes;
}
