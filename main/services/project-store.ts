/**
 * The project of the API service: its folder, name, volume references, models, settings (classes, autosave,
 * last training settings) and metrics; save / open / autosave / recovery and relocating a moved volume.
 * Layers (annotation, prediction) are read from and written to the volumes in the VolumeStore.
 */
import { mkdir, readdir, stat, writeFile, copyFile, rm, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  ApiError,
  DEFAULT_CLASSES,
  type ApiEventPayloads,
  type LabelClass,
  type ModelInfo,
  type ProjectEvent,
  type ProjectInfo,
  type ProjectMetric,
  type ProjectSettings,
  type ProjectVolumeRef,
  type RelocateVolumeRequest,
  type VolumeMovedDetails,
} from '../common/api.js';
import { LabelEditor } from './annotation.js';
import { annotationFile, isFile, predictionFile, readLayer, readPaintedSlices, readProjectFile, readSparseLayer, sparseAnnotationFile, writeProject, type VolumeLayers } from './project.js';
import { DenseLabels, SparseLabels, type LabelStore } from './sparse-labels.js';
import { isZarrStore, volumeChecksum } from './big-volume.js';

/** A copy of an annotation layer to write while editing goes on: dense bytes, or the painted blocks. */
function snapshot(store: LabelStore): Uint8Array | SparseLabels {
  if (store instanceof SparseLabels) return store.clone();
  return (store as DenseLabels).data.slice();
}
import type { OpenVolume, VolumeStore } from './volume-store.js';

export interface ProjectStoreHost {
  emitProject(e: ProjectEvent): void;
  emitLabelsChanged(e: ApiEventPayloads['labelsChanged']): void;
  /** true while any job is queued or running */
  busy(): boolean;
}

export interface ProjectStoreOptions {
  /** scratch folder of a never-saved project (dropped files, models) */
  workDir: Promise<string>;
  recoveryDir?: string;
}

const defaultSettings = (): ProjectSettings => ({ classes: DEFAULT_CLASSES.map((c) => ({ ...c })), autosaveMinutes: 2 });

export class ProjectStore {
  path: string | null = null;
  name = 'Untitled';
  refs: ProjectVolumeRef[] = [];
  models: ModelInfo[] = [];
  settings: ProjectSettings = defaultSettings();
  metrics: ProjectMetric[] = [];
  private metaDirty = false;
  private lastSavedAt?: string;
  private lastSaveMs = Date.now();
  private recoveryStamp = '';
  private recoveryFound: Promise<boolean>;
  private saving: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly volumes: VolumeStore,
    private readonly host: ProjectStoreHost,
    private readonly opts: ProjectStoreOptions,
  ) {
    this.recoveryFound = opts.recoveryDir ? isFile(join(opts.recoveryDir, 'project.json')) : Promise.resolve(false);
  }

  /** Waits for a save in progress (shutdown). */
  settled(): Promise<void> {
    return this.saving.then(
      () => {},
      () => {},
    );
  }

  /** Something of the project changed that is not a layer: mark dirty and tell the shells. */
  touch(): void {
    this.metaDirty = true;
    this.emit('changed');
  }

  markDirty(): void {
    this.metaDirty = true;
  }

  // ------------------------------------------------------------------------------------------ contents
  addRef(ov: OpenVolume): void {
    if (!this.refs.some((r) => r.id === ov.info.id)) {
      this.refs.push({ id: ov.info.id, name: ov.info.name, path: ov.path, sha256: ov.info.sha256, shape: ov.info.shape, dataset: ov.dataset });
      this.touch();
    }
  }

  removeRef(id: string): void {
    this.refs = this.refs.filter((r) => r.id !== id);
    this.touch();
  }

  checkClass(classId: number): void {
    if (classId !== 0 && !this.settings.classes.some((c) => c.id === classId))
      throw new ApiError('bad-request', `class ${classId} is not defined (classes: ${this.settings.classes.map((c) => c.id).join(', ')}; 0 erases)`);
  }

  setClasses(classes: LabelClass[]): LabelClass[] {
    const ids = new Set(classes.map((c) => c.id));
    if (ids.size !== classes.length) throw new ApiError('bad-request', 'class ids must be unique');
    this.settings.classes = classes.map((c) => ({ ...c })).sort((a, b) => a.id - b.id);
    this.touch();
    return this.settings.classes;
  }

  updateSettings(settings: Partial<ProjectSettings>): ProjectInfo {
    if (settings.classes) this.setClasses(settings.classes);
    const { classes: _c, ...rest } = settings;
    this.settings = { ...this.settings, ...rest };
    this.touch();
    return this.info();
  }

  model(id?: string): ModelInfo {
    if (id) {
      const m = this.models.find((x) => x.id === id);
      if (!m) throw new ApiError('not-found', `no model with id ${id}`);
      return m;
    }
    const m = this.models[this.models.length - 1];
    if (!m) throw new ApiError('bad-request', 'no trained model yet: train first');
    return m;
  }

  async modelsDir(): Promise<string> {
    return this.path ? join(this.path, 'models') : join(await this.opts.workDir, 'models');
  }

  numClasses(): number {
    return Math.max(2, ...this.settings.classes.map((c) => c.id));
  }

  // ------------------------------------------------------------------------------------------ info
  dirty(): boolean {
    if (this.metaDirty) return true;
    for (const v of this.volumes.all()) if (v.editor.revision !== v.savedRevision || v.predictionDirty) return true;
    return false;
  }

  info(): ProjectInfo {
    return {
      path: this.path,
      name: this.name,
      dirty: this.dirty(),
      lastSavedAt: this.lastSavedAt,
      volumes: this.refs.map((r) => ({ ...r })),
      models: this.models.map((m) => ({ ...m })),
      settings: structuredClone(this.settings),
      metrics: this.metrics.slice(),
    };
  }

  emit(kind: ProjectEvent['kind'], extra: Partial<ProjectEvent> = {}): void {
    this.host.emitProject({ kind, project: this.info(), ...extra });
  }

  async infoWithRecovery(): Promise<ProjectInfo> {
    const info = this.info();
    if (this.opts.recoveryDir && this.path !== resolve(this.opts.recoveryDir) && (await this.recoveryFound)) info.recoveryPath = resolve(this.opts.recoveryDir);
    return info;
  }

  // ------------------------------------------------------------------------------------------ new / save
  newProject(name?: string): ProjectInfo {
    if (this.host.busy()) throw new ApiError('busy', 'jobs are running; stop them before starting a new project');
    this.volumes.clear();
    this.refs = [];
    this.models = [];
    this.metrics = [];
    this.settings = defaultSettings();
    this.path = null;
    this.name = name ?? 'Untitled';
    this.metaDirty = false;
    this.lastSavedAt = undefined;
    this.emit('opened');
    return this.info();
  }

  async save(path?: string): Promise<ProjectInfo> {
    const target = path ? resolve(path) : this.path;
    if (!target) throw new ApiError('bad-request', 'this project has never been saved: give a folder path');
    await this.doSave(target, 'saved');
    const rec = this.opts.recoveryDir;
    if (rec && resolve(rec) !== target) {
      await rm(rec, { recursive: true, force: true }).catch(() => {});
      this.recoveryFound = Promise.resolve(false);
    }
    return this.info();
  }

  private doSave(dir: string, kind: 'saved' | 'autosaved'): Promise<void> {
    const run = async () => {
      const work = await this.opts.workDir;
      const moving = dir !== this.path;
      // dropped files live in the scratch folder: copy them into the project so it is self-contained
      for (const r of this.refs) {
        if (r.path.startsWith(join(work, 'imports'))) {
          const dest = join(dir, 'volumes', basename(r.path));
          await mkdir(dirname(dest), { recursive: true });
          await copyFile(r.path, dest);
          r.path = dest;
          const ov = this.volumes.peek(r.id);
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
      for (const [id, v] of this.volumes.entries()) {
        if (moving || v.editor.revision !== v.savedRevision || v.predictionDirty) {
          layers.push({ id, annotation: snapshot(v.editor.store), prediction: v.prediction, paintedSlices: v.editor.paintedSlices() });
          revs.set(id, v.editor.revision);
        }
      }
      // a first save names the project after its folder, in the file too (it reopened as "Untitled")
      if (this.name === 'Untitled') this.name = basename(dir).replace(/\.sliceform$/, '');
      const savedAt = await writeProject(dir, { name: this.name, volumes: this.refs, models: this.models, settings: this.settings, metrics: this.metrics }, layers);
      for (const [id, rev] of revs) {
        const v = this.volumes.peek(id);
        if (v) {
          v.savedRevision = rev;
          v.predictionDirty = false;
        }
      }
      this.path = dir;
      if (this.name === 'Untitled') this.name = basename(dir).replace(/\.sliceform$/, '');
      this.metaDirty = false;
      this.lastSavedAt = savedAt;
      this.lastSaveMs = Date.now();
      this.emit(kind);
    };
    const p = this.saving.then(run, run);
    this.saving = p.catch((e) => this.emit('save-failed', { message: (e as Error).message }));
    return p;
  }

  async autosaveTick(): Promise<void> {
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
    if (this.path) {
      await this.doSave(this.path, 'autosaved').catch(() => {});
      return true;
    }
    return this.recoverySave();
  }

  private changeStamp(): string {
    const revs = this.volumes
      .all()
      .map((v) => `${v.editor.revision}:${v.prediction ? v.prediction.length : 0}`)
      .join(',');
    return `${revs}|${this.refs.length}|${this.models.length}|${this.metrics.length}|${JSON.stringify(this.settings)}`;
  }

  private async recoverySave(): Promise<boolean> {
    const dir = this.opts.recoveryDir;
    if (!dir || this.volumes.size === 0) return false;
    const stamp = this.changeStamp();
    if (stamp === this.recoveryStamp) return false;
    const run = async () => {
      const layers: VolumeLayers[] = this.volumes.entries().map(([id, v]) => ({ id, annotation: snapshot(v.editor.store), prediction: v.prediction, paintedSlices: v.editor.paintedSlices() }));
      await writeProject(dir, { name: this.name, volumes: this.refs, models: this.models, settings: this.settings, metrics: this.metrics }, layers);
      this.recoveryStamp = stamp;
      this.lastSaveMs = Date.now();
      this.emit('autosaved', { message: `unsaved project kept in ${dir}; save it to a folder of your choice` });
    };
    const p = this.saving.then(run, run);
    this.saving = p.catch((e) => this.emit('save-failed', { message: (e as Error).message }));
    await p.catch(() => {});
    return true;
  }

  // ------------------------------------------------------------------------------------------ open
  async open(path: string): Promise<ProjectInfo> {
    if (this.host.busy()) throw new ApiError('busy', 'jobs are running; stop them before opening another project');
    const dir = resolve(path);
    const file = await readProjectFile(dir);
    this.volumes.clear();
    this.path = dir;
    this.name = file.name;
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
    this.emit('opened');
    if (missing.length) {
      const m = missing[0]!;
      this.emit('volume-moved', { moved: m, message: `${m.expectedPath} is missing` });
      throw new ApiError(
        'volume-moved',
        `${m.expectedPath}: the project's volume "${m.name}" is not there any more (moved or deleted); choose its new location` +
          (missing.length > 1 ? ` (${missing.length} volumes are missing)` : ''),
        { file: m.expectedPath, details: { ...m, missing } },
      );
    }
    return this.info();
  }

  private async loadRef(r: ProjectVolumeRef, path: string, sha?: string): Promise<OpenVolume> {
    // the recorded checksum lets the compute process reuse an image it already holds (a reopened project)
    const ov = await this.volumes.read(path, { id: r.id, name: r.name, sha256: sha ?? r.sha256, dataset: r.dataset });
    const s = ov.info.shape;
    if (s.x !== r.shape.x || s.y !== r.shape.y || s.z !== r.shape.z || s.c !== r.shape.c) {
      this.volumes.delete(r.id);
      throw new ApiError('bad-input', `${path}: shape ${s.x}×${s.y}×${s.z}×${s.c} differs from the project's ${r.shape.x}×${r.shape.y}×${r.shape.z}×${r.shape.c}`, { file: path });
    }
    if (this.path) {
      const n = s.x * s.y * s.z;
      // an out-of-core volume (its editor is sparse) keeps its painted blocks in their own file
      const ann = ov.editor.sparse ? await readSparseLayer(sparseAnnotationFile(this.path, r.id), s) : await readLayer(annotationFile(this.path, r.id), n);
      if (ann) {
        ov.editor = new LabelEditor(s, ann, await readPaintedSlices(this.path, r.id));
        ov.savedRevision = ov.editor.revision;
      }
      ov.prediction = await readLayer(predictionFile(this.path, r.id), n);
      this.volumes.layersReplaced(ov);
      this.host.emitLabelsChanged({ volumeId: r.id, layer: 'annotation', box: null, cause: 'load' });
    }
    return ov;
  }

  async relocate(req: RelocateVolumeRequest): Promise<ProjectInfo> {
    const r = this.refs.find((x) => x.id === req.volumeRef);
    if (!r) throw new ApiError('not-found', `the project has no volume ${req.volumeRef}`);
    const path = resolve(req.newPath);
    if (!(await isFile(path)) && !(await isZarrStore(path))) throw new ApiError('not-found', `${path}: no such file`, { file: path });
    // big stacks and Zarr stores are known by their identity (big-volume.ts), the others by their bytes
    const sha = await volumeChecksum(path, { dataset: r.dataset });
    if (sha !== r.sha256) throw new ApiError('bad-input', `${path}: this is a different file than the project's "${r.name}" (checksum differs)`, { file: path });
    await this.loadRef(r, path, sha);
    r.path = path;
    this.touch();
    return this.info();
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
