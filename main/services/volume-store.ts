/**
 * The open volumes of the API service: reading a file into an id, slices and bricks for the views, the
 * annotation layer of each volume (LabelEditor, undo/redo) and its prediction layer, and label export.
 * Owned by ApiService; the project store decides which volumes belong to the project, the job facade reads
 * volumes and layers from here to hand them to the compute process.
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
import type { Volume } from '../common/volume.js';
import type { Progress } from '../common/progress.js';
import { LabelEditor, labelSlice } from './annotation.js';
import { channelStats, volumeBrick, volumeSlice } from './volume-data.js';
import { loadIo, loadWriters } from './modules.js';
import { sha256File } from './project.js';

export interface OpenVolume {
  info: VolumeInfo;
  volume: Volume;
  /** absolute path of the file it was read from */
  path: string;
  /** HDF5 dataset it was read from, when one was asked for */
  dataset?: string;
  editor: LabelEditor;
  savedRevision: number;
  prediction: Uint8Array | null;
  predictionDirty: boolean;
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

export class VolumeStore {
  private readonly volumes = new Map<string, OpenVolume>();

  constructor(private readonly host: VolumeStoreHost) {}

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
    this.volumes.delete(id);
  }

  clear(): void {
    this.volumes.clear();
  }

  /** Reads a file and registers it under a new (or the given) id; the checksum is computed unless given. */
  async read(path: string, opts: ReadOptions): Promise<OpenVolume> {
    const io = await loadIo();
    const source = opts.name ?? path;
    let last = 0;
    const onProgress = (p: Progress) => {
      const t = Date.now();
      if (t - last < 100 && p.fraction < 1) return;
      last = t;
      this.host.emitVolumeProgress({ source, progress: p });
    };
    const [volume, sha256] = await Promise.all([io.readVolume(path, { timepoint: opts.timepoint, dataset: opts.dataset, onProgress }), opts.sha256 ? Promise.resolve(opts.sha256) : sha256File(path)]);
    const id = opts.id ?? `vol-${randomBytes(4).toString('hex')}`;
    const info: VolumeInfo = {
      id,
      name: opts.name ?? basename(path),
      source: path,
      format: volume.format,
      dtype: volume.dtype,
      shape: volume.shape,
      spacing: volume.spacing,
      channelNames: volume.channelNames,
      channelStats: channelStats(volume),
      sha256,
      timepoint: volume.timepoint,
      metadata: jsonSafe(volume.metadata),
    };
    const ov: OpenVolume = { info, volume, path, dataset: opts.dataset, editor: new LabelEditor(volume.shape), savedRevision: 0, prediction: null, predictionDirty: false };
    this.volumes.set(id, ov);
    return ov;
  }

  // ------------------------------------------------------------------------------------------ image data
  slice(req: SliceRequest): SliceData {
    return volumeSlice(this.get(req.volumeId).volume, req.plane, req.index, req.channel);
  }

  brick(req: BrickRequest): BrickData {
    return volumeBrick(this.get(req.volumeId).volume, req.origin, req.size, req.step ?? 1, req.channel);
  }

  // ------------------------------------------------------------------------------------------ annotation
  private editResult(volumeId: string, r: { changed: number; box: EditResult['box'] }, cause: 'edit' | 'undo' | 'redo' | 'clear'): EditResult {
    const ov = this.get(volumeId);
    if (r.changed) this.host.emitLabelsChanged({ volumeId, layer: 'annotation', box: r.box, cause });
    return { volumeId, changed: r.changed, box: r.box, canUndo: ov.editor.canUndo, canRedo: ov.editor.canRedo };
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
    return this.editResult(volumeId, ed.applyAll(new Uint8Array(ed.labels.length)), 'clear');
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
    const s = labelSlice(this.layerData(ov, req.layer), ov.volume.shape, req.plane, req.index);
    return { plane: req.plane, index: req.index, ...s };
  }

  labelVolume(req: { volumeId: string; layer: LabelLayer }): LabelVolumeData {
    const ov = this.get(req.volumeId);
    const { x, y, z } = ov.volume.shape;
    return { volumeId: req.volumeId, layer: req.layer, size: [x, y, z], data: this.layerData(ov, req.layer).slice() };
  }

  /** A densify result becomes the volume's prediction layer. */
  setPrediction(volumeId: string, labels: Uint8Array): void {
    const ov = this.get(volumeId);
    if (labels.length !== ov.editor.labels.length) throw new ApiError('internal', 'densify returned labels of the wrong size');
    ov.prediction = labels;
    ov.predictionDirty = true;
    this.host.emitLabelsChanged({ volumeId, layer: 'prediction', box: null, cause: 'densify' });
  }

  // ------------------------------------------------------------------------------------------ export
  async exportLabels(req: ExportLabelsRequest, classNames: string[]): Promise<ExportResult> {
    const ov = this.get(req.volumeId);
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
      shape: { x: ov.volume.shape.x, y: ov.volume.shape.y, z: ov.volume.shape.z, c: 1, t: 1 },
      spacing: ov.volume.spacing,
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
