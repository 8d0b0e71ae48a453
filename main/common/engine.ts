/**
 * The Engine contract: what training and inference need from a network implementation.
 * Implemented by the native libtorch addon (main/engine/native.ts) and by TF.js (main/engine/tfjs.ts).
 * Pure types: no Node, no native code.
 *
 * Tensor layout everywhere: NCDHW (3D) or NCHW (2D), float32, x fastest — the same as Volume.data.
 * Spatial shapes are given as [D, H, W] = [z, y, x] (3D) or [H, W] (2D).
 */

export interface NetConfig {
  /** 3 = the paper's 3D U-Net, 2 = the same network with 2D ops (paper's 2D baseline) */
  dims: 2 | 3;
  inChannels: number;
  numClasses: number;
  /** resolution levels including the bottom one (paper: 4) */
  levels: number;
  /** filters of the first conv (paper: 32; doubled before each pooling) */
  baseFilters: number;
  /** 'valid' (paper) or 'same' */
  padding: 'valid' | 'same';
  /** batch normalisation after every 3x3x3 conv (paper: on) */
  batchNorm: boolean;
  /** at inference use running statistics, or the current batch statistics as the paper did */
  bnAtTest: 'running' | 'batch';
}

export interface OptimConfig {
  optimizer: 'sgd' | 'adam';
  lr: number;
  /** SGD momentum (paper: 0.99) */
  momentum?: number;
  weightDecay?: number;
}

export type Precision = 'fp32' | 'tf32' | 'bf16';
export type Device = 'cpu' | 'cuda';

export interface ModelOptions {
  device?: Device;
  /** intra-op threads (CPU) */
  threads?: number;
  precision?: Precision;
  /** channels_last_3d memory format (CUDA) */
  channelsLast?: boolean;
  /** weight init seed */
  seed?: number;
}

export interface TrainBatch {
  /** N*C*D*H*W input (normalised image) */
  input: Float32Array;
  /** [N, C, D, H, W] (3D) or [N, C, H, W] (2D) */
  inputShape: number[];
  /**
   * N*D'*H'*W' labels at the OUTPUT shape: 0 = unannotated (weight exactly 0), k = class k-1 (1..numClasses).
   */
  labels: Uint8Array | Uint16Array;
  /**
   * Per-class weights, length numClasses (default all 1). Loss = sum_i w[label_i] * CE_i / (number of annotated
   * voxels), so scaling every weight by s scales the loss by s.
   */
  classWeights?: number[];
  /**
   * Weight of a soft Dice term added to the cross-entropy (default 0 = cross-entropy only): Dice of each class
   * 2..K (class 1, conventionally background, left out) over the annotated voxels of the whole batch; the loss
   * becomes CE + diceWeight * (1 - mean Dice). Unannotated voxels still contribute nothing.
   */
  diceWeight?: number;
}

export interface TrainStepResult {
  loss: number;
  /** voxels with label > 0 in this batch */
  annotatedVoxels: number;
  /** output voxels in this batch */
  outputVoxels: number;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface Model {
  readonly config: NetConfig;
  /** conv + up-conv weights and biases (BN parameters not included) */
  readonly paramCount: number;
  /** BN affine parameters (gamma, beta) */
  readonly bnParamCount: number;
  outputShape(inputSpatial: number[]): number[];
  trainStep(batch: TrainBatch): Promise<TrainStepResult>;
  /** Forward (eval mode unless bnAtTest = 'batch'); returns softmax probabilities N*K*D'*H'*W'. */
  predict(input: Float32Array, inputShape: number[]): Promise<Float32Array>;
  setLearningRate(lr: number): void;
  /** atomic: temp file + rename. Holds config, weights, BN statistics and optimizer state. */
  save(path: string): Promise<void>;
  load(path: string): Promise<void>;
  exportParams(): Promise<NamedTensor[]>;
  importParams(params: NamedTensor[]): Promise<void>;
  dispose(): void;
}

export interface EngineInfo {
  name: 'native' | 'tfjs';
  version: string;
  devices: Device[];
  backend?: string;
  threads?: number;
}

export interface Engine {
  readonly info: EngineInfo;
  createModel(config: NetConfig, optim: OptimConfig, options?: ModelOptions): Promise<Model>;
}

export const PRESETS = {
  /** Çiçek et al. 2016: 19,069,955 parameters, 132x132x116 -> 44x44x28 */
  paper: { dims: 3, inChannels: 3, numClasses: 3, levels: 4, baseFilters: 32, padding: 'valid', batchNorm: true, bnAtTest: 'running' },
  /**
   * a CPU-friendly network for the desktop: trains in minutes on 2 cores. 2 levels (context 16 voxels), 8 base
   * filters: on the plant nuclei at half xy resolution 3 levels and 16 filters both scored lower in a 4-minute
   * budget than this net's ~2x more steps (docs/densify.md)
   */
  desktop: { dims: 3, inChannels: 1, numClasses: 2, levels: 2, baseFilters: 8, padding: 'valid', batchNorm: true, bnAtTest: 'running' },
  /** seconds-scale net for tests and the E2E flow */
  tiny: { dims: 3, inChannels: 1, numClasses: 2, levels: 2, baseFilters: 4, padding: 'valid', batchNorm: true, bnAtTest: 'running' },
} as const satisfies Record<string, NetConfig>;

export type PresetName = keyof typeof PRESETS;

/**
 * Output spatial size of a U-Net for a given input size, or null when the input is not valid
 * (some pooled size odd or non-positive). Pure, engine-independent; both engines must agree with it.
 */
export function unetOutputSize(n: number, levels: number, padding: 'valid' | 'same'): number | null {
  if (padding === 'same') {
    return n % 2 ** (levels - 1) === 0 ? n : null;
  }
  let s = n;
  for (let l = 0; l < levels - 1; l++) {
    s -= 4;
    if (s <= 0 || s % 2 !== 0) return null;
    s /= 2;
  }
  s -= 4;
  if (s <= 0) return null;
  for (let l = 0; l < levels - 1; l++) {
    s = s * 2 - 4;
    if (s <= 0) return null;
  }
  return s;
}

/** Nearest valid input size >= 1 to `near` (ties go up). */
export function validInputSize(near: number, levels: number, padding: 'valid' | 'same'): number {
  for (let d = 0; d < 4096; d++) {
    for (const n of [near + d, near - d]) if (n > 0 && unetOutputSize(n, levels, padding) !== null) return n;
  }
  throw new Error(`no valid input size near ${near}`);
}

/** Nearest valid input shape (per axis, [D, H, W] or any order) to `near`; see validInputSize. */
export function validInputShape(near: number[], levels: number, padding: 'valid' | 'same'): number[] {
  return near.map((n) => validInputSize(n, levels, padding));
}

/** Output spatial shape for an input shape, or null when any axis is not a valid input size. */
export function unetOutputShape(input: number[], levels: number, padding: 'valid' | 'same'): number[] | null {
  const out = input.map((n) => unetOutputSize(n, levels, padding));
  return out.some((o) => o === null) ? null : (out as number[]);
}
