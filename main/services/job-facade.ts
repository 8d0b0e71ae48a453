/**
 * Jobs of the API service: training, densify, evaluate and batch, run by the JobManager in the compute
 * process. Jobs name their volumes by id (the images are resident there); right before a job starts, the
 * label deltas of its volumes are sent (VolumeStore.sync). Models and settings come from the ProjectStore;
 * each compute result, checked against its schema by the JobManager, becomes the public one (a model in the
 * project, a prediction layer, a metric).
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import {
  ApiError,
  type ApiEventPayloads,
  type BatchRequest,
  type DensifyRequest,
  type DensifyResult,
  type EvaluateRequest,
  type JobInfo,
  type JobRef,
  type ModelInfo,
  type PreviewEvent,
  type PreviewRequest,
  type PreviewSliceData,
  type PreviewVolumeData,
  type TrainResult,
  type TrainSettings,
  type VisiblePlanesRequest,
} from '../common/api.js';
import { PRESETS } from '../common/engine.js';
import type { JobManager } from './jobs.js';
import type { OpenVolume, VolumeStore } from './volume-store.js';
import type { ProjectStore } from './project-store.js';
import { isFile } from './project.js';

export interface JobFacadeHost {
  emitJob(j: JobInfo): void;
  emitTrainProgress(p: ApiEventPayloads['trainProgress']): void;
  emitPreview(e: PreviewEvent): void;
}

export class JobFacade {
  /** the running live session: its job and volumes (their strokes go to the compute process at once) */
  private live: { jobId: string; volumeIds: Set<string> } | null = null;

  constructor(
    readonly manager: JobManager,
    private readonly volumes: VolumeStore,
    private readonly project: ProjectStore,
    private readonly host: JobFacadeHost,
  ) {}

  dispose(): void {
    this.manager.dispose();
  }

  busy(pred: (j: JobInfo) => boolean = () => true): boolean {
    return this.manager.isActive(pred);
  }

  /** The JobManager's job events: forwarded, and training progress as its own event. */
  onJobEvent(j: JobInfo): void {
    if (this.live?.jobId === j.id && j.state !== 'running' && j.state !== 'queued') this.live = null;
    this.host.emitJob(j);
    const d = j.progress.details;
    if (j.kind === 'train' && j.state === 'running' && d && typeof d.iteration === 'number') {
      const num = (k: string) => (typeof d[k] === 'number' ? (d[k] as number) : undefined);
      const str = (k: string) => (typeof d[k] === 'string' ? (d[k] as string) : undefined);
      let seenRevision: Record<string, number> | undefined;
      try {
        const sr = str('seenRevision');
        if (sr) seenRevision = JSON.parse(sr) as Record<string, number>;
      } catch {
        seenRevision = undefined;
      }
      this.host.emitTrainProgress({
        jobId: j.id,
        iteration: d.iteration,
        totalIterations: num('totalIterations'),
        loss: num('loss') ?? NaN,
        voxelsPerSecond: num('voxelsPerSecond') ?? 0,
        etaSeconds: j.progress.etaSeconds,
        elapsedSeconds: num('elapsedSeconds') ?? 0,
        fraction: j.progress.fraction,
        heldOutIoU: num('heldOutIoU'),
        ...(num('heldOutIteration') !== undefined ? { heldOutIteration: num('heldOutIteration') } : {}),
        ...(typeof d.heldOutNote === 'string' ? { heldOutNote: d.heldOutNote } : {}),
        ...(seenRevision ? { seenRevision } : {}),
        ...(num('startIteration') !== undefined ? { startIteration: num('startIteration') } : {}),
        ...(str('warmStartFrom') ? { warmStartFrom: str('warmStartFrom') } : {}),
        ...(str('freshReason') ? { freshReason: str('freshReason') } : {}),
      });
    }
  }

  /** Brings the compute process's copies of these volumes up to date (label deltas; a restarted process). */
  private prepare(vols: OpenVolume[]): () => Promise<void> {
    return async () => {
      for (const v of vols) if (this.volumes.peek(v.info.id) === v) await this.volumes.sync(v);
    };
  }

  async startTraining(req: TrainSettings): Promise<JobRef> {
    const vs = this.volumes;
    const ids = req.volumeIds ?? vs.ids().filter((id) => vs.get(id).editor.canUndo || vs.get(id).editor.hasLabels());
    if (ids.length === 0) throw new ApiError('bad-request', 'nothing to train on: open a volume and paint some labels first');
    const vols = ids.map((id) => vs.get(id));
    for (const v of vols)
      if (!v.editor.hasLabels()) throw new ApiError('bad-request', `volume ${v.info.name} has no annotation yet: paint at least one slice`);
    if (this.manager.isActive((j) => j.kind === 'train')) throw new ApiError('busy', 'a training job is already running; stop it first');
    const channels = new Set(vols.map((v) => v.info.shape.c));
    if (channels.size > 1) throw new ApiError('bad-request', 'all training volumes must have the same number of channels');
    const modelId = `model-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(2).toString('hex')}`;
    const modelDir = join(await this.project.modelsDir(), modelId);
    const net = { ...PRESETS[req.preset], inChannels: vols[0]!.info.shape.c, numClasses: this.project.numClasses() };
    const { resume, freshReason } = await this.warmStart(req, net);
    this.project.settings.training = { ...req };
    this.project.markDirty();
    const payload = {
      modelId,
      modelDir,
      settings: req,
      net,
      classNames: this.project.settings.classes.map((c) => c.name),
      ...(resume ? { resumeModelDir: resume.path, resumeModelId: resume.id } : {}),
      ...(freshReason ? { freshReason } : {}),
      volumeIds: ids,
    };
    const info = this.manager.submit('train', 'train', payload, {
      volumeId: ids[0],
      prepare: this.prepare(vols),
      finish: async (r) => {
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
        this.project.models.push(model);
        this.project.metrics.push({
          at: model.createdAt,
          kind: 'train',
          values: { iterations: r.iterations, finalLoss: r.finalLoss, seconds: r.seconds, ...(r.heldOutIoU !== undefined ? { heldOutIoU: r.heldOutIoU } : {}) },
        });
        this.project.touch();
        void this.project.autosaveNow(); // autosave after training
        const result: TrainResult = {
          model,
          iterations: r.iterations,
          finalLoss: r.finalLoss,
          seconds: r.seconds,
          heldOutIoU: r.heldOutIoU,
          ...(r.heldOutIteration !== undefined ? { heldOutIteration: r.heldOutIteration } : {}),
          ...(r.heldOutNote ? { heldOutNote: r.heldOutNote } : {}),
          startIteration: r.startIteration ?? 0,
          ...(r.warmStartFrom ? { warmStartFrom: r.warmStartFrom } : {}),
          ...(r.freshReason ? { freshReason: r.freshReason } : {}),
          ...(r.seenRevision ? { seenRevision: r.seenRevision } : {}),
        };
        return result;
      },
    });
    if (req.live) this.live = { jobId: info.id, volumeIds: new Set(ids) };
    return { jobId: info.id };
  }

  /**
   * The model a training continues from: the one asked for (resumeModelId), else (unless `fresh`) the project's
   * newest model with the same classes, channels and preset; none -> a fresh model, with the reason when there
   * were models but none fitted.
   */
  private async warmStart(req: TrainSettings, net: { inChannels: number; numClasses: number }): Promise<{ resume?: ModelInfo; freshReason?: string }> {
    const fits = (m: ModelInfo) => m.numClasses === net.numClasses && m.inChannels === net.inChannels && m.preset === req.preset;
    const why = (m: ModelInfo) =>
      m.numClasses !== net.numClasses
        ? `the classes changed (the newest model, ${m.name}, has ${m.numClasses}, the project ${net.numClasses})`
        : m.inChannels !== net.inChannels
          ? `the channels changed (the newest model, ${m.name}, has ${m.inChannels}, the volume ${net.inChannels})`
          : `the preset changed (the newest model, ${m.name}, is ${m.preset}, now ${req.preset})`;
    if (req.resumeModelId) {
      const m = this.project.models.find((x) => x.id === req.resumeModelId);
      if (!m) throw new ApiError('not-found', `no model with id ${req.resumeModelId}`);
      if (!fits(m)) throw new ApiError('bad-request', `cannot continue from model ${m.name}: ${why(m)}`);
      return { resume: m };
    }
    if (req.fresh) return {};
    const models = [...this.project.models].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    for (const m of models) {
      if (!fits(m)) continue;
      if (await isFile(join(m.path, 'model.json'))) return { resume: m };
    }
    return models.length ? { freshReason: `a new model: ${why(models[0]!)}` } : {};
  }

  /**
   * After an edit: a live session on this volume gets the delta now (not at the next job), with the time of the
   * stroke so that its preview can say how long stroke -> preview took.
   */
  afterEdit(volumeId: string, strokeAt: number): void {
    if (!this.live?.volumeIds.has(volumeId)) return;
    const ov = this.volumes.peek(volumeId);
    if (!ov) return;
    void this.volumes.sync(ov, { strokeAt }).catch(() => undefined);
  }

  stopTraining(req: JobRef): void {
    this.manager.stop(req.jobId);
  }

  async densify(req: DensifyRequest): Promise<JobRef> {
    const ov = this.volumes.get(req.volumeId);
    // one job at a time in the compute process: a live session would hold a densify back for as long as it runs,
    // so it is stopped first (its model is kept and, without a modelId, is the one densify uses); Continue resumes
    if (this.live) {
      const live = this.live.jobId;
      this.manager.stop(live);
      await this.manager.wait(live, 10 * 60_000);
    }
    const model = this.project.model(req.modelId);
    if (model.inChannels !== ov.info.shape.c)
      throw new ApiError('bad-request', `model ${model.name} expects ${model.inChannels} channel(s), volume ${ov.info.name} has ${ov.info.shape.c}`);
    const payload = { volumeId: req.volumeId, modelDir: model.path, modelId: model.id, keepAnnotation: req.keepAnnotation ?? false };
    const info = this.manager.submit('densify', 'densify', payload, {
      volumeId: req.volumeId,
      prepare: this.prepare([ov]),
      finish: (r) => {
        if (r.outOfCore) {
          // out of core: the full-resolution prediction is an OME-Zarr store; the page gets its 3D level
          this.volumes.setOutOfCorePrediction(req.volumeId, { ...r.outOfCore, data: r.labels });
          const result: DensifyResult = { volumeId: req.volumeId, modelId: model.id, model: { ...model }, classVoxels: r.outOfCore.classVoxels, seconds: r.seconds, out: r.outOfCore.path };
          return result;
        }
        if (r.labels.length !== ov.editor.labels.length) throw new ApiError('internal', 'densify returned labels of the wrong size');
        this.volumes.setPrediction(req.volumeId, r.labels);
        const counts: number[] = [];
        for (const l of r.labels) counts[l] = (counts[l] ?? 0) + 1;
        const result: DensifyResult = { volumeId: req.volumeId, modelId: model.id, model: { ...model }, classVoxels: Array.from(counts, (c) => c ?? 0), seconds: r.seconds };
        return result;
      },
    });
    return { jobId: info.id };
  }

  async evaluate(req: EvaluateRequest): Promise<JobRef> {
    const ov = this.volumes.get(req.volumeId);
    const layer = req.layer ?? 'prediction';
    if (layer === 'prediction' && !ov.prediction) throw new ApiError('bad-request', `volume ${ov.info.name} has no prediction yet: densify first`);
    const payload = {
      volumeId: req.volumeId,
      layer,
      truthPath: req.truthPath ? resolve(req.truthPath) : undefined,
      truthDataset: req.truthDataset,
      binarizeTruth: req.binarizeTruth,
    };
    const info = this.manager.submit('evaluate', 'evaluate', payload, {
      volumeId: req.volumeId,
      prepare: this.prepare([ov]),
      finish: (r) => {
        if (Number.isFinite(r.meanIoU)) {
          this.project.metrics.push({ at: new Date().toISOString(), kind: 'evaluate', values: { meanIoU: r.meanIoU, voxels: r.voxels } });
          this.project.markDirty();
        }
        return r;
      },
    });
    return { jobId: info.id };
  }

  // ------------------------------------------------------------------------------------------ live preview
  /** The planes the slice views show: a live session predicts them (compute process, live-session.ts). */
  async setVisiblePlanes(req: VisiblePlanesRequest): Promise<void> {
    const ov = this.volumes.get(req.volumeId);
    await this.volumes.sync(ov);
    await this.manager.call('setVisiblePlanes', req);
  }

  async getPreview(req: PreviewRequest): Promise<PreviewSliceData> {
    this.volumes.get(req.volumeId);
    return this.manager.call('getPreview', req);
  }

  async getPreviewVolume(req: { volumeId: string }): Promise<PreviewVolumeData> {
    this.volumes.get(req.volumeId);
    return this.manager.call('getPreviewVolume', req);
  }

  async startBatch(req: BatchRequest): Promise<JobRef> {
    const model = this.project.model(req.modelId);
    const payload = { modelDir: model.path, modelId: model.id, inputDir: resolve(req.inputDir), outputDir: resolve(req.outputDir), format: req.format ?? ('tiff' as const) };
    return { jobId: this.manager.submit('batch', 'batch', payload).id };
  }
}
