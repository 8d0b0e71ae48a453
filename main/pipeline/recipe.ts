/**
 * The one recipe: sparse labels in, a trained, calibrated model out; then its dense segmentation. Every caller
 * (CLI densify / train / crossval, the app's compute handlers, batch) goes through here, so one place decides
 * the network, the working resolution, the tile shapes, the class weights, the schedule and the label decision.
 *
 *   planRecipe     settings + data -> network, optimiser, downsampling, tiles, batch (pure)
 *   trainRecipe    downsample, train (main/training), fit the calibrated decision on the annotated voxels
 *   manifestFor    what a model folder records of it (so `segment` repeats the same decision)
 *   segmentOptionsFor  the prediction options of a trained recipe or a model manifest
 */
import type { Engine, Model, ModelOptions, NetConfig, OptimConfig } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { SliceformError } from '../common/errors.js';
import type { CancelSignal, ProgressCallback } from '../common/progress.js';
import { TRAINING_DEFAULTS, resolveNet } from '../training/presets.js';
import { maxLabel, trainModel, type StepInfo } from '../training/trainer.js';
import {
  loadModelDir,
  readModelManifest,
  saveModelDir,
  type TrainingSummary,
  type ModelManifest,
  type HeldOutRecord,
} from '../inference/model-dir.js';
import { normaliseVolume, type Normalisation } from '../volume/preprocess.js';
import {
  autoDownsample,
  downsampleLabelVolume,
  downsampleVolume,
  isIdentity,
  upsampleSlab,
  type Factors,
} from '../volume/resample.js';
import { decideInto, predictRegion, sourceFromVolume } from '../volume/predict.js';
import type { SegmentOptions } from '../inference/segment.js';
import type { Vec3 } from '../volume/tiling.js';
import { fitCalibration, type Calibration } from './calibration.js';
import { paintedPlanes, splitBlocks, type BlockSplit } from './holdout.js';
import { foregroundIoU } from '../volume/iou.js';
import {
  ENSEMBLE_FEATURES,
  featureHalo,
  fitEnsembleForest,
  forestProbabilities,
  forestFeatureBudget,
  forestFeatureBytes,
  forestProbabilitiesAt,
  loadForest,
  saveForest,
  type FeatureCacheKey,
  type NormalisedImage,
} from './ensemble.js';
import { mkdir } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import type { Forest } from '../classical/index.js';
import { RECIPE_DEFAULTS, type RecipeSettings } from './settings.js';
import { liveTraining, warmStartFrom, type RecipeLive } from './live.js';

export interface RecipePlan {
  net: NetConfig;
  optim: OptimConfig;
  /** [z, y, x] integer downsampling before the network */
  downsample: Factors;
  batch: number;
  planeOut: number;
  cubeOut: number;
  classWeightPower: number;
  dice: number;
  averageFrom: number;
  testTimeFlips: boolean;
  calibration: RecipeSettings['calibration'];
  holdout: RecipeSettings['holdout'];
  validation: RecipeSettings['validation'];
  ensemble: RecipeSettings['ensemble'];
  /** the forest member's grid: 'full' (fit, features and mix at the stack's resolution) or 'working' */
  forestResolution: RecipeSettings['forestResolution'];
}

/** Network, optimiser, working resolution and tiles for these settings and data. Pure. */
export function planRecipe(images: Volume[], numClasses: number, s: RecipeSettings): RecipePlan {
  if (images.length === 0) throw new SliceformError('bad-input', 'no training volumes given');
  const C = images[0]!.shape.c;
  for (const im of images) {
    if (im.shape.c !== C)
      throw new SliceformError(
        'bad-input',
        `all images need the same channel count: ${im.source} has ${im.shape.c}, the first ${C}`,
        { file: im.source },
      );
  }
  const net: NetConfig = {
    ...resolveNet(s.preset, C, numClasses),
    bnAtTest: s.bnAtTest,
    batchNorm: s.batchNorm,
  };
  if (s.levels !== undefined) net.levels = s.levels;
  if (s.baseFilters !== undefined) net.baseFilters = s.baseFilters;
  const d = TRAINING_DEFAULTS[s.preset];
  return {
    net,
    optim: { ...d.optim, lr: s.lr ?? d.optim.lr },
    downsample: s.downsample === 'auto' ? autoDownsample(images[0]!.spacing) : s.downsample,
    batch: s.batch ?? d.batch,
    planeOut: s.planeTile ?? d.planeOut,
    cubeOut: d.cubeOut,
    classWeightPower: s.balance,
    dice: s.dice,
    averageFrom: s.average,
    testTimeFlips: s.flips,
    calibration: s.calibration,
    holdout: s.holdout,
    validation: s.validation,
    ensemble: s.ensemble,
    forestResolution: s.forestResolution,
  };
}

export interface RecipePair {
  image: Volume;
  /** full resolution, 0 = unannotated, 1..K */
  labels: Volume;
}

export interface RecipeHooks {
  signal?: CancelSignal;
  /**
   * ends the training early but keeps its model (the app's Stop): the steps after it (calibration on the
   * held-out voxels) still run; only `signal` aborts them
   */
  stopSignal?: CancelSignal;
  onProgress?: ProgressCallback;
  onStep?: (s: StepInfo) => void;
  /** logs a line (reduced resolution, calibration) */
  log?: (line: string) => void;
  checkpointDir?: string;
  checkpointMinutes?: number;
  resume?: boolean;
  /** number of classes when the labels do not show all of them (default: the largest label, at least 2) */
  numClasses?: number;
  /** warm start: continue from this model folder (weights, optimizer state, normalisation, iteration count) */
  initFrom?: string;
  /**
   * the normalisation (at the working resolution) when the pairs are crops of a bigger volume: its whole-volume
   * statistics (main/inference/source-stats.ts), not the crops'
   */
  normalisation?: Normalisation;
  /** a live session (pipeline/live.ts): trains until stopped, label changes between steps, previews */
  live?: RecipeLive;
  /** the label volumes (working resolution) the training samples are drawn from, whenever they are set (tests) */
  onTrainLabels?: (labels: ArrayLike<number>[], phase: 'before-release' | 'all') => void;
}

export interface TrainedRecipe {
  model: Model;
  plan: RecipePlan;
  normalisation: Normalisation;
  summary: TrainingSummary;
  calibration: Calibration;
  /** the IoU estimated on held-out blocks of the paint (estimate null, with the reason, when there is none) */
  selfValidation: SelfValidation;
  /** the forest mixed into the network's probabilities (null when the recipe has none) */
  ensemble: EnsembleMember | null;
  cancelled: boolean;
}

export interface EnsembleMember {
  forest: Forest;
  /**
   * the grid it was fitted on and is mixed at: 'full' = the stack's (mixed after the network's interpolation),
   * 'working' = the network's (mixed before it)
   */
  resolution: 'full' | 'working';
  /** p = (1 - weight) p_network + weight p_forest */
  weight: number;
  /** the weights tried and their held-out estimates */
  candidates: { weight: number; estimate: number | null }[];
  seconds: number;
}

/** Mixing weight of the forest when there is no held-out paint to choose it on. */
export const DEFAULT_ENSEMBLE_WEIGHT = 0.5;

/** Where a stack's forest features are cached: its data array, at this working resolution and normalisation. */
function featureCacheKey(source: Volume, f: Factors, norm: Normalisation): FeatureCacheKey {
  return { owner: source.data, key: `${f.join(',')}|${JSON.stringify(norm)}` };
}

function factorsOf(m: TrainedRecipe | ModelManifest): Factors {
  return 'plan' in m ? m.plan.downsample : m.downsample;
}

/**
 * The full-resolution paint without the held-out blocks: a voxel is held out when its working-resolution voxel
 * is (every painted full-resolution voxel lies in a painted working-resolution voxel: labels are downsampled by
 * the majority of the annotated voxels of a block).
 */
export function fullResPaint(full: Volume, heldOutLow: ArrayLike<number>, f: Factors): Uint16Array {
  const { x: X, y: Y, z: Z } = full.shape;
  const [fz, fy, fx] = f;
  const oy = Math.ceil(Y / fy);
  const ox = Math.ceil(X / fx);
  const out = Uint16Array.from(full.data as ArrayLike<number>);
  for (let z = 0, i = 0; z < Z; z++)
    for (let y = 0; y < Y; y++) {
      const row = (Math.floor(z / fz) * oy + Math.floor(y / fy)) * ox;
      for (let x = 0; x < X; x++, i++) if (out[i] && heldOutLow[row + Math.floor(x / fx)]) out[i] = 0;
    }
  return out;
}

/** A working-resolution image normalised as the network sees it. */
function normalisedImage(v: Volume, norm: Normalisation): NormalisedImage {
  return { data: normaliseVolume(v, norm), shape: [v.shape.z, v.shape.y, v.shape.x], channels: v.shape.c };
}

export interface SelfValidation {
  /** how it was made: 'early' = blocks held out for the first part of training only (the default), 'blocks' = all the way */
  mode: RecipeSettings['validation'];
  /**
   * mean IoU of the foreground classes (2..K) on the held-out painted voxels, with the final decision rule
   * (network + forest at its weight); null when there is none (`reason` says why)
   */
  estimate: number | null;
  /** the same with a plain argmax */
  estimateArgmax: number | null;
  /** the network alone ('early'; null otherwise) */
  estimateNetwork: number | null;
  /** why there is no estimate (null when there is one) */
  reason: string | null;
  /** planes (any axes) the paint lies on (holdout.ts paintedPlanes; 3 needed) */
  paintedPlanes: number;
  /** held-out 12-voxel blocks and their painted voxels (at the working resolution) */
  heldOutBlocks: number;
  heldOutVoxels: number;
  /** 'early': the iteration whose model was scored (then the held-out paint was trained on too), else null */
  scoredAtIteration: number | null;
  /** seconds the early scoring took (prediction, the forest on the training paint); 0 without it */
  seconds: number;
  /** what the decision was fitted on */
  fittedOn: 'held-out' | 'training' | 'none';
}

/** Painted planes (any axes) the held-out estimate needs: fewer leave too little paint to spare. */
export const MIN_PLANES_FOR_ESTIMATE = 3;

/** 'early' self-validation: the default fraction of the budget trained without the held-out blocks before they are scored and released (settings validationAt). */
export const EARLY_RELEASE_AT = RECIPE_DEFAULTS.validationAt;

/** What the app's TrainResult carries of the estimate besides heldOutIoU: the iteration it was scored at, or why there is none. */
export function heldOutExtras(v: SelfValidation): { heldOutIteration?: number; heldOutNote?: string } {
  if (v.estimate !== null) return v.scoredAtIteration !== null ? { heldOutIteration: v.scoredAtIteration } : {};
  return v.reason ? { heldOutNote: v.reason } : {};
}

/** The densify JSON / model.json form of the estimate: `heldOut`. */
export function heldOutReport(v: SelfValidation): HeldOutRecord {
  return {
    iou: v.estimate,
    ...(v.reason ? { reason: v.reason } : {}),
    mode: v.mode,
    planes: v.paintedPlanes,
    blocks: v.heldOutBlocks,
    voxels: v.heldOutVoxels,
    when: v.scoredAtIteration,
    ...(v.scoredAtIteration !== null ? { seconds: Math.round(v.seconds * 10) / 10 } : {}),
    ...(v.estimate !== null
      ? { iouArgmax: v.estimateArgmax, iouNetwork: v.estimateNetwork, conservative: v.mode === 'early' }
      : {}),
  };
}

/**
 * The forest member's grid for these stacks: the requested one, except that a full-resolution forest whose
 * features would outgrow `budget` bytes (its feature slabs are whole planes, so wide stacks need the most)
 * works at the working resolution instead, with a note saying so. At factors 1 the two are the same grid.
 */
export function forestResolutionFor(
  requested: 'full' | 'working',
  shapes: { x: number; y: number; z: number; c: number }[],
  f: [number, number, number],
  budget: number,
): { resolution: 'full' | 'working'; featureBytes: number; note?: string } {
  const featureBytes = Math.max(0, ...shapes.map((sh) => forestFeatureBytes(sh, sh.c)));
  if (requested !== 'full' || isIdentity(f) || featureBytes <= budget) return { resolution: requested, featureBytes };
  return {
    resolution: 'working',
    featureBytes,
    note: `forest member at the working resolution: its full-resolution features would take ${(featureBytes / 2 ** 30).toFixed(1)} GiB, more than ${(budget / 2 ** 30).toFixed(1)} GiB`,
  };
}

/** Trains the recipe on full-resolution images and sparse labels. The caller disposes the model. */
export async function trainRecipe(
  engine: Engine,
  pairs: RecipePair[],
  s: RecipeSettings,
  hooks: RecipeHooks = {},
): Promise<TrainedRecipe> {
  if (pairs.length === 0) throw new SliceformError('bad-input', 'no training volumes given');
  const K = Math.max(2, hooks.numClasses ?? 0, ...pairs.map((p) => maxLabel(p.labels.data)));
  const plan = planRecipe(
    pairs.map((p) => p.image),
    K,
    s,
  );
  const f = plan.downsample;
  if (!isIdentity(f)) hooks.log?.(`working at reduced resolution: downsampled by ${f.join('x')} (z,y,x)`);
  const low = pairs.map((p) => ({
    image: downsampleVolume(p.image, f),
    labels: downsampleLabelVolume(p.labels, f),
  }));
  const zyxOf = (v: Volume): Vec3 => [v.shape.z, v.shape.y, v.shape.x];
  // self-validation needs paint on a few planes (any axes) to spare some of it; it is never made up
  const planes = pairs.reduce((a, p) => a + paintedPlanes(p.labels.data, zyxOf(p.labels)), 0);
  let reason: string | null = hooks.live
    ? 'a live session trains on all the paint as it arrives, so none is held out'
    : plan.validation === 'none'
      ? 'self-validation is off (validation none)'
      : planes < MIN_PLANES_FOR_ESTIMATE
        ? `the paint lies on ${planes} plane${planes === 1 ? '' : 's'}; a held-out estimate needs paint on at least ${MIN_PLANES_FOR_ESTIMATE} planes (any axes)`
        : hooks.initFrom
          ? 'warm start: the model continued from has trained on this paint already, so none of it is held out (start a fresh model for an estimate)'
          : hooks.resume
            ? 'resumed from a checkpoint: the model may have trained on all the paint already (train afresh for an estimate)'
            : null;
  const split: BlockSplit[] | null =
    reason === null ? low.map((p) => splitBlocks(p.labels.data, zyxOf(p.labels), K, { seed: s.seed })) : null;
  const heldOutVoxels = split ? split.reduce((a, x) => a + x.heldOutVoxels, 0) : 0;
  const heldOutBlocks = split ? split.reduce((a, x) => a + x.heldOutBlocks, 0) : 0;
  // held-out paint is only worth its cost when every painted class is in it (else: fit on the training paint)
  const everyClassHeld =
    split !== null &&
    [...Array(K).keys()].every((k) =>
      split.every((x) => x.paintedCounts[k + 1] === 0 || x.heldOutCounts[k + 1]! >= 20),
    );
  const useSplit = split !== null && heldOutVoxels >= 500 && everyClassHeld;
  if (split !== null && !useSplit)
    reason =
      heldOutVoxels < 500
        ? `too little paint to hold any out (${heldOutVoxels} painted voxels in held-out blocks at the working resolution, 500 needed)`
        : 'a painted class has fewer than 20 voxels in the held-out blocks';
  // 'blocks': the held-out paint is never trained on and the decision is fitted there; 'early': it is scored
  // at EARLY_RELEASE_AT of the budget, then trained on like the rest (nothing is chosen on it)
  const useHeldOut = useSplit && plan.validation === 'blocks';
  const early = useSplit && plan.validation === 'early';
  const trainPairs = useSplit
    ? low.map((p, i) => ({ image: p.image, labels: { ...p.labels, data: split![i]!.train } }))
    : low;
  if (useSplit)
    hooks.log?.(
      `self-validation: ${heldOutVoxels} painted voxels in ${heldOutBlocks} held-out blocks (not trained on${early ? ` for the first ${s.validationAt * 100} % of training` : ''})`,
    );
  // the forest is fitted on the same images the network sees, normalised the same way, features cached per
  // stack: at full resolution on the full-resolution paint ('full', the default), else at the working resolution
  const forestChoice = forestResolutionFor(plan.forestResolution, pairs.map((x) => x.image.shape), f, forestFeatureBudget(totalmem()));
  if (forestChoice.note && plan.ensemble !== 'none') hooks.log?.(forestChoice.note);
  const forestResolution = forestChoice.resolution;
  const fullForest = forestResolution === 'full' && !isIdentity(f);
  const forestImages = () =>
    fullForest
      ? pairs.map((x) => normalisedImage(x.image, trained0.normalisation!))
      : low.map((x) => normalisedImage(x.image, trained0.normalisation!));
  const caches = () => pairs.map((x) => featureCacheKey(x.image, fullForest ? [1, 1, 1] : f, trained0.normalisation!));
  /** the forest's training paint for working-resolution label sets of the recipe (all paint, or without the held-out blocks) */
  const forestPaint = (heldOut: boolean): ArrayLike<number>[] =>
    fullForest
      ? pairs.map((x, i) => (heldOut ? fullResPaint(x.labels, split![i]!.heldOut, f) : x.labels.data))
      : heldOut
        ? trainPairs.map((x) => x.labels.data)
        : low.map((x) => x.labels.data);
  const trained0: { normalisation: Normalisation | null } = { normalisation: null };
  /**
   * the forest fitted on `labelSets` (forestPaint), its probabilities at the working-resolution voxels of `at`
   * (class-planar K x n); a full-resolution forest's are box-averaged to the working grid there (what the
   * held-out scoring and the 'blocks' weight choice see; the product mixes them at full resolution)
   */
  const forestAt = (labelSets: ArrayLike<number>[], at: { vol: Uint16Array; idx: Uint32Array; l: Uint8Array }) => {
    const images = forestImages();
    const cs = caches();
    const forest = fitEnsembleForest(images, labelSets, K, s.seed, ENSEMBLE_FEATURES, cs);
    const n = at.l.length;
    const q = new Float32Array(K * n);
    for (let v = 0; v < images.length && n > 0; v++) {
      const sel: number[] = [];
      for (let j = 0; j < n; j++) if (at.vol[j] === v) sel.push(j);
      if (sel.length === 0) continue;
      // the voxels the forest is asked at: the working-resolution ones, or (full resolution) their blocks
      const im = pairs[v]!.image;
      const [Z, Y, X] = [im.shape.z, im.shape.y, im.shape.x];
      const [fz, fy, fx] = fullForest ? f : [1, 1, 1];
      const oy = Math.ceil(Y / fy);
      const ox = Math.ceil(X / fx);
      const members = sel.map((j) => {
        const li = at.idx[j]!;
        if (!fullForest) return [li];
        const lz = Math.floor(li / (oy * ox));
        const ly = Math.floor(li / ox) % oy;
        const lx = li % ox;
        const m: number[] = [];
        for (let z = lz * fz; z < Math.min(Z, (lz + 1) * fz); z++)
          for (let y = ly * fy; y < Math.min(Y, (ly + 1) * fy); y++)
            for (let x = lx * fx; x < Math.min(X, (lx + 1) * fx); x++) m.push((z * Y + y) * X + x);
        return m;
      });
      const voxels = Float64Array.from(new Set(members.flat())).sort();
      const pos = new Map<number, number>();
      voxels.forEach((g, i) => pos.set(g, i));
      const qv = forestProbabilitiesAt(images[v]!, forest, voxels, ENSEMBLE_FEATURES, cs[v]);
      const m = voxels.length;
      // a full-resolution forest's probabilities box-averaged to the working grid (as downsampleVolume would)
      sel.forEach((j, t) => {
        const mem = members[t]!;
        for (let k = 0; k < K; k++) {
          let sum = 0;
          for (const g of mem) sum += qv[k * m + pos.get(g)!]!;
          q[k * n + j] = sum / mem.length;
        }
      });
    }
    return { forest, q };
  };
  const mix = (p: Float32Array, q: Float32Array, w: number) => {
    const m = new Float32Array(p.length);
    for (let i = 0; i < m.length; i++) m[i] = (1 - w) * p[i]! + w * q[i]!;
    return m;
  };
  const argmaxWeights = new Array<number>(K).fill(1);
  // set by scoreEarly during training (a box: assigned in a callback)
  const earlyBox: {
    e: { iou: number | null; argmax: number | null; network: number | null; iteration: number; seconds: number } | null;
  } = { e: null };
  const scoreEarly = async (model: Model, norm: Normalisation, iteration: number) => {
    const t0 = Date.now();
    trained0.normalisation = norm;
    // the final model's decision rule, made the same way now: the forest (fitted on the same training paint) at
    // its default weight, and the 'fraction' decision fitted on the training paint; the held-out voxels only score
    const fraction = plan.calibration === 'fraction';
    const at = await probabilitiesAt(
      model,
      low.map((x) => x.image),
      fraction ? low.map((x) => x.labels.data) : split!.map((x) => x.heldOut),
      norm,
      plan,
      hooks.signal,
    );
    const n = at.l.length;
    const held = new Uint8Array(n);
    for (let j = 0; j < n; j++) held[j] = split![at.vol[j]!]!.heldOut[at.idx[j]!] ? 1 : 0;
    const pick = (p: Float32Array, keep: number) => {
      const m = held.reduce((a, h) => a + (h === keep ? 1 : 0), 0);
      const out = new Float32Array(K * m);
      const l = new Uint8Array(m);
      for (let j = 0, i = 0; j < n; j++) {
        if (held[j] !== keep) continue;
        for (let k = 0; k < K; k++) out[k * m + i] = p[k * n + j]!;
        l[i++] = at.l[j]!;
      }
      return { p: out, l, n: m };
    };
    const netHeld = pick(at.p, 1);
    const network = foregroundIoU(decide(netHeld.p, netHeld.n, K, argmaxWeights), netHeld.l, K);
    const p =
      plan.ensemble !== 'none'
        ? mix(at.p, forestAt(forestPaint(true), at).q, DEFAULT_ENSEMBLE_WEIGHT)
        : at.p;
    const h = pick(p, 1);
    let w = argmaxWeights;
    if (fraction) {
      const t = pick(p, 0);
      w = fitCalibration(t.p, t.l, K, 'fraction').weights;
    }
    const iou = foregroundIoU(decide(h.p, h.n, K, w), h.l, K);
    const argmax = foregroundIoU(decide(h.p, h.n, K, argmaxWeights), h.l, K);
    const seconds = (Date.now() - t0) / 1000;
    earlyBox.e = { iou, argmax, network, iteration, seconds };
    hooks.log?.(
      `held-out IoU estimate at iteration ${iteration}: ${iou?.toFixed(3)} (network alone ${network?.toFixed(3)}) on ${h.n} painted voxels, ${seconds.toFixed(1)} s; they are trained on from now on`,
    );
  };
  // the training loop ends on a stop or a cancel; what follows it ends on a cancel only
  const stop = hooks.stopSignal;
  const trainSignal: CancelSignal | undefined = stop
    ? {
        get aborted() {
          return !!hooks.signal?.aborted || stop.aborted;
        },
      }
    : hooks.signal;
  const onProgress: ProgressCallback | undefined = hooks.onProgress
    ? (pr) => {
        // the app's training panel shows the early estimate (and its iteration) from the moment it exists, or
        // why there is none
        const e = earlyBox.e;
        const extra =
          e && e.iou !== null && pr.details?.heldOutIoU === undefined
            ? { heldOutIoU: e.iou, heldOutIteration: e.iteration }
            : reason !== null
              ? { heldOutNote: reason }
              : null;
        hooks.onProgress!(extra ? { ...pr, details: { ...pr.details, ...extra } } : pr);
      }
    : undefined;
  const init = hooks.initFrom ? await warmStartFrom(hooks.initFrom, plan) : undefined;
  const zyxShape = (v: Volume): Vec3 => [v.shape.z, v.shape.y, v.shape.x];
  const live = hooks.live
    ? liveTraining(hooks.live, {
        low: trainPairs.map((p) => p.labels.data as Uint8Array),
        lowShapes: trainPairs.map((p) => zyxShape(p.labels)),
        fullShapes: pairs.map((p) => zyxShape(p.labels)),
        factors: f,
        numClasses: K,
        levels: plan.net.levels,
        padding: plan.net.padding,
        signal: hooks.signal,
      })
    : undefined;
  const trained = await trainModel(engine, trainPairs, {
    net: plan.net,
    optim: plan.optim,
    modelOptions: { device: s.device, threads: s.threads, seed: s.seed },
    iterations: s.iterations,
    minutes: s.minutes,
    seed: s.seed,
    classWeightPower: plan.classWeightPower,
    dice: plan.dice,
    batch: plan.batch,
    averageFrom: plan.averageFrom,
    planeOut: plan.planeOut,
    cubeOut: plan.cubeOut,
    holdout: plan.holdout,
    checkpointDir: hooks.checkpointDir,
    checkpointMinutes: hooks.checkpointMinutes,
    resume: hooks.resume,
    signal: trainSignal,
    onProgress,
    onStep: hooks.onStep,
    onTrainLabels: hooks.onTrainLabels,
    ...(init ? { init } : {}),
    ...(hooks.normalisation ? { normalisation: hooks.normalisation } : {}),
    // a live session trains until stopped at a constant learning rate (there is no budget to decay over)
    ...(live ? { live, schedule: 'constant' as const } : {}),
    ...(early
      ? { release: { at: s.validationAt, labels: low.map((p) => p.labels.data), score: scoreEarly } }
      : {}),
  });
  trained0.normalisation = trained.normalisation;
  let calibration: Calibration;
  let ensemble: EnsembleMember | null = null;
  let selfValidation: SelfValidation = {
    mode: plan.validation,
    estimate: null,
    estimateArgmax: null,
    estimateNetwork: null,
    reason,
    paintedPlanes: planes,
    heldOutBlocks: useSplit ? heldOutBlocks : 0,
    heldOutVoxels: useSplit ? heldOutVoxels : 0,
    scoredAtIteration: null,
    seconds: 0,
    fittedOn: 'none',
  };
  if (early) {
    const e = earlyBox.e;
    selfValidation = e
      ? {
          ...selfValidation,
          estimate: e.iou,
          estimateArgmax: e.argmax,
          estimateNetwork: e.network,
          scoredAtIteration: e.iteration,
          seconds: e.seconds,
        }
      : {
          ...selfValidation,
          reason: `training ended (iteration ${trained.summary.iterations}) before ${s.validationAt * 100} % of its budget, where the estimate is made`,
        };
  }
  try {
    const evalLabels = useHeldOut ? split!.map((x) => x.heldOut) : low.map((p) => p.labels.data as Uint8Array);
    // the network's probabilities are needed only on held-out paint ('blocks'): fitting a decision or choosing
    // a mixing weight on the voxels it was trained on measured no better than the defaults (docs/densify.md);
    // except the 'fraction' decision, whose target (the painted class fractions) holds on the training paint too
    const fitOnPaint = !useHeldOut && plan.calibration === 'fraction';
    // with a full-resolution forest the 'fraction' decision is fitted where the product decides: on the painted
    // full-resolution voxels of the final mix (the network interpolated back, plus the forest), predicted by
    // segmentVolume itself; the working-resolution probabilities are then not needed
    const fullFraction = fitOnPaint && fullForest && plan.ensemble !== 'none';
    const at = useHeldOut || (fitOnPaint && !fullFraction)
      ? await probabilitiesAt(
          trained.model,
          low.map((x) => x.image),
          evalLabels,
          trained.normalisation,
          plan,
          hooks.signal,
        )
      : { p: new Float32Array(0), l: new Uint8Array(0), vol: new Uint16Array(0), idx: new Uint32Array(0) };
    let p = at.p;
    const l = at.l;
    if (plan.ensemble !== 'none') {
      const t0 = Date.now();
      // what the final model learnt from: all the paint, except with 'blocks'
      const { forest, q } = forestAt(forestPaint(useHeldOut), at);
      const n = l.length;
      const candidates = (useHeldOut ? [0, 0.25, 0.5, 0.75, 1] : [DEFAULT_ENSEMBLE_WEIGHT]).map((w) => {
        const m = mix(p, q, w);
        const c = fitCalibration(m, l, K, plan.calibration);
        return { weight: w, estimate: useHeldOut ? foregroundIoU(decide(m, n, K, c.weights), l, K) : null };
      });
      let best = candidates[0]!;
      for (const c of candidates) if ((c.estimate ?? -1) > (best.estimate ?? -1) + 1e-9) best = c;
      const resolution = forestResolution;
      ensemble = { forest, resolution, weight: best.weight, candidates, seconds: (Date.now() - t0) / 1000 };
      hooks.log?.(
        `forest member (${resolution} resolution): ${forest.roots.length} trees in ${ensemble.seconds.toFixed(1)} s; mixing weight ${best.weight}${useHeldOut ? ` chosen on the held-out blocks (${candidates.map((c) => `${c.weight}: ${c.estimate?.toFixed(3)}`).join(', ')})` : ' (default)'}`,
      );
      p = mix(p, q, best.weight);
    }
    if (fullFraction && ensemble) {
      const t0 = Date.now();
      const fit = await mixedAtPaint(
        trained.model,
        pairs,
        low.map((x) => x.image),
        ensemble.forest,
        ensemble.weight,
        trained.normalisation,
        plan,
        caches(),
        hooks.signal,
      );
      calibration = fitCalibration(fit.p, fit.l, K, 'fraction');
      hooks.log?.(
        `'fraction' decision fitted on ${fit.l.length} painted full-resolution voxels of the final mix in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
    } else calibration = fitCalibration(p, l, K, useHeldOut || fitOnPaint ? plan.calibration : 'none');
    if (fitOnPaint && calibration.mode !== 'none') selfValidation = { ...selfValidation, fittedOn: 'training' };
    if (useHeldOut) {
      selfValidation = {
        ...selfValidation,
        estimate: foregroundIoU(decide(p, l.length, K, calibration.weights), l, K),
        estimateArgmax: foregroundIoU(decide(p, l.length, K, argmaxWeights), l, K),
        heldOutVoxels: l.length,
        fittedOn: plan.calibration === 'none' ? 'none' : 'held-out',
      };
    }
  } catch (e) {
    trained.model.dispose();
    throw e;
  }
  if (calibration.mode !== 'none') {
    const pct = (a: number[]) => a.map((v) => (v * 100).toFixed(1)).join('/');
    hooks.log?.(
      `calibrated decision on ${calibration.voxels} ${useHeldOut ? 'held-out' : 'annotated'} voxels: class fractions painted ${pct(calibration.paintedFractions)} %, argmax ${pct(calibration.predictedFractionsArgmax)} %, calibrated ${pct(calibration.predictedFractions)} %`,
    );
  }
  if (selfValidation.estimate !== null)
    hooks.log?.(
      `held-out IoU estimate ${selfValidation.estimate.toFixed(3)} (argmax ${selfValidation.estimateArgmax?.toFixed(3)}) on ${selfValidation.heldOutVoxels} painted voxels${early ? `, scored at iteration ${selfValidation.scoredAtIteration} (conservative: the final model trained longer, on all the paint)` : ''}`,
    );
  else hooks.log?.(`no held-out IoU estimate: ${selfValidation.reason}`);
  return {
    model: trained.model,
    plan,
    normalisation: trained.normalisation,
    summary: trained.summary,
    calibration,
    selfValidation,
    ensemble,
    cancelled: trained.cancelled,
  };
}

/**
 * Probabilities of the trained model at the labelled voxels of `labelSets` (at the working resolution, with the
 * same test-time flips as the final prediction): class-planar K x n, and their labels.
 */
async function probabilitiesAt(
  model: Model,
  images: Volume[],
  labelSets: ArrayLike<number>[],
  norm: Normalisation,
  plan: RecipePlan,
  signal?: CancelSignal,
): Promise<{ p: Float32Array; l: Uint8Array; vol: Uint16Array; idx: Uint32Array }> {
  const K = plan.net.numClasses;
  const vols: number[] = [];
  const idxs: number[] = [];
  // sample at most ~400k annotated voxels (evenly strided) so that big paintings stay cheap
  const chunksP: Float32Array[] = [];
  const chunksL: Uint8Array[] = [];
  for (let v = 0; v < images.length; v++) {
    const image = images[v]!;
    const { x: X, y: Y, z: Z } = image.shape;
    const lab = labelSets[v]!;
    let n = 0;
    const lo: Vec3 = [Z, Y, X];
    const hi: Vec3 = [-1, -1, -1];
    for (let z = 0, i = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++, i++) {
          if (!lab[i]) continue;
          n++;
          if (z < lo[0]) lo[0] = z;
          if (z > hi[0]) hi[0] = z;
          if (y < lo[1]) lo[1] = y;
          if (y > hi[1]) hi[1] = y;
          if (x < lo[2]) lo[2] = x;
          if (x > hi[2]) hi[2] = x;
        }
    if (n === 0) continue;
    const stride = Math.max(1, Math.floor(n / 400_000));
    const size: Vec3 = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    const pick: number[] = [];
    const probs: number[][] = Array.from({ length: K }, () => []);
    let seen = 0;
    await predictRegion(
      model,
      sourceFromVolume(image, norm),
      lo,
      size,
      {
        numClasses: K,
        levels: plan.net.levels,
        padding: plan.net.padding,
        testTimeFlips: plan.testTimeFlips,
        probabilities: true,
        signal,
      },
      (slab) => {
        const sn = slab.depth * size[1] * size[2];
        for (let z = 0; z < slab.depth; z++)
          for (let y = 0; y < size[1]; y++)
            for (let x = 0; x < size[2]; x++) {
              const gi = ((lo[0] + slab.z0 + z) * Y + lo[1] + y) * X + lo[2] + x;
              const l = lab[gi]!;
              if (!l) continue;
              if (seen++ % stride !== 0) continue;
              const si = (z * size[1] + y) * size[2] + x;
              pick.push(l);
              vols.push(v);
              idxs.push(gi);
              for (let k = 0; k < K; k++) probs[k]!.push(slab.probabilities![k * sn + si]!);
            }
      },
    );
    const m = pick.length;
    const p = new Float32Array(K * m);
    for (let k = 0; k < K; k++) p.set(probs[k]!, k * m);
    chunksP.push(p);
    chunksL.push(Uint8Array.from(pick));
  }
  const { p, l } = concatClassPlanar(chunksP, chunksL, K);
  return { p, l, vol: Uint16Array.from(vols), idx: Uint32Array.from(idxs) };
}

/**
 * The final mix's class probabilities (class-planar K x n) at the painted full-resolution voxels of the pairs
 * (evenly strided to at most ~400k), and their labels: the values segment's downsampled path computes there
 * (predictDownsampled: the network on the whole working-resolution stack with the same tiles and flips,
 * trilinear interpolation back, p = (1 - w) p_network + w p_forest in float32), with the forest evaluated at
 * those voxels only (forestProbabilitiesAt: the same features and trees).
 */
async function mixedAtPaint(
  model: Model,
  pairs: RecipePair[],
  low: Volume[],
  forest: Forest,
  weight: number,
  norm: Normalisation,
  plan: RecipePlan,
  caches: FeatureCacheKey[],
  signal?: CancelSignal,
): Promise<{ p: Float32Array; l: Uint8Array }> {
  const K = plan.net.numClasses;
  const f = plan.downsample;
  let total = 0;
  for (const pr of pairs) for (let i = 0; i < pr.labels.data.length; i++) if (pr.labels.data[i]) total++;
  const stride = Math.max(1, Math.floor(total / 400_000));
  const chunksP: Float32Array[] = [];
  const chunksL: Uint8Array[] = [];
  let seen = 0;
  for (let v = 0; v < pairs.length; v++) {
    const { image, labels } = pairs[v]!;
    const lab = labels.data;
    const full: Factors = [image.shape.z, image.shape.y, image.shape.x];
    const plane = full[1] * full[2];
    const idx: number[] = [];
    for (let i = 0; i < lab.length; i++) if (lab[i] && seen++ % stride === 0) idx.push(i);
    if (idx.length === 0) continue;
    const lo = low[v]!;
    const lowShape: Factors = [lo.shape.z, lo.shape.y, lo.shape.x];
    const lowN = lowShape[0] * lowShape[1] * lowShape[2];
    const lowPlane = lowShape[1] * lowShape[2];
    const lowProbs = new Float32Array(K * lowN);
    await predictRegion(
      model,
      sourceFromVolume(lo, norm),
      [0, 0, 0],
      lowShape,
      {
        numClasses: K,
        levels: plan.net.levels,
        padding: plan.net.padding,
        testTimeFlips: plan.testTimeFlips,
        probabilities: true,
        signal,
      },
      (slab) => {
        const n = slab.depth * lowPlane;
        for (let k = 0; k < K; k++)
          lowProbs.set(slab.probabilities!.subarray(k * n, (k + 1) * n), k * lowN + slab.z0 * lowPlane);
      },
    );
    const q = forestProbabilitiesAt(normalisedImage(image, norm), forest, idx, ENSEMBLE_FEATURES, caches[v]);
    const m = idx.length;
    const p = new Float32Array(K * m);
    const step = Math.max(1, Math.floor(4_000_000 / (K * plane)));
    for (let z0 = 0, j = 0; z0 < full[0] && j < m; z0 += step) {
      const depth = Math.min(step, full[0] - z0);
      const end = (z0 + depth) * plane;
      if (idx[j]! >= end) continue;
      const up = upsampleSlab(lowProbs, K, lowShape, full, f, z0, depth);
      const n = depth * plane;
      for (; j < m && idx[j]! < end; j++) {
        const i = idx[j]! - z0 * plane;
        for (let k = 0; k < K; k++) p[k * m + j] = (1 - weight) * up[k * n + i]! + weight * q[k * m + j]!;
      }
    }
    chunksP.push(p);
    chunksL.push(Uint8Array.from(idx, (i) => lab[i]!));
  }
  return concatClassPlanar(chunksP, chunksL, K);
}

/** Class-planar probabilities (K x m per chunk) and their labels, chunk after chunk, as one K x n set. */
function concatClassPlanar(chunksP: Float32Array[], chunksL: Uint8Array[], K: number): { p: Float32Array; l: Uint8Array } {
  const n = chunksL.reduce((a, c) => a + c.length, 0);
  const p = new Float32Array(K * n);
  const l = new Uint8Array(n);
  let off = 0;
  for (let c = 0; c < chunksL.length; c++) {
    const m = chunksL[c]!.length;
    for (let k = 0; k < K; k++) p.set(chunksP[c]!.subarray(k * m, (k + 1) * m), k * n + off);
    l.set(chunksL[c]!, off);
    off += m;
  }
  return { p, l };
}

/** Decisions 1..K of class-planar probabilities with decision weights. */
function decide(p: Float32Array, n: number, K: number, w: number[]): Uint8Array {
  const out = new Uint8Array(n);
  decideInto(p, n, K, w, out);
  return out;
}

/** The manifest fields of a trained recipe (saveModelDir adds format, version, weights, dates). */
export function manifestFor(
  t: TrainedRecipe,
  o: { classNames: string[]; spacing: ModelManifest['spacing']; preset: string },
): Omit<ModelManifest, 'format' | 'version' | 'weights' | 'created' | 'sliceformVersion'> {
  return {
    net: t.plan.net,
    optim: t.plan.optim,
    normalisation: t.normalisation,
    classNames: o.classNames,
    spacing: o.spacing,
    downsample: t.plan.downsample,
    training: { ...t.summary, preset: o.preset },
    prediction: { testTimeFlips: t.plan.testTimeFlips },
    heldOut: heldOutReport(t.selfValidation),
    ...(t.ensemble
      ? {
          ensemble: {
            kind: 'forest' as const,
            file: FOREST_FILE,
            weight: t.ensemble.weight,
            features: { ...ENSEMBLE_FEATURES },
            resolution: t.ensemble.resolution,
            candidates: t.ensemble.candidates,
          },
        }
      : {}),
    ...(t.calibration.mode !== 'none'
      ? {
          calibration: {
            mode: t.calibration.mode,
            decisionWeights: t.calibration.weights,
            voxels: t.calibration.voxels,
            paintedFractions: t.calibration.paintedFractions,
            predictedFractionsArgmax: t.calibration.predictedFractionsArgmax,
            predictedFractions: t.calibration.predictedFractions,
          },
        }
      : {}),
  };
}

export interface RecipeSegmentOptions {
  normalisation: Normalisation;
  downsample: Factors;
  decisionWeights?: number[];
  mixer?: NonNullable<SegmentOptions['mixer']>;
  /** test-time flip averaging, as the decision was fitted with */
  testTimeFlips: boolean;
}

/** The forest member as segment's mixer: its probabilities of an image normalised as the network sees it, features cached per stack. */
function forestMixer(
  f: Forest,
  weight: number,
  resolution: 'full' | 'working',
  norm: Normalisation,
  factors: Factors,
): NonNullable<SegmentOptions['mixer']> {
  return {
    weight,
    halo: featureHalo(ENSEMBLE_FEATURES),
    resolution,
    probabilities: (img: Volume, source: Volume) =>
      forestProbabilities(
        normalisedImage(img, norm),
        f,
        ENSEMBLE_FEATURES,
        undefined,
        featureCacheKey(source, resolution === 'full' ? [1, 1, 1] : factors, norm),
      ),
  };
}

/**
 * Prediction options (normalisation, working resolution, second learner, decision) of a trained recipe, or of a
 * model manifest with its forest (loadRecipeModel).
 */
export function segmentOptionsFor(
  m: TrainedRecipe | ModelManifest,
  forest?: Forest | null,
): RecipeSegmentOptions {
  const norm = m.normalisation;
  // model folders written before the resolution was recorded have a working-resolution forest
  const resolution = m.ensemble?.resolution ?? 'working';
  const mixer = (f: Forest | null | undefined, weight: number) =>
    f && weight > 0 ? { mixer: forestMixer(f, weight, resolution, norm, factorsOf(m)) } : {};
  if ('plan' in m) {
    return {
      normalisation: norm,
      downsample: m.plan.downsample,
      testTimeFlips: m.plan.testTimeFlips,
      ...(m.calibration.mode !== 'none' ? { decisionWeights: m.calibration.weights } : {}),
      ...mixer(m.ensemble?.forest, m.ensemble?.weight ?? 0),
    };
  }
  if (m.ensemble && !forest)
    throw new SliceformError('internal', 'this model mixes in a forest: load it with loadRecipeModel');
  return {
    normalisation: norm,
    downsample: m.downsample,
    testTimeFlips: m.prediction?.testTimeFlips ?? true,
    ...(m.calibration ? { decisionWeights: m.calibration.decisionWeights } : {}),
    ...mixer(forest, m.ensemble?.weight ?? 0),
  };
}

const FOREST_FILE = 'forest.bin';

/** Saves a trained recipe as a model folder: the forest, then the weights and model.json (written last). */
export async function saveRecipeModel(
  dir: string,
  t: TrainedRecipe,
  o: { classNames: string[]; spacing: ModelManifest['spacing']; preset: string },
): Promise<ModelManifest> {
  await mkdir(dir, { recursive: true });
  if (t.ensemble) await saveForest(join(dir, FOREST_FILE), t.ensemble.forest);
  return saveModelDir(dir, t.model, manifestFor(t, o));
}

/** Loads a model folder with what its decision needs (the forest), and the prediction options. */
export async function loadRecipeModel(
  dir: string,
  engine: Engine,
  opts: ModelOptions = {},
): Promise<{ model: Model; manifest: ModelManifest; segment: RecipeSegmentOptions }> {
  const manifest = await readModelManifest(dir);
  const forest = manifest.ensemble ? await loadForest(join(dir, manifest.ensemble.file)) : null;
  if (forest && forest.numClasses !== manifest.net.numClasses)
    throw new SliceformError(
      'bad-input',
      `the forest has ${forest.numClasses} classes, the network ${manifest.net.numClasses}`,
      { file: join(dir, manifest.ensemble!.file) },
    );
  const { model } = await loadModelDir(dir, engine, opts);
  return { model, manifest, segment: segmentOptionsFor(manifest, forest) };
}

/** Default class names for K classes. */
export function defaultClassNames(K: number): string[] {
  return K === 2 ? ['background', 'foreground'] : Array.from({ length: K }, (_, k) => `class ${k + 1}`);
}
