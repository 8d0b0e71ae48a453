/**
 * Connected components in 3D (6-, 18- or 26-connectivity), per value: voxels of different values are never
 * joined (so one call labels every class at once). Two passes with union-find over provisional ids; final ids
 * are numbered by the first voxel of each component in raster order (z, y, x), which is exactly
 * scikit-image's `measure.label` numbering. `SlabLabeller` does the same over z-slabs streamed one after
 * the other (big volumes), joining ids across slab borders with the same union-find: its result equals the
 * whole-volume labelling voxel for voxel (test/unit/objects-components.test.ts).
 */
import { backwardOffsets, checkDims, UnionFind, type Connectivity, type Dims } from './grid.js';

export interface ComponentsOptions {
  connectivity?: Connectivity;
  /** which values form objects (default: every value > 0) */
  include?: (value: number) => boolean;
}

export interface Components {
  /** 0 = not included; 1..count */
  labels: Int32Array;
  count: number;
}

/** provisional labelling of one block; ids offset+1.. ; returns next free id */
function firstPass(
  values: ArrayLike<number>,
  d: Dims,
  include: (v: number) => boolean,
  conn: Connectivity,
  out: Int32Array,
  uf: UnionFind,
  offset: number,
): number {
  const X = d.x;
  const XY = d.x * d.y;
  const back = backwardOffsets(conn);
  let next = offset;
  let i = 0;
  for (let z = 0; z < d.z; z++)
    for (let y = 0; y < d.y; y++)
      for (let x = 0; x < X; x++, i++) {
        const v = values[i]!;
        if (!include(v)) continue;
        let lab = 0;
        for (let k = 0; k < back.length; k++) {
          const o = back[k]!;
          const zz = z + o[0];
          const yy = y + o[1];
          const xx = x + o[2];
          if (zz < 0 || yy < 0 || yy >= d.y || xx < 0 || xx >= X) continue;
          const j = i + o[0] * XY + o[1] * X + o[2];
          if (values[j] !== v) continue;
          const lj = out[j]!;
          if (lab === 0) lab = uf.find(lj);
          else if (lj !== lab) lab = uf.union(lab, lj);
        }
        if (lab === 0) {
          lab = ++next;
          uf.grow(lab);
        }
        out[i] = lab;
      }
  return next;
}

/** Root id -> final sequential id (roots numbered in increasing provisional order). */
function resolve(uf: UnionFind, first: number, last: number): { map: Int32Array; count: number } {
  const map = new Int32Array(last + 1);
  let count = 0;
  for (let p = first; p <= last; p++) {
    const r = uf.find(p);
    if (r === p) map[p] = ++count;
    else map[p] = map[r]!;
  }
  return { map, count };
}

export function labelComponents(values: ArrayLike<number>, d: Dims, opts: ComponentsOptions = {}): Components {
  checkDims(d, values.length, 'labelComponents');
  const include = opts.include ?? ((v: number) => v > 0);
  const conn = opts.connectivity ?? 26;
  const labels = new Int32Array(values.length);
  const uf = new UnionFind(1024);
  const last = firstPass(values, d, include, conn, labels, uf, 0);
  const { map, count } = resolve(uf, 1, last);
  for (let i = 0; i < labels.length; i++) if (labels[i]) labels[i] = map[labels[i]!]!;
  return { labels, count };
}

/**
 * Streamed labelling over z-slabs: `push` each slab (z order, any depth), keep or spill its provisional
 * labels, then `finish()` gives the map provisional id -> final id to apply to every slab (second pass).
 * Memory: the union-find (4 bytes per provisional id) and the last plane of the previous slab.
 */
export class SlabLabeller {
  private readonly uf = new UnionFind(1024);
  private next = 0;
  private prevValues: Float64Array | null = null;
  private prevLabels: Int32Array | null = null;
  private readonly back: [number, number, number][];
  private readonly include: (v: number) => boolean;
  private readonly conn: Connectivity;

  constructor(
    private readonly plane: { x: number; y: number },
    opts: ComponentsOptions = {},
  ) {
    this.include = opts.include ?? ((v: number) => v > 0);
    this.conn = opts.connectivity ?? 26;
    this.back = backwardOffsets(this.conn).filter((o) => o[0] === -1);
  }

  /** Labels one slab (depth planes of x*y voxels); returns its provisional (global) ids. */
  push(values: ArrayLike<number>, depth: number): Int32Array {
    const { x: X, y: Y } = this.plane;
    const d = { x: X, y: Y, z: depth };
    checkDims(d, values.length, 'SlabLabeller.push');
    const labels = new Int32Array(values.length);
    const start = this.next;
    this.next = firstPass(values, d, this.include, this.conn, labels, this.uf, start);
    // join across the border with the previous slab's last plane
    if (this.prevValues && this.prevLabels) {
      const pv = this.prevValues;
      const pl = this.prevLabels;
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++) {
          const i = y * X + x;
          const l = labels[i]!;
          if (!l) continue;
          const v = values[i]!;
          for (const [, dy, dx] of this.back) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy < 0 || yy >= Y || xx < 0 || xx >= X) continue;
            const j = yy * X + xx;
            if (pl[j] && pv[j] === v) this.uf.union(l, pl[j]!);
          }
        }
    }
    const n = X * Y;
    const off = (depth - 1) * n;
    this.prevValues = Float64Array.from({ length: n }, (_, i) => values[off + i]!);
    this.prevLabels = labels.slice(off, off + n);
    return labels;
  }

  /** provisional id -> final id (1..count, numbered as labelComponents numbers them) */
  finish(): { map: Int32Array; count: number } {
    return resolve(this.uf, 1, this.next);
  }
}
