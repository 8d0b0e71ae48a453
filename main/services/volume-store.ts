/**
 * The open volumes of the API service: opening a file under an id, slices and bricks for the views, the
 * annotation layer of each volume (LabelEditor, undo/redo) and its prediction layer, and label export.
 * Owned by ApiService; the project store decides which volumes belong to the project, the job facade names
 * volumes by id in the jobs it starts.
 *
 * The image is resident in the compute process only (compute-store.ts): this process keeps its metadata and
 * asks the compute process for slices and bricks. The annotation editor lives here (undo/redo, saving); the
 * compute process keeps its own copy, brought up to date with label deltas (the box an edit changed) right
 * before a job starts. A restarted compute process (crash) gets each volume again on first use.
 */
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  ApiError,
  type AnnotationSummary,
  type ApiEventPayloads,
  type BrickData,
  type BrickRequest,
  type EditResult,
  type ExportLabelsRequest,
  type ExportResult,
  type LabelLayer,
  type LabelSliceData,
  type LabelSliceRequest,
  type LabelVolumeData,
  type RegionEdit,
  type SliceData,
  type SliceRequest,
  type StrokeEdit,
  type VolumeInfo,
} from '../common/api.js';
import type { Box } from '../common/api.js';
import type { Progress } from '../common/progress.js';
import { LabelEditor, labelSlice } from './annotation.js';
import { SparseLabels } from './sparse-labels.js';
import { folderBytes, writeLabelsZarr } from './big-volume.js';
import { loadWriters } from './modules.js';
import type { JobManager } from './jobs.js';

export interface OpenVolume {
  info: VolumeInfo;
  /** absolute path of the file it was read from */
  path: string;
  /** HDF5 dataset it was read from, when one was asked for */
  dataset?: string;
  editor: LabelEditor;
  savedRevision: number;
  prediction: Uint8Array | null;
  predictionDirty: boolean;
  /** the compute process generation that holds this volume (JobManager.generation) */
  residentIn: number;
  /** annotation changed since the compute process's copy was updated: the box, or 'all' */
  pendingAnnotation: Box | 'all' | null;
  pendingPrediction: boolean;
  /**
   * an out-of-core volume's prediction: the OME-Zarr label store its densify wrote (full resolution, read by the
   * compute process) and the layer at the 3D level (every step-th voxel) for the page
   */
  predictionStore?: { path: string; step: number; size: [number, number, number]; data: Uint8Array };
}

export interface VolumeStoreHost {
  emitLabelsChanged(e: ApiEventPayloads['labelsChanged']): void;
  emitVolumeProgress(e: ApiEventPayloads['volumeProgress']): void;
  /** throws ApiError('bad-request') for a class the project does not define (0 erases) */
  checkClass(classId: number): void;
}

export interface ReadOptions {
  timepoint?: number;
  dataset?: string;
  name?: string;
  id?: string;
  sha256?: string;
}

/** Slices kept in this process (bytes): views revisit slices, and a busy compute process answers late. */
const SLICE_CACHE_BYTES = 64 * 2 ** 20;

export class VolumeStore {
  private readonly volumes = new Map<string, OpenVolume>();
  /** recently served slices, oldest first (Map order); an image never changes under its id */
  private readonly sliceCache = new Map<string, SliceData>();
  private sliceCacheBytes = 0;

  constructor(
    private readonly host: VolumeStoreHost,
    private readonly compute: JobManager,
  ) {}

  get(id: string): OpenVolume {
    const v = this.volumes.get(id);
    if (!v) throw new ApiError('not-found', `no open volume with id ${id}`);
    return v;
  }

  has(id: string): boolean {
    return this.volumes.has(id);
  }

  peek(id: string): OpenVolume | undefined {
    return this.volumes.get(id);
  }

  get size(): number {
    return this.volumes.size;
  }

  ids(): string[] {
    return [...this.volumes.keys()];
  }

  all(): OpenVolume[] {
    return [...this.volumes.values()];
  }

  entries(): Array<[string, OpenVolume]> {
    return [...this.volumes.entries()];
  }

  find(pred: (v: OpenVolume) => boolean): OpenVolume | undefined {
    for (const v of this.volumes.values()) if (pred(v)) return v;
    return undefined;
  }

  delete(id: string): void {
    if (this.volumes.delete(id)) this.release([id]);
    this.dropSlices((k) => k.startsWith(`${id}|`));
  }

  clear(): void {
    this.release(this.ids());
    this.volumes.clear();
    this.dropSlices(() => true);
  }

  private dropSlices(pred: (key: string) => boolean): void {
    for (const [k, s] of this.sliceCache)
      if (pred(k)) {
        this.sliceCache.delete(k);
        this.sliceCacheBytes -= s.data.byteLength;
      }
  }

  /**
   * Opens a file in the compute process and registers it under a new (or the given) id. The checksum is
   * computed there unless given (a dropped file hashed as it arrived, a project's recorded checksum: then an
   * image with that content already resident is reused without reading the file).
   */
  async read(path: string, opts: ReadOptions): Promise<OpenVolume> {
    const source = opts.name ?? path;
    const id = opts.id ?? `vol-${randomBytes(4).toString('hex')}`;
    const r = await this.compute.call(
      'openVolume',
      { volumeId: id, path, timepoint: opts.timepoint, dataset: opts.dataset, sha256: opts.sha256 },
      { onProgress: (progress: Progress) => this.host.emitVolumeProgress({ source, progress }) },
    );
    const info: VolumeInfo = {
      id,
      name: opts.name ?? basename(path),
      source: path,
      format: r.format,
      dtype: r.dtype,
      shape: r.shape,
      spacing: r.spacing,
      channelNames: r.channelNames,
      channelStats: r.channelStats,
      sha256: r.sha256,
      timepoint: r.timepoint,
      metadata: r.metadata,
      ...(r.outOfCore ? { outOfCore: r.outOfCore } : {}),
    };
    const ov: OpenVolume = {
      info,
      path,
      dataset: opts.dataset,
      // out of core: the annotation keeps painted 64³ blocks only (sparse-labels.ts)
      editor: new LabelEditor(r.shape, r.outOfCore ? new SparseLabels(r.shape) : undefined),
      savedRevision: 0,
      prediction: null,
      predictionDirty: false,
      residentIn: this.compute.generation, // a crash during the call would have rejected it
      pendingAnnotation: null,
      pendingPrediction: false,
    };
    this.volumes.set(id, ov);
    return ov;
  }

  /** Releases volumes in the compute process (their images stay cached there until another file is read). */
  private release(ids: string[]): void {
    for (const volumeId of ids) void this.compute.call('closeVolume', { volumeId }).catch(() => {});
  }

  /** Makes sure the compute process holds the volume and its current layers (before a job, after a crash). */
  async sync(ov: OpenVolume, o: { strokeAt?: number } = {}): Promise<void> {
    if (ov.residentIn !== this.compute.generation || !this.compute.computePid) {
      await this.compute.call('openVolume', { volumeId: ov.info.id, path: ov.path, timepoint: ov.info.timepoint, dataset: ov.dataset, sha256: ov.info.sha256 });
      ov.residentIn = this.compute.generation;
      if (ov.editor.revision > 0 || ov.editor.hasLabels()) ov.pendingAnnotation = 'all';
      ov.pendingPrediction = ov.prediction !== null;
    }
    const pa = ov.pendingAnnotation;
    if (pa && ov.editor.store instanceof SparseLabels) {
      // out of core: no dense layer travels; 'all' (a fresh compute copy) is the painted blocks, one delta each
      ov.pendingAnnotation = null;
      const store = ov.editor.store;
      for (const box of pa === 'all' ? store.paintedBlocks() : [pa])
        await this.compute.call('setLabels', { volumeId: ov.info.id, layer: 'annotation', box, data: store.box(box), revision: ov.editor.revision });
    } else if (pa) {
      ov.pendingAnnotation = null;
      const data = pa === 'all' ? ov.editor.labels : boxData(ov.editor.labels, ov.info.shape, pa);
      // the revision lets a live session say which paint it has seen; strokeAt times its preview (job-facade.ts)
      await this.compute.call('setLabels', { volumeId: ov.info.id, layer: 'annotation', box: pa === 'all' ? null : pa, data, revision: ov.editor.revision, ...(o.strokeAt !== undefined ? { strokeAt: o.strokeAt } : {}) });
    }
    if (ov.pendingPrediction && ov.prediction) {
      ov.pendingPrediction = false;
      await this.compute.call('setLabels', { volumeId: ov.info.id, layer: 'prediction', box: null, data: ov.prediction });
    }
  }

  /** The annotation was replaced wholesale (a project's saved layer): the compute process gets all of it. */
  layersReplaced(ov: OpenVolume): void {
    if (ov.editor.hasLabels()) ov.pendingAnnotation = 'all';
    ov.pendingPrediction = ov.prediction !== null;
  }

  private async resident(id: string): Promise<OpenVolume> {
    const ov = this.get(id);
    if (ov.residentIn !== this.compute.generation) await this.sync(ov);
    return ov;
  }

  // ------------------------------------------------------------------------------------------ image data
  async slice(req: SliceRequest): Promise<SliceData> {
    const key = `${req.volumeId}|${req.plane}|${req.index}|${req.channel ?? 'all'}`;
    const hit = this.sliceCache.get(key);
    if (hit && this.volumes.has(req.volumeId)) {
      this.sliceCache.delete(key); // most recent last
      this.sliceCache.set(key, hit);
      return hit;
    }
    await this.resident(req.volumeId);
    const s = await this.compute.call('getSlice', req);
    if (this.volumes.has(req.volumeId) && s.data.byteLength <= SLICE_CACHE_BYTES / 8) {
      const prev = this.sliceCache.get(key);
      if (prev) this.sliceCacheBytes -= prev.data.byteLength;
      this.sliceCache.set(key, s);
      this.sliceCacheBytes += s.data.byteLength;
      for (const [k, old] of this.sliceCache) {
        if (this.sliceCacheBytes <= SLICE_CACHE_BYTES) break;
        this.sliceCache.delete(k);
        this.sliceCacheBytes -= old.data.byteLength;
      }
    }
    return s;
  }

  async brick(req: BrickRequest): Promise<BrickData> {
    await this.resident(req.volumeId);
    return this.compute.call('getBrick', req);
  }

  // ------------------------------------------------------------------------------------------ annotation
  private editResult(volumeId: string, r: { changed: number; box: EditResult['box'] }, cause: 'edit' | 'undo' | 'redo' | 'clear'): EditResult {
    const ov = this.get(volumeId);
    if (r.changed) {
      ov.pendingAnnotation = ov.pendingAnnotation === 'all' || !r.box ? 'all' : unionBox(ov.pendingAnnotation, r.box);
      this.host.emitLabelsChanged({ volumeId, layer: 'annotation', box: r.box, cause });
    }
    return { volumeId, changed: r.changed, box: r.box, canUndo: ov.editor.canUndo, canRedo: ov.editor.canRedo, revision: ov.editor.revision };
  }

  paintStroke(req: StrokeEdit): EditResult {
    this.host.checkClass(req.classId);
    const ed = this.get(req.volumeId).editor;
    return this.editResult(req.volumeId, ed.apply(ed.strokeVoxels(req), req.classId), 'edit');
  }

  paintRegion(req: RegionEdit): EditResult {
    this.host.checkClass(req.classId);
    const ed = this.get(req.volumeId).editor;
    return this.editResult(req.volumeId, ed.apply(ed.regionVoxels(req), req.classId), 'edit');
  }

  undo(volumeId: string): EditResult {
    return this.editResult(volumeId, this.get(volumeId).editor.undo(), 'undo');
  }

  redo(volumeId: string): EditResult {
    return this.editResult(volumeId, this.get(volumeId).editor.redo(), 'redo');
  }

  clearAnnotation(volumeId: string): EditResult {
    const ed = this.get(volumeId).editor;
    return this.editResult(volumeId, ed.clear(), 'clear');
  }

  summary(volumeId: string): AnnotationSummary {
    return this.get(volumeId).editor.summary(volumeId);
  }

  layerData(ov: OpenVolume, layer: LabelLayer): Uint8Array {
    if (layer === 'annotation') return ov.editor.labels;
    return ov.prediction ?? new Uint8Array(ov.editor.labels.length);
  }

  labelSlice(req: LabelSliceRequest): LabelSliceData {
    const ov = this.get(req.volumeId);
    const s = req.layer === 'annotation' ? ov.editor.store.slice(req.plane, req.index) : labelSlice(this.layerData(ov, req.layer), ov.info.shape, req.plane, req.index);
    return { plane: req.plane, index: req.index, ...s };
  }

  labelVolume(req: { volumeId: string; layer: LabelLayer }): LabelVolumeData {
    const ov = this.get(req.volumeId);
    const { x, y, z } = ov.info.shape;
    const ooc = ov.info.outOfCore;
    if (ooc && ov.editor.store instanceof SparseLabels) {
      // out of core: the layer at the 3D level (a full-resolution layer would be the size of the stack)
      const ps = ov.predictionStore;
      if (req.layer === 'prediction' && ps) return { volumeId: req.volumeId, layer: req.layer, size: ps.size, step: ps.step, data: ps.data.slice() };
      const s = req.layer === 'annotation' ? ov.editor.store.sample(ooc.step) : new SparseLabels(ov.info.shape).sample(ooc.step);
      return { volumeId: req.volumeId, layer: req.layer, size: s.size, step: ooc.step, data: s.data };
    }
    return { volumeId: req.volumeId, layer: req.layer, size: [x, y, z], data: this.layerData(ov, req.layer).slice() };
  }

  /** A full-resolution prediction slice of an out-of-core volume, read by the compute process from its label store; null for other layers and volumes. */
  async storedPredictionSlice(req: LabelSliceRequest): Promise<LabelSliceData | null> {
    const ps = req.layer === 'prediction' ? this.get(req.volumeId).predictionStore : undefined;
    if (!ps) return null;
    await this.resident(req.volumeId);
    const s = await this.compute.call('getPredictionSlice', { volumeId: req.volumeId, plane: req.plane, index: req.index, path: ps.path });
    return { plane: req.plane, index: req.index, width: s.width, height: s.height, data: s.data as Uint8Array };
  }

  /** The densify of an out-of-core volume: its prediction is the label store at `path`, shown at the 3D level. */
  setOutOfCorePrediction(volumeId: string, store: { path: string; step: number; size: [number, number, number]; data: Uint8Array }): void {
    const ov = this.get(volumeId);
    const n = store.size[0] * store.size[1] * store.size[2];
    if (store.data.length !== n) throw new ApiError('internal', `densify returned a 3D level of ${store.data.length} voxels, its size ${store.size.join('×')} holds ${n}`);
    ov.predictionStore = store;
    this.host.emitLabelsChanged({ volumeId, layer: 'prediction', box: null, cause: 'densify' });
  }

  /** A densify result becomes the volume's prediction layer. */
  setPrediction(volumeId: string, labels: Uint8Array): void {
    const ov = this.get(volumeId);
    if (labels.length !== ov.editor.labels.length) throw new ApiError('internal', 'densify returned labels of the wrong size');
    ov.prediction = labels;
    ov.predictionDirty = true; // the compute process produced it and keeps it: nothing pending
    this.host.emitLabelsChanged({ volumeId, layer: 'prediction', box: null, cause: 'densify' });
  }

  // ------------------------------------------------------------------------------------------ export
  async exportLabels(req: ExportLabelsRequest, classNames: string[]): Promise<ExportResult> {
    const ov = this.get(req.volumeId);
    if (ov.editor.sparse && (req.format !== 'ome-zarr' || req.layer !== 'annotation'))
      throw new ApiError(
        'not-available',
        req.layer !== 'annotation'
          ? `the out-of-core volume ${ov.info.name} has no ${req.layer} layer (densify refuses out-of-core volumes); export its annotation`
          : `the annotation of the out-of-core volume ${ov.info.name} is exported as an OME-Zarr label store (format 'ome-zarr', painted chunks only); a ${req.format} file would be the size of the stack`,
      );
    if (req.format === 'ome-zarr') {
      if (req.layer !== 'annotation') throw new ApiError('not-available', `OME-Zarr export is for the annotation layer; export the ${req.layer} layer as TIFF or OME-TIFF`);
      const path = resolve(req.path);
      await writeLabelsZarr(path, ov.editor.store, ov.info.spacing, classNames);
      return { path, bytes: await folderBytes(path) };
    }
    let data: Uint8Array;
    if (req.layer === 'merged') {
      data = (ov.prediction ?? new Uint8Array(ov.editor.labels.length)).slice();
      const a = ov.editor.labels;
      for (let i = 0; i < a.length; i++) if (a[i]) data[i] = a[i]!;
    } else if (req.layer === 'prediction' && !ov.prediction) {
      throw new ApiError('bad-request', `volume ${ov.info.name} has no prediction yet: densify first`);
    } else data = this.layerData(ov, req.layer).slice();
    const path = resolve(req.path);
    const w = await loadWriters();
    const labelVolume = {
      data,
      dtype: 'uint8' as const,
      shape: { x: ov.info.shape.x, y: ov.info.shape.y, z: ov.info.shape.z, c: 1, t: 1 },
      spacing: ov.info.spacing,
      channelNames: ['labels'],
      format: req.format,
      source: path,
      timepoint: 0,
      metadata: {},
      classNames,
    };
    await w.writeLabels(path, labelVolume, req.format);
    return { path, bytes: (await stat(path)).size };
  }
}

/** Metadata from readers may hold typed arrays or bigints: keep only what JSON can carry, bounded in size. */
export function jsonSafe(m: Record<string, unknown>): Record<string, unknown> {
  try {
    const s = JSON.stringify(m, (_k, v) => (typeof v === 'bigint' ? Number(v) : ArrayBuffer.isView(v) ? `[${(v as Uint8Array).length} values]` : v));
    if (!s) return {};
    return s.length > 200_000 ? { note: 'metadata too large to show' } : (JSON.parse(s) as Record<string, unknown>);
  } catch {
    return {};
  }
}

function unionBox(a: Box | null, b: Box): Box {
  if (!a) return { min: [...b.min], max: [...b.max] };
  return {
    min: [Math.min(a.min[0], b.min[0]), Math.min(a.min[1], b.min[1]), Math.min(a.min[2], b.min[2])],
    max: [Math.max(a.max[0], b.max[0]), Math.max(a.max[1], b.max[1]), Math.max(a.max[2], b.max[2])],
  };
}

/** The contents of a box of a label volume, x fastest (what a label delta carries). */
export function boxData(labels: Uint8Array, shape: { x: number; y: number; z: number }, b: Box): Uint8Array {
  const [x0, y0, z0] = b.min;
  const [x1, y1, z1] = b.max;
  const w = x1 - x0;
  const out = new Uint8Array(w * (y1 - y0) * (z1 - z0));
  let i = 0;
  for (let z = z0; z < z1; z++)
    for (let y = y0; y < y1; y++) {
      const row = (z * shape.y + y) * shape.x;
      out.set(labels.subarray(row + x0, row + x1), i);
      i += w;
    }
  return out;
}
