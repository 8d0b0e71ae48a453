/**
 * Objects of a volume's prediction layer for the app: instances (main/objects recipe), the object table,
 * id slices for colouring, and merge / split edits with their own undo stack (the annotation's undo is not
 * touched). State lives here, beside the prediction layer it is made from; the UI gets the table and slices.
 */
import { writeFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  ApiError,
  type ExportObjectsRequest,
  type ExportResult,
  type ObjectRowInfo,
  type ObjectSliceData,
  type ObjectsRequest,
  type ObjectsTable,
  type ObjectVolumeData,
  type Plane,
  type SplitObjectRequest,
} from '../common/api.js';
import { computeInstances } from '../objects/instances.js';
import { measureObjects, objectsCsv, type ObjectRow } from '../objects/measure.js';
import { writeInstanceTiff } from '../objects/files.js';
import type { Dims, Microns } from '../objects/grid.js';
import type { VolumeStore } from './volume-store.js';

/** merge/split steps kept for undo (each a diff of the voxels it changed) */
const MAX_UNDO = 50;

interface ObjectState {
  dims: Dims;
  spacing: Microns;
  labels: Uint32Array;
  classOf: number[];
  rows: ObjectRow[];
  revision: number;
  /** each step: the voxels it changed and their ids before (a diff, not a copy of the volume) */
  undo: Array<{ indices: Uint32Array; before: Uint32Array; classOf: number[] }>;
}

/** (u, v) of voxel (x, y, z) in a plane (main/common/api.ts layout) */
function uv(plane: Plane, x: number, y: number, z: number): [number, number] {
  return plane === 'xy' ? [x, y] : plane === 'xz' ? [x, z] : [y, z];
}

export class ObjectsService {
  private readonly state = new Map<string, ObjectState>();

  constructor(private readonly volumes: VolumeStore) {}

  private objects(volumeId: string): ObjectState {
    const s = this.state.get(volumeId);
    if (!s) throw new ApiError('bad-request', `volume ${volumeId} has no objects yet: compute them first (computeObjects)`);
    return s;
  }

  private table(volumeId: string, s: ObjectState): ObjectsTable {
    const sp = s.spacing;
    const objects: ObjectRowInfo[] = s.rows.map((r) => ({
      id: r.id,
      class: r.class,
      voxels: r.voxels,
      volumeUm3: r.volume_um3,
      centroid: [Math.round(r.centroid_x_um / sp.x), Math.round(r.centroid_y_um / sp.y), Math.round(r.centroid_z_um / sp.z)],
      centroidUm: [r.centroid_x_um, r.centroid_y_um, r.centroid_z_um],
      bbox: [r.bbox_x0, r.bbox_y0, r.bbox_z0, r.bbox_x1, r.bbox_y1, r.bbox_z1],
      equivalentDiameterUm: r.equivalent_diameter_um,
      sphericity: r.sphericity,
    }));
    return { volumeId, count: objects.length, objects, revision: s.revision, undoDepth: s.undo.length };
  }

  private remeasure(s: ObjectState): void {
    s.rows = measureObjects(s.labels, s.dims, s.spacing, s.classOf);
    s.revision++;
  }

  private pushUndo(s: ObjectState, indices: ArrayLike<number>): void {
    const idx = Uint32Array.from(indices);
    const before = new Uint32Array(idx.length);
    for (let k = 0; k < idx.length; k++) before[k] = s.labels[idx[k]!]!;
    s.undo.push({ indices: idx, before, classOf: s.classOf.slice() });
    if (s.undo.length > MAX_UNDO) s.undo.shift();
  }

  compute(req: ObjectsRequest): ObjectsTable {
    const ov = this.volumes.get(req.volumeId);
    if (!ov.prediction) throw new ApiError('bad-request', `volume ${ov.info.name} has no prediction yet: densify first`);
    const { x, y, z } = ov.info.shape;
    const cal = ov.info.spacing.unit !== 'pixel' && ov.info.spacing.x > 0;
    const spacing = cal ? { x: ov.info.spacing.x, y: ov.info.spacing.y, z: ov.info.spacing.z } : { x: 1, y: 1, z: 1 };
    const dims = { x, y, z };
    const inst = computeInstances(ov.prediction, dims, {
      spacing,
      split: req.split ?? 'distance',
      minSeparationUm: req.minSeparationUm,
      minSizeUm3: req.minSizeUm3,
      boundaryClass: req.boundaryClass,
    });
    const prev = this.state.get(req.volumeId);
    const s: ObjectState = { dims, spacing, labels: inst.labels, classOf: Array.from(inst.classOf), rows: [], revision: prev ? prev.revision : 0, undo: [] };
    this.remeasure(s);
    this.state.set(req.volumeId, s);
    return this.table(req.volumeId, s);
  }

  get(volumeId: string): ObjectsTable {
    return this.table(volumeId, this.objects(volumeId));
  }

  slice(req: { volumeId: string; plane: Plane; index: number }): ObjectSliceData {
    const s = this.objects(req.volumeId);
    const { x: X, y: Y, z: Z } = s.dims;
    const [w, h, depth] = req.plane === 'xy' ? [X, Y, Z] : req.plane === 'xz' ? [X, Z, Y] : [Y, Z, X];
    if (req.index >= depth) throw new ApiError('bad-request', `slice ${req.index} is outside the ${req.plane} range 0..${depth - 1}`);
    const ids = new Uint32Array(w * h);
    const XY = X * Y;
    const L = s.labels;
    if (req.plane === 'xy') ids.set(L.subarray(req.index * XY, (req.index + 1) * XY));
    else if (req.plane === 'xz') for (let zz = 0; zz < Z; zz++) ids.set(L.subarray(zz * XY + req.index * X, zz * XY + req.index * X + X), zz * w);
    else for (let zz = 0; zz < Z; zz++) for (let yy = 0; yy < Y; yy++) ids[zz * w + yy] = L[zz * XY + yy * X + req.index]!;
    return { plane: req.plane, index: req.index, width: w, height: h, ids };
  }

  volume(volumeId: string): ObjectVolumeData {
    const s = this.objects(volumeId);
    return { size: [s.dims.x, s.dims.y, s.dims.z], ids: s.labels.slice() };
  }

  merge(req: { volumeId: string; ids: number[] }): ObjectsTable {
    const s = this.objects(req.volumeId);
    const present = new Set(s.rows.map((r) => r.id));
    const ids = [...new Set(req.ids)];
    for (const id of ids) if (!present.has(id)) throw new ApiError('bad-request', `no object ${id} in volume ${req.volumeId}`);
    if (ids.length < 2) throw new ApiError('bad-request', 'merge needs two different objects');
    const into = Math.min(...ids);
    const from = new Set(ids.filter((i) => i !== into));
    const L = s.labels;
    const changed: number[] = [];
    for (let i = 0; i < L.length; i++) if (from.has(L[i]!)) changed.push(i);
    this.pushUndo(s, changed);
    for (const i of changed) L[i] = into;
    this.remeasure(s);
    return this.table(req.volumeId, s);
  }

  split(req: SplitObjectRequest): ObjectsTable {
    const s = this.objects(req.volumeId);
    const { x: X, y: Y, z: Z } = s.dims;
    const [[u0, v0], [u1, v1]] = req.line;
    const len = Math.hypot(u1 - u0, v1 - v0);
    if (len < 1) throw new ApiError('bad-request', 'draw a longer line to split an object');
    // the object under the line: the most frequent id along it in this slice
    const sl = this.slice({ volumeId: req.volumeId, plane: req.plane, index: req.index });
    const votes = new Map<number, number>();
    for (let k = 0; k <= Math.ceil(len); k++) {
      const t = k / Math.ceil(len);
      const u = Math.round(u0 + t * (u1 - u0));
      const v = Math.round(v0 + t * (v1 - v0));
      if (u < 0 || v < 0 || u >= sl.width || v >= sl.height) continue;
      const id = sl.ids[v * sl.width + u]!;
      if (id) votes.set(id, (votes.get(id) ?? 0) + 1);
    }
    if (!votes.size) throw new ApiError('bad-request', 'the line crosses no object');
    const target = [...votes.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
    // voxels of the object on the left of the line (in u, v) get a new id
    const du = u1 - u0;
    const dv = v1 - v0;
    const L = s.labels;
    const left: number[] = [];
    let right = 0;
    for (let zz = 0, i = 0; zz < Z; zz++)
      for (let yy = 0; yy < Y; yy++)
        for (let xx = 0; xx < X; xx++, i++) {
          if (L[i] !== target) continue;
          const [u, v] = uv(req.plane, xx, yy, zz);
          if (du * (v - v0) - dv * (u - u0) > 0) left.push(i);
          else right++;
        }
    if (!left.length || !right) throw new ApiError('bad-request', `the line does not cut object ${target} in two`);
    this.pushUndo(s, left);
    let next = 0;
    for (let i = 0; i < L.length; i++) if (L[i]! > next) next = L[i]!;
    next = Math.max(next, s.classOf.length - 1) + 1;
    for (const i of left) L[i] = next;
    s.classOf[next] = s.classOf[target] ?? 2;
    this.remeasure(s);
    return this.table(req.volumeId, s);
  }

  undo(volumeId: string): ObjectsTable {
    const s = this.objects(volumeId);
    const u = s.undo.pop();
    if (!u) throw new ApiError('bad-request', 'nothing to undo in the objects');
    for (let k = 0; k < u.indices.length; k++) s.labels[u.indices[k]!] = u.before[k]!;
    s.classOf = u.classOf;
    this.remeasure(s);
    return this.table(volumeId, s);
  }

  async export(req: ExportObjectsRequest): Promise<ExportResult> {
    const s = this.objects(req.volumeId);
    const path = resolve(req.path);
    let max = 0;
    for (let i = 0; i < s.labels.length; i++) if (s.labels[i]! > max) max = s.labels[i]!;
    await writeInstanceTiff(path, { labels: s.labels, count: max }, s.dims, s.spacing, req.dtype);
    if (req.csvPath) await writeFile(resolve(req.csvPath), objectsCsv(s.rows, []));
    return { path, bytes: (await stat(path)).size };
  }

  /** a volume closed or replaced: its objects go */
  forget(volumeId: string): void {
    this.state.delete(volumeId);
  }
}
