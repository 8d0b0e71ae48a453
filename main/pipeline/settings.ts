/**
 * The recipe's settings: every knob of "train a 3D U-Net on sparse labels, then densify", with one set of
 * defaults and one validation, whoever calls (CLI densify/train/crossval, the app's compute handlers, batch).
 * A difference between callers is an explicit setting here, never a second copy of the recipe. Pure.
 */
import type { Device, PresetName } from '../common/engine.js';
import { PRESETS } from '../common/engine.js';
import { SliceformError } from '../common/errors.js';

import type { Factors } from '../volume/resample.js';

export type { Factors };

export interface RecipeSettings {
  preset: PresetName;
  /** training budget: wall minutes and/or iterations (whichever comes first); at least one */
  minutes?: number;
  iterations?: number;
  seed: number;
  device: Device;
  /** CPU threads for the engine (default: all cores) */
  threads?: number;
  /** learning rate (default: the preset's) */
  lr?: number;
  /** network overrides of the preset */
  levels?: number;
  baseFilters?: number;
  batchNorm: boolean;
  bnAtTest: 'batch' | 'running';
  /** class-weight balancing exponent: 0 = equal weights, 1 = inverse frequency */
  balance: number;
  /** weight of a soft Dice term added to the weighted cross-entropy (0 = off) */
  dice: number;
  /** samples per step (default: the preset's) */
  batch?: number;
  /** stochastic weight averaging over the last fraction of the budget (0 = off) */
  average: number;
  /** in-plane output size of thin training tiles (default: the preset's) */
  planeTile?: number;
  /** work at reduced resolution: 'auto' (xy by round(z/xy spacing), at most 2, when z is coarser) or factors */
  downsample: Factors | 'auto';
  /** test-time flip averaging in prediction */
  flips: boolean;
  /**
   * the label decision: per-class probability weights fitted on the held-out paint ('blocks'):
   * 'iou' maximises the foreground IoU there (the argmax wins ties), 'fraction' makes the predicted class
   * fractions equal the painted ones; 'none' = argmax. Without held-out paint 'iou' is the plain argmax (an IoU
   * fitted on the voxels trained on measured no better) and 'fraction' (the default) is fitted on the training
   * paint: with the full-resolution forest on the painted full-resolution voxels of the final mix
   */
  calibration: 'iou' | 'fraction' | 'none';
  /** hold annotated planes out for a held-out IoU (auto: one per axis with >= 4 planes on that axis) */
  holdout: 'auto' | 'none';
  /**
   * self-validation (pipeline/holdout.ts), from paint on 3 planes on (any axes): 'early' (default) keeps a fifth
   * of the painted voxels (random 12-voxel blocks) out of the first half of training, scores them with the model
   * (and forest) of that moment, then trains on all the paint: an estimate of the IoU the user will get that is
   * conservative and costs (almost) nothing, nothing chosen on it; 'blocks' keeps them out all the way and fits
   * the decision and the forest weight there (on 1135 k = 1 that lost 0.055 IoU, docs/densify.md); 'none'
   */
  validation: 'early' | 'blocks' | 'none';
  /** 'early': the fraction of the budget trained without the held-out blocks before they are scored, in (0, 1) */
  validationAt: number;
  /**
   * second learner: 'forest' mixes a random forest on multiscale features (fitted on the same paint) into the
   * network's probabilities, its weight chosen on the held-out blocks; 'none' = the network alone
   */
  ensemble: 'forest' | 'none';
  /**
   * the grid of the forest member: 'full' (default) fits it on the full-resolution paint with full-resolution
   * features and mixes it after the network's interpolation back to full resolution; 'working' fits and mixes
   * it at the network's working resolution (the earlier recipe). Thin membranes need 'full' (ovule 0.690 ->
   * 0.731, nuclei within 0.003, docs/densify.md); it costs about 4x the forest's feature time
   */
  forestResolution: 'full' | 'working';
}

/**
 * Defaults of the recipe (chosen on the shared tasks, docs/densify.md). 1 (inverse frequency) class weights
 * over-segmented the plant nuclei 1136, 0.5 under-segmented 1135; 0.75 with the fraction calibration.
 */
export const RECIPE_DEFAULTS = {
  preset: 'desktop' as PresetName,
  seed: 1,
  device: 'cpu' as Device,
  batchNorm: true,
  bnAtTest: 'batch' as const,
  balance: 0.75,
  dice: 0,
  average: 0,
  flips: true,
  // the painted-fraction cut on the full-resolution mix: picked in every leave-one-task-out fold (1135 +0.015,
  // 1136 +0.003, ovule -0.001 over two seeds; docs/densify.md)
  calibration: 'fraction' as const,
  holdout: 'auto' as const,
  validation: 'early' as const,
  validationAt: 0.5,
  ensemble: 'forest' as const,
  forestResolution: 'full' as const,
};

function check(ok: boolean, msg: string): void {
  if (!ok) throw new SliceformError('bad-input', msg);
}

/** A numeric range; the bounds are allowed unless said otherwise. */
export interface Range {
  min: number;
  max: number;
  /** min itself is not allowed (e.g. minutes > 0) */
  minExclusive?: boolean;
  /** max itself is not allowed (e.g. average < 1) */
  maxExclusive?: boolean;
  integer?: boolean;
}

/**
 * The ranges of the recipe's numeric settings, by their option names: the one table that recipeSettings (the
 * API, the app) and the CLI's checks before any file is read (main/cli/validate.ts) both use.
 */
export const RECIPE_RANGES = {
  minutes: { min: 0, max: 7 * 24 * 60, minExclusive: true },
  iterations: { min: 1, max: 1e9, integer: true },
  threads: { min: 1, max: 4096, integer: true },
  seed: { min: 0, max: 0xffffffff, integer: true },
  lr: { min: 0, max: Infinity, minExclusive: true },
  'plane-tile': { min: 4, max: 512, integer: true },
  balance: { min: 0, max: 2 },
  dice: { min: 0, max: 10 },
  batch: { min: 1, max: 64, integer: true },
  average: { min: 0, max: 1, maxExclusive: true },
  levels: { min: 1, max: 6, integer: true },
  'base-filters': { min: 1, max: 256, integer: true },
  'validation-at': { min: 0, max: 1, minExclusive: true, maxExclusive: true },
} satisfies Record<string, Range>;

/** How a range reads in a message: `4..512`, `> 0`, `> 0 and <= 10080`, `in [0, 1)`. */
export function showRange(r: Range): string {
  if (r.minExclusive) return r.max === Infinity ? `> ${r.min}` : `> ${r.min} and ${r.maxExclusive ? '<' : '<='} ${r.max}`;
  if (r.maxExclusive) return `in [${r.min}, ${r.max})`;
  return `${r.min}..${r.max}`;
}

export function inRange(n: number, r: Range): boolean {
  return (
    Number.isFinite(n) &&
    (r.minExclusive ? n > r.min : n >= r.min) &&
    (r.maxExclusive ? n < r.max : n <= r.max) &&
    (!r.integer || Number.isInteger(n))
  );
}

/** The error message for a value out of its range: `plane-tile must be an integer 4..512, got -5`. */
export function rangeMessage(name: string, r: Range, got: string | number): string {
  return `${name} must be ${r.integer ? 'an integer' : 'a number'} ${showRange(r)}, got ${got}`;
}

/** Refuses a value outside RECIPE_RANGES[name] (bad-input, the message names the setting and its range). */
export function checkRange(name: keyof typeof RECIPE_RANGES, n: number | undefined): void {
  if (n === undefined) return;
  const r: Range = RECIPE_RANGES[name];
  check(inRange(n, r), rangeMessage(name, r, n));
}

/** Fills defaults and validates ranges; throws a bad-input error naming the setting and its range. */
export function recipeSettings(
  partial: Omit<Partial<RecipeSettings>, 'preset'> & { preset?: string },
  maxThreads = Infinity,
): RecipeSettings {
  const preset = (partial.preset ?? RECIPE_DEFAULTS.preset) as PresetName;
  check(preset in PRESETS, `unknown preset "${preset}" (${Object.keys(PRESETS).join(', ')})`);
  const s: RecipeSettings = {
    ...RECIPE_DEFAULTS,
    downsample: preset === 'paper' ? [1, 1, 1] : 'auto',
    ...Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)),
    preset,
  } as RecipeSettings;
  if (s.minutes === undefined && s.iterations === undefined)
    throw new SliceformError('bad-input', 'give a training budget: minutes or iterations');
  checkRange('minutes', s.minutes);
  checkRange('iterations', s.iterations);
  checkRange('seed', s.seed);
  check(s.device === 'cpu' || s.device === 'cuda', `device must be cpu or cuda, got "${s.device}"`);
  checkRange('threads', s.threads);
  if (s.threads !== undefined) s.threads = Math.min(s.threads, maxThreads);
  checkRange('lr', s.lr);
  checkRange('levels', s.levels);
  checkRange('base-filters', s.baseFilters);
  check(
    s.bnAtTest === 'batch' || s.bnAtTest === 'running',
    `bn-at-test must be batch or running, got "${s.bnAtTest}"`,
  );
  checkRange('balance', s.balance);
  checkRange('dice', s.dice);
  checkRange('batch', s.batch);
  checkRange('average', s.average);
  checkRange('plane-tile', s.planeTile);
  checkRange('validation-at', s.validationAt);
  if (s.downsample !== 'auto')
    check(
      Array.isArray(s.downsample) &&
        s.downsample.length === 3 &&
        s.downsample.every((f) => Number.isInteger(f) && f >= 1 && f <= 8),
      `downsample must be integers 1..8, got ${String(s.downsample)}`,
    );
  check(
    s.calibration === 'iou' || s.calibration === 'fraction' || s.calibration === 'none',
    `calibration must be iou, fraction or none, got "${s.calibration}"`,
  );
  check(s.holdout === 'auto' || s.holdout === 'none', `holdout must be auto or none, got "${s.holdout}"`);
  check(
    s.validation === 'early' || s.validation === 'blocks' || s.validation === 'none',
    `validation must be early, blocks or none, got "${s.validation}"`,
  );
  check(
    s.ensemble === 'forest' || s.ensemble === 'none',
    `ensemble must be forest or none, got "${s.ensemble}"`,
  );
  check(
    s.forestResolution === 'full' || s.forestResolution === 'working',
    `forest-resolution must be full or working, got "${s.forestResolution}"`,
  );
  return s;
}

/** The app's training request (main/common/api.ts TrainSettings) as recipe settings: the same defaults as the CLI. */
export function recipeFromApi(
  t: {
    preset: string;
    minutes?: number;
    iterations?: number;
    learningRate?: number;
    seed?: number;
    device?: Device;
    heldOutFraction?: number;
  },
  maxThreads = Infinity,
): RecipeSettings {
  return recipeSettings(
    {
      preset: t.preset,
      minutes: t.minutes,
      iterations: t.iterations,
      lr: t.learningRate,
      seed: t.seed,
      device: t.device,
      holdout: t.heldOutFraction === 0 ? 'none' : 'auto',
    },
    maxThreads,
  );
}
