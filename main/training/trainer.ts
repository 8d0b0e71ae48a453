/**
 * The training loop: sparse labels in, a trained model out.
 *
 *  - normalisation from the training images (stored in the model)
 *  - annotated planes -> thin tiles, scattered annotations -> cube tiles (sampler.ts), class weights from
 *    annotated frequencies, unannotated voxels weigh exactly 0 (label 0 = the engine's ignore label)
 *  - augmentation rendered in a worker while the engine runs the previous step (the engine's trainStep is
 *    asynchronous and computes off the JS thread)
 *  - stops after `iterations` or `minutes`, whichever comes first; AbortSignal cancels between steps
 *  - checkpoints every `checkpointMinutes` and at the end (atomic), `resume` continues from one
 *  - with enough annotated planes some are held out, scored every `evalMinutes` (foreground IoU, volume/iou.ts),
 *    and the best model by held-out IoU is the one returned
 *  - `release`: the caller's held-out paint is trained on after a first part of the budget (recipe self-validation)
 */
import { mkdir, readFile, rename, writeFile, copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine, Model, ModelOptions, NamedTensor, NetConfig, OptimConfig } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { CancelledError, SliceformError } from '../common/errors.js';
import type { CancelSignal, ProgressCallback } from '../common/progress.js';
import { DEFAULT_BALANCE } from './presets.js';
import { computeNormalisation, normaliseVolume, type Normalisation } from '../volume/preprocess.js';
import { analyseLabels, chooseHoldout, classWeights, withoutPlanes, type AnnotatedPlane, type LabelSummary } from './sparse.js';
import { DEFAULT_AUGMENT, TileSampler, planTileShapes, type AugmentOptions, type HotSpot } from './sampler.js';
import { createSampleSource } from './samples.js';
import type { Sample, TrainVolumeData, Vec3 } from './augment.js';
import { Rng } from './rng.js';
import { predictRegion, sourceFromNormalised } from '../volume/predict.js';
import { ClassConfusion } from '../volume/iou.js';
import type { TrainingSummary } from '../inference/model-dir.js';

export interface TrainPair {
  image: Volume;
  /** 0 = unannotated, 1..K */
  labels: Volume;
}

/** Warm start: continue from saved weights (with their optimizer state) instead of a fresh network. */
export interface TrainInit {
  /** the engine's checkpoint file (a model folder's weights.pt) */
  weights: string;
  /** the normalisation the weights were trained with (the inputs must look the same) */
  normalisation: Normalisation;
  /** iterations the weights have had: the count continues from here, `iterations` more are trained */
  iteration: number;
  /** the loss (running mean) the weights ended with: the reported loss continues from it */
  lastLoss: number | null;
}

/** Where labels changed, in the grid of a training volume: [z, y, x], min inclusive, max exclusive. */
export interface LabelChange {
  volume: number;
  min: Vec3;
  max: Vec3;
}

/**
 * A live session (the app's live training): between two steps the loop asks for label changes (the caller has
 * written them into the `labels` arrays it gave trainModel), re-reads the annotation of the changed volumes,
 * favours tiles on new paint and on `hot` spots (e.g. paint the current prediction gets wrong), and lets the
 * caller use the newest weights (previews) while the engine is idle.
 */
export interface LiveTraining {
  sync(): Promise<{ changes: LabelChange[]; hot?: HotSpot[] }>;
  /** runs between two engine steps (never during one: the engine is not re-entrant) */
  between?(s: { model: Model; iteration: number; volumes: readonly TrainVolumeData[]; changed: boolean }): Promise<void>;
  /** share of samples centred on hot spots while there are any (default 0.5) */
  hotShare?: number;
  /** steps during which new paint stays hot (default 40); spots from `hot` stay for `hotSteps / 2` */
  hotSteps?: number;
}

export interface TrainOptions {
  net: NetConfig;
  optim: OptimConfig;
  modelOptions?: ModelOptions;
  iterations?: number;
  minutes?: number;
  seed?: number;
  augment?: AugmentOptions;
  /** in-plane output size of thin tiles (default 64) */
  planeOut?: number;
  /** output size of cube tiles for scattered annotations (default 32) */
  cubeOut?: number;
  /** class-weight balancing exponent (0 = all 1, 1 = inverse frequency; default DEFAULT_BALANCE = 0.75) */
  classWeightPower?: number;
  /** samples per engine step (default 2: on a CPU a batch of 2 trains ~3x more samples per second than 1) */
  batch?: number;
  /** weight of the soft Dice term added to the weighted cross-entropy (0 = cross-entropy only; default 0) */
  dice?: number;
  /** 'auto': hold out one plane per axis with >= 4 annotated planes; 'none' */
  holdout?: 'auto' | 'none';
  /** held-out evaluation interval (minutes, default 1) */
  evalMinutes?: number;
  /** where checkpoints go (none when absent) */
  checkpointDir?: string;
  checkpointMinutes?: number;
  resume?: boolean;
  /**
   * average the weights (and BN statistics) over the last `averageFrom` fraction of the budget (stochastic
   * weight averaging, 0 = off; default 0): sampled at every 2 % of progress
   */
  averageFrom?: number;
  /** learning-rate schedule: constant, or cosine decay to 5 % over the budget (default) */
  schedule?: 'constant' | 'cosine';
  worker?: 'auto' | 'worker' | 'inline';
  /** continue from saved weights (see TrainInit) */
  init?: TrainInit;
  /**
   * the normalisation to train with instead of the pairs' statistics: the whole volume's when the pairs are
   * crops of it (main/pipeline/crops.ts); a warm start's (init) wins
   */
  normalisation?: Normalisation;
  /** a live session: no budget needed (it trains until `signal`), label changes between steps (see LiveTraining) */
  live?: LiveTraining;
  signal?: CancelSignal;
  onProgress?: ProgressCallback;
  /** called for every step (for logs/tests) */
  onStep?: (s: StepInfo) => void;
  /**
   * self-validation that costs little: the pairs' labels (some paint removed by the caller) are trained on until
   * `at` (a fraction of the budget), then `score` sees the model as it is (the caller scores the removed paint),
   * then training goes on with `labels` (all the paint) for the rest of the budget
   */
  release?: ReleaseOptions;
  /** called with the label volumes the sampler draws from whenever they are set (what is trained on; tests) */
  onTrainLabels?: (labels: ArrayLike<number>[], phase: 'before-release' | 'all') => void;
}

export interface ReleaseOptions {
  /** fraction of the budget (iterations or minutes, whichever ends first) trained before the release, in (0, 1) */
  at: number;
  /** the labels trained on after the release, one per pair (same shapes) */
  labels: ArrayLike<number>[];
  /** called once at the release with the model and its iteration; an error in it ends the training */
  score: (model: Model, normalisation: Normalisation, iteration: number) => Promise<void>;
}

export interface StepInfo {
  iteration: number;
  loss: number;
  annotatedShare: number;
  voxelsPerSecond: number;
  elapsed: number;
  lr: number;
  heldOutIoU: number | null;
}

export interface TrainResult {
  model: Model;
  normalisation: Normalisation;
  summary: TrainingSummary;
  numClasses: number;
  cancelled: boolean;
}

interface CheckpointState {
  iteration: number;
  elapsedSeconds: number;
  seed: number;
  bestIoU: number | null;
  bestIteration: number | null;
  lastLoss: number | null;
}

const CKPT_WEIGHTS = 'checkpoint.pt';
const CKPT_STATE = 'checkpoint.json';
const BEST_WEIGHTS = 'best.pt';

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

function zyx(v: Volume): Vec3 {
  return [v.shape.z, v.shape.y, v.shape.x];
}

/** Largest label value (the number of classes the labels imply). */
export function maxLabel(labels: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > m) m = labels[i]!;
  return m;
}

export function validatePairs(pairs: TrainPair[], net: NetConfig): void {
  if (pairs.length === 0) throw new SliceformError('bad-input', 'no training volumes given');
  for (const { image, labels } of pairs) {
    const a = image.shape;
    const b = labels.shape;
    if (a.x !== b.x || a.y !== b.y || a.z !== b.z) {
      throw new SliceformError('bad-input', `labels are ${b.x}x${b.y}x${b.z} (x*y*z) but the image ${image.source} is ${a.x}x${a.y}x${a.z}`, { file: labels.source });
    }
    if (b.c !== 1) throw new SliceformError('bad-input', `labels must have one channel, found ${b.c}`, { file: labels.source });
    if (labels.dtype !== 'uint8' && labels.dtype !== 'uint16' && !/int/.test(labels.dtype)) {
      throw new SliceformError('bad-input', `labels must be an integer volume (0 = unannotated, 1..K = classes), found ${labels.dtype}`, { file: labels.source });
    }
    if (a.c !== net.inChannels) {
      throw new SliceformError('bad-input', `the network expects ${net.inChannels} channel(s), the image has ${a.c}`, { file: image.source });
    }
    const m = maxLabel(labels.data);
    if (m === 0) throw new SliceformError('bad-input', 'the label volume has no annotated voxels (all 0)', { file: labels.source });
    if (m > net.numClasses) {
      throw new SliceformError('bad-input', `labels go up to ${m} but the network has ${net.numClasses} classes`, { file: labels.source });
    }
    // training keeps labels as uint8 (tiles, augmentation, engine batches): class 281 would silently become 25
    if (m > 255) throw new SliceformError('bad-input', `labels go up to class ${m}; training supports at most 255 classes`, { file: labels.source });
    for (let i = 0; i < labels.data.length; i++) {
      const v = labels.data[i]!;
      if (v < 0 || !Number.isInteger(v)) throw new SliceformError('bad-input', `label value ${v} at index ${i} is not a class (0..K)`, { file: labels.source });
    }
  }
}

export async function trainModel(engine: Engine, pairs: TrainPair[], opts: TrainOptions): Promise<TrainResult> {
  const net = opts.net;
  validatePairs(pairs, net);
  if (!opts.iterations && !opts.minutes && !opts.live) throw new SliceformError('bad-input', 'give a training budget: iterations or minutes');
  const live = opts.live;
  const batch = opts.batch ?? 2;
  if (!(Number.isInteger(batch) && batch >= 1 && batch <= 64)) throw new SliceformError('bad-input', `batch must be an integer 1..64, got ${batch}`);
  const seed = opts.seed ?? 1;
  const K = net.numClasses;
  const aug = opts.augment ?? DEFAULT_AUGMENT;
  const geometry = { levels: net.levels, padding: net.padding };
  const norm = opts.init?.normalisation ?? opts.normalisation ?? computeNormalisation(pairs.map((p) => p.image));

  // volumes, annotation summaries, held-out planes
  const release = opts.release;
  if (release) {
    if (!(release.at > 0 && release.at < 1)) throw new SliceformError('internal', `release.at must be in (0, 1), got ${release.at}`);
    if (release.labels.length !== pairs.length || release.labels.some((l, v) => l.length !== pairs[v]!.labels.data.length || maxLabel(l) > K))
      throw new SliceformError('internal', 'release labels must match the pairs (one per pair, same size, classes 1..K)');
  }
  const volumes: TrainVolumeData[] = [];
  let summaries: LabelSummary[] = [];
  let fullSummaries: LabelSummary[] = [];
  const heldOut: AnnotatedPlane[] = [];
  const heldOutLabels: (Uint8Array | null)[] = [];
  const planesOut: AnnotatedPlane[][] = [];
  for (let v = 0; v < pairs.length; v++) {
    const { image, labels } = pairs[v]!;
    const shape = zyx(image);
    let lab = labels.data instanceof Uint8Array ? labels.data : Uint8Array.from(labels.data as ArrayLike<number>);
    if (live) {
      // a live session writes label changes into its own copy, shared with the augmentation worker
      const sh = new Uint8Array(new SharedArrayBuffer(lab.length));
      sh.set(lab);
      lab = sh;
    }
    const full = analyseLabels(lab, shape, K, v);
    fullSummaries.push(full);
    // a live session trains on all of the paint (new strokes land anywhere; held-out planes would ignore them)
    const ho = opts.holdout === 'none' || live ? [] : chooseHoldout(full.planes);
    planesOut.push(ho);
    heldOutLabels.push(ho.length ? lab : null);
    if (ho.length) {
      heldOut.push(...ho);
      lab = withoutPlanes(lab, shape, ho);
    }
    volumes.push({ shape, channels: image.shape.c, image: normaliseVolume(image, norm), labels: lab });
    summaries.push(ho.length ? analyseLabels(lab, shape, K, v) : full);
  }
  const weightsOf = (sums: LabelSummary[]) => {
    const classCounts = new Array<number>(K + 1).fill(0);
    for (const s of sums) s.classCounts.forEach((c, k) => (classCounts[k]! += c));
    return classWeights(classCounts, opts.classWeightPower ?? DEFAULT_BALANCE);
  };
  let weights = weightsOf(summaries);

  const minDims = [0, 1, 2].map((a) => Math.min(...volumes.map((v) => v.shape[a]!))) as Vec3;
  const shapes = planTileShapes(geometry, opts.planeOut ?? 64, opts.cubeOut ?? 32, minDims);
  const samplerVolumes = pairs.map((p) => ({ shape: zyx(p.image), spacing: [p.image.spacing.z, p.image.spacing.y, p.image.spacing.x] as Vec3, channels: p.image.shape.c }));
  let sampler = new TileSampler(samplerVolumes, summaries, shapes, aug);
  opts.onTrainLabels?.(volumes.map((v) => v.labels), release ? 'before-release' : 'all');
  // after the release: all the paint (the trainer's own held-out planes stay out), its summaries, class weights, sampler
  const releaseLabels = () => {
    fullSummaries = [];
    summaries = [];
    for (let v = 0; v < pairs.length; v++) {
      const shape = volumes[v]!.shape;
      let lab = Uint8Array.from(release!.labels[v]!);
      fullSummaries.push(analyseLabels(lab, shape, K, v));
      if (planesOut[v]!.length) lab = withoutPlanes(lab, shape, planesOut[v]!);
      volumes[v] = { ...volumes[v]!, labels: lab };
      summaries.push(planesOut[v]!.length ? analyseLabels(lab, shape, K, v) : fullSummaries[v]!);
    }
    weights = weightsOf(summaries);
    sampler = new TileSampler(samplerVolumes, summaries, shapes, aug);
    opts.onTrainLabels?.(volumes.map((v) => v.labels), 'all');
  };
  let released = !release;

  // model, possibly resumed (checkpoint) or warm-started (saved weights)
  const model = await engine.createModel(net, opts.optim, { seed, ...opts.modelOptions });
  let state: CheckpointState = { iteration: 0, elapsedSeconds: 0, seed, bestIoU: null, bestIteration: null, lastLoss: null };
  if (opts.init) {
    try {
      await model.load(opts.init.weights);
    } catch (e) {
      model.dispose();
      throw new SliceformError('bad-input', `cannot continue from these weights: ${(e as Error).message}`, { file: opts.init.weights, cause: e });
    }
    state = { ...state, iteration: opts.init.iteration, lastLoss: opts.init.lastLoss };
  }
  const ckdir = opts.checkpointDir;
  if (ckdir) await mkdir(ckdir, { recursive: true });
  if (opts.resume) {
    if (!ckdir) throw new SliceformError('bad-input', '--resume needs a checkpoint folder');
    if (!(await exists(join(ckdir, CKPT_STATE))) || !(await exists(join(ckdir, CKPT_WEIGHTS)))) {
      throw new SliceformError('bad-input', `no checkpoint to resume from (${CKPT_STATE} / ${CKPT_WEIGHTS} missing)`, { file: ckdir });
    }
    state = JSON.parse(await readFile(join(ckdir, CKPT_STATE), 'utf8')) as CheckpointState;
    await model.load(join(ckdir, CKPT_WEIGHTS));
  }
  // a warm start trains `iterations` more; a checkpoint's resume keeps its total
  const startIt = opts.init && !opts.resume ? state.iteration : 0;

  let source = createSampleSource(volumes, opts.worker ?? 'auto');
  // each iteration's sample comes from its own stream: deterministic whatever the timing, and on resume
  const specsFor = (it: number) => sampler.nextBatch(new Rng((seed * 1_000_003 + it * 7919) >>> 0), batch);
  // renders iteration `it`'s samples (in order, in the worker), joined into one batch, with their tile shape
  const renderStep = async (it: number): Promise<Sample & { inShape: Vec3 }> => {
    const specs = specsFor(it);
    const inShape = specs[0]!.inShape;
    const parts = await Promise.all(specs.map((sp) => source.render(sp)));
    if (parts.length === 1) return { ...parts[0]!, inShape };
    const input = new Float32Array(parts.reduce((a, p) => a + p.input.length, 0));
    const labels = new Uint8Array(parts.reduce((a, p) => a + p.labels.length, 0));
    let oi = 0;
    let ol = 0;
    for (const p of parts) {
      input.set(p.input, oi);
      labels.set(p.labels, ol);
      oi += p.input.length;
      ol += p.labels.length;
    }
    return { input, labels, inShape };
  };
  const budgetSeconds = opts.minutes ? opts.minutes * 60 : Infinity;
  const maxIt = opts.iterations ? startIt + opts.iterations : Infinity;
  const startWall = Date.now();
  const elapsed = () => state.elapsedSeconds + (Date.now() - startWall) / 1000;
  const progressFraction = () => Math.min(1, Math.max((state.iteration - startIt) / (maxIt - startIt), elapsed() / budgetSeconds));
  const lrAt = (f: number) => (opts.schedule === 'constant' ? opts.optim.lr : opts.optim.lr * (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, f)))));

  let lastCkpt = Date.now();
  let lastEval = Date.now();
  const evalEvery = (opts.evalMinutes ?? 1) * 60_000;
  const ckptEvery = (opts.checkpointMinutes ?? 5) * 60_000;
  let outVoxels = 0;
  let annotated = 0;
  let lossEma: number | null = state.lastLoss;
  let heldOutIoU: number | null = state.bestIoU;
  let bestInMemory: string | null = null;
  let bestParams: NamedTensor[] | null = null;
  let cancelled = false;
  const stepTimes: number[] = [];
  let avg: NamedTensor[] | null = null;
  let avgCount = 0;
  let nextAvgAt = 1 - (opts.averageFrom ?? 0);
  const averageIn = async () => {
    const p = await model.exportParams();
    avgCount++;
    if (!avg) avg = p.map((t) => ({ ...t, data: Float32Array.from(t.data) }));
    else
      for (let i = 0; i < p.length; i++) {
        const a = avg[i]!.data;
        const b = p[i]!.data;
        for (let j = 0; j < a.length; j++) a[j]! += (b[j]! - a[j]!) / avgCount;
      }
  };

  const saveCheckpoint = async () => {
    if (!ckdir) return;
    const s: CheckpointState = { ...state, elapsedSeconds: elapsed(), lastLoss: lossEma };
    await model.save(join(ckdir, CKPT_WEIGHTS));
    const tmp = join(ckdir, `${CKPT_STATE}.tmp-${process.pid}`);
    await writeFile(tmp, JSON.stringify(s, null, 2));
    await rename(tmp, join(ckdir, CKPT_STATE));
  };

  const scoreHeldOut = async (): Promise<number | null> => {
    if (!heldOut.length) return null;
    // mean IoU of the foreground classes on the held-out annotated voxels (accumulated over planes)
    const confusion = new ClassConfusion(K);
    for (const p of heldOut) {
      const vol = volumes[p.volume]!;
      const truth = heldOutLabels[p.volume]!;
      const [Z, Y, X] = vol.shape;
      const origin: Vec3 = [0, 0, 0];
      const size: Vec3 = [Z, Y, X];
      origin[p.axis] = p.index;
      size[p.axis] = 1;
      const src = sourceFromNormalised(vol.image, vol.shape, vol.channels);
      await predictRegion(model, src, origin, size, { numClasses: K, levels: net.levels, padding: net.padding, maxTileInputVoxels: 1_500_000, signal: opts.signal }, (slab) => {
        // slab covers the region; map back to volume coordinates
        for (let i = 0; i < slab.labels.length; i++) {
          const c: Vec3 = [0, 0, 0];
          let r = i;
          const rx = size[2];
          const ry = size[1];
          c[2] = r % rx;
          r = Math.floor(r / rx);
          c[1] = r % ry;
          c[0] = Math.floor(r / ry) + slab.z0;
          confusion.add(slab.labels[i]!, truth[((origin[0] + c[0]) * Y + origin[1] + c[1]) * X + origin[2] + c[2]]!);
        }
      });
    }
    return confusion.foregroundIoU();
  };
  // A graceful stop aborts the same signal as a cancel: scoring the held-out planes after it (in the loop or on
  // the final weights) must not turn "stop and keep the model" into a cancelled job ("prediction cancelled").
  // A real cancel is still reported by the caller, which checks its own cancel signal.
  const evaluate = async (): Promise<number | null> => {
    try {
      return await scoreHeldOut();
    } catch (e) {
      if (e instanceof CancelledError && opts.signal?.aborted) return null;
      throw e;
    }
  };

  // live session: hot spots with the iteration they expire at
  let hot: Array<{ spot: HotSpot; until: number }> = [];
  const hotSteps = live?.hotSteps ?? 40;
  /** label changes -> training labels, summaries, sampler, hot spots; true when labels changed, null when stopped while waiting for paint */
  const applyLive = async (): Promise<boolean | null> => {
    if (!live) return false;
    for (;;) {
      const { changes, hot: extra } = await live.sync();
      const touched = new Set<number>();
      for (const c of changes) {
        const vol = volumes[c.volume]!;
        const src = pairs[c.volume]!.labels.data;
        const [, Y, X] = vol.shape;
        const voxels: number[] = [];
        for (let z = c.min[0]; z < c.max[0]; z++)
          for (let y = c.min[1]; y < c.max[1]; y++) {
            const row = (z * Y + y) * X;
            for (let x = c.min[2]; x < c.max[2]; x++) {
              const l = src[row + x]!;
              vol.labels[row + x] = l;
              if (l) voxels.push(row + x);
            }
          }
        touched.add(c.volume);
        // the new paint is favoured for a while: thin tiles over its plane when it lies on one
        const flat = ([0, 1, 2] as const).filter((a) => c.max[a] - c.min[a] === 1);
        const axis = flat[0];
        if (voxels.length)
          hot.push({ spot: { volume: c.volume, voxels: Uint32Array.from(voxels), ...(axis !== undefined ? { axis, index: c.min[axis] } : {}) }, until: state.iteration + hotSteps });
      }
      for (const h of extra ?? []) hot.push({ spot: h, until: state.iteration + Math.max(1, Math.round(hotSteps / 2)) });
      for (const v of touched) {
        summaries[v] = analyseLabels(volumes[v]!.labels, volumes[v]!.shape, K, v);
        fullSummaries[v] = summaries[v]!;
      }
      const before = hot.length;
      hot = hot.filter((h) => h.until > state.iteration);
      if (summaries.every((s) => s.annotated === 0)) {
        // everything was erased: wait for new paint (or the stop)
        if (opts.signal?.aborted) return null;
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      if (touched.size) {
        weights = weightsOf(summaries);
        sampler = new TileSampler(samplerVolumes, summaries, shapes, aug);
      }
      if (touched.size || extra?.length || hot.length !== before) sampler.setHotSpots(hot.map((h) => h.spot), live.hotShare ?? 0.5);
      return touched.size > 0 || (extra?.length ?? 0) > 0;
    }
  };

  try {
    let pending: Promise<Sample & { inShape: Vec3 }> | null = state.iteration < maxIt ? renderStep(state.iteration) : null;
    while (pending) {
      if (opts.signal?.aborted) {
        cancelled = true;
        break;
      }
      if (!released && progressFraction() >= release!.at) {
        // the next sample was drawn from the labels before the release: render it again from all the paint
        await pending.catch(() => undefined);
        released = true;
        await release!.score(model, norm, state.iteration);
        releaseLabels();
        await source.dispose();
        source = createSampleSource(volumes, opts.worker ?? 'auto');
        pending = renderStep(state.iteration);
      }
      const sample = await pending;
      const it = state.iteration;
      const lr = lrAt(progressFraction());
      model.setLearningRate(lr);
      const t0 = Date.now();
      const step = model.trainStep({
        input: sample.input,
        inputShape: [batch, net.inChannels, ...sample.inShape],
        labels: sample.labels,
        classWeights: weights,
        diceWeight: opts.dice ?? 0,
      });
      // prepare the next sample while the engine computes this step
      // stop when the next step would end past the time budget (steps take seconds on a CPU)
      const avgStep = stepTimes.length ? stepTimes.reduce((a, b) => a + b, 0) / stepTimes.length : 0;
      const more = it + 1 < maxIt && elapsed() + (Date.now() - t0) / 1000 + avgStep * 0.5 < budgetSeconds;
      pending = more ? renderStep(it + 1) : null;
      // observed now: when this step fails the worker is terminated and this render rejects after we threw
      // (an unobserved rejection printed a worker stack after "loss is not finite" and exited 1)
      pending?.catch(() => undefined);
      let res;
      try {
        res = await step;
      } catch (e) {
        throw new SliceformError('engine', `training step ${it + 1} failed: ${(e as Error).message}`, { cause: e });
      }
      stepTimes.push((Date.now() - t0) / 1000);
      state.iteration = it + 1;
      outVoxels += res.outputVoxels;
      annotated += res.annotatedVoxels;
      lossEma = lossEma === null ? res.loss : 0.9 * lossEma + 0.1 * res.loss;
      if (!Number.isFinite(res.loss)) throw new SliceformError('engine', `training diverged at iteration ${state.iteration} (loss ${res.loss})`);
      const el = elapsed();
      const vps = outVoxels / Math.max(1e-3, stepTimes.reduce((a, b) => a + b, 0));
      if ((opts.averageFrom ?? 0) > 0 && (progressFraction() >= nextAvgAt || !pending)) {
        nextAvgAt = progressFraction() + 0.02;
        await averageIn();
      }
      if (heldOut.length && (Date.now() - lastEval >= evalEvery || !pending)) {
        lastEval = Date.now();
        const iou = await evaluate();
        if (iou !== null && (state.bestIoU === null || iou > state.bestIoU)) {
          state.bestIoU = iou;
          state.bestIteration = state.iteration;
          if (ckdir) {
            await model.save(join(ckdir, BEST_WEIGHTS));
            bestInMemory = join(ckdir, BEST_WEIGHTS);
          } else {
            bestInMemory = 'params';
            bestParams = await model.exportParams();
          }
        }
        heldOutIoU = iou;
      }
      if (ckdir && Date.now() - lastCkpt >= ckptEvery) {
        lastCkpt = Date.now();
        await saveCheckpoint();
      }
      const fraction = progressFraction();
      const byTime = opts.minutes ? Math.max(0, budgetSeconds - el) : Infinity;
      const byIt = Number.isFinite(maxIt) ? ((maxIt - state.iteration) * el) / Math.max(1, state.iteration - startIt) : Infinity;
      const remaining = Math.min(byTime, byIt);
      const info: StepInfo = { iteration: state.iteration, loss: lossEma, annotatedShare: annotated / Math.max(1, outVoxels), voxelsPerSecond: vps, elapsed: el, lr, heldOutIoU };
      opts.onStep?.(info);
      opts.onProgress?.({
        fraction,
        etaSeconds: Number.isFinite(remaining) ? remaining : undefined,
        stage: 'training',
        details: { iteration: state.iteration, loss: lossEma, stepLoss: res.loss, voxelsPerSecond: Math.round(vps), heldOutIoU: heldOutIoU ?? undefined, annotatedShare: info.annotatedShare, startIteration: startIt },
      });
      if (live && pending) {
        const changed = await applyLive();
        if (changed === null) {
          cancelled = true;
          await pending.catch(() => undefined);
          pending = null;
          break;
        }
        if (changed) {
          // the sample rendered during this step was drawn before the change: draw it again
          await pending.catch(() => undefined);
          pending = renderStep(state.iteration);
          pending.catch(() => undefined);
        }
        await live.between?.({ model, iteration: state.iteration, volumes, changed });
      }
    }
    if (pending) await (pending as Promise<unknown>).catch(() => undefined);
  } finally {
    await source.dispose();
  }
  if (avg && avgCount > 1) {
    // averaged weights replace the last ones (scored on the held-out planes when there are any)
    await model.importParams(avg);
    if (heldOut.length) heldOutIoU = await evaluate();
  }
  await saveCheckpoint();
  // the best held-out model wins over the last one
  let finalIoU = heldOutIoU;
  if (bestInMemory && state.bestIoU !== null && (heldOutIoU === null || state.bestIoU > heldOutIoU)) {
    if (bestInMemory === 'params' && bestParams) await model.importParams(bestParams);
    else await model.load(bestInMemory);
    finalIoU = state.bestIoU;
  }
  if (ckdir && bestInMemory && bestInMemory !== 'params') await copyFile(bestInMemory, join(ckdir, BEST_WEIGHTS)).catch(() => undefined);
  if (cancelled && state.iteration === 0) {
    model.dispose();
    throw new CancelledError('training cancelled before the first step');
  }
  const summary: TrainingSummary = {
    iterations: state.iteration,
    samplesPerStep: batch,
    seconds: elapsed(),
    seed,
    finalLoss: lossEma,
    heldOutIoU: finalIoU,
    bestIteration: state.bestIteration,
    volumes: pairs.map((p, v) => ({
      source: p.image.source,
      shape: zyx(p.image),
      annotatedVoxels: fullSummaries[v]!.annotated,
      annotatedPlanes: fullSummaries[v]!.planes.length,
    })),
    classWeights: weights,
    annotatedShare: outVoxels ? annotated / outVoxels : null,
    outputVoxelsPerSecond: stepTimes.length ? outVoxels / stepTimes.reduce((a, b) => a + b, 0) : null,
  };
  return { model, normalisation: norm, summary, numClasses: K, cancelled };
}
