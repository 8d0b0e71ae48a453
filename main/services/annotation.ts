/**
 * The annotation layer of one volume: a uint8 label volume (0 = unannotated) with undo/redo.
 * Edits are stroke (server-side rasterised brush along a polyline) or region (a 2D mask from the UI).
 * Each edit keeps the indices it changed with their old and new values, so undo/redo are exact.
 */
import { planeDims, planeToVoxel, type Box, type Plane, type StrokeEdit, type RegionEdit, type AnnotationSummary } from '../common/api.js';
import { ApiError } from '../common/api.js';

export interface Dims {
  x: number;
  y: number;
  z: number;
}

interface Edit {
  indices: Uint32Array;
  before: Uint8Array;
  after: Uint8Array;
  box: Box | null;
}

export interface ApplyResult {
  changed: number;
  box: Box | null;
}

const MAX_HISTORY = 500;
const MAX_HISTORY_BYTES = 512 * 1024 * 1024;

export class LabelEditor {
  readonly labels: Uint8Array;
  private undoStack: Edit[] = [];
  private redoStack: Edit[] = [];
  /** bumps on every change; the project store compares it to know what is dirty */
  revision = 0;

  constructor(
    readonly dims: Dims,
    labels?: Uint8Array,
  ) {
    const n = dims.x * dims.y * dims.z;
    if (labels && labels.length !== n) throw new ApiError('bad-input', `label volume has ${labels.length} voxels, expected ${n}`);
    this.labels = labels ?? new Uint8Array(n);
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
  strokeVoxels(s: Pick<StrokeEdit, 'plane' | 'index' | 'radius' | 'brush' | 'points'>): Uint32Array {
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
    return Uint32Array.from(out).sort();
  }

  regionVoxels(r: Pick<RegionEdit, 'plane' | 'index' | 'origin' | 'width' | 'height' | 'mask'>): Uint32Array {
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
    return Uint32Array.from(out).sort();
  }

  /** Sets `indices` to `classId` as one undoable edit. */
  apply(indices: Uint32Array, classId: number): ApplyResult {
    const changedIdx: number[] = [];
    const before: number[] = [];
    for (const i of indices) {
      const old = this.labels[i]!;
      if (old !== classId) {
        changedIdx.push(i);
        before.push(old);
      }
    }
    if (changedIdx.length === 0) return { changed: 0, box: null };
    const edit: Edit = {
      indices: Uint32Array.from(changedIdx),
      before: Uint8Array.from(before),
      after: new Uint8Array(changedIdx.length).fill(classId),
      box: null,
    };
    edit.box = this.boxOf(edit.indices);
    this.write(edit.indices, edit.after);
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
    };
    this.write(indices, edit.after);
    this.pushUndo(edit);
    this.redoStack = [];
    return { changed: idx.length, box: edit.box };
  }

  undo(): ApplyResult {
    const e = this.undoStack.pop();
    if (!e) return { changed: 0, box: null };
    this.write(e.indices, e.before);
    this.redoStack.push(e);
    return { changed: e.indices.length, box: e.box };
  }

  redo(): ApplyResult {
    const e = this.redoStack.pop();
    if (!e) return { changed: 0, box: null };
    this.write(e.indices, e.after);
    this.undoStack.push(e);
    return { changed: e.indices.length, box: e.box };
  }

  summary(volumeId: string, numClasses = 256): AnnotationSummary {
    const { x: X, y: Y, z: Z } = this.dims;
    const zs = new Uint8Array(Z),
      ys = new Uint8Array(Y),
      xs = new Uint8Array(X);
    const counts = new Array<number>(numClasses).fill(0);
    let maxClass = 0;
    const L = this.labels;
    for (let z = 0, i = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++, i++) {
          const c = L[i]!;
          counts[c]!++;
          if (c) {
            zs[z] = 1;
            ys[y] = 1;
            xs[x] = 1;
            if (c > maxClass) maxClass = c;
          }
        }
    const list = (a: Uint8Array) => [...a.keys()].filter((k) => a[k]);
    return {
      volumeId,
      paintedSlices: { xy: list(zs), xz: list(ys), yz: list(xs) },
      classVoxels: counts.slice(0, Math.max(maxClass + 1, 1)),
      canUndo: this.canUndo,
      canRedo: this.canRedo,
    };
  }

  private write(indices: Uint32Array, values: Uint8Array): void {
    for (let k = 0; k < indices.length; k++) this.labels[indices[k]!] = values[k]!;
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

  private boxOf(indices: Uint32Array): Box {
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
