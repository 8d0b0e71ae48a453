/**
 * segmentVolume: a trained model applied to a whole stack (the reusable entry for `segment`, `densify` and
 * batch segmentation). Overlap tiles with mirror padding, streamed in z-slabs to an optional sink; argmax labels
 * 1..K and, on request, per-class probabilities.
 */
import type { Model } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { SliceformError } from '../common/errors.js';
import type { CancelSignal, ProgressCallback } from '../common/progress.js';
import type { Normalisation } from '../training/preprocess.js';
import { predictRegion, sourceFromVolume, type PredictResult, type Slab } from './predict.js';

export interface SegmentOptions {
  normalisation: Normalisation;
  /** tile input budget in voxels (default 3 M) */
  maxTileInputVoxels?: number;
  testTimeFlips?: boolean;
  probabilities?: boolean;
  /** receives every finished z-slab in order (write it to disk here); without a sink labels are collected */
  onSlab?: (slab: Slab) => void | Promise<void>;
  /** collect the full label volume in memory (default: true when there is no onSlab) */
  collect?: boolean;
  signal?: CancelSignal;
  onProgress?: ProgressCallback;
}

export interface SegmentResult extends PredictResult {
  /** Z*Y*X labels (when collected) */
  labels?: Uint8Array;
}

export async function segmentVolume(model: Model, volume: Volume, opts: SegmentOptions): Promise<SegmentResult> {
  const net = model.config;
  if (volume.shape.c !== net.inChannels) {
    throw new SliceformError('bad-input', `the model expects ${net.inChannels} channel(s), the stack has ${volume.shape.c}`, { file: volume.source });
  }
  const src = sourceFromVolume(volume, opts.normalisation);
  const { x: X, y: Y, z: Z } = volume.shape;
  const collect = opts.collect ?? !opts.onSlab;
  const labels = collect ? new Uint8Array(X * Y * Z) : undefined;
  const res = await predictRegion(
    model,
    src,
    [0, 0, 0],
    [Z, Y, X],
    {
      numClasses: net.numClasses,
      levels: net.levels,
      padding: net.padding,
      maxTileInputVoxels: opts.maxTileInputVoxels,
      testTimeFlips: opts.testTimeFlips,
      probabilities: opts.probabilities,
      signal: opts.signal,
      onProgress: opts.onProgress,
    },
    async (slab) => {
      labels?.set(slab.labels, slab.z0 * Y * X);
      await opts.onSlab?.(slab);
    },
  );
  return { ...res, ...(labels ? { labels } : {}) };
}
