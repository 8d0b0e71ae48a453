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
   * the label decision: per-class probability weights fitted on the held-out paint (else the training paint):
   * 'iou' maximises the foreground IoU there (the argmax wins ties), 'fraction' makes the predicted class
   * fractions equal the painted ones; 'none' = argmax
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
  /**
   * second learner: 'forest' mixes a random forest on multiscale features (fitted on the same paint) into the
   * network's probabilities, its weight chosen on the held-out blocks; 'none' = the network alone
   */
  ensemble: 'forest' | 'none';
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
  calibration: 'iou' as const,
  holdout: 'auto' as const,
  validation: 'early' as const,
  ensemble: 'forest' as const,
};

function check(ok: boolean, msg: string): void {
  if (!ok) throw new SliceformError('bad-input', msg);
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
  if (s.minutes !== undefined)
    check(
      Number.isFinite(s.minutes) && s.minutes > 0 && s.minutes <= 7 * 24 * 60,
      `minutes must be > 0 and at most a week (10080), got ${s.minutes}`,
    );
  if (s.iterations !== undefined)
    check(
      Number.isInteger(s.iterations) && s.iterations > 0,
      `iterations must be a positive integer, got ${s.iterations}`,
    );
  check(
    Number.isInteger(s.seed) && s.seed >= 0 && s.seed <= 0xffffffff,
    `seed must be an integer 0..4294967295, got ${s.seed}`,
  );
  check(s.device === 'cpu' || s.device === 'cuda', `device must be cpu or cuda, got "${s.device}"`);
  if (s.threads !== undefined) {
    check(
      Number.isInteger(s.threads) && s.threads >= 1,
      `threads must be a positive integer, got ${s.threads}`,
    );
    s.threads = Math.min(s.threads, maxThreads);
  }
  if (s.lr !== undefined)
    check(Number.isFinite(s.lr) && s.lr > 0, `lr (learning rate) must be a positive number, got ${s.lr}`);
  if (s.levels !== undefined)
    check(
      Number.isInteger(s.levels) && s.levels >= 1 && s.levels <= 6,
      `levels must be an integer 1..6, got ${s.levels}`,
    );
  if (s.baseFilters !== undefined)
    check(
      Number.isInteger(s.baseFilters) && s.baseFilters >= 1 && s.baseFilters <= 256,
      `base-filters must be an integer 1..256, got ${s.baseFilters}`,
    );
  check(
    s.bnAtTest === 'batch' || s.bnAtTest === 'running',
    `bn-at-test must be batch or running, got "${s.bnAtTest}"`,
  );
  check(
    Number.isFinite(s.balance) && s.balance >= 0 && s.balance <= 2,
    `balance must be in 0..2 (0 = equal class weights, 1 = inverse frequency), got ${s.balance}`,
  );
  check(
    Number.isFinite(s.dice) && s.dice >= 0 && s.dice <= 10,
    `dice (weight) must be in 0..10, got ${s.dice}`,
  );
  if (s.batch !== undefined)
    check(
      Number.isInteger(s.batch) && s.batch >= 1 && s.batch <= 64,
      `batch must be an integer 1..64, got ${s.batch}`,
    );
  check(
    Number.isFinite(s.average) && s.average >= 0 && s.average < 1,
    `average must be a fraction in [0, 1), got ${s.average}`,
  );
  if (s.planeTile !== undefined)
    check(
      Number.isInteger(s.planeTile) && s.planeTile >= 4 && s.planeTile <= 512,
      `plane-tile must be an integer 4..512, got ${s.planeTile}`,
    );
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
