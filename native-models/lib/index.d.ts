// Hand-written typings for native-models/lib/index.js (see src/addon.cc for the implementation).

export interface NativeNetConfig {
  dims?: 2 | 3;
  inChannels: number;
  numClasses: number;
  levels: number;
  baseFilters: number;
  padding?: 'valid' | 'same';
  batchNorm?: boolean;
  bnAtTest?: 'running' | 'batch';
}

export interface NativeOptimConfig {
  optimizer?: 'sgd' | 'adam';
  lr?: number;
  momentum?: number;
  weightDecay?: number;
}

export interface NativeModelOptions {
  device?: 'cpu' | 'cuda';
  /** intra-op threads for this model's calls (0 or absent: libtorch default) */
  threads?: number;
  precision?: 'fp32' | 'tf32' | 'bf16';
  channelsLast?: boolean;
  seed?: number;
  /** debug: keep weights in float64 (gradient checks); inputs and outputs stay float32 */
  dtype?: 'float32' | 'float64';
}

export interface NativeStepResult {
  loss: number;
  annotatedVoxels: number;
  outputVoxels: number;
}

export interface NativeNamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Errors thrown or rejected by the addon carry a kind. */
export interface NativeError extends Error {
  kind: 'bad-input' | 'oom' | 'engine';
}

export interface NativeModel {
  readonly paramCount: number;
  readonly bnParamCount: number;
  readonly learningRate: number;
  readonly disposed: boolean;
  outputShape(spatial: number[]): number[];
  trainStep(
    input: Float32Array,
    inputShape: number[],
    labels: Uint8Array | Uint16Array,
    classWeights?: number[],
    /** weight of the soft Dice term (0 = cross-entropy only) */
    diceWeight?: number,
  ): Promise<NativeStepResult>;
  /** loss and gradients without an optimizer step or BN statistics update (tests) */
  lossAndGrad(
    input: Float32Array,
    inputShape: number[],
    labels: Uint8Array | Uint16Array,
    classWeights?: number[],
    diceWeight?: number,
  ): Promise<NativeStepResult & { grads: NativeNamedTensor[] }>;
  predict(input: Float32Array, inputShape: number[]): Promise<{ data: Float32Array; shape: number[] }>;
  setLearningRate(lr: number): void;
  save(path: string): Promise<void>;
  load(path: string): Promise<void>;
  exportParams(): Promise<NativeNamedTensor[]>;
  importParams(params: NativeNamedTensor[]): Promise<void>;
  dispose(): void;
}

export interface NativeBinding {
  Model: new (
    config: NativeNetConfig,
    optim?: NativeOptimConfig,
    options?: NativeModelOptions,
  ) => NativeModel;
  createModel(
    config: NativeNetConfig,
    optim?: NativeOptimConfig,
    options?: NativeModelOptions,
  ): Promise<NativeModel>;
  torchVersion(): string;
  cudaAvailable(): boolean;
  getThreads(): number;
  setThreads(n: number): void;
  /** bytes of freed CPU activations kept for reuse (0 once every model is disposed) */
  cpuCacheBytes(): number;
}

export function addonCandidates(): string[];
export function binding(): NativeBinding;
export function isAvailable(): boolean;
export function createModel(
  config: NativeNetConfig,
  optim?: NativeOptimConfig,
  options?: NativeModelOptions,
): NativeModel;
export function createModelAsync(
  config: NativeNetConfig,
  optim?: NativeOptimConfig,
  options?: NativeModelOptions,
): Promise<NativeModel>;
export function torchVersion(): string;
export function cudaAvailable(): boolean;
export function getThreads(): number;
export function setThreads(n: number): void;
