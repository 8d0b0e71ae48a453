/** Network presets resolved for a dataset, plus the training defaults that go with each. Pure. */
import { PRESETS, type NetConfig, type OptimConfig, type PresetName } from '../common/engine.js';
import { SliceformError } from '../common/errors.js';

export interface TrainingDefaults {
  optim: OptimConfig;
  /** in-plane output size of thin tiles */
  planeOut: number;
  /** cube tile output size */
  cubeOut: number;
  /** samples per step (a CPU runs 2 thin tiles per step ~3x faster per sample than 1; the paper used 1) */
  batch: number;
}

export const TRAINING_DEFAULTS: Record<PresetName, TrainingDefaults> = {
  // the paper: SGD, momentum 0.99, small learning rate; large tiles
  paper: { optim: { optimizer: 'sgd', lr: 1e-4, momentum: 0.99 }, planeOut: 92, cubeOut: 44, batch: 1 },
  // CPU desktop: Adam converges within minutes
  desktop: { optim: { optimizer: 'adam', lr: 2e-3 }, planeOut: 92, cubeOut: 36, batch: 2 },
  tiny: { optim: { optimizer: 'adam', lr: 3e-3 }, planeOut: 32, cubeOut: 16, batch: 2 },
};

/**
 * Default class-weight balancing exponent (w_k ~ (N / (K n_k))^balance). 1 (inverse frequency) over-segmented
 * the plant nuclei 1136 badly, 0.5 under-segmented 1135; 0.75 was calibrated on both (docs/densify.md).
 */
export const DEFAULT_BALANCE = 0.75;

export function isPreset(s: string): s is PresetName {
  return s in PRESETS;
}

/** The preset's network with the data's channel and class counts. */
export function resolveNet(preset: string, inChannels: number, numClasses: number): NetConfig {
  if (!isPreset(preset)) throw new SliceformError('bad-input', `unknown preset "${preset}" (known: ${Object.keys(PRESETS).join(', ')})`);
  return { ...PRESETS[preset], inChannels, numClasses: Math.max(2, numClasses) };
}
