/**
 * The annotation layer of one volume: a uint8 label volume (0 = unannotated) with undo/redo.
 * Edits are stroke (server-side rasterised brush along a polyline) or region (a 2D mask from the UI).
 * Each edit keeps the indices it changed with their old and new values, so undo/redo are exact.
 *
 * "Painted slices" are the slices the user painted ON (plane + index of each stroke that is not undone and
 * whose slice still holds labels), not every slice a stroke touches: an xy stroke crosses dozens of xz and yz
 * slices. The editor keeps that record next to the labels (the project saves it, see project.ts); labels that
 * come without a record (older projects) get it inferred by `inferPaintedSlices`.
 */
import { planeDims, planeToVoxel, type Box, type Plane, type StrokeEdit, type RegionEdit, type AnnotationSummary } from '../common/api.js';
import { ApiError } from '../common/api.js';
import { DenseLabels, SparseLabels, type LabelStore } from './sparse-labels.js';

/** voxel indices of an edit; Float64Array once a volume has 2^32 voxels or more (sparse, out-of-core layers) */
export type VoxelIndices = Uint32Array | Float64Array;
const indexArray = (n: number, voxels: number): VoxelIndices => (voxels > 2 ** 32 ? new Float64Array(n) : new Uint32Array(n));
const toIndices = (a: ArrayLike<number>, voxels: number): VoxelIndices => {
  const out = indexArray(a.length, voxels);
  out.set(a);
  return out;
};

export interface Dims {
  x: number;
  y: number;
  z: number;
}

/** The plane and index a stroke or region was painted on. */
export interface SliceRef {
  plane: Plane;
  index: number;
}

/** Painted slices per plane (sorted indices), as stored in a project. */
export type PaintedSlices = Record<Plane, number[]>;

const PLANE_LIST: Plane[] = ['xy', 'xz', 'yz'];
/** plane -> index of its normal axis in [z, y, x] */
const NORMAL: Record<Plane, 0 | 1 | 2> = { xy: 0, xz: 1, yz: 2 };

type Record3 = Record<Plane, Map<number, number>>;
const emptyRecord = (): Record3 => ({ xy: new Map(), xz: new Map(), yz: new Map() });
const copyRecord = (r: Record3): Record3 => ({ xy: new Map(r.xy), xz: new Map(r.xz), yz: new Map(r.yz) });

interface Edit {
  indices: VoxelIndices;
  before: Uint8Array;
  after: Uint8Array;
  box: Box | null;
  /** the slice a painting (non-eraser) edit was made on: counts towards the painted-slice record */
  slice?: SliceRef;
  /** whole-record replacement (clear): the record before and after */
  record?: { before: Record3; after: Record3 };
}

/** strokeVoxels/regionVoxels remember which slice their voxels belong to, so `apply(voxels, c)` records it */
const sliceOfVoxels = new WeakMap<VoxelIndices, SliceRef>();

export interface ApplyResult {
  changed: number;
  box: Box | null;
}

const MAX_HISTORY = 500;
const MAX_HISTORY_BYTES = 512 * 1024 * 1024;

export class LabelEditor {
  /** the label storage: dense for in-memory volumes, SparseLabels (painted 64³ blocks only) for out-of-core ones */
  readonly store: LabelStore;
  private undoStack: Edit[] = [];
  private redoStack: Edit[] = [];
  /** bumps on every change; the project store compares it to know what is dirty */
  revision = 0;
  /** per plane: slice index -> painting edits on it that are not undone */
  private painted: Record3 = emptyRecord();
  /** labelled voxels per slice along [z, y, x] and voxels per class, kept up to date by write() */
  private readonly perSlice: [Uint32Array, Uint32Array, Uint32Array];
  private readonly classCounts = new Float64Array(256);

  /**
   * @param painted the saved painted-slice record of `labels`; without one (labels from an older project) it is
   * inferred from the labels
   */
  constructor(
    readonly dims: Dims,
    labels?: Uint8Array | LabelStore,
    painted?: PaintedSlices | null,
  ) {
    const n = dims.x * dims.y * dims.z;
    if (labels && labels.length !== n) throw new ApiError('bad-input', `label volume has ${labels.length} voxels, expected ${n}`);
    this.store = labels instanceof Uint8Array || !labels ? new DenseLabels(dims, labels ?? new Uint8Array(n)) : labels;
    this.perSlice = [new Uint32Array(dims.z), new Uint32Array(dims.y), new Uint32Array(dims.x)];
    this.classCounts[0] = n;
    if (labels && !(labels instanceof Uint8Array)) {
      // a store (sparse layer): count its labelled voxels; without a saved record no slice counts as painted
      const [zs, ys, xs] = this.perSlice;
      const X = dims.x,
        XY = dims.x * dims.y;
      labels.forEachNonzero((i, c) => {
        const z = Math.floor(i / XY);
        const y = Math.floor((i - z * XY) / X);
        this.classCounts[c]!++;
        this.classCounts[0]!--;
        zs[z]!++;
        ys[y]!++;
        xs[i - z * XY - y * X]!++;
      });
      for (const p of PLANE_LIST) for (const i of painted?.[p] ?? []) if (Number.isInteger(i) && i >= 0 && i < planeDims(dims, p).depth) this.painted[p].set(i, 1);
    } else if (labels) {
      const { x: X, y: Y, z: Z } = dims;
      const [zs, ys, xs] = this.perSlice;
      for (let z = 0, i = 0; z < Z; z++)
        for (let y = 0; y < Y; y++)
          for (let x = 0; x < X; x++, i++) {
            const c = labels[i]!;
            if (!c) continue;
            this.classCounts[c]!++;
            this.classCounts[0]!--;
            zs[z]!++;
            ys[y]!++;
            xs[x]!++;
          }
      const rec = painted ?? inferPaintedSlices(labels, dims);
      for (const p of PLANE_LIST) for (const i of rec[p] ?? []) if (Number.isInteger(i) && i >= 0 && i < planeDims(dims, p).depth) this.painted[p].set(i, 1);
    }
  }

  /** The painted-slice record to save with the labels (slices painted on that still hold labels). */
  paintedSlices(): PaintedSlices {
    const out = {} as PaintedSlices;
    for (const p of PLANE_LIST) {
      const counts = this.perSlice[NORMAL[p]];
      out[p] = [...this.painted[p].entries()]
        .filter(([i, n]) => n > 0 && counts[i]! > 0)
        .map(([i]) => i)
        .sort((a, b) => a - b);
    }
    return out;
  }

  /** The dense label array of an in-memory volume; an out-of-core (sparse) layer has none (use `store`). */
  get labels(): Uint8Array {
    if (this.store instanceof DenseLabels) return this.store.data;
    throw new ApiError(
      'not-available',
      `the annotation of this ${this.dims.x}×${this.dims.y}×${this.dims.z} out-of-core volume is stored sparsely (painted 64³ blocks only); this operation needs it dense and is not supported for out-of-core volumes`,
    );
  }

  /** the layer is sparse (an out-of-core volume) */
  get sparse(): boolean {
    return this.store instanceof SparseLabels;
  }

  /** any voxel labelled (O(1)) */
  hasLabels(): boolean {
    return this.classCounts[0]! < this.store.length;
  }

  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }
  get canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  private checkSlice(plane: Plane, index: number): void {
    const d = planeDims(this.dims, plane);
    if (index < 0 || index >= d.depth) throw new ApiError('bad-request', `slice ${index} is outside the ${plane} range 0..${d.depth - 1}`);
  }

  /** Voxel indices a brush stroke covers (clipped to the volume). */
  strokeVoxels(s: Pick<StrokeEdit, 'plane' | 'index' | 'radius' | 'brush' | 'points'>): VoxelIndices {
    this.checkSlice(s.plane, s.index);
    const { width, height, depth } = planeDims(this.dims, s.plane);
    const r = s.radius;
    const out = new Set<number>();
    const sphere = s.brush === 'sphere';
    const stamp = (cu: number, cv: number) => {
      const ri = Math.ceil(r);
      const dz0 = sphere ? -Math.floor(r) : 0;
      const dz1 = sphere ? Math.floor(r) : 0;
      for (let dw = dz0; dw <= dz1; dw++) {
        const w = s.index + dw;
        if (w < 0 || w >= depth) continue;
        const rr = r * r - dw * dw;
        for (let v = Math.floor(cv) - ri; v <= Math.ceil(cv) + ri; v++) {
          if (v < 0 || v >= height) continue;
          for (let u = Math.floor(cu) - ri; u <= Math.ceil(cu) + ri; u++) {
            if (u < 0 || u >= width) continue;
            const du = u - cu,
              dv = v - cv;
            if (du * du + dv * dv > rr + 1e-9 && !(r === 0 && Math.round(cu) === u && Math.round(cv) === v)) continue;
            const [x, y, z] = planeToVoxel(s.plane, w, u, v);
            out.add((z * this.dims.y + y) * this.dims.x + x);
          }
        }
      }
    };
    // Segments are clipped to the slice grown by the brush radius before they are walked in half-voxel steps:
    // a point at 1e9 would otherwise cost 2e9 stamps (the probe froze the server for 29 s).
    const box = { u0: -r - 1, v0: -r - 1, u1: width + r + 1, v1: height + r + 1 };
    const pts = s.points;
    const [pu, pv] = pts[0]!;
    if (pu >= box.u0 && pu <= box.u1 && pv >= box.v0 && pv <= box.v1) stamp(pu, pv);
    for (let i = 1; i < pts.length; i++) {
      const seg = clipSegment(pts[i - 1]!, pts[i]!, box);
      if (!seg) continue;
      const [u0, v0, u1, v1] = seg;
      const len = Math.hypot(u1 - u0, v1 - v0);
      const steps = Math.max(1, Math.ceil(len / 0.5));
      for (let k = seg[4] ? 0 : 1; k <= steps; k++) stamp(u0 + ((u1 - u0) * k) / steps, v0 + ((v1 - v0) * k) / steps);
    }
    const voxels = toIndices([...out], this.store.length).sort();
    sliceOfVoxels.set(voxels, { plane: s.plane, index: s.index });
    return voxels;
  }

  regionVoxels(r: Pick<RegionEdit, 'plane' | 'index' | 'origin' | 'width' | 'height' | 'mask'>): VoxelIndices {
    this.checkSlice(r.plane, r.index);
    if (r.mask.length !== r.width * r.height) throw new ApiError('bad-request', 'mask length must equal width*height');
    const { width, height } = planeDims(this.dims, r.plane);
    const out: number[] = [];
    for (let j = 0; j < r.height; j++) {
      const v = r.origin[1] + j;
      if (v < 0 || v >= height) continue;
      for (let i = 0; i < r.width; i++) {
        const u = r.origin[0] + i;
        if (u < 0 || u >= width || !r.mask[j * r.width + i]) continue;
        const [x, y, z] = planeToVoxel(r.plane, r.index, u, v);
        out.push((z * this.dims.y + y) * this.dims.x + x);
      }
    }
    const voxels = toIndices([...out], this.store.length).sort();
    sliceOfVoxels.set(voxels, { plane: r.plane, index: r.index });
    return voxels;
  }

  /**
   * Sets `indices` to `classId` as one undoable edit. A painting edit (classId > 0) on a slice (given, or known
   * because `indices` came from strokeVoxels/regionVoxels) marks that slice as painted until it is undone.
   */
  apply(indices: VoxelIndices, classId: number, slice: SliceRef | undefined = sliceOfVoxels.get(indices)): ApplyResult {
    const changedIdx: number[] = [];
    const before: number[] = [];
    for (const i of indices) {
      const old = this.store.get(i);
      if (old !== classId) {
        changedIdx.push(i);
        before.push(old);
      }
    }
    if (changedIdx.length === 0) return { changed: 0, box: null };
    const edit: Edit = {
      indices: toIndices(changedIdx, this.store.length),
      before: Uint8Array.from(before),
      after: new Uint8Array(changedIdx.length).fill(classId),
      box: null,
      slice: classId > 0 && slice ? { ...slice } : undefined,
    };
    edit.box = this.boxOf(edit.indices);
    this.write(edit.indices, edit.after);
    this.mark(edit, +1);
    this.pushUndo(edit);
    this.redoStack = [];
    return { changed: changedIdx.length, box: edit.box };
  }

  /** Replaces every label (e.g. clear) as one undoable edit. */
  applyAll(next: Uint8Array): ApplyResult {
    const idx: number[] = [];
    for (let i = 0; i < next.length; i++) if (this.labels[i] !== next[i]) idx.push(i);
    if (!idx.length) return { changed: 0, box: null };
    const indices = Uint32Array.from(idx);
    const edit: Edit = {
      indices,
      before: Uint8Array.from(idx, (i) => this.labels[i]!),
      after: Uint8Array.from(idx, (i) => next[i]!),
      box: this.boxOf(indices),
      record: { before: copyRecord(this.painted), after: next.some((v) => v > 0) ? copyRecord(this.painted) : emptyRecord() },
    };
    this.write(indices, edit.after);
    this.mark(edit, +1);
    this.pushUndo(edit);
    this.redoStack = [];
    return { changed: idx.length, box: edit.box };
  }

  /** Erases every label as one undoable edit (what applyAll(zeros) does, without a dense array: sparse layers). */
  clear(): ApplyResult {
    if (!(this.store instanceof SparseLabels)) return this.applyAll(new Uint8Array(this.store.length));
    const idx: number[] = [];
    const before: number[] = [];
    this.store.forEachNonzero((i, v) => {
      idx.push(i);
      before.push(v);
    });
    if (!idx.length) return { changed: 0, box: null };
    const indices = toIndices(idx, this.store.length);
    const edit: Edit = {
      indices,
      before: Uint8Array.from(before),
      after: new Uint8Array(idx.length),
      box: this.boxOf(indices),
      record: { before: copyRecord(this.painted), after: emptyRecord() },
    };
    this.write(indices, edit.after);
    this.mark(edit, +1);
    this.pushUndo(edit);
    this.redoStack = [];
    return { changed: idx.length, box: edit.box };
  }

  undo(): ApplyResult {
    const e = this.undoStack.pop();
    if (!e) return { changed: 0, box: null };
    this.write(e.indices, e.before);
    this.mark(e, -1);
    this.redoStack.push(e);
    return { changed: e.indices.length, box: e.box };
  }

  redo(): ApplyResult {
    const e = this.redoStack.pop();
    if (!e) return { changed: 0, box: null };
    this.write(e.indices, e.after);
    this.mark(e, +1);
    this.undoStack.push(e);
    return { changed: e.indices.length, box: e.box };
  }

  /** Painted slices per plane (see the file comment) and voxels per class; O(slices + classes), no voxel scan. */
  summary(volumeId: string): AnnotationSummary {
    let maxClass = 0;
    for (let c = 255; c > 0; c--)
      if (this.classCounts[c]! > 0) {
        maxClass = c;
        break;
      }
    return {
      volumeId,
      paintedSlices: this.paintedSlices(),
      classVoxels: Array.from(this.classCounts.subarray(0, maxClass + 1)),
      canUndo: this.canUndo,
      canRedo: this.canRedo,
      revision: this.revision,
    };
  }

  /** Applies (+1) or reverts (-1) an edit's effect on the painted-slice record. */
  private mark(e: Edit, sign: 1 | -1): void {
    if (e.record) this.painted = copyRecord(sign > 0 ? e.record.after : e.record.before);
    else if (e.slice) {
      const m = this.painted[e.slice.plane];
      const n = (m.get(e.slice.index) ?? 0) + sign;
      if (n > 0) m.set(e.slice.index, n);
      else m.delete(e.slice.index);
    }
  }

  private write(indices: VoxelIndices, values: Uint8Array): void {
    const { x: X, y: Y } = this.dims;
    const XY = X * Y;
    const [zs, ys, xs] = this.perSlice;
    const L = this.store;
    const cc = this.classCounts;
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      const old = L.get(i);
      const v = values[k]!;
      if (old === v) continue;
      L.set(i, v);
      cc[old]!--;
      cc[v]!++;
      if ((old === 0) !== (v === 0)) {
        const d = v === 0 ? -1 : 1;
        const z = Math.floor(i / XY);
        const r = i - z * XY;
        const y = Math.floor(r / X);
        zs[z]! += d;
        ys[y]! += d;
        xs[r - y * X]! += d;
      }
    }
    this.revision++;
  }

  private pushUndo(e: Edit): void {
    this.undoStack.push(e);
    let bytes = this.undoStack.reduce((s, x) => s + x.indices.length * 6, 0);
    while (this.undoStack.length > MAX_HISTORY || (bytes > MAX_HISTORY_BYTES && this.undoStack.length > 1)) {
      const dropped = this.undoStack.shift()!;
      bytes -= dropped.indices.length * 6;
    }
  }

  private boxOf(indices: VoxelIndices): Box {
    const { x: X, y: Y } = this.dims;
    const min: [number, number, number] = [Infinity, Infinity, Infinity];
    const max: [number, number, number] = [-Infinity, -Infinity, -Infinity];
    for (const i of indices) {
      const x = i % X,
        y = Math.floor(i / X) % Y,
        z = Math.floor(i / (X * Y));
      if (x < min[0]) min[0] = x;
      if (y < min[1]) min[1] = y;
      if (z < min[2]) min[2] = z;
      if (x + 1 > max[0]) max[0] = x + 1;
      if (y + 1 > max[1]) max[1] = y + 1;
      if (z + 1 > max[2]) max[2] = z + 1;
    }
    return { min, max };
  }
}

/** scattered single voxels beyond this many are not worth a slice each (and would cost memory) */
const MAX_AMBIGUOUS = 250_000;

/**
 * Painted slices of labels that come without a record (projects saved before the record existed). A brush
 * stroke is flat along the normal of the plane it was painted on: its voxels have no labelled neighbour on
 * either side along that axis, while in the planes it merely crosses its voxels have labelled neighbours (the
 * stroke's own width). So a slice counts when it holds a voxel that is flat along that plane's normal only;
 * voxels flat along several normals (1-voxel lines, dots) count for their xy, xz or yz slice in that order,
 * unless one of those slices already counts. Voxels flat along none (dense or sphere-brush labels) count for no
 * slice. Exact for disc strokes of radius >= 1 that do not touch a parallel stroke on the next slice.
 */
export function inferPaintedSlices(labels: Uint8Array, dims: Dims): PaintedSlices {
  const { x: X, y: Y, z: Z } = dims;
  const XY = X * Y;
  const hit = [new Uint8Array(Z), new Uint8Array(Y), new Uint8Array(X)];
  const ambiguous: number[] = [];
  for (let z = 0, i = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++, i++) {
        if (!labels[i]) continue;
        const fz = (z === 0 || !labels[i - XY]) && (z === Z - 1 || !labels[i + XY]);
        const fy = (y === 0 || !labels[i - X]) && (y === Y - 1 || !labels[i + X]);
        const fx = (x === 0 || !labels[i - 1]) && (x === X - 1 || !labels[i + 1]);
        const n = +fz + +fy + +fx;
        if (n === 1) hit[fz ? 0 : fy ? 1 : 2]![fz ? z : fy ? y : x] = 1;
        else if (n > 1 && ambiguous.length < MAX_AMBIGUOUS * 4) ambiguous.push(i, +fz, +fy, +fx);
      }
  for (let k = 0; k < ambiguous.length; k += 4) {
    const i = ambiguous[k]!;
    const c = [Math.floor(i / XY), Math.floor(i / X) % Y, i % X];
    const cand = [0, 1, 2].filter((a) => ambiguous[k + 1 + a]);
    if (cand.some((a) => hit[a]![c[a]!])) continue;
    hit[cand[0]!]![c[cand[0]!]!] = 1;
  }
  const list = (a: Uint8Array) => [...a.keys()].filter((k) => a[k]);
  return { xy: list(hit[0]!), xz: list(hit[1]!), yz: list(hit[2]!) };
}

/** Extracts a 2D slice of a single-channel uint8 label volume. */
export function labelSlice(labels: Uint8Array, dims: Dims, plane: Plane, index: number): { width: number; height: number; data: Uint8Array } {
  const { width, height, depth } = planeDims(dims, plane);
  if (index < 0 || index >= depth) throw new ApiError('bad-request', `slice ${index} is outside the ${plane} range 0..${depth - 1}`);
  const out = new Uint8Array(width * height);
  const X = dims.x,
    XY = dims.x * dims.y;
  if (plane === 'xy') out.set(labels.subarray(index * XY, (index + 1) * XY));
  else if (plane === 'xz') for (let z = 0; z < height; z++) out.set(labels.subarray(z * XY + index * X, z * XY + index * X + X), z * width);
  else for (let z = 0; z < height; z++) for (let y = 0; y < width; y++) out[z * width + y] = labels[z * XY + y * X + index]!;
  return { width, height, data: out };
}

/**
 * Liang–Barsky clip of the segment a→b to a box: [u0, v0, u1, v1, startMoved] or null when it misses the box.
 * startMoved = the start was clipped (so the walk stamps it; an unclipped start was stamped as the previous end).
 */
export function clipSegment(
  a: readonly [number, number],
  b: readonly [number, number],
  box: { u0: number; v0: number; u1: number; v1: number },
): [number, number, number, number, boolean] | null {
  const du = b[0] - a[0];
  const dv = b[1] - a[1];
  let t0 = 0;
  let t1 = 1;
  const edges: Array<[number, number]> = [
    [-du, a[0] - box.u0],
    [du, box.u1 - a[0]],
    [-dv, a[1] - box.v0],
    [dv, box.v1 - a[1]],
  ];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return null;
      continue;
    }
    const t = q / p;
    if (p < 0) {
      if (t > t1) return null;
      if (t > t0) t0 = t;
    } else {
      if (t < t0) return null;
      if (t < t1) t1 = t;
    }
  }
  return [a[0] + t0 * du, a[1] + t0 * dv, a[0] + t1 * du, a[1] + t1 * dv, t0 > 0];
}
