/**
 * What the compute process does for each job kind. Runs only inside the compute process (compute-entry.ts).
 * Training, densify and batch use main/training, main/inference and main/batch; while one of those is not
 * built the job fails with 'not-available' naming the missing part — never a made-up result.
 */
import { cpus } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ApiError, type PreviewEvent } from '../common/api.js';
import { CancelledError } from '../common/errors.js';
import type { ProgressCallback } from '../common/progress.js';
import type { EngineInfo } from '../common/engine.js';
import type { ComputeInfo, ComputeJobKind, JobResult, ParsedJobRequest } from './compute-protocol.js';
import type { Engine } from '../common/engine.js';
import { loadIo } from './modules.js';
import type { ComputeStore } from './compute-store.js';
import type { BigVolume } from './big-volume.js';
import type { RecipeHooks } from '../pipeline/recipe.js';

export interface JobContext {
  /** cancel: stop now, discard */
  signal: AbortSignal;
  /** graceful stop: finish the current step and return what there is (training) */
  stopSignal: AbortSignal;
  onProgress: ProgressCallback;
  /** the volumes resident in this process (jobs name them by id) */
  store: ComputeStore;
  /** a live session's preview of a visible plane (sent to the app) */
  emitPreview?: (e: PreviewEvent) => void;
}

/** One handler per job kind, typed by the protocol's schemas (the request is already checked). */
export type ComputeJobHandlers = { [K in ComputeJobKind]: (req: ParsedJobRequest<K>, ctx: JobContext) => Promise<JobResult<K>> };

async function tryImport(spec: string): Promise<Record<string, unknown> | null> {
  try {
    return (await import(spec)) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return null;
    throw e;
  }
}

export async function computeInfo(): Promise<ComputeInfo> {
  const features: Record<string, boolean> = {};
  for (const [name, spec] of [
    ['io', '../io/index.js'],
    ['training', '../training/trainer.js'],
    ['inference', '../inference/segment.js'],
    ['batch', '../batch/runner.js'],
  ] as const) {
    features[name] = (await tryImport(spec).catch(() => null)) !== null;
  }
  let engine: EngineInfo | null = null;
  let engineError: string | undefined;
  try {
    const m = await tryImport('../engine/index.js');
    const loadEngine = m?.loadEngine as undefined | ((o?: unknown) => Promise<{ info: EngineInfo }>);
    if (!loadEngine) engineError = 'the engine loader (main/engine/index.js loadEngine) is not available yet';
    else engine = (await loadEngine()).info;
  } catch (e) {
    engineError = `the engine failed to load: ${(e as Error).message}`;
  }
  if (engine && engine.threads === undefined) engine = { ...engine, threads: cpus().length };
  return { engine, engineError, features, pid: process.pid };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Diagnostics used by the job-manager tests and `sliceform serve --selftest`: sleep, crash, echo, hang. */
async function selftest(p: ParsedJobRequest<'selftest'>, ctx: JobContext): Promise<unknown> {
  if (p.mode === 'crash') process.exit(p.code);
  if (p.mode === 'echo') return p.data;
  if (p.mode === 'hang') {
    // ignores cancellation on purpose (a stuck native call): the manager must restart the process
    ctx.onProgress({ fraction: 0.01, stage: 'hanging' });
    await sleep(200); // let the progress message leave before the event loop blocks
    const end = Date.now() + 600_000;
    while (Date.now() < end) {
      /* busy */
    }
    return null;
  }
  for (let i = 1; i <= p.steps; i++) {
    if (ctx.signal.aborted) throw new CancelledError();
    if (ctx.stopSignal.aborted) return { steps: i - 1, stopped: true };
    await sleep(p.ms / p.steps);
    ctx.onProgress({ fraction: i / p.steps, stage: 'sleeping', details: { iteration: i } });
  }
  return { steps: p.steps, stopped: false };
}

/** IoU per class of `labels` against a ground-truth file, or against the annotation on annotated voxels. */
async function evaluate(p: ParsedJobRequest<'evaluate'>, ctx: JobContext): Promise<JobResult<'evaluate'>> {
  const image = ctx.store.image(p.volumeId);
  const dims = { x: image.shape.x, y: image.shape.y, z: image.shape.z };
  const n = dims.x * dims.y * dims.z;
  if (p.layer === 'prediction' && !ctx.store.hasLayer(p.volumeId, 'prediction')) throw new ApiError('bad-request', `volume ${p.volumeId} has no prediction yet: densify first`);
  const labels = ctx.store.layer(p.volumeId, p.layer);
  let truth: ArrayLike<number> = ctx.store.layer(p.volumeId, 'annotation');
  let onlyAnnotated = true;
  if (p.truthPath) {
    const io = await loadIo();
    ctx.onProgress({ fraction: 0.05, stage: 'reading ground truth' });
    const v = await io.readVolume(p.truthPath, { signal: ctx.signal, dataset: p.truthDataset });
    if (v.shape.x !== dims.x || v.shape.y !== dims.y || v.shape.z !== dims.z)
      throw new ApiError('bad-input', `ground truth is ${v.shape.x}×${v.shape.y}×${v.shape.z}, the volume is ${dims.x}×${dims.y}×${dims.z}`, { file: p.truthPath });
    const d = v.data.subarray(0, n);
    truth = p.binarizeTruth ? Uint8Array.from(d, (t) => (t > 0 ? 2 : 1)) : d;
    onlyAnnotated = false;
  }
  let K = 0;
  for (let i = 0; i < n; i++) K = Math.max(K, labels[i]!, truth[i]!);
  const inter = new Float64Array(K + 1),
    uni = new Float64Array(K + 1);
  let voxels = 0;
  for (let i = 0; i < n; i++) {
    const t = truth[i]!;
    if (onlyAnnotated && t === 0) continue;
    const q = labels[i]!;
    voxels++;
    if (q === t) {
      inter[q]!++;
      uni[q]!++;
    } else {
      uni[q]!++;
      uni[t]!++;
    }
  }
  const iou = [...Array(K + 1).keys()].map((k) => (k === 0 || uni[k] === 0 ? NaN : inter[k]! / uni[k]!));
  const valid = iou.filter((x) => Number.isFinite(x));
  ctx.onProgress({ fraction: 1, stage: 'evaluated' });
  return { volumeId: p.volumeId, iou, meanIoU: valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : NaN, voxels };
}

async function engineFor(choice: 'auto' | 'native' | 'tfjs' | undefined): Promise<Engine> {
  const { loadEngine } = await import('../engine/index.js');
  return loadEngine(choice && choice !== 'auto' ? { engine: choice } : {});
}

/** A week: a live session without a budget trains until it is stopped. */
const LIVE_MINUTES = 7 * 24 * 60;

/**
 * Sparse-label training with the recipe (main/pipeline/recipe.ts); the model folder is written with
 * saveRecipeModel. `resumeModelDir` warm-starts from a saved model (weights, optimizer state, iteration count);
 * a model that does not fit (another network or working resolution) gives a fresh start with the reason.
 * A live session (settings.live, live-session.ts) trains until stopped, takes annotation deltas in between two
 * steps and predicts the visible planes.
 */
async function train(p: ParsedJobRequest<'train'>, ctx: JobContext): Promise<JobResult<'train'>> {
  const { trainRecipe, saveRecipeModel, heldOutExtras } = await import('../pipeline/recipe.js');
  const { trainOnSource } = await import('../pipeline/crops.js');
  const { recipeFromApi } = await import('../pipeline/settings.js');
  const { LiveSession } = await import('./live-session.js');
  const engine = await engineFor(p.settings.engine);
  const isLive = p.settings.live === true;
  // the CLI's recipe, defaults and all; the app differs only in what the request says
  let settings = recipeFromApi(
    { ...p.settings, minutes: p.settings.minutes ?? (isLive && p.settings.iterations === undefined ? LIVE_MINUTES : undefined) },
    cpus().length,
  );
  // a live session trains on all of the paint: new strokes land anywhere, held-out paint would ignore them
  if (isLive) settings = { ...settings, validation: 'none', holdout: 'none' };
  // graceful stop and cancel both end the loop; only cancel discards the model
  const t0 = Date.now();
  ctx.onProgress({ fraction: 0, stage: 'preparing', details: { iteration: 0 } });
  // an out-of-core volume trains from crops around its painted blocks (pipeline/crops.ts), one volume at a time
  const ooc = p.volumeIds.map((id) => ctx.store.outOfCore(id));
  const big = ooc[0] ?? null;
  if (ooc.some(Boolean)) {
    const b = ooc.find(Boolean)!.big;
    if (p.volumeIds.length > 1)
      throw new ApiError('not-available', `${b.source.info.source} is open out of core: it trains from the crops around its paint on its own, not together with other volumes; train on it alone`, { file: b.source.info.source });
    if (isLive)
      throw new ApiError('not-available', `${b.source.info.source} is open out of core: a live session is not available for it yet (it needs the whole image in memory); use Train`, { file: b.source.info.source });
  }
  const live = isLive ? new LiveSession(ctx.store, p.volumeIds, (e) => ctx.emitPreview?.(e)) : null;
  let warmStartFrom = p.resumeModelDir ? p.resumeModelId : undefined;
  let freshReason = p.freshReason;
  let startIteration = 0;
  const fit = async (hooks: RecipeHooks) =>
    big
      ? (await trainOnSource(engine, big.big.source, big.sparse, settings, hooks)).trained
      : trainRecipe(
          engine,
          p.volumeIds.map((id) => ({ image: ctx.store.image(id), labels: ctx.store.labelVolume(id) })),
          settings,
          hooks,
        );
  const run = (initFrom: string | undefined) =>
    fit(
      {
        numClasses: p.classNames.length,
        signal: ctx.signal,
        stopSignal: ctx.stopSignal,
        initFrom,
        live: live?.recipeLive(),
        onProgress: (pr) => {
          if (typeof pr.details?.startIteration === 'number') startIteration = pr.details.startIteration;
          ctx.onProgress({
            ...pr,
            details: {
              ...pr.details,
              elapsedSeconds: (Date.now() - t0) / 1000,
              totalIterations: p.settings.iterations !== undefined && typeof pr.details?.startIteration === 'number' ? pr.details.startIteration + p.settings.iterations : p.settings.iterations,
              ...(live ? { seenRevision: JSON.stringify(live.seenRevision), live: 1 } : {}),
              ...(warmStartFrom ? { warmStartFrom } : {}),
              ...(freshReason ? { freshReason } : {}),
            },
          });
        },
      },
    );
  let res;
  try {
    try {
      res = await run(p.resumeModelDir);
    } catch (e) {
      // a model of another network or working resolution: start fresh and say why
      if (!p.resumeModelDir || !(e instanceof Error) || !/^cannot continue from/.test(e.message)) throw e;
      freshReason = e.message;
      warmStartFrom = undefined;
      startIteration = 0;
      res = await run(undefined);
    }
  } finally {
    live?.dispose();
  }
  try {
    if (ctx.signal.aborted) throw new CancelledError('training cancelled');
    const v0 = big ? big.big.source.info : ctx.store.image(p.volumeIds[0]!);
    await saveRecipeModel(p.modelDir, res, { classNames: p.classNames, spacing: { z: v0.spacing.z, y: v0.spacing.y, x: v0.spacing.x, unit: v0.spacing.unit }, preset: settings.preset });
  } finally {
    res.model.dispose();
  }
  const s = res.summary;
  return {
    iterations: s.iterations,
    finalLoss: s.finalLoss ?? NaN,
    seconds: s.seconds,
    heldOutIoU: res.selfValidation.estimate ?? s.heldOutIoU ?? undefined,
    ...heldOutExtras(res.selfValidation),
    stopped: res.cancelled,
    startIteration,
    ...(warmStartFrom ? { warmStartFrom } : {}),
    ...(freshReason ? { freshReason } : {}),
    ...(live ? { seenRevision: { ...live.seenRevision } } : {}),
  };
}

/** Overlap-tile prediction of the whole volume with a saved model (main/volume/predict.ts). */
async function densify(p: ParsedJobRequest<'densify'>, ctx: JobContext): Promise<JobResult<'densify'>> {
  const { segmentVolume } = await import('../inference/segment.js');
  const { loadRecipeModel } = await import('../pipeline/recipe.js');
  const { SliceUncertaintyAccumulator } = await import('../pipeline/suggest.js');
  const engine = await engineFor(p.engine);
  const ooc = ctx.store.outOfCore(p.volumeId);
  if (ooc) return densifyOutOfCore(p, ctx, ooc.big, engine);
  const { model, manifest, segment: segmentOpts } = await loadRecipeModel(p.modelDir, engine, { device: p.device });
  const t0 = Date.now();
  const image = ctx.store.image(p.volumeId);
  // "annotate here next": per-slice uncertainty of the decision's probabilities, summed as the slabs stream by
  const uncertainty = new SliceUncertaintyAccumulator(image.shape, model.config.numClasses);
  let out: Uint8Array;
  try {
    const res = await segmentVolume(model, image, {
      ...segmentOpts,
      collect: true,
      probabilities: true,
      onSlab: (slab) => {
        if (slab.probabilities) uncertainty.addSlab(slab.z0, slab.depth, slab.probabilities);
      },
      signal: ctx.signal,
      onProgress: (pr) => ctx.onProgress({ ...pr, stage: 'densify' }),
    });
    if (!res.labels) throw new ApiError('internal', 'densify produced no labels');
    out = res.labels;
  } finally {
    model.dispose();
  }
  const ann = ctx.store.layer(p.volumeId, 'annotation');
  if (p.keepAnnotation) for (let i = 0; i < out.length; i++) if (ann[i]) out[i] = ann[i]!;
  ctx.store.setPrediction(p.volumeId, out);
  const u = uncertainty.result();
  ctx.store.setUncertainty(p.volumeId, {
    from: 'prediction',
    ...(manifest.training ? { iteration: manifest.training.iterations } : {}),
    at: Date.now(),
    perAxis: { xy: Array.from(u.xy), xz: Array.from(u.xz), yz: Array.from(u.yz) },
  });
  return { labels: out, seconds: (Date.now() - t0) / 1000 };
}

/**
 * Densify of an out-of-core volume: the streamed segment of the whole volume (inference/stream.ts, fit check
 * first, tiles read with their halo) into an OME-Zarr label image with its pyramid, built beside the target and
 * renamed into place: `predictions/<volumeId>.ome.zarr` of the project (beside its models/ folder). The
 * prediction layer is then that store: the page gets it at the 3D level, full-resolution slices are read from
 * it (ComputeStore.predictionSource). keepAnnotation is not applied to the store (the paint stays its own layer).
 */
async function densifyOutOfCore(p: ParsedJobRequest<'densify'>, ctx: JobContext, big: BigVolume, engine: Engine): Promise<JobResult<'densify'>> {
  const { segmentSourceToFiles } = await import('../inference/stream.js');
  const { loadRecipeModel } = await import('../pipeline/recipe.js');
  const { model, segment: segmentOpts } = await loadRecipeModel(p.modelDir, engine, { device: p.device });
  const t0 = Date.now();
  const out = join(dirname(dirname(resolve(p.modelDir))), 'predictions', `${p.volumeId}.ome.zarr`);
  let seg: Awaited<ReturnType<typeof segmentSourceToFiles>>;
  try {
    await mkdir(dirname(out), { recursive: true });
    seg = await segmentSourceToFiles(model, big.source, {
      ...segmentOpts,
      out,
      signal: ctx.signal,
      onProgress: (pr) => ctx.onProgress({ ...pr, stage: 'densify (streamed)', details: { ...pr.details, out } }),
    });
  } finally {
    model.dispose();
  }
  if (ctx.signal.aborted) throw new CancelledError('densify cancelled');
  const pred = await ctx.store.setOutOfCorePrediction(p.volumeId, out);
  const { step, size } = big.level3d;
  return { labels: pred.preview.data as Uint8Array, seconds: (Date.now() - t0) / 1000, outOfCore: { path: out, step, size, classVoxels: seg.classCounts } };
}

/** Folder segmentation with main/batch (resumable runner + the model's segmenter); per-file progress. */
async function batch(p: ParsedJobRequest<'batch'>, ctx: JobContext): Promise<JobResult<'batch'>> {
  if (p.format !== 'tiff') throw new ApiError('not-available', 'batch segmentation writes ImageJ TIFF labels; OME-TIFF output is not supported by the batch runner yet');
  const { createSegmenter } = await import('../batch/segmenter.js');
  const { runBatch } = await import('../batch/runner.js');
  const seg = await createSegmenter(p.modelDir, { device: p.device });
  const files: Array<{ input: string; output?: string; ok: boolean; error?: string; seconds: number }> = [];
  try {
    const res = await runBatch(
      {
        inputDir: p.inputDir,
        outDir: p.outputDir,
        signal: ctx.signal,
        version: seg.manifest.sliceformVersion,
        onEvent: (e) => {
          if (e.event === 'progress')
            ctx.onProgress({
              fraction: e.fraction,
              etaSeconds: e.etaSeconds ?? undefined,
              stage: 'batch',
              message: e.file,
              details: { file: e.file, filesDone: e.filesDone, filesTotal: e.filesTotal, voxelsPerSecond: Math.round(e.voxelsPerSecond) },
            });
          else if (e.event === 'file-done')
            files.push({ input: e.file, output: e.output || undefined, ok: e.status !== 'failed', error: e.error || undefined, seconds: e.seconds });
        },
      },
      seg.deps,
    );
    if (ctx.signal.aborted) throw new CancelledError('batch cancelled');
    return { files, report: res.reportPath };
  } finally {
    seg.dispose();
  }
}

export const handlers: ComputeJobHandlers = { selftest, evaluate, train, densify, batch };
