/**
 * The Node-side implementation of SliceformApi, the one API class both shells use: the web shell behind its
 * WebSocket, Electron main behind IPC. Payloads are validated by the transport (dispatch.ts) before they get
 * here. The work is split by owner:
 * - volume-store.ts: open volumes, slices/bricks, annotation layers with undo/redo, prediction layers, export
 * - project-store.ts: the project folder, its references, models, settings, metrics, save/open/autosave
 * - job-facade.ts: training, densify, evaluate and batch jobs in the compute process
 * This class composes them, owns the events and answers the file/system calls.
 */
import { cpus, homedir, totalmem, tmpdir, platform, arch } from 'node:os';
import { mkdtemp, mkdir, readdir, stat, rm, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiError,
  API_EVENTS,
  type AnnotationSummary,
  type ApiEventPayloads,
  type BatchRequest,
  type BrickData,
  type BrickRequest,
  type DensifyRequest,
  type DialogRequest,
  type DirEntry,
  type EditResult,
  type EvaluateRequest,
  type ExportLabelsRequest,
  type ExportResult,
  type ExportObjectsRequest,
  type ObjectSliceData,
  type ObjectsRequest,
  type ObjectsTable,
  type ObjectVolumeData,
  type Plane,
  type SplitObjectRequest,
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
  type ProjectSettings,
  type PreviewRequest,
  type PreviewSliceData,
  type PreviewVolumeData,
  type SliceSuggestions,
  type VisiblePlanesRequest,
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
} from '../common/api.js';
import { Emitter } from './events.js';
import { JobManager, nodeForkLauncher, type ComputeLauncher } from './jobs.js';
import { writeFileAtomic } from './atomic.js';
import { isFile, sha256Bytes } from './project.js';
import { VolumeStore } from './volume-store.js';
import { refuseOutputOverInput } from './path-guard.js';
import { ProjectStore } from './project-store.js';
import { JobFacade } from './job-facade.js';
import { ObjectsService } from './objects-service.js';
import { suggestionsFor } from './suggestions.js';
import { isZarrStore } from './big-volume.js';

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
  private readonly workDirP: Promise<string>;
  private readonly autosaveTimer: NodeJS.Timeout;
  private readonly volumes: VolumeStore;
  private readonly project: ProjectStore;
  private readonly jobFacade: JobFacade;
  private readonly objectsService: ObjectsService;

  constructor(private readonly opts: ApiServiceOptions) {
    this.workDirP = opts.workDir ? mkdir(opts.workDir, { recursive: true }).then(() => opts.workDir!) : mkdtemp(join(tmpdir(), 'sliceform-'));
    const manager = new JobManager(opts.launcher ?? nodeForkLauncher(), {
      job: (j) => this.jobFacade.onJobEvent(j),
      compute: (e) => this.emitter.emit('compute', e),
      preview: (e) => this.emitter.emit('preview', e),
    });
    this.volumes = new VolumeStore(
      {
        emitLabelsChanged: (e) => this.emitter.emit('labelsChanged', e),
        emitVolumeProgress: (e) => this.emitter.emit('volumeProgress', e),
        checkClass: (id) => this.project.checkClass(id),
      },
      manager,
    );
    this.project = new ProjectStore(
      this.volumes,
      {
        emitProject: (e) => this.emitter.emit('project', e),
        emitLabelsChanged: (e) => this.emitter.emit('labelsChanged', e),
        busy: () => this.jobFacade.busy(),
      },
      { workDir: this.workDirP, recoveryDir: opts.recoveryDir },
    );
    this.jobFacade = new JobFacade(manager, this.volumes, this.project, {
      emitJob: (j) => this.emitter.emit('job', j),
      emitTrainProgress: (p) => this.emitter.emit('trainProgress', p),
      emitPreview: (e) => this.emitter.emit('preview', e),
    });
    this.objectsService = new ObjectsService(this.volumes);
    this.autosaveTimer = setInterval(() => void this.project.autosaveTick(), opts.autosaveTickMs ?? 30_000);
    this.autosaveTimer.unref();
  }

  /** The job manager (compute process, queue); tests and shells read its state. */
  get jobs(): JobManager {
    return this.jobFacade.manager;
  }

  async dispose(): Promise<void> {
    clearInterval(this.autosaveTimer);
    this.jobFacade.dispose();
    await this.project.settled();
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
  onPreview = (cb: (e: EventMap['preview']) => void) => this.emitter.on('preview', cb);

  /** Subscribe to every event channel at once (transports forward them). */
  subscribeAll(cb: <K extends keyof EventMap>(name: K, payload: EventMap[K]) => void): () => void {
    const offs = (Object.values(API_EVENTS) as Array<keyof EventMap>).map((name) => this.emitter.on(name, (p) => cb(name, p as never)));
    return () => offs.forEach((o) => o());
  }

  /** Electron main forwards menu commands through here. */
  emitMenu(cmd: EventMap['menu']): void {
    this.emitter.emit('menu', cmd);
  }

  // ------------------------------------------------------------------------------------------ volumes
  async openVolume(req: OpenVolumeRequest): Promise<VolumeInfo> {
    const path = resolve(req.path);
    if (!(await isFile(path))) {
      try {
        const s = await stat(path);
        // an OME-Zarr / Zarr store is a folder (opened out of core when big, big-volume.ts)
        if (s.isDirectory() && !(await isZarrStore(path)))
          throw new ApiError('bad-input', `${path}: is a folder; open a volume file (TIFF, OME-TIFF, LSM, HDF5) or an OME-Zarr store`, { file: path });
      } catch (e) {
        if (e instanceof ApiError) throw e;
        throw new ApiError('not-found', `${path}: no such file`, { file: path });
      }
    }
    const open = this.volumes.find((v) => v.path === path && (req.timepoint ?? 0) === v.info.timepoint && req.dataset === v.dataset);
    if (open) return open.info;
    const ov = await this.volumes.read(path, { timepoint: req.timepoint, dataset: req.dataset });
    this.project.addRef(ov);
    return ov.info;
  }

  async openVolumeBytes(req: OpenVolumeBytesRequest): Promise<VolumeInfo> {
    const safe = basename(req.name).replace(/[^A-Za-z0-9._-]/g, '_') || 'volume';
    const sha = sha256Bytes(req.bytes);
    const path = join(await this.importsDir(), `${sha.slice(0, 12)}-${safe}`);
    await writeFileAtomic(path, req.bytes);
    return this.openImportedFile(path, { name: req.name, sha256: sha, timepoint: req.timepoint });
  }

  /** Where dropped files are kept (the web shell streams uploads here, see web-server.ts). */
  async importsDir(): Promise<string> {
    const dir = join(await this.workDirP, 'imports');
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Opens a file written into importsDir(); one that cannot be read is deleted (a rejected drop leaves nothing). */
  async openImportedFile(path: string, o: { name: string; sha256: string; timepoint?: number }): Promise<VolumeInfo> {
    const open = this.volumes.find((v) => v.path === path);
    if (open) return open.info;
    let ov;
    try {
      ov = await this.volumes.read(path, { timepoint: o.timepoint, name: o.name, sha256: o.sha256 });
    } catch (e) {
      if (!this.project.refs.some((r) => r.path === path)) await rm(path, { force: true }).catch(() => {});
      throw e;
    }
    this.project.addRef(ov);
    return ov.info;
  }

  /** the files of the open volumes: an export or snapshot must not replace one (path-guard.ts) */
  private openVolumePaths(): Array<{ label: string; path: string }> {
    return this.volumes.all().map((v) => ({ label: `of the open volume "${v.info.name}"`, path: v.path }));
  }

  async listVolumes(): Promise<VolumeInfo[]> {
    return this.volumes.all().map((v) => v.info);
  }

  async closeVolume(req: { volumeId: string }): Promise<void> {
    this.volumes.get(req.volumeId);
    if (this.jobFacade.busy((j) => j.volumeId === req.volumeId)) throw new ApiError('busy', `volume ${req.volumeId} has a running job; stop it first`);
    this.volumes.delete(req.volumeId);
    this.objectsService.forget(req.volumeId);
    this.project.removeRef(req.volumeId);
  }

  async getSlice(req: SliceRequest): Promise<SliceData> {
    return this.volumes.slice(req);
  }

  async getBrick(req: BrickRequest): Promise<BrickData> {
    return this.volumes.brick(req);
  }

  // ------------------------------------------------------------------------------------------ annotation
  async getClasses(): Promise<LabelClass[]> {
    return this.project.settings.classes;
  }

  async setClasses(req: { classes: LabelClass[] }): Promise<LabelClass[]> {
    return this.project.setClasses(req.classes);
  }

  async paintStroke(req: StrokeEdit): Promise<EditResult> {
    const t0 = Date.now();
    const r = this.volumes.paintStroke(req);
    if (r.changed) this.jobFacade.afterEdit(req.volumeId, t0);
    return r;
  }

  async paintRegion(req: RegionEdit): Promise<EditResult> {
    const t0 = Date.now();
    const r = this.volumes.paintRegion(req);
    if (r.changed) this.jobFacade.afterEdit(req.volumeId, t0);
    return r;
  }

  async undo(req: { volumeId: string }): Promise<EditResult> {
    const t0 = Date.now();
    const r = this.volumes.undo(req.volumeId);
    if (r.changed) this.jobFacade.afterEdit(req.volumeId, t0);
    return r;
  }

  async redo(req: { volumeId: string }): Promise<EditResult> {
    const t0 = Date.now();
    const r = this.volumes.redo(req.volumeId);
    if (r.changed) this.jobFacade.afterEdit(req.volumeId, t0);
    return r;
  }

  async clearAnnotation(req: { volumeId: string }): Promise<EditResult> {
    const t0 = Date.now();
    const r = this.volumes.clearAnnotation(req.volumeId);
    if (r.changed) this.jobFacade.afterEdit(req.volumeId, t0);
    return r;
  }

  async getAnnotationSummary(req: { volumeId: string }): Promise<AnnotationSummary> {
    return this.volumes.summary(req.volumeId);
  }

  async getLabelSlice(req: LabelSliceRequest): Promise<LabelSliceData> {
    // an out-of-core volume's prediction is the label store its densify wrote: the compute process reads the slice
    return (await this.volumes.storedPredictionSlice(req)) ?? this.volumes.labelSlice(req);
  }

  async getLabelVolume(req: { volumeId: string; layer: LabelLayer }): Promise<LabelVolumeData> {
    return this.volumes.labelVolume(req);
  }

  // ------------------------------------------------------------------------------------------ jobs
  async startTraining(req: TrainSettings): Promise<JobRef> {
    return this.jobFacade.startTraining(req);
  }

  async stopTraining(req: JobRef): Promise<void> {
    this.jobFacade.stopTraining(req);
  }

  async densify(req: DensifyRequest): Promise<JobRef> {
    return this.jobFacade.densify(req);
  }

  async evaluate(req: EvaluateRequest): Promise<JobRef> {
    return this.jobFacade.evaluate(req);
  }

  async startBatch(req: BatchRequest): Promise<JobRef> {
    return this.jobFacade.startBatch(req);
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
    return this.project.models;
  }

  // ------------------------------------------------------------------------------------------ live preview (job-facade.ts)
  async setVisiblePlanes(req: VisiblePlanesRequest): Promise<void> {
    return this.jobFacade.setVisiblePlanes(req);
  }

  async getPreview(req: PreviewRequest): Promise<PreviewSliceData> {
    return this.jobFacade.getPreview(req);
  }

  async getPreviewVolume(req: { volumeId: string }): Promise<PreviewVolumeData> {
    return this.jobFacade.getPreviewVolume(req);
  }

  /** "Annotate here next": the newest prediction's per-slice uncertainty, ranked against the paint (suggestions.ts). */
  async getSuggestions(req: { volumeId: string }): Promise<SliceSuggestions> {
    const painted = this.volumes.summary(req.volumeId).paintedSlices;
    // a restarted compute process holds the volume again on first use, but not its prediction's uncertainty
    const rec = await this.jobs.call('getUncertainty', { volumeId: req.volumeId }).catch((e: unknown) => {
      if (e instanceof ApiError && e.code === 'not-found') return null;
      throw e;
    });
    return suggestionsFor(req.volumeId, rec, painted);
  }

  // ------------------------------------------------------------------------------------------ export
  async exportLabels(req: ExportLabelsRequest): Promise<ExportResult> {
    await refuseOutputOverInput([{ label: 'the export path', path: req.path }], this.openVolumePaths());
    return this.volumes.exportLabels(req, this.project.settings.classes.map((c) => c.name));
  }

  // ------------------------------------------------------------------------------------------ objects (objects-service.ts)
  async computeObjects(req: ObjectsRequest): Promise<ObjectsTable> {
    return this.objectsService.compute(req);
  }
  async getObjects(req: { volumeId: string }): Promise<ObjectsTable> {
    return this.objectsService.get(req.volumeId);
  }
  async getObjectSlice(req: { volumeId: string; plane: Plane; index: number }): Promise<ObjectSliceData> {
    return this.objectsService.slice(req);
  }
  async getObjectVolume(req: { volumeId: string }): Promise<ObjectVolumeData> {
    return this.objectsService.volume(req.volumeId);
  }
  async mergeObjects(req: { volumeId: string; ids: number[] }): Promise<ObjectsTable> {
    return this.objectsService.merge(req);
  }
  async splitObject(req: SplitObjectRequest): Promise<ObjectsTable> {
    return this.objectsService.split(req);
  }
  async undoObjects(req: { volumeId: string }): Promise<ObjectsTable> {
    return this.objectsService.undo(req.volumeId);
  }
  async exportObjects(req: ExportObjectsRequest): Promise<ExportResult> {
    await refuseOutputOverInput([{ label: 'the export path', path: req.path }, ...(req.csvPath ? [{ label: 'the CSV path', path: req.csvPath }] : [])], this.openVolumePaths());
    return this.objectsService.export(req);
  }

  async saveSnapshot(req: SaveSnapshotRequest): Promise<ExportResult> {
    const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (req.png.length < 8 || sig.some((b, i) => req.png[i] !== b)) throw new ApiError('bad-request', 'snapshot bytes are not a PNG image');
    const path = resolve(req.path);
    await refuseOutputOverInput([{ label: 'the snapshot path', path }], this.openVolumePaths());
    await writeFileAtomic(path, req.png);
    return { path, bytes: req.png.length };
  }

  // ------------------------------------------------------------------------------------------ projects
  async getProject(): Promise<ProjectInfo> {
    return this.project.infoWithRecovery();
  }

  async newProject(req?: { name?: string }): Promise<ProjectInfo> {
    return this.project.newProject(req?.name);
  }

  async saveProject(req?: { path?: string }): Promise<ProjectInfo> {
    return this.project.save(req?.path);
  }

  /**
   * Saves now if something changed (after training, on the timer): into the project folder, or for a project
   * that was never saved into the recovery folder (when one is configured).
   */
  async autosaveNow(): Promise<boolean> {
    return this.project.autosaveNow();
  }

  async openProject(req: { path: string }): Promise<ProjectInfo> {
    return this.project.open(req.path);
  }

  async relocateVolume(req: RelocateVolumeRequest): Promise<ProjectInfo> {
    return this.project.relocate(req);
  }

  async updateSettings(req: { settings: Partial<ProjectSettings> }): Promise<ProjectInfo> {
    return this.project.updateSettings(req.settings);
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
