/**
 * The TF.js engine: the same U-Net, loss, optimisers and parameter names as the native libtorch engine, written
 * with @tensorflow/tfjs core ops. It is the portable fallback (`loadEngine` uses it when the addon does not load),
 * it uses the `tensorflow` backend when @tensorflow/tfjs-node(-gpu) is installed, and it is an independent oracle
 * for the native engine's numbers (test/integration/oracle-*.test.ts). See docs/tfjs.md.
 *
 * Single-threaded on the `cpu` backend: each call runs synchronously on the calling thread (expect it to be
 * 20-100x slower than the native engine); run it in a worker/utility process when the UI must stay responsive.
 */
import type * as TF from '@tensorflow/tfjs';
import { SliceformError } from '../common/errors.js';
import {
  unetOutputSize,
  type Engine,
  type EngineInfo,
  type Model,
  type ModelOptions,
  type NamedTensor,
  type NetConfig,
  type OptimConfig,
  type TrainBatch,
  type TrainStepResult,
} from '../common/engine.js';
import { assertCanTrain, loadTf, type BackendPreference, type LoadedTf, type Tf } from './tfjs/backend.js';
import { readCheckpoint, writeCheckpoint } from './tfjs/checkpoint.js';
import { Optimizer, stateSlots } from './tfjs/optim.js';
import {
  BN_MOMENTUM,
  countParams,
  forward,
  fromTfPerm,
  initValue,
  normalSampler,
  paramSpecs,
  toTfPerm,
  weightedCE,
  diceLoss,
  type BnStat,
  type ParamSpec,
} from './tfjs/unet.js';

export interface TfjsEngineOptions {
  /** 'auto' (default): tfjs-node-gpu, then tfjs-node, then the pure-JS cpu backend */
  backend?: BackendPreference;
}

export async function createTfjsEngine(opts: TfjsEngineOptions = {}): Promise<Engine> {
  const loaded = await loadTf(opts.backend ?? 'auto');
  return new TfjsEngine(loaded);
}

export class TfjsEngine implements Engine {
  readonly info: EngineInfo;
  /** why @tensorflow/tfjs-node(-gpu) is not in use, when it is not (for `sliceform system`) */
  readonly notes: string[];
  constructor(private readonly t: LoadedTf) {
    this.notes = [...t.notes];
    this.info = {
      name: 'tfjs',
      version: `${t.pkg}@${t.version}`,
      devices: t.gpu ? ['cpu', 'cuda'] : ['cpu'],
      backend: t.backend,
      // the pure-JS cpu backend runs on the calling thread only
      threads: t.backend === 'tensorflow' ? undefined : 1,
    };
  }
  async createModel(config: NetConfig, optim: OptimConfig, options: ModelOptions = {}): Promise<Model> {
    validateConfig(config);
    validateOptim(optim);
    if (options.device === 'cuda' && !this.t.gpu) {
      throw new SliceformError('unsupported', `TF.js engine (${this.t.backend} backend) has no CUDA device; install @tensorflow/tfjs-node-gpu or use the native engine`);
    }
    if (options.precision && options.precision !== 'fp32') {
      throw new SliceformError('unsupported', `TF.js engine supports precision 'fp32' only, not '${options.precision}'`);
    }
    return new TfjsModel(this.t, config, optim, options.seed ?? 1);
  }
}

const isInt = (n: unknown, min: number) => typeof n === 'number' && Number.isInteger(n) && n >= min;

export function validateConfig(c: NetConfig): void {
  const bad = (m: string) => new SliceformError('bad-input', `invalid network config: ${m}`);
  if (!c || typeof c !== 'object') throw bad('not an object');
  if (c.dims !== 2 && c.dims !== 3) throw bad(`dims must be 2 or 3, got ${String(c.dims)}`);
  if (!isInt(c.inChannels, 1)) throw bad(`inChannels must be an integer >= 1, got ${String(c.inChannels)}`);
  if (!isInt(c.numClasses, 2)) throw bad(`numClasses must be an integer >= 2, got ${String(c.numClasses)}`);
  if (!isInt(c.levels, 1) || c.levels > 8) throw bad(`levels must be an integer in 1..8, got ${String(c.levels)}`);
  if (!isInt(c.baseFilters, 1)) throw bad(`baseFilters must be an integer >= 1, got ${String(c.baseFilters)}`);
  if (c.padding !== 'valid' && c.padding !== 'same') throw bad(`padding must be 'valid' or 'same', got ${String(c.padding)}`);
  if (typeof c.batchNorm !== 'boolean') throw bad('batchNorm must be a boolean');
  if (c.bnAtTest !== 'running' && c.bnAtTest !== 'batch') throw bad(`bnAtTest must be 'running' or 'batch', got ${String(c.bnAtTest)}`);
}

function validateOptim(o: OptimConfig): void {
  const bad = (m: string) => new SliceformError('bad-input', `invalid optimiser config: ${m}`);
  if (o.optimizer !== 'sgd' && o.optimizer !== 'adam') throw bad(`optimizer must be 'sgd' or 'adam', got ${String(o.optimizer)}`);
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) throw bad(`lr must be a positive number, got ${String(o.lr)}`);
  if (o.momentum !== undefined && !(o.momentum >= 0 && o.momentum < 1)) throw bad(`momentum must be in [0, 1), got ${o.momentum}`);
  if (o.weightDecay !== undefined && !(o.weightDecay >= 0)) throw bad(`weightDecay must be >= 0, got ${o.weightDecay}`);
}

const sameConfig = (a: NetConfig, b: NetConfig) =>
  (['dims', 'inChannels', 'numClasses', 'levels', 'baseFilters', 'padding', 'batchNorm'] as const).every((k) => a[k] === b[k]);

const describeConfig = (c: NetConfig) =>
  `${c.dims}D in=${c.inChannels} classes=${c.numClasses} levels=${c.levels} base=${c.baseFilters} ${c.padding}${c.batchNorm ? ' bn' : ''}`;

let modelSeq = 0;

export class TfjsModel implements Model {
  readonly config: NetConfig;
  readonly paramCount: number;
  readonly bnParamCount: number;
  private readonly tf: Tf;
  private readonly specs: ParamSpec[];
  /** by exported name, tfjs layout */
  private readonly vars = new Map<string, TF.Variable>();
  private readonly trainable = new Map<string, TF.Variable>();
  private optim: Optimizer;
  private disposed = false;

  constructor(
    private readonly loaded: LoadedTf,
    config: NetConfig,
    private readonly optimCfg: OptimConfig,
    seed: number,
  ) {
    this.tf = loaded.tf;
    this.config = { ...config };
    this.specs = paramSpecs(config);
    const { params, bnParams } = countParams(config);
    this.paramCount = params;
    this.bnParamCount = bnParams;
    const id = ++modelSeq;
    const rnd = normalSampler(seed);
    for (const s of this.specs) {
      // i.i.d. init: fill the tfjs layout directly (no transpose of the paper net's 19M weights)
      const shape = s.kind === 'conv' || s.kind === 'upconv' ? toTfPerm(s.shape.length).map((i) => s.shape[i]!) : s.shape;
      const init = initValue(s, rnd);
      // tidy disposes the initial tensor (the variable keeps its own reference to the data)
      const v = this.tf.tidy(() => this.tf.variable(this.tf.tensor(init, shape, 'float32'), s.trainable, `sfm${id}/${s.name}`));
      this.vars.set(s.name, v);
      if (s.trainable) this.trainable.set(s.name, v);
    }
    this.optim = new Optimizer(this.tf, optimCfg, this.trainable);
  }

  /** Exported-layout data -> tfjs-layout tensor. */
  private toTf(s: ParamSpec, data: Float32Array): TF.Tensor {
    const t = this.tf.tensor(data, s.shape, 'float32');
    return s.kind === 'conv' || s.kind === 'upconv' ? this.tf.transpose(t, toTfPerm(s.shape.length)) : t;
  }
  private async fromTf(s: ParamSpec, v: TF.Tensor): Promise<Float32Array> {
    if (s.kind === 'conv' || s.kind === 'upconv') {
      const t = this.tf.transpose(v, fromTfPerm(s.shape.length));
      const d = (await t.data()) as Float32Array;
      t.dispose();
      return d;
    }
    return Float32Array.from((await v.data()) as Float32Array);
  }

  private check(): void {
    if (this.disposed) throw new SliceformError('internal', 'TF.js model used after dispose()');
  }

  outputShape(inputSpatial: number[]): number[] {
    if (inputSpatial.length !== this.config.dims) {
      throw new SliceformError('bad-input', `expected a ${this.config.dims}D spatial shape, got [${inputSpatial.join(', ')}]`);
    }
    return inputSpatial.map((n) => {
      const o = Number.isInteger(n) ? unetOutputSize(n, this.config.levels, this.config.padding) : null;
      if (o === null) {
        throw new SliceformError(
          'bad-input',
          `input size ${n} is not valid for a ${this.config.levels}-level ${this.config.padding} U-Net ` +
            `(every pooled size must be even and positive); input shape [${inputSpatial.join(', ')}]`,
        );
      }
      return o;
    });
  }

  /** Validates an input shape [N, C, ...spatial] against data length; returns output spatial shape. */
  private checkInput(input: Float32Array, shape: number[]): number[] {
    const d = this.config.dims;
    if (!Array.isArray(shape) || shape.length !== d + 2) {
      throw new SliceformError('bad-input', `input shape must be [N, C, ${d === 3 ? 'D, H, W' : 'H, W'}], got [${String(shape)}]`);
    }
    if (!shape.every((n) => Number.isInteger(n) && n > 0)) throw new SliceformError('bad-input', `input shape has a non-positive size: [${shape.join(', ')}]`);
    if (shape[1] !== this.config.inChannels) {
      throw new SliceformError('bad-input', `input has ${shape[1]} channels, the network expects ${this.config.inChannels}`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (!(input instanceof Float32Array) || input.length !== n) {
      throw new SliceformError('bad-input', `input data has ${input?.length} values, shape [${shape.join(', ')}] needs ${n}`);
    }
    return this.outputShape(shape.slice(2));
  }

  private inputTensor(input: Float32Array, shape: number[]): TF.Tensor {
    const t = this.tf.tensor(input, shape, 'float32');
    return this.tf.transpose(t, this.config.dims === 3 ? [0, 2, 3, 4, 1] : [0, 2, 3, 1]);
  }

  /** Per-voxel one-hot class weights at the output shape (channels last) and the annotated count. */
  private labelTensor(batch: TrainBatch, outSpatial: number[]): { onehotW: TF.Tensor; onehot: TF.Tensor | null; annotated: number } {
    const K = this.config.numClasses;
    const N = batch.inputShape[0]!;
    const nv = N * outSpatial.reduce((a, b) => a * b, 1);
    const labels = batch.labels;
    if (!labels || labels.length !== nv) {
      throw new SliceformError(
        'bad-input',
        `labels have ${labels?.length} values; the output shape [${[N, ...outSpatial].join(', ')}] needs ${nv}`,
      );
    }
    const w = batch.classWeights ?? new Array<number>(K).fill(1);
    if (w.length !== K || !w.every((x) => Number.isFinite(x) && x >= 0)) {
      throw new SliceformError('bad-input', `classWeights must be ${K} non-negative numbers, got [${w.join(', ')}]`);
    }
    const dice = batch.diceWeight ?? 0;
    if (!(Number.isFinite(dice) && dice >= 0)) throw new SliceformError('bad-input', `diceWeight must be finite and >= 0, got ${dice}`);
    const oh = new Float32Array(nv * K);
    const oh1 = dice > 0 ? new Float32Array(nv * K) : null;
    let annotated = 0;
    for (let i = 0; i < nv; i++) {
      const l = labels[i]!;
      if (l === 0) continue;
      if (l > K) throw new SliceformError('bad-input', `label ${l} at voxel ${i} exceeds the ${K} classes (labels are 0 = unannotated, 1..${K})`);
      annotated++;
      oh[i * K + l - 1] = w[l - 1]!;
      if (oh1) oh1[i * K + l - 1] = 1;
    }
    const shape = [N, ...outSpatial, K];
    return { onehotW: this.tf.tensor(oh, shape, 'float32'), onehot: oh1 ? this.tf.tensor(oh1, shape, 'float32') : null, annotated };
  }

  /**
   * Loss, gradients (by tfjs variable name) and BN batch statistics; the caller disposes them. As in the native
   * engine, a batch without annotated voxels gives loss 0, no gradients and no update.
   */
  private lossAndGrads(batch: TrainBatch): {
    loss: number;
    grads: Record<string, TF.Tensor> | null;
    stats: BnStat[];
    annotated: number;
    outputVoxels: number;
  } {
    const tf = this.tf;
    const out = this.checkInput(batch.input, batch.inputShape);
    const outputVoxels = batch.inputShape[0]! * out.reduce((a, b) => a * b, 1);
    const stats: BnStat[] = [];
    const lt = this.labelTensor(batch, out);
    const disposeLabels = () => {
      lt.onehotW.dispose();
      lt.onehot?.dispose();
    };
    if (lt.annotated === 0) {
      disposeLabels();
      return { loss: 0, grads: null, stats, annotated: 0, outputVoxels };
    }
    const res = tf.tidy(() => {
      const x = this.inputTensor(batch.input, batch.inputShape);
      return tf.variableGrads(() => {
        stats.length = 0;
        const logits = forward(tf, this.config, this.vars, x, { batchStats: true, stats });
        const ce = weightedCE(tf, logits, lt.onehotW, lt.annotated);
        return lt.onehot ? (tf.add(ce, tf.mul(diceLoss(tf, logits, lt.onehot), batch.diceWeight!)) as TF.Scalar) : ce;
      }, [...this.trainable.values()]);
    });
    disposeLabels();
    const loss = res.value.dataSync()[0]!;
    res.value.dispose();
    return { loss, grads: res.grads, stats, annotated: lt.annotated, outputVoxels };
  }

  private disposeStep(grads: Record<string, TF.Tensor> | null, stats: BnStat[]): void {
    for (const g of Object.values(grads ?? {})) g.dispose();
    for (const s of stats) {
      s.mean.dispose();
      s.variance.dispose();
    }
  }

  async trainStep(batch: TrainBatch): Promise<TrainStepResult> {
    this.check();
    assertCanTrain(this.loaded.backend);
    const tf = this.tf;
    const { loss, grads, stats, annotated, outputVoxels } = this.lossAndGrads(batch);
    try {
      if (!Number.isFinite(loss)) {
        throw new SliceformError('engine', `loss is not finite (${loss}); lower the learning rate or check the input normalisation`);
      }
      if (grads) {
        this.optim.apply(this.trainable, grads);
        tf.tidy(() => {
          for (const s of stats) {
            const rm = this.vars.get(`${s.name}.running_mean`)!;
            const rv = this.vars.get(`${s.name}.running_var`)!;
            const unbiased = s.count > 1 ? tf.mul(s.variance, s.count / (s.count - 1)) : s.variance;
            rm.assign(tf.add(tf.mul(rm, 1 - BN_MOMENTUM), tf.mul(s.mean, BN_MOMENTUM)));
            rv.assign(tf.add(tf.mul(rv, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
          }
        });
      }
    } finally {
      this.disposeStep(grads, stats);
    }
    // let the event loop breathe between synchronous steps
    await new Promise((r) => setImmediate(r));
    return { loss, annotatedVoxels: annotated, outputVoxels };
  }

  /**
   * Loss and parameter gradients for a batch without changing anything (BN running statistics included), in the
   * exported layout — the same call and result as the native model's `lossAndGrad` (gradient checks, oracle tests).
   */
  async lossAndGrad(batch: TrainBatch): Promise<TrainStepResult & { grads: NamedTensor[] }> {
    this.check();
    const { loss, grads, stats, annotated, outputVoxels } = this.lossAndGrads(batch);
    try {
      const out: NamedTensor[] = [];
      for (const s of this.specs) {
        if (!s.trainable) continue;
        const g = grads?.[this.vars.get(s.name)!.name];
        out.push({ name: s.name, shape: [...s.shape], data: g ? await this.fromTf(s, g) : new Float32Array(s.shape.reduce((a, b) => a * b, 1)) });
      }
      return { loss, annotatedVoxels: annotated, outputVoxels, grads: out };
    } finally {
      this.disposeStep(grads, stats);
    }
  }

  async predict(input: Float32Array, inputShape: number[]): Promise<Float32Array> {
    this.check();
    const tf = this.tf;
    this.checkInput(input, inputShape);
    const probs = tf.tidy(() => {
      const x = this.inputTensor(input, inputShape);
      const logits = forward(tf, this.config, this.vars, x, { batchStats: this.config.batchNorm && this.config.bnAtTest === 'batch' });
      const p = tf.softmax(logits, -1);
      return tf.transpose(p, this.config.dims === 3 ? [0, 4, 1, 2, 3] : [0, 3, 1, 2]);
    });
    const d = (await probs.data()) as Float32Array;
    probs.dispose();
    return d;
  }

  setLearningRate(lr: number): void {
    if (!(lr > 0) || !Number.isFinite(lr)) throw new SliceformError('bad-input', `learning rate must be a positive number, got ${lr}`);
    this.optim.lr = lr;
  }

  async exportParams(): Promise<NamedTensor[]> {
    this.check();
    const out: NamedTensor[] = [];
    for (const s of this.specs) out.push({ name: s.name, shape: [...s.shape], data: await this.fromTf(s, this.vars.get(s.name)!) });
    return out;
  }

  async importParams(params: NamedTensor[]): Promise<void> {
    this.check();
    const byName = new Map(params.map((p) => [p.name, p]));
    const known = new Set(this.specs.map((s) => s.name));
    const unknown = params.filter((p) => !known.has(p.name)).map((p) => p.name);
    if (unknown.length) {
      throw new SliceformError('bad-input', `importParams: unknown parameter(s) for ${describeConfig(this.config)}: ${unknown.slice(0, 5).join(', ')}`);
    }
    // validate everything before assigning anything
    for (const s of this.specs) {
      const p = byName.get(s.name);
      if (!p) throw new SliceformError('bad-input', `importParams: missing parameter ${s.name} (shape [${s.shape.join(', ')}])`);
      const n = s.shape.reduce((a, b) => a * b, 1);
      if (p.shape.length !== s.shape.length || p.shape.some((v, i) => v !== s.shape[i]) || p.data.length !== n) {
        throw new SliceformError(
          'bad-input',
          `importParams: ${s.name} has shape [${p.shape.join(', ')}] (${p.data.length} values), expected [${s.shape.join(', ')}]`,
        );
      }
    }
    this.tf.tidy(() => {
      for (const s of this.specs) this.vars.get(s.name)!.assign(this.toTf(s, byName.get(s.name)!.data));
    });
  }

  async save(path: string): Promise<void> {
    this.check();
    const tensors = await this.exportParams();
    const slots = stateSlots(this.optimCfg);
    for (const s of this.specs) {
      if (!s.trainable) continue;
      const st = this.optim.state.get(s.name)!;
      for (let i = 0; i < slots.length; i++) {
        tensors.push({ name: `optim.${s.name}.${slots[i]}`, shape: [...s.shape], data: await this.fromTf(s, st[i]!) });
      }
    }
    await writeCheckpoint(path, { config: this.config, optim: this.optimCfg, lr: this.optim.lr, step: this.optim.step }, tensors);
  }

  async load(path: string): Promise<void> {
    this.check();
    const { header, tensors } = await readCheckpoint(path);
    if (!header.config || !sameConfig(header.config, this.config)) {
      throw new SliceformError(
        'bad-input',
        `checkpoint is for a different network (${header.config ? describeConfig(header.config) : 'no config'}) than this model (${describeConfig(this.config)})`,
        { file: path },
      );
    }
    const params = this.specs.map((s) => tensors.get(s.name)).filter((t): t is NamedTensor => !!t);
    try {
      await this.importParams(params);
    } catch (e) {
      throw new SliceformError('bad-input', (e as Error).message, { file: path, cause: e });
    }
    const slots = stateSlots(this.optimCfg);
    const sameOptim = header.optim?.optimizer === this.optimCfg.optimizer;
    this.tf.tidy(() => {
      for (const s of this.specs) {
        if (!s.trainable) continue;
        const st = this.optim.state.get(s.name)!;
        slots.forEach((slot, i) => {
          const t = sameOptim ? tensors.get(`optim.${s.name}.${slot}`) : undefined;
          st[i]!.assign(t ? this.toTf(s, t.data) : this.tf.zerosLike(st[i]!));
        });
      }
    });
    this.optim.step = sameOptim ? header.step : 0;
    if (sameOptim && header.lr > 0) this.optim.lr = header.lr;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
    this.trainable.clear();
    this.optim.dispose();
  }
}
