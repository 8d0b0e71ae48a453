/**
 * Volumes resident in the compute process (runs only there, see compute-entry.ts). The image of each open
 * volume is held once, here and nowhere else; the app process keeps its metadata and the annotation editor and
 * sends label deltas (`setLabels`) before a job needs them. Jobs name volumes by id.
 * Images are keyed by file identity (path, size, mtime, dataset, time point) and by content hash: a reopened
 * project, or a dropped file that was copied into the project folder, finds its image resident and is not read
 * again. An image no volume refers to stays cached until the next file is read, so close + reopen is free but
 * two big stacks are never held for nothing.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ApiError } from '../common/api.js';
import type { Volume } from '../common/volume.js';
import type { ProgressCallback } from '../common/progress.js';
import { loadIo } from './modules.js';
import { sha256File } from './project.js';
import { channelStats, volumeBrick, volumeSlice } from './volume-data.js';
import { jsonSafe } from './volume-store.js';
import { identityHash, openBigImage, outOfCoreBytes, refuseOutOfCore, type BigVolume } from './big-volume.js';
import { SparseLabels } from './sparse-labels.js';
import type { Plane, PreviewSliceData, PreviewVolumeData } from '../common/api.js';
import type { CallRequest, CallResult, ResidentVolumeInfo, UncertaintyRecord } from './compute-protocol.js';

interface ResidentImage {
  key: string;
  volume: Volume;
  info: Omit<ResidentVolumeInfo, 'volumeId' | 'reused'>;
  /** an out-of-core image (big-volume.ts): slices are read from its source, `volume` is only its 3D level */
  big?: BigVolume;
  volumeIds: Set<string>;
}

interface ResidentVolume {
  image: ResidentImage;
  /** allocated on the first non-empty delta */
  annotation: Uint8Array | null;
  prediction: Uint8Array | null;
  /** the annotation of an out-of-core image: painted 64³ blocks only (`annotation` stays null) */
  sparse?: SparseLabels;
  /** the prediction of an out-of-core image: the OME-Zarr label store its densify wrote, opened out of core */
  bigPrediction?: BigVolume;
  /** per-slice uncertainty of the last densify and of the live preview ("annotate here next") */
  uncertainty?: { prediction?: UncertaintyRecord; preview?: UncertaintyRecord };
}

/** An annotation delta as a live session sees it (compute-store's listeners). */
export interface AnnotationDelta {
  volumeId: string;
  /** null = the whole layer */
  box: { min: [number, number, number]; max: [number, number, number] } | null;
  revision?: number;
  strokeAt?: number;
}

/** Previews kept per volume (the visible planes and a few recent ones). */
const MAX_PREVIEWS = 12;

export class ComputeStore {
  private readonly images = new Map<string, ResidentImage>();
  private readonly volumes = new Map<string, ResidentVolume>();
  private readonly annotationListeners = new Set<(d: AnnotationDelta) => void>();
  /** the app's annotation revision per volume, as of the last delta */
  private readonly revisions = new Map<string, number>();
  private readonly visible = new Map<string, Array<{ plane: Plane; index: number }>>();
  private readonly previews = new Map<string, Map<string, PreviewSliceData>>();
  private readonly previewVolumes = new Map<string, PreviewVolumeData>();
  /** files read since the process started */
  reads = 0;
  /** volumes with more voxel bytes open out of core (big-volume.ts) */
  outOfCoreBytes = outOfCoreBytes();

  private vol(id: string): ResidentVolume {
    const v = this.volumes.get(id);
    if (!v) throw new ApiError('not-found', `volume ${id} is not resident in the compute process`);
    return v;
  }

  async open(req: CallRequest<'openVolume'>, onProgress?: ProgressCallback): Promise<CallResult<'openVolume'>> {
    const path = resolve(req.path);
    const st = await stat(path);
    // a folder is a Zarr store (the reader says so when it is not)
    if (!st.isFile() && !st.isDirectory()) throw new ApiError('bad-input', `${path}: not a regular file`, { file: path });
    const tp = req.timepoint ?? 0;
    const key = `${path}|${st.size}|${st.mtimeMs}|${req.dataset ?? ''}|${tp}`;
    let image = this.images.get(key);
    if (!image && req.sha256)
      for (const im of this.images.values())
        if (im.info.sha256 === req.sha256 && im.key.endsWith(`|${req.dataset ?? ''}|${tp}`) && im.info.timepoint === tp) image = im;
    const reused = image !== undefined;
    if (!image) {
      this.evictUnused();
      const big = await openBigImage(path, req, this.outOfCoreBytes, onProgress, jsonSafe);
      if (big) {
        this.reads++;
        image = { key, volume: big.volume.preview, big: big.volume, info: big.info, volumeIds: new Set() };
        this.images.set(key, image);
      }
    }
    if (!image) {
      const io = await loadIo();
      // a checksum the app already has (an upload hashed as it streamed in, a project's record) is not recomputed
      const known = req.sha256 && /^[0-9a-f]{64}$/.test(req.sha256) ? req.sha256 : undefined;
      const [volume, sha256] = await Promise.all([io.readVolume(path, { timepoint: req.timepoint, dataset: req.dataset, onProgress }), known ?? (st.isDirectory() ? identityHash(path, [req.dataset ?? '', tp]) : sha256File(path))]);
      this.reads++;
      image = {
        key,
        volume,
        volumeIds: new Set(),
        info: {
          format: volume.format,
          dtype: volume.dtype,
          shape: volume.shape,
          spacing: volume.spacing,
          channelNames: volume.channelNames,
          channelStats: channelStats(volume),
          sha256,
          timepoint: volume.timepoint,
          metadata: jsonSafe(volume.metadata),
        },
      };
      this.images.set(key, image);
    } else onProgress?.({ fraction: 1, stage: 'resident' });
    const prev = this.volumes.get(req.volumeId);
    if (prev && prev.image !== image) this.release(req.volumeId);
    if (!prev || prev.image !== image) this.volumes.set(req.volumeId, { image, annotation: null, prediction: null });
    image.volumeIds.add(req.volumeId);
    return { volumeId: req.volumeId, ...image.info, reused };
  }

  /** Drops cached images that no volume refers to (before reading another file). */
  private evictUnused(): void {
    for (const [k, im] of this.images)
      if (im.volumeIds.size === 0) {
        void im.big?.close();
        this.images.delete(k);
      }
  }

  private release(id: string): boolean {
    const v = this.volumes.get(id);
    if (!v) return false;
    v.image.volumeIds.delete(id);
    void v.bigPrediction?.close();
    this.volumes.delete(id);
    this.previews.delete(id);
    this.previewVolumes.delete(id);
    this.visible.delete(id);
    this.revisions.delete(id);
    return true;
  }

  close(req: CallRequest<'closeVolume'>): CallResult<'closeVolume'> {
    return { released: this.release(req.volumeId) };
  }

  slice(req: CallRequest<'getSlice'>): CallResult<'getSlice'> | Promise<CallResult<'getSlice'>> {
    const big = this.vol(req.volumeId).image.big;
    if (big) return big.slice(req.plane, req.index, req.channel);
    return volumeSlice(this.vol(req.volumeId).image.volume, req.plane, req.index, req.channel);
  }

  brick(req: CallRequest<'getBrick'>): CallResult<'getBrick'> | Promise<CallResult<'getBrick'>> {
    const big = this.vol(req.volumeId).image.big;
    if (big) return big.brick(req.origin, req.size, req.step ?? 1, req.channel);
    return volumeBrick(this.vol(req.volumeId).image.volume, req.origin, req.size, req.step ?? 1, req.channel);
  }

  /** Applies a label delta: the box's contents, x fastest (a null box replaces the whole layer). */
  setLabels(req: CallRequest<'setLabels'>): CallResult<'setLabels'> {
    const r = this.writeLabels(req);
    if (req.layer === 'annotation') {
      if (req.revision !== undefined) this.revisions.set(req.volumeId, req.revision);
      const d: AnnotationDelta = { volumeId: req.volumeId, box: req.box, revision: req.revision, strokeAt: req.strokeAt };
      for (const l of this.annotationListeners) l(d);
    }
    return r;
  }

  private writeLabels(req: CallRequest<'setLabels'>): CallResult<'setLabels'> {
    const v = this.vol(req.volumeId);
    if (v.image.big) {
      // out of core: deltas go into painted blocks; a whole dense layer is never sent for such a volume
      if (req.layer !== 'annotation' || !req.box) throw refuseOutOfCore(v.image.big, req.layer === 'annotation' ? 'a whole-layer label delta' : 'a prediction layer');
      (v.sparse ??= new SparseLabels(v.image.big.shape)).writeBox(req.box, req.data);
      return { voxels: req.data.length };
    }
    const { x: X, y: Y, z: Z } = v.image.volume.shape;
    const n = X * Y * Z;
    const b = req.box ?? { min: [0, 0, 0], max: [X, Y, Z] };
    const [x0, y0, z0] = b.min;
    const [x1, y1, z1] = b.max;
    if (!(x0 < x1 && y0 < y1 && z0 < z1 && x1 <= X && y1 <= Y && z1 <= Z))
      throw new ApiError('bad-request', `label delta box ${b.min.join(',')}..${b.max.join(',')} is outside the volume ${X}×${Y}×${Z}`);
    const w = x1 - x0;
    if (req.data.length !== w * (y1 - y0) * (z1 - z0)) throw new ApiError('bad-request', `label delta has ${req.data.length} values, its box holds ${w * (y1 - y0) * (z1 - z0)}`);
    const key = req.layer;
    if (!req.box) {
      if (req.data.length !== n) throw new ApiError('bad-request', `label layer has ${req.data.length} voxels, expected ${n}`);
      v[key] = req.data.some((l) => l > 0) ? req.data : null;
      return { voxels: n };
    }
    let dst = v[key];
    if (!dst) {
      if (!req.data.some((l) => l > 0)) return { voxels: req.data.length };
      dst = v[key] = new Uint8Array(n);
    }
    let i = 0;
    for (let z = z0; z < z1; z++)
      for (let y = y0; y < y1; y++) {
        const row = (z * Y + y) * X;
        dst.set(req.data.subarray(i, i + w), row + x0);
        i += w;
      }
    return { voxels: req.data.length };
  }

  resident(): CallResult<'resident'> {
    return {
      reads: this.reads,
      images: [...this.images.values()].map((im) => ({ key: im.key, sha256: im.info.sha256, bytes: im.volume.data.byteLength, volumeIds: [...im.volumeIds] })),
      volumes: [...this.volumes].map(([volumeId, v]) => ({ volumeId, annotation: v.annotation !== null || (v.sparse?.blockCount ?? 0) > 0, prediction: v.prediction !== null })),
    };
  }

  // ------------------------------------------------------------------------------------------ for jobs
  image(id: string): Volume {
    const im = this.vol(id).image;
    if (im.big) throw refuseOutOfCore(im.big, 'this job');
    return im.volume;
  }

  /** The annotation as a label volume of the image's shape (all zeros when nothing was painted). */
  layer(id: string, layer: 'annotation' | 'prediction'): Uint8Array {
    const v = this.vol(id);
    if (v.image.big) throw refuseOutOfCore(v.image.big, `a dense ${layer} layer`);
    const { x, y, z } = v.image.volume.shape;
    return v[layer] ?? new Uint8Array(x * y * z);
  }

  hasLayer(id: string, layer: 'annotation' | 'prediction'): boolean {
    return this.vol(id)[layer] !== null;
  }

  labelVolume(id: string): Volume {
    const image = this.image(id);
    return { ...image, data: this.layer(id, 'annotation'), dtype: 'uint8', shape: { ...image.shape, c: 1 }, channelNames: ['labels'], metadata: {} };
  }

  setPrediction(id: string, labels: Uint8Array): void {
    this.vol(id).prediction = labels;
  }

  /**
   * An out-of-core volume's image source and sparse annotation (training from crops, streamed densify:
   * pipeline/crops.ts); null for a volume in memory.
   */
  outOfCore(id: string): { big: BigVolume; sparse: SparseLabels } | null {
    const v = this.vol(id);
    if (!v.image.big) return null;
    return { big: v.image.big, sparse: v.sparse ?? new SparseLabels(v.image.big.shape) };
  }

  /**
   * The prediction of an out-of-core volume becomes the label store at `path` (written by its densify), opened
   * out of core at the image's 3D-level step: `predictionSource(id).slice(plane, index)` reads a full-resolution
   * prediction slice, `.preview.data` is the layer at the 3D level.
   */
  async setOutOfCorePrediction(id: string, path: string): Promise<BigVolume> {
    const v = this.vol(id);
    if (!v.image.big) throw new ApiError('internal', `volume ${id} is in memory: its prediction is a dense layer`);
    const { regionIo } = await import('./big-volume.js');
    const io = await regionIo();
    if (!io.openRegionSource) throw new ApiError('not-available', 'out-of-core reading (main/io openRegionSource) is not available');
    const source = await io.openRegionSource(path, { cacheBytes: 64 * 2 ** 20 });
    const { BigVolume } = await import('./big-volume.js');
    let bv: BigVolume;
    try {
      bv = await BigVolume.open(source, { step: v.image.big.level3d.step });
    } catch (e) {
      await source.close().catch(() => {});
      throw e;
    }
    void v.bigPrediction?.close();
    v.bigPrediction = bv;
    return bv;
  }

  /** A full-resolution slice of the out-of-core prediction at `path` (opened when not resident: after a restart). */
  async predictionSlice(req: CallRequest<'getPredictionSlice'>): Promise<CallResult<'getPredictionSlice'>> {
    const v = this.vol(req.volumeId);
    const bp = v.bigPrediction && v.bigPrediction.source.info.source === resolve(req.path) ? v.bigPrediction : await this.setOutOfCorePrediction(req.volumeId, resolve(req.path));
    return bp.slice(req.plane, req.index);
  }

  /** The out-of-core prediction (getSlice-able full-resolution label slices), null when there is none. */
  predictionSource(id: string): BigVolume | null {
    return this.vol(id).bigPrediction ?? null;
  }

  // ------------------------------------------------------------------------------------------ live session
  /** Calls `cb` after each annotation delta (a live session's sampler); returns the unsubscribe. */
  onAnnotation(cb: (d: AnnotationDelta) => void): () => void {
    this.annotationListeners.add(cb);
    return () => this.annotationListeners.delete(cb);
  }

  /** The app's annotation revision of a volume as of the last delta (0 before any). */
  revision(id: string): number {
    return this.revisions.get(id) ?? 0;
  }

  setVisiblePlanes(req: CallRequest<'setVisiblePlanes'>): CallResult<'setVisiblePlanes'> {
    const { x, y, z } = this.image(req.volumeId).shape;
    const depth = { xy: z, xz: y, yz: x };
    for (const p of req.planes)
      if (p.index >= depth[p.plane]) throw new ApiError('bad-request', `${p.plane} plane ${p.index} is outside the volume (0..${depth[p.plane] - 1})`);
    this.visible.set(req.volumeId, req.planes.map((p) => ({ plane: p.plane, index: p.index })));
    return { planes: req.planes.length };
  }

  visiblePlanes(id: string): Array<{ plane: Plane; index: number }> {
    return this.visible.get(id) ?? [];
  }

  setPreview(p: PreviewSliceData): void {
    let m = this.previews.get(p.volumeId);
    if (!m) this.previews.set(p.volumeId, (m = new Map()));
    const key = `${p.plane}|${p.index}`;
    m.delete(key); // most recent last
    m.set(key, p);
    const keep = new Set(this.visiblePlanes(p.volumeId).map((v) => `${v.plane}|${v.index}`));
    for (const k of m.keys()) {
      if (m.size <= MAX_PREVIEWS) break;
      if (!keep.has(k)) m.delete(k);
    }
  }

  preview(req: CallRequest<'getPreview'>): CallResult<'getPreview'> {
    this.vol(req.volumeId);
    const p = this.previews.get(req.volumeId)?.get(`${req.plane}|${req.index}`);
    if (!p) throw new ApiError('not-found', `no live preview of ${req.plane} plane ${req.index} yet (a live training session predicts the visible planes)`);
    return p;
  }

  setPreviewVolume(p: PreviewVolumeData): void {
    this.previewVolumes.set(p.volumeId, p);
  }

  previewVolume(req: CallRequest<'getPreviewVolume'>): CallResult<'getPreviewVolume'> {
    this.vol(req.volumeId);
    const p = this.previewVolumes.get(req.volumeId);
    if (!p) throw new ApiError('not-found', 'no coarse 3D preview yet (a live training session builds it)');
    return p;
  }

  /** Records the per-slice uncertainty of a densify ('prediction') or of the live session's preview. */
  setUncertainty(id: string, rec: UncertaintyRecord): void {
    const v = this.vol(id);
    v.uncertainty = { ...v.uncertainty, [rec.from]: rec };
  }

  /** The newer of the prediction's and the preview's per-slice uncertainty (null when there is neither). */
  uncertainty(id: string): UncertaintyRecord | null {
    const u = this.vol(id).uncertainty;
    const a = u?.prediction;
    const b = u?.preview;
    if (a && b) return b.at > a.at ? b : a;
    return a ?? b ?? null;
  }
}
