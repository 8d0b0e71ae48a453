/**
 * "Annotate here next" (issue 13 item 3): per-slice uncertainty of a prediction along each axis, and a ranked
 * list of slices to paint next.
 *
 *   SliceUncertaintyAccumulator  streamed: z-slabs of class probabilities in (densify's onSlab), per-slice means out
 *   sliceUncertainty             the same for a whole probability volume
 *   suggestSlices                normalised scores per plane + the best unpainted slices, away from painted ones
 *
 * Uncertainty of one voxel: the entropy of its class probabilities divided by log K ('entropy', 0 = certain,
 * 1 = uniform), or 1 − (p_first − p_second) ('margin'). A slice's score is the mean over its voxels (for the
 * cubic shared stacks the same order as the sum; for anisotropic stacks the mean does not favour the larger
 * planes just for their size). Pure maths over typed arrays; no Node, no engine.
 *
 * What it is worth was measured by `npm run bench:suggest` (a simulated annotator, docs/densify.md).
 */
import type { Plane } from '../common/api.js';
import { SliceformError } from '../common/errors.js';

export interface Dims {
  x: number;
  y: number;
  z: number;
}

export type UncertaintyMeasure = 'entropy' | 'margin';

/** Mean voxel uncertainty (0..1) per slice index, per plane: xy[z], xz[y], yz[x]. */
export type PerPlane = Record<Plane, Float64Array>;

export const PLANES: readonly Plane[] = ['xy', 'xz', 'yz'];

/** Slices along a plane's normal: xy planes are indexed by z, xz by y, yz by x. */
export function planeDepth(d: Dims, plane: Plane): number {
  return plane === 'xy' ? d.z : plane === 'xz' ? d.y : d.x;
}

/** Streams class-planar probability slabs (K x depth*Y*X, x fastest) into per-slice mean uncertainty. */
export class SliceUncertaintyAccumulator {
  private readonly sums: PerPlane;
  private readonly counts: PerPlane;
  private readonly logK: number;

  constructor(
    readonly dims: Dims,
    readonly numClasses: number,
    readonly measure: UncertaintyMeasure = 'entropy',
  ) {
    if (!(numClasses >= 2)) throw new SliceformError('bad-input', `uncertainty needs at least 2 classes, got ${numClasses}`);
    const mk = () => ({ xy: new Float64Array(dims.z), xz: new Float64Array(dims.y), yz: new Float64Array(dims.x) });
    this.sums = mk();
    this.counts = mk();
    this.logK = Math.log(numClasses);
  }

  /** Adds the z-planes [z0, z0 + depth) of class-planar probabilities. */
  addSlab(z0: number, depth: number, probs: ArrayLike<number>): void {
    const { x: X, y: Y, z: Z } = this.dims;
    const K = this.numClasses;
    const n = depth * Y * X;
    if (z0 < 0 || z0 + depth > Z) throw new SliceformError('bad-input', `slab z ${z0}..${z0 + depth - 1} is outside 0..${Z - 1}`);
    if (probs.length !== K * n)
      throw new SliceformError('bad-input', `a slab of ${depth} planes needs ${K * n} probabilities (K = ${K}), got ${probs.length}`);
    const { xy, xz, yz } = this.sums;
    const entropy = this.measure === 'entropy';
    for (let z = 0, i = 0; z < depth; z++) {
      let planeSum = 0;
      for (let y = 0; y < Y; y++) {
        let rowSum = 0;
        for (let x = 0; x < X; x++, i++) {
          let u: number;
          if (entropy) {
            let h = 0;
            for (let k = 0; k < K; k++) {
              const p = probs[k * n + i]!;
              if (p > 0) h -= p * Math.log(p);
            }
            u = h / this.logK;
          } else {
            let a = 0;
            let b = 0;
            for (let k = 0; k < K; k++) {
              const p = probs[k * n + i]!;
              if (p > a) {
                b = a;
                a = p;
              } else if (p > b) b = p;
            }
            u = 1 - (a - b);
          }
          // probabilities that do not sum to 1 (rounding) must not leave 0..1
          u = u < 0 ? 0 : u > 1 ? 1 : u;
          rowSum += u;
          yz[x]! += u;
        }
        xz[y]! += rowSum;
        planeSum += rowSum;
      }
      xy[z0 + z]! += planeSum;
      this.counts.xy[z0 + z]! += Y * X;
      for (let y = 0; y < Y; y++) this.counts.xz[y]! += X;
      for (let x = 0; x < X; x++) this.counts.yz[x]! += Y;
    }
  }

  /** Mean uncertainty per slice (slices no slab reached are 0). */
  result(): PerPlane {
    const out = {} as PerPlane;
    for (const p of PLANES) {
      const s = this.sums[p];
      const c = this.counts[p];
      out[p] = Float64Array.from(s, (v, i) => (c[i]! > 0 ? v / c[i]! : 0));
    }
    return out;
  }
}

/** Per-slice mean uncertainty of a whole class-planar probability volume (K x Z*Y*X). */
export function sliceUncertainty(probs: ArrayLike<number>, dims: Dims, K: number, measure: UncertaintyMeasure = 'entropy'): PerPlane {
  const acc = new SliceUncertaintyAccumulator(dims, K, measure);
  acc.addSlab(0, dims.z, probs);
  return acc.result();
}

/**
 * Per-slice uncertainty of a coarse prediction (every `step`-th voxel along each axis, e.g. the live session's
 * 3D preview) spread back to the full volume's slice indices: slice i takes the coarse slice floor(i / step).
 */
export function expandCoarse(coarse: PerPlane, full: Dims, step: number): PerPlane {
  const out = {} as PerPlane;
  for (const p of PLANES) {
    const c = coarse[p];
    out[p] = Float64Array.from({ length: planeDepth(full, p) }, (_, i) => c[Math.min(c.length - 1, Math.floor(i / step))] ?? 0);
  }
  return out;
}

export interface RankOptions {
  /** at most this many suggestions (default 10) */
  max?: number;
  /**
   * 'mean' (default): a slice's score is its mean voxel uncertainty; 'sum': mean x the slice's voxel count (what
   * one painted slice could teach at most; favours the larger planes of an anisotropic stack)
   */
  aggregate?: 'mean' | 'sum';
  /**
   * score a slice by the uncertainty of its neighbourhood, the slab it would teach: the tent-weighted mean over
   * slices i - w .. i + w with w = window x depth (rounded), counting slices outside the volume as certain (so a
   * slice at the border, whose slab lies half outside, is not preferred for the uncertainty of the edge).
   * Default 0.1 (bench:suggest); 0 scores each slice alone.
   */
  window?: number;
  /** the volume's size, needed for aggregate 'sum' */
  dims?: Dims;
  /**
   * near-duplicates: slices this close to a painted slice, or to a better suggestion, of the same plane are
   * left out (default: 15 % of the plane's depth, at least 1: 15 of 100 slices, 5 of 32; bench:suggest)
   */
  gap?: number | ((depth: number) => number);
}

/** Near-duplicate gap (fraction of the depth), see RankOptions.gap. */
export const DEFAULT_GAP = 0.15;
export const defaultGap = (depth: number): number => Math.max(1, Math.round(DEFAULT_GAP * depth));
/** Neighbourhood window (fraction of the depth) of the score, see RankOptions.window. */
export const DEFAULT_WINDOW = 0.1;

export interface Suggestion {
  plane: Plane;
  index: number;
  /** the slice's normalised score (0..1) */
  score: number;
}

export interface Suggestions {
  /** per plane, every slice's uncertainty divided by the largest of all planes (0..1) */
  perAxis: Record<Plane, number[]>;
  /** best first */
  ranked: Suggestion[];
}

/**
 * Normalised scores and the best slices to paint next: painted slices are excluded, and so are slices within
 * `gap` of a painted slice or of a better suggestion on the same plane (a neighbour of a painted slice teaches
 * the model almost nothing new). Ties keep the lower plane (xy, xz, yz) and index: deterministic.
 */
export function suggestSlices(u: PerPlane, painted: Partial<Record<Plane, readonly number[]>>, opts: RankOptions = {}): Suggestions {
  const max = opts.max ?? 10;
  const area = (p: Plane) => {
    const d = opts.dims;
    if (!d) throw new SliceformError('internal', "suggestSlices: aggregate 'sum' needs the volume's dims");
    return p === 'xy' ? d.x * d.y : p === 'xz' ? d.x * d.z : d.y * d.z;
  };
  const raw = {} as PerPlane;
  for (const p of PLANES) {
    let a = opts.aggregate === 'sum' ? Float64Array.from(u[p], (v) => v * area(p)) : u[p];
    const w = Math.round((opts.window ?? DEFAULT_WINDOW) * a.length);
    if (w > 0) {
      // a tent: the slice itself weighs most, so a lone uncertain slice still beats its neighbours
      const src = a;
      const total = (w + 1) * (w + 1);
      a = Float64Array.from(src, (_, i) => {
        let t = 0;
        for (let j = Math.max(0, i - w); j <= Math.min(src.length - 1, i + w); j++) t += (w + 1 - Math.abs(j - i)) * src[j]!;
        return t / total;
      });
    }
    raw[p] = a;
  }
  let top = 0;
  for (const p of PLANES) for (const v of raw[p]) if (v > top) top = v;
  const perAxis = {} as Record<Plane, number[]>;
  for (const p of PLANES) perAxis[p] = Array.from(raw[p], (v) => (top > 0 ? v / top : 0));
  const gapOf = (depth: number) => {
    const g = typeof opts.gap === 'function' ? opts.gap(depth) : (opts.gap ?? defaultGap(depth));
    return Math.max(0, Math.floor(g));
  };
  const blocked = {} as Record<Plane, Uint8Array>;
  const gaps = {} as Record<Plane, number>;
  const block = (p: Plane, i: number) => {
    const b = blocked[p];
    for (let j = Math.max(0, i - gaps[p]); j <= Math.min(b.length - 1, i + gaps[p]); j++) b[j] = 1;
    if (i >= 0 && i < b.length) b[i] = 1;
  };
  const candidates: Suggestion[] = [];
  for (const p of PLANES) {
    const n = u[p].length;
    blocked[p] = new Uint8Array(n);
    gaps[p] = gapOf(n);
    for (const i of painted[p] ?? []) if (Number.isInteger(i)) block(p, i);
    for (let i = 0; i < n; i++) candidates.push({ plane: p, index: i, score: perAxis[p][i]! });
  }
  const order = { xy: 0, xz: 1, yz: 2 } as const;
  candidates.sort((a, b) => b.score - a.score || order[a.plane] - order[b.plane] || a.index - b.index);
  const ranked: Suggestion[] = [];
  for (const c of candidates) {
    if (ranked.length >= max) break;
    if (blocked[c.plane][c.index]) continue;
    ranked.push(c);
    block(c.plane, c.index);
  }
  return { perAxis, ranked };
}

/** "xz y=37": how the UI and logs name a slice (the coordinate along the plane's normal). */
export function describeSlice(s: { plane: Plane; index: number }): string {
  return `${s.plane} ${s.plane === 'xy' ? 'z' : s.plane === 'xz' ? 'y' : 'x'}=${s.index}`;
}
