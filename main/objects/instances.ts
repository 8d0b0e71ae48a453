/**
 * The instance recipe: a semantic segmentation (classes 1..K, 1 = background) -> one id per object.
 *
 * - split 'none': connected components (26-connected) of each object class.
 * - split 'distance' (default): touching objects are split by a seeded watershed on the distance transform
 *   (in µm, so anisotropic stacks behave), smoothed by a Gaussian of `smoothUm`; seeds are its local maxima,
 *   kept greedily from the highest down when no kept seed of the same component lies within
 *   `minSeparationUm` µm (a non-maximum suppression in µm, not voxels). Every component gets at least one seed.
 * - split 'probability': the same, on the distance transform weighted by the foreground probability (a
 *   probability map from `densify --probabilities`): objects separate where the network is unsure.
 * - boundaryClass B (membrane-stained cells): objects are the regions enclosed by class B. Seeds are the
 *   connected components of the non-B voxels farther than `seedDepthUm` from B (which closes small gaps in
 *   the predicted membrane), then a watershed on the distance to B gives every voxel, membrane included, to
 *   the nearest cell.
 * Objects smaller than `minSizeUm3` are dropped; ids are renumbered 1..n by their first voxel in raster order.
 */
import { labelComponents } from './components.js';
import { distanceTransform, gaussianSmooth } from './distance.js';
import { checkDims, neighbourOffsets, type Dims, type Microns } from './grid.js';
import { watershed } from './watershed.js';

export type SplitMode = 'none' | 'distance' | 'probability';

export interface InstanceOptions {
  spacing: Microns;
  /** object classes (default every class >= 2 present) */
  classes?: number[];
  split?: SplitMode;
  /** foreground probability per voxel, 0..1 (split 'probability') */
  probability?: ArrayLike<number>;
  /** seeds closer than this (µm) in one component are one object (default 2.5) */
  minSeparationUm?: number;
  /** Gaussian sigma (µm) on the distance map before its maxima are taken (default 0.5) */
  smoothUm?: number;
  /** objects smaller than this (µm³) are removed (default 0) */
  minSizeUm3?: number;
  /** membrane class: objects = regions enclosed by it */
  boundaryClass?: number;
  /** boundary mode: seeds are the voxels farther than this from the boundary (µm, default 0.3) */
  seedDepthUm?: number;
}

export interface Instances {
  /** 0 = no object, 1..count */
  labels: Uint32Array;
  count: number;
  /** classOf[id] = the semantic class of object id (index 0 unused) */
  classOf: Uint16Array;
  /** how many objects were split off by the watershed (count minus connected components), and removed as small */
  split: number;
  removedSmall: number;
}

export const INSTANCE_DEFAULTS = { minSeparationUm: 2.5, smoothUm: 0.5, minSizeUm3: 0, seedDepthUm: 0.3 };

/** Object classes present in a semantic volume: every value >= 2. */
export function objectClasses(values: ArrayLike<number>): number[] {
  const seen = new Set<number>();
  for (let i = 0; i < values.length; i++) if (values[i]! >= 2) seen.add(values[i]!);
  return [...seen].sort((a, b) => a - b);
}

/**
 * Seeds: local maxima (26-neighbourhood, inside `comp`) of `score`, strongest first, suppressed within
 * `minSepUm` of a stronger seed of the same component; a component without any maximum gets its best voxel.
 * Returns a marker volume (seed k = k) and the number of seeds.
 */
export function findSeeds(score: ArrayLike<number>, comp: Int32Array, nComp: number, d: Dims, spacing: Microns, minSepUm: number): { markers: Int32Array; count: number } {
  const X = d.x;
  const XY = d.x * d.y;
  const offs = neighbourOffsets(26);
  const cand: number[] = [];
  for (let z = 0, i = 0; z < d.z; z++)
    for (let y = 0; y < d.y; y++)
      for (let x = 0; x < X; x++, i++) {
        const c = comp[i]!;
        if (!c) continue;
        const v = score[i]!;
        let isMax = true;
        for (const o of offs) {
          const zz = z + o[0];
          const yy = y + o[1];
          const xx = x + o[2];
          if (zz < 0 || zz >= d.z || yy < 0 || yy >= d.y || xx < 0 || xx >= X) continue;
          const j = i + o[0] * XY + o[1] * X + o[2];
          if (comp[j] === c && score[j]! > v) {
            isMax = false;
            break;
          }
        }
        if (isMax) cand.push(i);
      }
  cand.sort((a, b) => score[b]! - score[a]! || a - b);
  // spatial hash of kept seeds, cells of minSep µm
  const cell = Math.max(minSepUm, 1e-6);
  const key = (z: number, y: number, x: number) => `${Math.floor((z * spacing.z) / cell)},${Math.floor((y * spacing.y) / cell)},${Math.floor((x * spacing.x) / cell)}`;
  const grid = new Map<string, number[]>();
  const markers = new Int32Array(comp.length);
  const hasSeed = new Uint8Array(nComp + 1);
  let count = 0;
  const min2 = minSepUm * minSepUm;
  for (const i of cand) {
    const z = (i / XY) | 0;
    const y = ((i - z * XY) / X) | 0;
    const x = i - z * XY - y * X;
    const c = comp[i]!;
    let near = false;
    if (minSepUm > 0) {
      const cz = Math.floor((z * spacing.z) / cell);
      const cy = Math.floor((y * spacing.y) / cell);
      const cx = Math.floor((x * spacing.x) / cell);
      outer: for (let a = -1; a <= 1; a++)
        for (let b = -1; b <= 1; b++)
          for (let e = -1; e <= 1; e++) {
            const list = grid.get(`${cz + a},${cy + b},${cx + e}`);
            if (!list) continue;
            for (const j of list) {
              if (comp[j] !== c) continue;
              const jz = (j / XY) | 0;
              const jy = ((j - jz * XY) / X) | 0;
              const jx = j - jz * XY - jy * X;
              const dz = (z - jz) * spacing.z;
              const dy = (y - jy) * spacing.y;
              const dx = (x - jx) * spacing.x;
              if (dz * dz + dy * dy + dx * dx < min2) {
                near = true;
                break outer;
              }
            }
          }
    }
    if (near) continue;
    markers[i] = ++count;
    hasSeed[c] = 1;
    const k = key(z, y, x);
    const list = grid.get(k);
    if (list) list.push(i);
    else grid.set(k, [i]);
  }
  // components without a maximum (cannot happen for finite scores, kept for safety): their first voxel
  for (let i = 0; i < comp.length; i++) {
    const c = comp[i]!;
    if (c && !hasSeed[c]) {
      hasSeed[c] = 1;
      markers[i] = ++count;
    }
  }
  return { markers, count };
}

/** Renumbers ids 1..n by first voxel in raster order, dropping those with fewer than minVoxels voxels. */
export function renumber(labels: ArrayLike<number>, minVoxels: number): { labels: Uint32Array; count: number; removed: number; oldOf: number[] } {
  let max = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > max) max = labels[i]!;
  const size = new Float64Array(max + 1);
  for (let i = 0; i < labels.length; i++) size[labels[i]!]!++;
  const map = new Int32Array(max + 1).fill(-1);
  const out = new Uint32Array(labels.length);
  const oldOf: number[] = [0];
  let count = 0;
  let removed = 0;
  for (let l = 1; l <= max; l++) if (size[l]! > 0 && size[l]! < minVoxels) removed++;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!l) continue;
    let m = map[l]!;
    if (m === -1) {
      m = size[l]! >= minVoxels ? ++count : 0;
      map[l] = m;
      if (m) oldOf.push(l);
    }
    out[i] = m;
  }
  return { labels: out, count, removed, oldOf };
}

export function computeInstances(values: ArrayLike<number>, d: Dims, o: InstanceOptions): Instances {
  checkDims(d, values.length, 'computeInstances');
  const sp = o.spacing;
  const minSep = o.minSeparationUm ?? INSTANCE_DEFAULTS.minSeparationUm;
  const smooth = o.smoothUm ?? INSTANCE_DEFAULTS.smoothUm;
  const voxelUm3 = sp.x * sp.y * sp.z;
  const minVoxels = Math.max(1, (o.minSizeUm3 ?? INSTANCE_DEFAULTS.minSizeUm3) / voxelUm3);
  const n = values.length;
  const raw = new Int32Array(n);
  const rawClass: number[] = [0];
  let split = 0;
  if (o.boundaryClass !== undefined) {
    const B = o.boundaryClass;
    const region = (i: number) => values[i]! > 0 && values[i] !== B;
    const dist = distanceTransform(region, d, sp);
    const depth = o.seedDepthUm ?? INSTANCE_DEFAULTS.seedDepthUm;
    const seedMask = new Uint8Array(n);
    for (let i = 0; i < n; i++) if (region(i) && dist[i]! >= depth) seedMask[i] = 1;
    const seeds = labelComponents(seedMask, d, { connectivity: 6 });
    const land = new Float32Array(n);
    for (let i = 0; i < n; i++) land[i] = -dist[i]!;
    const fill = new Uint8Array(n);
    for (let i = 0; i < n; i++) fill[i] = values[i]! > 0 ? 1 : 0;
    const ws = watershed(land, seeds.labels, d, { mask: fill, connectivity: 6 });
    raw.set(ws);
    // each cell's class: the most frequent non-boundary class among its voxels
    const votes = new Map<number, Map<number, number>>();
    for (let i = 0; i < n; i++) {
      const l = ws[i]!;
      if (!l || values[i] === B) continue;
      let m = votes.get(l);
      if (!m) votes.set(l, (m = new Map()));
      m.set(values[i]!, (m.get(values[i]!) ?? 0) + 1);
    }
    for (let l = 1; l <= seeds.count; l++) {
      const m = votes.get(l);
      rawClass[l] = m ? [...m.entries()].sort((a, b) => b[1] - a[1])[0]![0] : B;
    }
  } else {
    const classes = o.classes ?? objectClasses(values);
    let next = 0;
    for (const c of classes) {
      const comps = labelComponents(values, d, { connectivity: 26, include: (v) => v === c });
      if (comps.count === 0) continue;
      let lab: Int32Array = comps.labels;
      let count = comps.count;
      if (o.split !== 'none') {
        const dist = distanceTransform((i: number) => values[i] === c, d, sp);
        let score: Float32Array = gaussianSmooth(dist, d, sp, smooth);
        if (o.split === 'probability') {
          if (!o.probability) throw new RangeError("split 'probability' needs a probability map");
          checkDims(d, o.probability.length, 'probability');
          for (let i = 0; i < n; i++) score[i] = score[i]! * o.probability[i]!;
          score = gaussianSmooth(score, d, sp, smooth);
        }
        const seeds = findSeeds(score, comps.labels, comps.count, d, sp, minSep);
        const land = new Float32Array(n);
        const mask = new Uint8Array(n);
        for (let i = 0; i < n; i++) {
          land[i] = -score[i]!;
          mask[i] = comps.labels[i] ? 1 : 0;
        }
        lab = watershed(land, seeds.markers, d, { mask, connectivity: 26 });
        split += seeds.count - comps.count;
        count = seeds.count;
      }
      for (let i = 0; i < n; i++) if (lab[i]) raw[i] = lab[i]! + next;
      for (let l = 1; l <= count; l++) rawClass[next + l] = c;
      next += count;
    }
  }
  const r = renumber(raw, minVoxels);
  const classOf = new Uint16Array(r.count + 1);
  for (let l = 1; l <= r.count; l++) classOf[l] = rawClass[r.oldOf[l]!]!;
  return { labels: r.labels, count: r.count, classOf, split, removedSmall: r.removed };
}
