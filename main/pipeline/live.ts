/**
 * The recipe's live session: the same training loop (main/training/trainer.ts) with a delta-aware sampler, plus
 * predictions of single planes with the newest weights between two steps (the app's live preview).
 *
 *  - full-resolution label changes (what the user painted or erased) are brought to the working resolution of
 *    the recipe (the block-majority rule of downsampleLabelVolume, recomputed only for the blocks a change
 *    touches) and handed to the trainer, which re-reads the annotation and favours tiles on the new paint
 *  - a preview predicts one plane at the working resolution: a region one voxel thick along the plane's normal,
 *    which the overlap-tile predictor (volume/predict.ts) surrounds with the network's context (mirrored at the
 *    borders), then brings it to the full-resolution grid by nearest neighbour. The decision is the network's
 *    argmax: the recipe's forest member and calibrated decision are fitted when the session stops (fitting the
 *    forest on every stroke costs seconds; docs/app.md), densify then uses them
 *  - annotated voxels of a predicted plane that the preview gets wrong become hot spots: the next tiles favour them
 */
import { join } from 'node:path';
import type { Model, NetConfig } from '../common/engine.js';
import { SliceformError } from '../common/errors.js';
import { readModelManifest, type ModelManifest } from '../inference/model-dir.js';
import type { CancelSignal } from '../common/progress.js';
import type { Plane } from '../common/api.js';
import { downsampleLabelBlocks, isIdentity, type Factors } from '../volume/resample.js';
import { predictRegion, sourceFromNormalised } from '../volume/predict.js';
import type { Vec3 } from '../volume/tiling.js';
import type { HotSpot } from '../training/sampler.js';
import type { LabelChange, LiveTraining, TrainInit } from '../training/trainer.js';
import type { TrainVolumeData } from '../training/augment.js';

/** A label change at full resolution: a box in voxel [x, y, z] (min inclusive, max exclusive), null = everything. */
export interface FullLabelChange {
  volume: number;
  box: { min: [number, number, number]; max: [number, number, number] } | null;
  /** the volume's current full-resolution annotation (x fastest) */
  labels: ArrayLike<number>;
}

/** One predicted plane, at full resolution in the API's plane layout (main/common/api.ts header). */
export interface PlanePrediction {
  width: number;
  height: number;
  /** class 1..K per pixel, u fastest */
  labels: Uint8Array;
  /** K x pixels, class-planar */
  probabilities: Float32Array;
}

/** A slab of the working-resolution volume, predicted: labels of [z0, z0 + depth) x Y x X (working grid). */
export interface SlabPrediction {
  z0: number;
  depth: number;
  /** working-resolution shape [z, y, x] */
  shape: Vec3;
  labels: Uint8Array;
  /** K x slab voxels */
  probabilities: Float32Array;
}

/** What the caller's `between` may do with the newest weights (the engine is idle while it runs). */
export interface LiveStep {
  iteration: number;
  /** true when label changes were taken in by the sampler just before */
  changed: boolean;
  factors: Factors;
  /** predicts one full-resolution plane of a training volume (and marks what it gets wrong as hot) */
  predictPlane(volume: number, plane: Plane, index: number): Promise<PlanePrediction>;
  /** predicts a z-slab of the working-resolution volume (coarse 3D preview) */
  predictSlab(volume: number, z0: number, depth: number): Promise<SlabPrediction>;
}

/** The app's side of a live session (main/services/live-session.ts). */
export interface RecipeLive {
  /** full-resolution label changes since the last call ([] = none) */
  takeChanges(): FullLabelChange[];
  /** runs between two training steps */
  between?(s: LiveStep): Promise<void>;
  /** share of tiles centred on new paint and on wrongly predicted paint (default 0.5) */
  hotShare?: number;
}

const AXIS: Record<Plane, 0 | 1 | 2> = { xy: 0, xz: 1, yz: 2 };

/**
 * Writes the working-resolution labels of the blocks a full-resolution box touches (the block-majority rule of
 * downsampleLabelVolume) and returns the working-resolution box [z, y, x].
 */
export function downsampleChange(
  full: ArrayLike<number>,
  fullShape: Vec3,
  low: Uint8Array | Uint16Array,
  lowShape: Vec3,
  f: Factors,
  box: FullLabelChange['box'],
): { min: Vec3; max: Vec3 } {
  const min: Vec3 = box
    ? [Math.floor(box.min[2] / f[0]), Math.floor(box.min[1] / f[1]), Math.floor(box.min[0] / f[2])]
    : [0, 0, 0];
  const max: Vec3 = box
    ? [
        Math.min(lowShape[0], Math.ceil(box.max[2] / f[0])),
        Math.min(lowShape[1], Math.ceil(box.max[1] / f[1])),
        Math.min(lowShape[2], Math.ceil(box.max[0] / f[2])),
      ]
    : [...lowShape];
  if (isIdentity(f)) {
    // the working grid is the full one: copy the box
    const [, Y, X] = fullShape;
    for (let z = min[0]; z < max[0]; z++)
      for (let y = min[1]; y < max[1]; y++) {
        const row = (z * Y + y) * X;
        for (let x = min[2]; x < max[2]; x++) low[row + x] = full[row + x]!;
      }
  } else downsampleLabelBlocks(full, fullShape, f, low, min, max);
  return { min, max };
}

/**
 * The trainer's LiveTraining for a recipe: `low` are the working-resolution label arrays the trainer was given
 * (written in place), `fullShapes` the full-resolution [z, y, x] of each volume.
 */
export function liveTraining(
  live: RecipeLive,
  o: {
    low: Array<Uint8Array | Uint16Array>;
    lowShapes: Vec3[];
    fullShapes: Vec3[];
    factors: Factors;
    numClasses: number;
    levels: number;
    padding: 'valid' | 'same';
    signal?: CancelSignal;
  },
): LiveTraining {
  const f = o.factors;
  const K = o.numClasses;
  let pendingHot: HotSpot[] = [];
  let model: Model | null = null;
  let vols: readonly TrainVolumeData[] = [];

  const predictLow = async (volume: number, origin: Vec3, size: Vec3) => {
    const v = vols[volume]!;
    const n = size[0] * size[1] * size[2];
    const labels = new Uint8Array(n);
    const probabilities = new Float32Array(K * n);
    const plane = size[1] * size[2];
    await predictRegion(
      model!,
      sourceFromNormalised(v.image, v.shape, v.channels),
      origin,
      size,
      {
        numClasses: K,
        levels: o.levels,
        padding: o.padding,
        probabilities: true,
        maxTileInputVoxels: 1_500_000,
        signal: o.signal,
      },
      (slab) => {
        const off = slab.z0 * plane;
        const sn = slab.depth * plane;
        labels.set(slab.labels as Uint8Array, off);
        for (let k = 0; k < K; k++)
          probabilities.set(slab.probabilities!.subarray(k * sn, (k + 1) * sn), k * n + off);
      },
    );
    return { labels, probabilities };
  };

  const predictPlane = async (volume: number, plane: Plane, index: number): Promise<PlanePrediction> => {
    const ls = o.lowShapes[volume]!;
    const fs = o.fullShapes[volume]!;
    const axis = AXIS[plane];
    const li = Math.min(ls[axis] - 1, Math.floor(index / f[axis]));
    const origin: Vec3 = [0, 0, 0];
    const size: Vec3 = [...ls];
    origin[axis] = li;
    size[axis] = 1;
    const low = await predictLow(volume, origin, size);
    // plane axes (u, v) in [z, y, x] terms: xy -> (x, y), xz -> (x, z), yz -> (y, z)
    const [ua, va] = plane === 'xy' ? [2, 1] : plane === 'xz' ? [2, 0] : [1, 0];
    const lw = ls[ua]!;
    const width = fs[ua]!;
    const height = fs[va]!;
    const N = width * height;
    const n = lw * ls[va]!;
    const labels = new Uint8Array(N);
    const probabilities = new Float32Array(K * N);
    const lu = Int32Array.from({ length: width }, (_, u) => Math.min(lw - 1, Math.floor(u / f[ua]!)));
    for (let vv = 0; vv < height; vv++) {
      const lrow = Math.min(ls[va]! - 1, Math.floor(vv / f[va]!)) * lw;
      for (let u = 0; u < width; u++) {
        const j = lrow + lu[u]!;
        const i = vv * width + u;
        labels[i] = low.labels[j]!;
        for (let k = 0; k < K; k++) probabilities[k * N + i] = low.probabilities[k * n + j]!;
      }
    }
    // annotated voxels of this plane (working resolution) the prediction gets wrong: favoured by the next tiles
    const lab = vols[volume]!.labels;
    const [, LY, LX] = ls;
    const wrong: number[] = [];
    for (let vv = 0; vv < ls[va]!; vv++)
      for (let u = 0; u < lw; u++) {
        const c: Vec3 = [0, 0, 0];
        c[axis] = li;
        c[ua] = u;
        c[va] = vv;
        const g = (c[0] * LY + c[1]) * LX + c[2];
        const t = lab[g]!;
        if (t && t !== low.labels[vv * lw + u]) wrong.push(g);
      }
    if (wrong.length) pendingHot.push({ volume, voxels: Uint32Array.from(wrong), axis, index: li });
    return { width, height, labels, probabilities };
  };

  const predictSlab = async (volume: number, z0: number, depth: number): Promise<SlabPrediction> => {
    const ls = o.lowShapes[volume]!;
    const d = Math.max(1, Math.min(depth, ls[0] - z0));
    const low = await predictLow(volume, [z0, 0, 0], [d, ls[1], ls[2]]);
    return { z0, depth: d, shape: [...ls], ...low };
  };

  return {
    hotShare: live.hotShare ?? 0.75,
    async sync() {
      const changes: LabelChange[] = [];
      for (const c of live.takeChanges()) {
        const b = downsampleChange(
          c.labels,
          o.fullShapes[c.volume]!,
          o.low[c.volume]!,
          o.lowShapes[c.volume]!,
          f,
          c.box,
        );
        changes.push({ volume: c.volume, ...b });
      }
      const hot = pendingHot;
      pendingHot = [];
      return { changes, hot };
    },
    async between(s) {
      if (!live.between) return;
      model = s.model;
      vols = s.volumes;
      try {
        await live.between({
          iteration: s.iteration,
          changed: s.changed,
          factors: f,
          predictPlane,
          predictSlab,
        });
      } finally {
        model = null;
      }
    },
  };
}

/**
 * Warm start: the weights (with their optimizer state), normalisation and iteration count of a model folder, when
 * it fits the plan (same network and working resolution); otherwise a bad-input error saying what differs.
 */
export async function warmStartFrom(
  dir: string,
  plan: { net: NetConfig; downsample: Factors },
): Promise<TrainInit & { manifest: ModelManifest }> {
  const manifest = await readModelManifest(dir);
  const a = manifest.net;
  const b = plan.net;
  const diffs: string[] = [];
  if (a.numClasses !== b.numClasses) diffs.push(`${a.numClasses} classes, now ${b.numClasses}`);
  if (a.inChannels !== b.inChannels) diffs.push(`${a.inChannels} channel(s), now ${b.inChannels}`);
  if (
    a.levels !== b.levels ||
    a.baseFilters !== b.baseFilters ||
    a.padding !== b.padding ||
    a.batchNorm !== b.batchNorm ||
    a.dims !== b.dims
  )
    diffs.push(`network ${a.levels} levels x ${a.baseFilters} filters, now ${b.levels} x ${b.baseFilters}`);
  if (manifest.downsample.join(',') !== plan.downsample.join(','))
    diffs.push(`working resolution ${manifest.downsample.join('x')}, now ${plan.downsample.join('x')}`);
  if (diffs.length)
    throw new SliceformError('bad-input', `cannot continue from this model: ${diffs.join('; ')}`, {
      file: dir,
    });
  return {
    manifest,
    weights: join(dir, manifest.weights),
    normalisation: manifest.normalisation,
    iteration: manifest.training?.iterations ?? 0,
    lastLoss: manifest.training?.finalLoss ?? null,
  };
}
