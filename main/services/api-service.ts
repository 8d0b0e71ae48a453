/**
 * The Node-side implementation of SliceformApi: open volumes, annotation layers with undo/redo, jobs in the
 * compute process, the project folder with autosave. Both shells use it: the web shell behind its WebSocket,
 * Electron main behind IPC. Payloads are validated by the transport (dispatch.ts) before they get here.
 */
import { cpus, homedir, totalmem, tmpdir, platform, arch } from 'node:os';
import { mkdtemp, mkdir, readdir, stat, writeFile, copyFile, rm, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  ApiError,
  DEFAULT_CLASSES,
  API_EVENTS,
  type AnnotationSummary,
  type ApiEventPayloads,
  type BatchRequest,
  type BrickData,
  type BrickRequest,
  type DensifyRequest,
  type DensifyResult,
  type DialogRequest,
  type DirEntry,
  type EditResult,
  type EvaluateRequest,
  type ExportLabelsRequest,
  type ExportResult,
  type JobInfo,
  type JobRef,
  type LabelClass,
  type LabelLayer,
  type LabelSliceData,
  type LabelSliceRequest,
  type LabelVolumeData,
  type ModelInfo,
  type OpenVolumeBytesRequest,
  type OpenVolumeRequest,
  type ProjectEvent,
  type ProjectInfo,
  type ProjectMetric,
  type ProjectSettings,
  type ProjectVolumeRef,
  type RegionEdit,
  type RelocateVolumeRequest,
  type SaveSnapshotRequest,
  type SliceData,
  type SliceformApi,
  type SliceRequest,
  type StrokeEdit,
  type SystemInfo,
  type TrainSettings,
  type VolumeInfo,
  type VolumeMovedDetails,
} from '../common/api.js';
import { PRESETS } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import type { Progress } from '../common/progress.js';
import { Emitter } from './events.js';
import { LabelEditor, labelSlice } from './annotation.js';
import { channelStats, volumeBrick, volumeSlice } from './volume-data.js';
import { JobManager, nodeForkLauncher, type ComputeLauncher } from './jobs.js';
import { writeFileAtomic } from './atomic.js';
import { loadIo, loadWriters } from './modules.js';
import {
  annotationFile,
  isFile,
  predictionFile,
  readLayer,
  readProjectFile,
  sha256Bytes,
  sha256File,
  writeProject,
  type VolumeLayers,
} from './project.js';
import type { ComputeVolume } from './compute-protocol.js';

export interface ApiServiceOptions {
  shell: 'web' | 'electron';
  /** how to start the compute process (default: node child_process.fork of compute-entry.js) */
  launcher?: ComputeLauncher;
  /** scratch folder for dropped files and models of a never-saved project (default: a new temp dir) */
  workDir?: string;
  /** native dialogs (Electron main supplies them; the web shell has none) */
  showDialog?: (req: DialogRequest) => Promise<string | null>;
  /** autosave check period in ms (default 30 s); the interval itself is the project's autosaveMinutes */
  autosaveTickMs?: number;
  /**
   * where a never-saved project is autosaved (a project folder, e.g. <userData>/recovery.sliceform); without it
   * only projects that have a folder are autosaved. Removed after an explicit save.
   */
  recoveryDir?: string;
}

interface OpenVolume {
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

type EventMap = ApiEventPayloads;

let versionCache: string | undefined;
/** package.json version; the module runs from main/services (tsx) or dist/main/services (compiled). */
async function appVersion(): Promise<string> {
  if (versionCache) return versionCache;
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(await readFile(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sliceform' && pkg.version) return (versionCache = pkg.version);
    } catch {
      // try the next location
    }
  }
  return (versionCache = '0.0.0');
}

export class ApiService implements SliceformApi {
  private readonly emitter = new Emitter<EventMap>();
  private readonly volumes = new Map<string, OpenVolume>();
  readonly jobs: JobManager;
  private workDirP: Promise<string>;
  private autosaveTimer: NodeJS.Timeout;
  private saving: Promise<unknown> = Promise.resolve();

  // project state
  private projectPath: string | null = null;
  private projectName = 'Untitled';
  private refs: ProjectVolumeRef[] = [];
  private models: ModelInfo[] = [];
  private settings: ProjectSettings = { classes: DEFAULT_CLASSES.map((c) => ({ ...c })), autosaveMinutes: 2 };
  private metrics: ProjectMetric[] = [];
  private metaDirty = false;
  private lastSavedAt?: string;
  private lastSaveMs = Date.now();
  private recoveryStamp = '';
  private recoveryFound: Promise<boolean>;

  constructor(private readonly opts: ApiServiceOptions) {
    this.jobs = new JobManager(opts.launcher ?? nodeForkLauncher(), {
      job: (j) => this.onJobEvent(j),
      compute: (e) => this.emitter.emit('compute', e),
    });
    this.workDirP = opts.workDir ? mkdir(opts.workDir, { recursive: true }).then(() => opts.workDir!) : mkdtemp(join(tmpdir(), 'sliceform-'));
    this.autosaveTimer = setInterval(() => void this.autosaveTick(), opts.autosaveTickMs ?? 30_000);
    this.autosaveTimer.unref();
    this.recoveryFound = opts.recoveryDir ? isFile(join(opts.recoveryDir, 'project.json')) : Promise.resolve(false);
  }

  async dispose(): Promise<void> {
    clearInterval(this.autosaveTimer);
    this.jobs.dispose();
    await this.saving.catch(() => {});
    if (!this.opts.workDir) await rm(await this.workDirP, { recursive: true, force: true }).catch(() => {});
  }

  // ------------------------------------------------------------------------------------------ events
  onJob = (cb: (j: JobInfo) => void) => this.emitter.on('job', cb);
  onTrainProgress = (cb: (p: EventMap['trainProgress']) => void) => this.emitter.on('trainProgress', cb);
  onLabelsChanged = (cb: (e: EventMap['labelsChanged']) => void) => this.emitter.on('labelsChanged', cb);
  onProject = (cb: (e: ProjectEvent) => void) => this.emitter.on('project', cb);
  onCompute = (cb: (e: EventMap['compute']) => void) => this.emitter.on('compute', cb);
  onMenu = (cb: (e: EventMap['menu']) => void) => this.emitter.on('menu', cb);
  onVolumeProgress = (cb: (e: EventMap['volumeProgress']) => void) => this.emitter.on('volumeProgress', cb);

  /** Subscribe to every event channel at once (transports forward them). */
  subscribeAll(cb: <K extends keyof EventMap>(name: K, payload: EventMap[K]) => void): () => void {
    const offs = (Object.values(API_EVENTS) as Array<keyof EventMap>).map((name) => this.emitter.on(name, (p) => cb(name, p as never)));
    return () => offs.forEach((o) => o());
  }

  /** Electron main forwards menu commands through here. */
  emitMenu(cmd: EventMap['menu']): void {
    this.emitter.emit('menu', cmd);
  }

  private onJobEvent(j: JobInfo): void {
    this.emitter.emit('job', j);
    const d = j.progress.details;
    if (j.kind === 'train' && j.state === 'running' && d && typeof d.iteration === 'number') {
      const num = (k: string) => (typeof d[k] === 'number' ? (d[k] as number) : undefined);
      this.emitter.emit('trainProgress', {
        jobId: j.id,
        iteration: d.iteration,
        totalIterations: num('totalIterations'),
        loss: num('loss') ?? NaN,
        voxelsPerSecond: num('voxelsPerSecond') ?? 0,
        etaSeconds: j.progress.etaSeconds,
        elapsedSeconds: num('elapsedSeconds') ?? 0,
        fraction: j.progress.fraction,
        heldOutIoU: num('heldOutIoU'),
      });
    }
  }

  // ------------------------------------------------------------------------------------------ volumes
  private vol(id: string): OpenVolume {
    const v = this.volumes.get(id);
    if (!v) throw new ApiError('not-found', `no open volume with id ${id}`);
    return v;
  }

  private async readAndRegister(path: string, opts: { timepoint?: number; dataset?: string; name?: string; id?: string; sha256?: string }): Promise<OpenVolume> {
    const io = await loadIo();
    const source = opts.name ?? path;
    let last = 0;
    const onProgress = (p: Progress) => {
      const t = Date.now();
      if (t - last < 100 && p.fraction < 1) return;
      last = t;
      this.emitter.emit('volumeProgress', { source, progress: p });
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
    const ov: OpenVolume = {
      info,
      volume,
      path,
      editor: new LabelEditor(volume.shape),
      savedRevision: 0,
      prediction: null,
      predictionDirty: false,
    };
    this.volumes.set(id, ov);
    return ov;
  }

  async openVolume(req: OpenVolumeRequest): Promise<VolumeInfo> {
    const path = resolve(req.path);
    if (!(await isFile(path))) {
      try {
        const s = await stat(path);
        if (s.isDirectory()) throw new ApiError('bad-input', `${path}: is a folder; open a volume file (TIFF, OME-TIFF, LSM, HDF5)`, { file: path });
      } catch (e) {
        if (e instanceof ApiError) throw e;
        throw new ApiError('not-found', `${path}: no such file`, { file: path });
      }
    }
    for (const v of this.volumes.values())
      if (v.path === path && (req.timepoint ?? 0) === v.info.timepoint && req.dataset === v.dataset) return v.info;
    const ov = await this.readAndRegister(path, { timepoint: req.timepoint, dataset: req.dataset });
    ov.dataset = req.dataset;
    this.addRef(ov);
    return ov.info;
  }

  async openVolumeBytes(req: OpenVolumeBytesRequest): Promise<VolumeInfo> {
    const safe = basename(req.name).replace(/[^A-Za-z0-9._-]/g, '_') || 'volume';
    const sha = sha256Bytes(req.bytes);
    const dir = join(await this.workDirP, 'imports');
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${sha.slice(0, 12)}-${safe}`);
    await writeFileAtomic(path, req.bytes);
    for (const v of this.volumes.values()) if (v.path === path) return v.info;
    const ov = await this.readAndRegister(path, { timepoint: req.timepoint, name: req.name, sha256: sha });
    this.addRef(ov);
    return ov.info;
  }

  private addRef(ov: OpenVolume): void {
    if (!this.refs.some((r) => r.id === ov.info.id)) {
      this.refs.push({ id: ov.info.id, name: ov.info.name, path: ov.path, sha256: ov.info.sha256, shape: ov.info.shape, dataset: ov.dataset });
      this.metaDirty = true;
      this.emitProject('changed');
    }
  }

  async listVolumes(): Promise<VolumeInfo[]> {
    return [...this.volumes.values()].map((v) => v.info);
  }

  async closeVolume(req: { volumeId: string }): Promise<void> {
    this.vol(req.volumeId);
    if (this.jobs.isActive((j) => j.volumeId === req.volumeId)) throw new ApiError('busy', `volume ${req.volumeId} has a running job; stop it first`);
    this.volumes.delete(req.volumeId);
    this.refs = this.refs.filter((r) => r.id !== req.volumeId);
    this.metaDirty = true;
    this.emitProject('changed');
  }

  async getSlice(req: SliceRequest): Promise<SliceData> {
    return volumeSlice(this.vol(req.volumeId).volume, req.plane, req.index, req.channel);
  }

  async getBrick(req: BrickRequest): Promise<BrickData> {
    return volumeBrick(this.vol(req.volumeId).volume, req.origin, req.size, req.step ?? 1, req.channel);
  }

  // ------------------------------------------------------------------------------------------ annotation
  async getClasses(): Promise<LabelClass[]> {
    return this.settings.classes;
  }

  async setClasses(req: { classes: LabelClass[] }): Promise<LabelClass[]> {
    const ids = new Set(req.classes.map((c) => c.id));
    if (ids.size !== req.classes.length) throw new ApiError('bad-request', 'class ids must be unique');
    this.settings.classes = req.classes.map((c) => ({ ...c })).sort((a, b) => a.id - b.id);
    this.metaDirty = true;
    this.emitProject('changed');
    return this.settings.classes;
  }

  private checkClass(classId: number): void {
    if (classId !== 0 && !this.settings.classes.some((c) => c.id === classId))
      throw new ApiError('bad-request', `class ${classId} is not defined (classes: ${this.settings.classes.map((c) => c.id).join(', ')}; 0 erases)`);
  }

  private editResult(volumeId: string, r: { changed: number; box: EditResult['box'] }, cause: 'edit' | 'undo' | 'redo' | 'clear'): EditResult {
    const ov = this.vol(volumeId);
    if (r.changed) this.emitter.emit('labelsChanged', { volumeId, layer: 'annotation', box: r.box, cause });
    return { volumeId, changed: r.changed, box: r.box, canUndo: ov.editor.canUndo, canRedo: ov.editor.canRedo };
  }

  async paintStroke(req: StrokeEdit): Promise<EditResult> {
    this.checkClass(req.classId);
    const ed = this.vol(req.volumeId).editor;
    return this.editResult(req.volumeId, ed.apply(ed.strokeVoxels(req), req.classId), 'edit');
  }

  async paintRegion(req: RegionEdit): Promise<EditResult> {
    this.checkClass(req.classId);
    const ed = this.vol(req.volumeId).editor;
    return this.editResult(req.volumeId, ed.apply(ed.regionVoxels(req), req.classId), 'edit');
  }

  async undo(req: { volumeId: string }): Promise<EditResult> {
    return this.editResult(req.volumeId, this.vol(req.volumeId).editor.undo(), 'undo');
  }

  async redo(req: { volumeId: string }): Promise<EditResult> {
    return this.editResult(req.volumeId, this.vol(req.volumeId).editor.redo(), 'redo');
  }

  async clearAnnotation(req: { volumeId: string }): Promise<EditResult> {
    const ed = this.vol(req.volumeId).editor;
    return this.editResult(req.volumeId, ed.applyAll(new Uint8Array(ed.labels.length)), 'clear');
  }

  async getAnnotationSummary(req: { volumeId: string }): Promise<AnnotationSummary> {
    return this.vol(req.volumeId).editor.summary(req.volumeId);
  }

  private layerData(ov: OpenVolume, layer: LabelLayer): Uint8Array {
    if (layer === 'annotation') return ov.editor.labels;
    return ov.prediction ?? new Uint8Array(ov.editor.labels.length);
  }

  async getLabelSlice(req: LabelSliceRequest): Promise<LabelSliceData> {
    const ov = this.vol(req.volumeId);
    const s = labelSlice(this.layerData(ov, req.layer), ov.volume.shape, req.plane, req.index);
    return { plane: req.plane, index: req.index, ...s };
  }

  async getLabelVolume(req: { volumeId: string; layer: LabelLayer }): Promise<LabelVolumeData> {
    const ov = this.vol(req.volumeId);
    const { x, y, z } = ov.volume.shape;
    return { volumeId: req.volumeId, layer: req.layer, size: [x, y, z], data: this.layerData(ov, req.layer).slice() };
  }

  // ------------------------------------------------------------------------------------------ jobs
  private computeVolume(ov: OpenVolume): ComputeVolume {
    return { id: ov.info.id, data: ov.volume.data, dtype: ov.volume.dtype, shape: ov.volume.shape, spacing: ov.volume.spacing, labels: ov.editor.labels.slice() };
  }

  private async modelsDir(): Promise<string> {
    return this.projectPath ? join(this.projectPath, 'models') : join(await this.workDirP, 'models');
  }

  private numClasses(): number {
    return Math.max(2, ...this.settings.classes.map((c) => c.id));
  }

  async startTraining(req: TrainSettings): Promise<JobRef> {
    const ids = req.volumeIds ?? [...this.volumes.keys()].filter((id) => this.vol(id).editor.canUndo || this.vol(id).editor.labels.some((l) => l > 0));
    if (ids.length === 0) throw new ApiError('bad-request', 'nothing to train on: open a volume and paint some labels first');
    const vols = ids.map((id) => this.vol(id));
    for (const v of vols)
      if (!v.editor.labels.some((l) => l > 0)) throw new ApiError('bad-request', `volume ${v.info.name} has no annotation yet: paint at least one slice`);
    if (this.jobs.isActive((j) => j.kind === 'train')) throw new ApiError('busy', 'a training job is already running; stop it first');
    const channels = new Set(vols.map((v) => v.volume.shape.c));
    if (channels.size > 1) throw new ApiError('bad-request', 'all training volumes must have the same number of channels');
    const modelId = `model-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(2).toString('hex')}`;
    const modelDir = join(await this.modelsDir(), modelId);
    const resume = req.resumeModelId ? this.models.find((m) => m.id === req.resumeModelId) : undefined;
    if (req.resumeModelId && !resume) throw new ApiError('not-found', `no model with id ${req.resumeModelId}`);
    if (req.resumeModelId) throw new ApiError('not-available', 'continuing training from a saved model is not supported yet; start a fresh training');
    this.settings.training = { ...req };
    this.metaDirty = true;
    const payload = {
      modelId,
      modelDir,
      settings: req,
      net: { ...PRESETS[req.preset], inChannels: vols[0]!.volume.shape.c, numClasses: this.numClasses() },
      classNames: this.settings.classes.map((c) => c.name),
      resumeModelDir: resume?.path,
      volumes: vols.map((v) => this.computeVolume(v)),
    };
    const info = this.jobs.submit('train', 'train', payload, {
      volumeId: ids[0],
      finish: async (raw) => {
        const r = raw as { iterations: number; finalLoss: number; seconds: number; heldOutIoU?: number };
        const model: ModelInfo = {
          id: modelId,
          name: `${req.preset} ${new Date().toLocaleString()}`,
          preset: req.preset,
          createdAt: new Date().toISOString(),
          iterations: r.iterations,
          numClasses: payload.net.numClasses,
          inChannels: payload.net.inChannels,
          heldOutIoU: r.heldOutIoU,
          path: modelDir,
        };
        this.models.push(model);
        this.metrics.push({
          at: model.createdAt,
          kind: 'train',
          values: { iterations: r.iterations, finalLoss: r.finalLoss, seconds: r.seconds, ...(r.heldOutIoU !== undefined ? { heldOutIoU: r.heldOutIoU } : {}) },
        });
        this.metaDirty = true;
        this.emitProject('changed');
        void this.autosaveNow(); // autosave after training
        return { model, iterations: r.iterations, finalLoss: r.finalLoss, seconds: r.seconds, heldOutIoU: r.heldOutIoU };
      },
    });
    return { jobId: info.id };
  }

  async stopTraining(req: JobRef): Promise<void> {
    this.jobs.stop(req.jobId);
  }

  private model(id?: string): ModelInfo {
    if (id) {
      const m = this.models.find((x) => x.id === id);
      if (!m) throw new ApiError('not-found', `no model with id ${id}`);
      return m;
    }
    const m = this.models[this.models.length - 1];
    if (!m) throw new ApiError('bad-request', 'no trained model yet: train first');
    return m;
  }

  async densify(req: DensifyRequest): Promise<JobRef> {
    const ov = this.vol(req.volumeId);
    const model = this.model(req.modelId);
    if (model.inChannels !== ov.volume.shape.c)
      throw new ApiError('bad-request', `model ${model.name} expects ${model.inChannels} channel(s), volume ${ov.info.name} has ${ov.volume.shape.c}`);
    const payload = { modelDir: model.path, modelId: model.id, keepAnnotation: req.keepAnnotation ?? false, volume: this.computeVolume(ov) };
    const info = this.jobs.submit('densify', 'densify', payload, {
      volumeId: req.volumeId,
      finish: (raw) => {
        const r = raw as { labels: Uint8Array; seconds: number };
        if (!(r.labels instanceof Uint8Array) || r.labels.length !== ov.editor.labels.length)
          throw new ApiError('internal', 'densify returned labels of the wrong size');
        ov.prediction = r.labels;
        ov.predictionDirty = true;
        this.emitter.emit('labelsChanged', { volumeId: req.volumeId, layer: 'prediction', box: null, cause: 'densify' });
        const counts: number[] = [];
        for (const l of r.labels) counts[l] = (counts[l] ?? 0) + 1;
        const result: DensifyResult = { volumeId: req.volumeId, modelId: model.id, classVoxels: Array.from(counts, (c) => c ?? 0), seconds: r.seconds };
        return result;
      },
    });
    return { jobId: info.id };
  }

  async evaluate(req: EvaluateRequest): Promise<JobRef> {
    const ov = this.vol(req.volumeId);
    const layer = req.layer ?? 'prediction';
    if (layer === 'prediction' && !ov.prediction) throw new ApiError('bad-request', `volume ${ov.info.name} has no prediction yet: densify first`);
    const payload = {
      volumeId: req.volumeId,
      dims: { x: ov.volume.shape.x, y: ov.volume.shape.y, z: ov.volume.shape.z },
      labels: this.layerData(ov, layer).slice(),
      annotation: ov.editor.labels.slice(),
      truthPath: req.truthPath ? resolve(req.truthPath) : undefined,
      truthDataset: req.truthDataset,
      binarizeTruth: req.binarizeTruth,
    };
    const info = this.jobs.submit('evaluate', 'evaluate', payload, {
      volumeId: req.volumeId,
      finish: (raw) => {
        const r = raw as { meanIoU: number; voxels: number };
        if (Number.isFinite(r.meanIoU)) {
          this.metrics.push({ at: new Date().toISOString(), kind: 'evaluate', values: { meanIoU: r.meanIoU, voxels: r.voxels } });
          this.metaDirty = true;
        }
        return raw;
      },
    });
    return { jobId: info.id };
  }

  async startBatch(req: BatchRequest): Promise<JobRef> {
    const model = this.model(req.modelId);
    const payload = { modelDir: model.path, modelId: model.id, inputDir: resolve(req.inputDir), outputDir: resolve(req.outputDir), format: req.format ?? 'tiff' };
    return { jobId: this.jobs.submit('batch', 'batch', payload).id };
  }

  async cancelJob(req: JobRef): Promise<void> {
    this.jobs.cancel(req.jobId);
  }

  async getJob(req: JobRef): Promise<JobInfo> {
    return this.jobs.get(req.jobId);
  }

  async listJobs(): Promise<JobInfo[]> {
    return this.jobs.list();
  }

  async waitJob(req: JobRef & { timeoutMs?: number }): Promise<JobInfo> {
    return this.jobs.wait(req.jobId, req.timeoutMs);
  }

  async listModels(): Promise<ModelInfo[]> {
    return this.models;
  }

  // ------------------------------------------------------------------------------------------ export
  async exportLabels(req: ExportLabelsRequest): Promise<ExportResult> {
    const ov = this.vol(req.volumeId);
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
      classNames: this.settings.classes.map((c) => c.name),
    };
    await w.writeLabels(path, labelVolume, req.format);
    return { path, bytes: (await stat(path)).size };
  }

  async saveSnapshot(req: SaveSnapshotRequest): Promise<ExportResult> {
    const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (req.png.length < 8 || sig.some((b, i) => req.png[i] !== b)) throw new ApiError('bad-request', 'snapshot bytes are not a PNG image');
    const path = resolve(req.path);
    await writeFileAtomic(path, req.png);
    return { path, bytes: req.png.length };
  }

  // ------------------------------------------------------------------------------------------ projects
  private dirty(): boolean {
    if (this.metaDirty) return true;
    for (const v of this.volumes.values()) if (v.editor.revision !== v.savedRevision || v.predictionDirty) return true;
    return false;
  }

  private projectInfo(): ProjectInfo {
    return {
      path: this.projectPath,
      name: this.projectName,
      dirty: this.dirty(),
      lastSavedAt: this.lastSavedAt,
      volumes: this.refs.map((r) => ({ ...r })),
      models: this.models.map((m) => ({ ...m })),
      settings: structuredClone(this.settings),
      metrics: this.metrics.slice(),
    };
  }

  private emitProject(kind: ProjectEvent['kind'], extra: Partial<ProjectEvent> = {}): void {
    this.emitter.emit('project', { kind, project: this.projectInfo(), ...extra });
  }

  async getProject(): Promise<ProjectInfo> {
    const info = this.projectInfo();
    if (this.opts.recoveryDir && this.projectPath !== resolve(this.opts.recoveryDir) && (await this.recoveryFound)) info.recoveryPath = resolve(this.opts.recoveryDir);
    return info;
  }

  async newProject(req?: { name?: string }): Promise<ProjectInfo> {
    if (this.jobs.isActive(() => true)) throw new ApiError('busy', 'jobs are running; stop them before starting a new project');
    this.volumes.clear();
    this.refs = [];
    this.models = [];
    this.metrics = [];
    this.settings = { classes: DEFAULT_CLASSES.map((c) => ({ ...c })), autosaveMinutes: 2 };
    this.projectPath = null;
    this.projectName = req?.name ?? 'Untitled';
    this.metaDirty = false;
    this.lastSavedAt = undefined;
    this.emitProject('opened');
    return this.projectInfo();
  }

  async saveProject(req?: { path?: string }): Promise<ProjectInfo> {
    const target = req?.path ? resolve(req.path) : this.projectPath;
    if (!target) throw new ApiError('bad-request', 'this project has never been saved: give a folder path');
    await this.doSave(target, 'saved');
    const rec = this.opts.recoveryDir;
    if (rec && resolve(rec) !== target) {
      await rm(rec, { recursive: true, force: true }).catch(() => {});
      this.recoveryFound = Promise.resolve(false);
    }
    return this.projectInfo();
  }

  private doSave(dir: string, kind: 'saved' | 'autosaved'): Promise<void> {
    const run = async () => {
      const work = await this.workDirP;
      const moving = dir !== this.projectPath;
      // dropped files live in the scratch folder: copy them into the project so it is self-contained
      for (const r of this.refs) {
        if (r.path.startsWith(join(work, 'imports'))) {
          const dest = join(dir, 'volumes', basename(r.path));
          await mkdir(dirname(dest), { recursive: true });
          await copyFile(r.path, dest);
          r.path = dest;
          const ov = this.volumes.get(r.id);
          if (ov) ov.path = dest;
        }
      }
      // models trained before the first save (or in another project folder) move along
      for (const m of this.models) {
        if (moving || m.path.startsWith(work)) {
          const dest = join(dir, 'models', m.id);
          if (m.path !== dest && (await isDir(m.path))) {
            await copyDir(m.path, dest);
            m.path = dest;
          }
        }
      }
      const layers: VolumeLayers[] = [];
      const revs = new Map<string, number>();
      for (const [id, v] of this.volumes) {
        if (moving || v.editor.revision !== v.savedRevision || v.predictionDirty) {
          layers.push({ id, annotation: v.editor.labels.slice(), prediction: v.prediction });
          revs.set(id, v.editor.revision);
        }
      }
      const savedAt = await writeProject(dir, { name: this.projectName, volumes: this.refs, models: this.models, settings: this.settings, metrics: this.metrics }, layers);
      for (const [id, rev] of revs) {
        const v = this.volumes.get(id);
        if (v) {
          v.savedRevision = rev;
          v.predictionDirty = false;
        }
      }
      this.projectPath = dir;
      if (this.projectName === 'Untitled') this.projectName = basename(dir).replace(/\.sliceform$/, '');
      this.metaDirty = false;
      this.lastSavedAt = savedAt;
      this.lastSaveMs = Date.now();
      this.emitProject(kind);
    };
    const p = this.saving.then(run, run);
    this.saving = p.catch((e) => this.emitProject('save-failed', { message: (e as Error).message }));
    return p;
  }

  private async autosaveTick(): Promise<void> {
    const mins = this.settings.autosaveMinutes;
    if (mins <= 0 || !this.dirty()) return;
    if (Date.now() - this.lastSaveMs < mins * 60_000) return;
    await this.autosaveNow();
  }

  /**
   * Saves now if something changed (after training, on the timer): into the project folder, or for a project
   * that was never saved into the recovery folder (when one is configured).
   */
  async autosaveNow(): Promise<boolean> {
    if (!this.dirty()) return false;
    if (this.projectPath) {
      await this.doSave(this.projectPath, 'autosaved').catch(() => {});
      return true;
    }
    return this.recoverySave();
  }

  private changeStamp(): string {
    const revs = [...this.volumes.values()].map((v) => `${v.editor.revision}:${v.prediction ? v.prediction.length : 0}`).join(',');
    return `${revs}|${this.refs.length}|${this.models.length}|${this.metrics.length}|${JSON.stringify(this.settings)}`;
  }

  private async recoverySave(): Promise<boolean> {
    const dir = this.opts.recoveryDir;
    if (!dir || this.volumes.size === 0) return false;
    const stamp = this.changeStamp();
    if (stamp === this.recoveryStamp) return false;
    const run = async () => {
      const layers: VolumeLayers[] = [...this.volumes].map(([id, v]) => ({ id, annotation: v.editor.labels.slice(), prediction: v.prediction }));
      await writeProject(dir, { name: this.projectName, volumes: this.refs, models: this.models, settings: this.settings, metrics: this.metrics }, layers);
      this.recoveryStamp = stamp;
      this.lastSaveMs = Date.now();
      this.emitProject('autosaved', { message: `unsaved project kept in ${dir}; save it to a folder of your choice` });
    };
    const p = this.saving.then(run, run);
    this.saving = p.catch((e) => this.emitProject('save-failed', { message: (e as Error).message }));
    await p.catch(() => {});
    return true;
  }

  async openProject(req: { path: string }): Promise<ProjectInfo> {
    if (this.jobs.isActive(() => true)) throw new ApiError('busy', 'jobs are running; stop them before opening another project');
    const dir = resolve(req.path);
    const file = await readProjectFile(dir);
    this.volumes.clear();
    this.projectPath = dir;
    this.projectName = file.name;
    this.refs = file.volumes;
    this.models = file.models as ModelInfo[];
    this.settings = { ...(file.settings as ProjectSettings) };
    this.metrics = file.metrics;
    this.lastSavedAt = file.savedAt;
    this.lastSaveMs = Date.now();
    this.metaDirty = false;
    const missing: VolumeMovedDetails[] = [];
    for (const r of this.refs) {
      if (!(await isFile(r.path))) {
        missing.push({ volumeRef: r.id, expectedPath: r.path, sha256: r.sha256, name: r.name });
        continue;
      }
      await this.loadRef(r, r.path);
    }
    this.emitProject('opened');
    if (missing.length) {
      const m = missing[0]!;
      this.emitProject('volume-moved', { moved: m, message: `${m.expectedPath} is missing` });
      throw new ApiError(
        'volume-moved',
        `${m.expectedPath}: the project's volume "${m.name}" is not there any more (moved or deleted); choose its new location` +
          (missing.length > 1 ? ` (${missing.length} volumes are missing)` : ''),
        { file: m.expectedPath, details: { ...m, missing } },
      );
    }
    return this.projectInfo();
  }

  private async loadRef(r: ProjectVolumeRef, path: string, sha?: string): Promise<OpenVolume> {
    const ov = await this.readAndRegister(path, { id: r.id, name: r.name, sha256: sha, dataset: r.dataset });
    ov.dataset = r.dataset;
    const s = ov.volume.shape;
    if (s.x !== r.shape.x || s.y !== r.shape.y || s.z !== r.shape.z || s.c !== r.shape.c) {
      this.volumes.delete(r.id);
      throw new ApiError('bad-input', `${path}: shape ${s.x}×${s.y}×${s.z}×${s.c} differs from the project's ${r.shape.x}×${r.shape.y}×${r.shape.z}×${r.shape.c}`, { file: path });
    }
    if (this.projectPath) {
      const n = s.x * s.y * s.z;
      const ann = await readLayer(annotationFile(this.projectPath, r.id), n);
      if (ann) {
        ov.editor = new LabelEditor(s, ann);
        ov.savedRevision = ov.editor.revision;
      }
      ov.prediction = await readLayer(predictionFile(this.projectPath, r.id), n);
      this.emitter.emit('labelsChanged', { volumeId: r.id, layer: 'annotation', box: null, cause: 'load' });
    }
    return ov;
  }

  async relocateVolume(req: RelocateVolumeRequest): Promise<ProjectInfo> {
    const r = this.refs.find((x) => x.id === req.volumeRef);
    if (!r) throw new ApiError('not-found', `the project has no volume ${req.volumeRef}`);
    const path = resolve(req.newPath);
    if (!(await isFile(path))) throw new ApiError('not-found', `${path}: no such file`, { file: path });
    const sha = await sha256File(path);
    if (sha !== r.sha256) throw new ApiError('bad-input', `${path}: this is a different file than the project's "${r.name}" (checksum differs)`, { file: path });
    await this.loadRef(r, path, sha);
    r.path = path;
    this.metaDirty = true;
    this.emitProject('changed');
    return this.projectInfo();
  }

  async updateSettings(req: { settings: Partial<ProjectSettings> }): Promise<ProjectInfo> {
    if (req.settings.classes) await this.setClasses({ classes: req.settings.classes });
    const { classes: _c, ...rest } = req.settings;
    this.settings = { ...this.settings, ...rest };
    this.metaDirty = true;
    this.emitProject('changed');
    return this.projectInfo();
  }

  // ------------------------------------------------------------------------------------------ files, system
  async listDirectory(req?: { path?: string }): Promise<{ path: string; entries: DirEntry[] }> {
    const dir = resolve(req?.path ?? homedir());
    const ents = await readdir(dir, { withFileTypes: true });
    const entries: DirEntry[] = [];
    for (const e of ents) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) entries.push({ name: e.name, path: p, kind: 'dir' });
      else if (e.isFile()) entries.push({ name: e.name, path: p, kind: 'file', bytes: (await stat(p).catch(() => null))?.size });
    }
    entries.sort((a, b) => (a.kind === b.kind ? a.name.localeCompare(b.name) : a.kind === 'dir' ? -1 : 1));
    return { path: dir, entries };
  }

  async showDialog(req: DialogRequest): Promise<string | null> {
    return this.opts.showDialog ? this.opts.showDialog(req) : null;
  }

  async systemInfo(): Promise<SystemInfo> {
    let engine: SystemInfo['engine'] = null;
    let engineError: string | undefined;
    let features: Record<string, boolean> = {};
    try {
      const info = await this.jobs.computeInfo(60_000);
      engine = info.engine;
      engineError = info.engineError;
      features = info.features;
    } catch (e) {
      engineError = `compute process unavailable: ${(e as Error).message}`;
    }
    return {
      version: await appVersion(),
      shell: this.opts.shell,
      platform: platform(),
      arch: arch(),
      cpus: cpus().length,
      memoryBytes: totalmem(),
      engine,
      engineError,
      device: engine?.devices.includes('cuda') ? 'cuda' : 'cpu',
      threads: engine?.threads ?? cpus().length,
      features,
    };
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function copyDir(src: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  for (const e of await readdir(src, { withFileTypes: true })) {
    const s = join(src, e.name),
      d = join(dest, e.name);
    if (e.isDirectory()) await copyDir(s, d);
    else if (e.isFile()) await writeFile(d, await readFile(s));
  }
}

/** Metadata from readers may hold typed arrays or bigints: keep only what JSON can carry, bounded in size. */
function jsonSafe(m: Record<string, unknown>): Record<string, unknown> {
  try {
    const s = JSON.stringify(m, (_k, v) => (typeof v === 'bigint' ? Number(v) : ArrayBuffer.isView(v) ? `[${(v as Uint8Array).length} values]` : v));
    if (!s) return {};
    return s.length > 200_000 ? { note: 'metadata too large to show' } : (JSON.parse(s) as Record<string, unknown>);
  } catch {
    return {};
  }
}
