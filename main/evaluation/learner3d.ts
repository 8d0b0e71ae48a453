/**
 * The 3D U-Net as a protocol `Learner`: the project's training loop (main/training/trainer.ts, sparse labels,
 * thin tiles, augmentation) on the fold's training slices, then overlap-tile prediction of whole volumes
 * (main/inference/segment.ts). The protocol holds slices out itself, so the trainer's automatic hold-out is off.
 */
import type { Engine } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { SliceformError } from '../common/errors.js';
import type { StepInfo } from '../training/trainer.js';
import { segmentVolume } from '../inference/segment.js';
import { isIdentity } from '../volume/resample.js';
import { segmentOptionsFor, trainRecipe } from '../pipeline/recipe.js';
import type { RecipeSettings } from '../pipeline/settings.js';
import type { EvalVolume, Learner, Predictor, RunContext, TrainEntry } from './protocols.js';

export interface Learner3DOptions {
  engine: Engine;
  /**
   * the recipe's settings (main/pipeline): network, budget, working resolution, class weights, decision — the
   * same as densify's; the protocol holds slices out itself, so the recipe's own hold-out is forced off
   */
  settings: RecipeSettings;
  /** number of classes (the protocol's labels may not show all of them in a fold) */
  numClasses: number;
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
  return {
    async fit(train: TrainEntry[], ctx: RunContext): Promise<Predictor> {
      if (train.length === 0)
        throw new SliceformError('bad-input', `${ctx.label}: no annotated slices to train on`);
      const t0 = Date.now();
      const res = await trainRecipe(
        opts.engine,
        train.map((e) => ({ image: e.volume.image, labels: labelVolumeFor(e.volume, e.labels) })),
        { ...opts.settings, holdout: 'none' },
        {
          numClasses: opts.numClasses,
          signal: ctx.signal,
          onStep: opts.onStep ? (s) => opts.onStep!(ctx.label, s) : undefined,
        },
      );
      const f = res.plan.downsample;
      if (!isIdentity(f))
        ctx.log?.(
          `${ctx.label}: training and predicting at reduced resolution (downsampled ${f.join('x')}, z,y,x)`,
        );
      if (res.cancelled) {
        res.model.dispose();
        throw new SliceformError('cancelled', 'cancelled');
      }
      ctx.log?.(
        `${ctx.label}: 3D training ${res.summary.iterations} iterations in ${((Date.now() - t0) / 1000).toFixed(0)} s, loss ${res.summary.finalLoss?.toFixed(4)}`,
      );
      const { model } = res;
      const seg = segmentOptionsFor(res);
      const cache = new Map<EvalVolume, Uint8Array>();
      return {
        iterations: res.summary.iterations,
        async predict(v: EvalVolume, _planes, pctx: RunContext): Promise<Uint8Array> {
          // Whole volume: for more than a couple of slices this is cheaper than per-slice regions, whose tiles
          // pay the network's context around a one-voxel-thick output.
          let out = cache.get(v);
          if (out) return out;
          const res = await segmentVolume(model, v.image, {
            ...seg,
            testTimeFlips: opts.settings.flips,
            collect: true,
            signal: pctx.signal,
          });
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
