/**
 * Command-line form of the recipe's settings, shared by `densify`, `train` and `crossval`: one option table, one
 * help text, one parser (ranges checked in settings.ts). Pure: takes the values node:util parseArgs produced.
 */
import { availableParallelism } from 'node:os';
import { SliceformError } from '../common/errors.js';
import { parseFactors } from '../volume/resample.js';
import { RECIPE_DEFAULTS, recipeSettings, type RecipeSettings } from './settings.js';

/** parseArgs option specs of the recipe (merge into a command's own options). */
export const RECIPE_OPTIONS = {
  minutes: { type: 'string' },
  iterations: { type: 'string' },
  preset: { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  seed: { type: 'string' },
  lr: { type: 'string' },
  levels: { type: 'string' },
  'base-filters': { type: 'string' },
  'plane-tile': { type: 'string' },
  balance: { type: 'string' },
  dice: { type: 'string' },
  batch: { type: 'string' },
  'bn-at-test': { type: 'string' },
  'no-batch-norm': { type: 'boolean' },
  average: { type: 'string' },
  'no-flips': { type: 'boolean' },
  downsample: { type: 'string' },
  calibration: { type: 'string' },
  validation: { type: 'string' },
  'validation-at': { type: 'string' },
  ensemble: { type: 'string' },
  'forest-resolution': { type: 'string' },
} as const;

/** Help lines of the recipe's options (the same in every command). */
export function recipeUsage(defaultMinutes: number): string {
  return `  --minutes M            training time budget (default ${defaultMinutes} unless --iterations is given)
  --iterations N         training iterations (with --minutes: whichever comes first)
  --preset P             desktop (default) | paper | tiny
  --device D             cpu (default) | cuda
  --threads T            CPU threads for the engine (default: all cores; capped at the cores)
  --seed S               seed for weights, sampling and augmentation (default ${RECIPE_DEFAULTS.seed})
  --lr LR                learning rate > 0 (default per preset)
  --levels L             override the preset's resolution levels (1..6)
  --base-filters F       override the preset's first-level filters (1..256)
  --balance B            class-weight balancing exponent 0..2: 0 = equal weights, 1 = inverse frequency (default ${RECIPE_DEFAULTS.balance})
  --batch N              training samples per step, 1..64 (default per preset: 2, paper 1)
  --dice W               add W x soft Dice (classes 2..K, annotated voxels) to the cross-entropy, 0..10 (default 0)
  --average F            average the weights over the last fraction F in [0, 1) of training (0 = off)
  --bn-at-test M         batch (default) | running: batch-norm statistics at prediction
  --no-batch-norm        a network without batch normalisation
  --plane-tile N         in-plane output size of training tiles, 4..512 (default per preset)
  --downsample F         auto (default: xy by round(z/xy spacing), at most 2, when z is coarser) | none |
                         F (xy) | Z,Y,X, integers 1..8 — train and predict at reduced resolution
  --calibration C        fraction (default): per-class decision weights such that the predicted class
                         fractions on the paint (held-out paint with --validation blocks) match the painted ones
                         (undoes the class weights' bias) | iou: the weights that maximise the foreground IoU on
                         held-out paint (plain argmax without it; the argmax wins ties) | none: plain argmax
  --validation V         early (default, from paint on 3 planes on, any axes): keep a fifth of the paint
                         (random 12-voxel blocks) out of the first half of training, score it there (the
                         held-out IoU estimate, conservative), then train on all of it | blocks: keep it out all
                         the way and fit the decision and the forest weight there (cost 0.05 IoU on 1135) | none
  --validation-at F      early: the fraction of the budget trained before the held-out paint is scored and
                         released, in (0, 1) (default ${RECIPE_DEFAULTS.validationAt})
  --ensemble E           forest (default): mix a random forest on multiscale features, fitted on the same paint,
                         into the network's probabilities (weight 0.5; chosen on held-out paint with
                         --validation blocks) | none
  --forest-resolution R  full (default): the forest's features, fit and mix at the stack's full resolution
                         (after the network's interpolation) | working: at the network's working resolution
  --no-flips             predict without test-time flip averaging (4x faster prediction)`;
}

function num(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const s = String(Array.isArray(v) ? v[v.length - 1] : v);
  const n = Number(s);
  if (s.trim() === '' || !Number.isFinite(n))
    throw new SliceformError('bad-input', `--${name} must be a number, got "${s}"`);
  return n;
}

function str(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  return String(Array.isArray(v) ? v[v.length - 1] : v);
}

/** Validated recipe settings from parsed CLI values; `defaultMinutes` applies when no budget is given. */
export function recipeFromValues(values: Record<string, unknown>, defaultMinutes: number): RecipeSettings {
  const iterations = num(values, 'iterations');
  let minutes = num(values, 'minutes');
  if (iterations === undefined && minutes === undefined) minutes = defaultMinutes;
  let downsample: RecipeSettings['downsample'] | undefined;
  const ds = str(values, 'downsample');
  if (ds !== undefined) {
    const f = parseFactors(ds);
    if (f === null)
      throw new SliceformError(
        'bad-input',
        `--downsample must be auto, none, F or Z,Y,X with integers 1..8, got "${ds}"`,
      );
    downsample = f;
  }
  try {
    return recipeSettings(
      {
        preset: str(values, 'preset'),
        minutes,
        iterations,
        seed: num(values, 'seed'),
        device: str(values, 'device') as RecipeSettings['device'] | undefined,
        threads: num(values, 'threads') ?? availableParallelism(),
        lr: num(values, 'lr'),
        levels: num(values, 'levels'),
        baseFilters: num(values, 'base-filters'),
        planeTile: num(values, 'plane-tile'),
        balance: num(values, 'balance'),
        dice: num(values, 'dice'),
        batch: num(values, 'batch'),
        average: num(values, 'average'),
        bnAtTest: str(values, 'bn-at-test') as RecipeSettings['bnAtTest'] | undefined,
        batchNorm: values['no-batch-norm'] ? false : undefined,
        flips: values['no-flips'] ? false : undefined,
        downsample,
        calibration: str(values, 'calibration') as RecipeSettings['calibration'] | undefined,
        validation: str(values, 'validation') as RecipeSettings['validation'] | undefined,
        validationAt: num(values, 'validation-at'),
        ensemble: str(values, 'ensemble') as RecipeSettings['ensemble'] | undefined,
        forestResolution: str(values, 'forest-resolution') as RecipeSettings['forestResolution'] | undefined,
      },
      availableParallelism(),
    );
  } catch (e) {
    // settings name themselves the way the options do (lr, base-filters, ...): prefix the dashes
    if (e instanceof SliceformError && /^[a-z][a-z-]* (\(|must)/.test(e.message))
      throw new SliceformError('bad-input', `--${e.message}`);
    if (e instanceof SliceformError && e.message.startsWith('unknown preset'))
      throw new SliceformError('bad-input', e.message.replace('unknown preset', 'unknown --preset'));
    throw e;
  }
}
