/**
 * The 3D U-Net as a protocol `Learner`: the project's training loop (main/training/trainer.ts, sparse labels,
 * thin tiles, augmentation) on the fold's training slices, then overlap-tile prediction of whole volumes
 * (main/inference/segment.ts). The protocol holds slices out itself, so the trainer's automatic hold-out is off.
 */
import type { Engine, ModelOptions, NetConfig, OptimConfig } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { SliceformError } from '../common/errors.js';
import { trainModel, type StepInfo } from '../training/trainer.js';
import { segmentVolume } from '../inference/segment.js';
import { autoDownsample, downsampleLabelVolume, downsampleVolume, isIdentity, type Factors } from '../volume/resample.js';
import type { EvalVolume, Learner, Predictor, RunContext, TrainEntry } from './protocols.js';

export interface Learner3DOptions {
  engine: Engine;
  net: NetConfig;
  optim: OptimConfig;
  modelOptions?: ModelOptions;
  minutes?: number;
  iterations?: number;
  seed?: number;
  /** in-plane output size of thin training tiles and cube tile size (the preset's, see training/presets.ts) */
  planeOut?: number;
  cubeOut?: number;
  /**
   * Work at reduced resolution as densify does: 'auto' (xy by round(z/xy spacing), at most 2, when z is
   * coarser), or explicit [z, y, x] factors. Labels are downsampled after the held-out slices were removed;
   * predictions are interpolated back to full resolution and scored there.
   */
  downsample?: Factors | 'auto';
  /** test-time mirroring in prediction (4x the prediction time) */
  testTimeFlips?: boolean;
  onStep?: (label: string, s: StepInfo) => void;
}

/** A label volume wrapping protocol labels, as the trainer takes them. */
export function labelVolumeFor(v: EvalVolume, labels: Uint8Array): Volume {
  return {
    data: labels,
    dtype: 'uint8',
    shape: { x: v.dims.x, y: v.dims.y, z: v.dims.z, c: 1, t: 1 },
    spacing: v.image.spacing,
    channelNames: ['labels'],
    format: 'memory',
    source: `${v.name} (protocol labels)`,
    timepoint: 0,
    metadata: {},
  };
}

export function create3DLearner(opts: Learner3DOptions): Learner {
  if (opts.net.dims !== 3) throw new SliceformError('bad-input', 'the 3D learner needs a 3D network config');
  return {
    async fit(train: TrainEntry[], ctx: RunContext): Promise<Predictor> {
      if (train.length === 0) throw new SliceformError('bad-input', `${ctx.label}: no annotated slices to train on`);
      const t0 = Date.now();
      const f: Factors = opts.downsample === 'auto' || opts.downsample === undefined ? autoDownsample(train[0]!.volume.image.spacing) : opts.downsample;
      if (!isIdentity(f)) ctx.log?.(`${ctx.label}: training and predicting at reduced resolution (downsampled ${f.join('x')}, z,y,x)`);
      const res = await trainModel(
        opts.engine,
        train.map((e) => ({ image: downsampleVolume(e.volume.image, f), labels: downsampleLabelVolume(labelVolumeFor(e.volume, e.labels), f) })),
        {
          net: opts.net,
          optim: opts.optim,
          modelOptions: opts.modelOptions,
          minutes: opts.minutes,
          iterations: opts.iterations,
          seed: opts.seed,
          planeOut: opts.planeOut,
          cubeOut: opts.cubeOut,
          holdout: 'none',
          signal: ctx.signal,
          onStep: opts.onStep ? (s) => opts.onStep!(ctx.label, s) : undefined,
        },
      );
      if (res.cancelled) {
        res.model.dispose();
        throw new SliceformError('cancelled', 'cancelled');
      }
      ctx.log?.(
        `${ctx.label}: 3D training ${res.summary.iterations} iterations in ${((Date.now() - t0) / 1000).toFixed(0)} s, loss ${res.summary.finalLoss?.toFixed(4)}`,
      );
      const { model, normalisation } = res;
      const cache = new Map<EvalVolume, Uint8Array>();
      return {
        iterations: res.summary.iterations,
        async predict(v: EvalVolume, _planes, pctx: RunContext): Promise<Uint8Array> {
          // Whole volume: for more than a couple of slices this is cheaper than per-slice regions, whose tiles
          // pay the network's context around a one-voxel-thick output.
          let out = cache.get(v);
          if (out) return out;
          const res = await segmentVolume(model, v.image, { normalisation, downsample: f, testTimeFlips: opts.testTimeFlips, collect: true, signal: pctx.signal });
          const result = res.labels!;
          out = result;
          cache.set(v, out);
          return out;
        },
        dispose() {
          model.dispose();
          cache.clear();
        },
      };
    },
  };
}
