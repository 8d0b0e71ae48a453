/**
 * File-level helpers shared by densify / train / segment (and batch): reading label volumes with clear errors,
 * converting a ground truth to classes, and streaming a segmentation (and probabilities) to ImageJ TIFFs or
 * OME-Zarr stores (by the output's name: NAME.zarr / NAME.ome.zarr).
 */
import { readVolume } from '../io/index.js';
import { labelDType } from '../io/writer.js';
import { DTYPE_BYTES, type Volume } from '../common/volume.js';
import { SliceformError } from '../common/errors.js';
import type { CancelSignal, ProgressCallback } from '../common/progress.js';
import type { Model } from '../common/engine.js';
import type { Normalisation } from '../volume/preprocess.js';
import { SlabTiffWriter } from './slab-writer.js';
import { isZarrOutputPath, SlabZarrWriter, slabZarrMaxBytes, type SlabZarrOptions } from '../io/zarr/slab.js';
import { fitCheck, type FitInput } from './stream.js';
import { segmentVolume, type SegmentOptions, type SegmentResult } from './segment.js';

/** Reads a label volume (integer, one channel, 0 = unannotated) and checks it against its image. */
export async function readLabels(path: string, image: Volume | null, dataset?: string, onWarning?: (w: string) => void): Promise<Volume> {
  let v = await readVolume(path, dataset ? { dataset } : {});
  if (!/int/.test(v.dtype)) throw new SliceformError('bad-input', `labels must be integers (0 = unannotated, 1..K = classes), found ${v.dtype}`, { file: path });
  if (v.shape.c !== 1 && v.shape.z === 1 && image && image.shape.z === v.shape.c && image.shape.x === v.shape.x && image.shape.y === v.shape.y) {
    // tifffile's imwrite(imagej=True) of a 3D array writes channels=N: the planes are the image's slices
    // (channel-planar c -> z with one slice has exactly the z-stack's layout)
    v = { ...v, shape: { ...v.shape, z: v.shape.c, c: 1 }, channelNames: ['labels'] };
    onWarning?.(`${path}: its metadata says ${v.shape.z} channels of one slice; read as ${v.shape.z} slices, as the image has (write 3D labels with axes ZYX, e.g. tifffile imwrite(..., imagej=True, metadata={'axes': 'ZYX'}))`);
  }
  if (v.shape.c !== 1) {
    const hint =
      v.shape.z === 1 && image && image.shape.z !== v.shape.c
        ? ` (its ${v.shape.c} planes are marked as channels, and the image has ${image.shape.z} slices, not ${v.shape.c}; write 3D labels with axes ZYX, e.g. tifffile imwrite(..., imagej=True, metadata={'axes': 'ZYX'}))`
        : '';
    throw new SliceformError('bad-input', `labels must have one channel, found ${v.shape.c}${hint}`, { file: path });
  }
  if (image && (image.shape.x !== v.shape.x || image.shape.y !== v.shape.y || image.shape.z !== v.shape.z)) {
    throw new SliceformError('bad-input', `labels are ${v.shape.x}x${v.shape.y}x${v.shape.z} (x*y*z) but the image ${image.source} is ${image.shape.x}x${image.shape.y}x${image.shape.z}`, { file: path });
  }
  for (let i = 0; i < v.data.length; i++) {
    if (v.data[i]! < 0) throw new SliceformError('bad-input', `negative label ${v.data[i]} at voxel ${i}`, { file: path });
  }
  return v;
}

/**
 * A ground truth as classes 1..K. 'instances' (label > 0 -> class 2, else 1) is used when asked, or in 'auto'
 * mode when the truth holds values above `numClasses` (an instance labelling such as the plant nuclei).
 */
export function truthToClasses(truth: ArrayLike<number>, numClasses: number, mode: 'auto' | 'instances' | 'classes' = 'auto'): { classes: Uint8Array; mode: 'instances' | 'classes' } {
  let max = 0;
  let hasZero = false;
  for (let i = 0; i < truth.length; i++) {
    const v = truth[i]!;
    if (v > max) max = v;
    if (v === 0) hasZero = true;
  }
  const m = mode === 'auto' ? (max > numClasses || (hasZero && numClasses === 2 && max <= 1) ? 'instances' : 'classes') : mode;
  // classes are returned as uint8: refuse what would wrap (class 281 -> 25) instead of scoring garbage
  if (m === 'classes' && max > 255) throw new SliceformError('bad-input', `the ground truth holds class ${max}; at most 255 classes are supported (use instances mode for instance labels)`);
  const out = new Uint8Array(truth.length);
  if (m === 'instances') for (let i = 0; i < truth.length; i++) out[i] = truth[i]! > 0 ? 2 : 1;
  else for (let i = 0; i < truth.length; i++) out[i] = truth[i]!;
  return { classes: out, mode: m };
}

export interface WriteSegmentationOptions {
  normalisation: Normalisation;
  downsample?: [number, number, number];
  out: string;
  probabilitiesOut?: string;
  testTimeFlips?: boolean;
  maxTileInputVoxels?: number;
  /** calibrated decision weights (model manifest's calibration) */
  decisionWeights?: number[];
  /** a second learner mixed into the network's probabilities (main/pipeline/ensemble.ts) */
  mixer?: SegmentOptions['mixer'];
  /** keep the labels in memory too (for scoring) */
  collect?: boolean;
  signal?: CancelSignal;
  onProgress?: ProgressCallback;
  /** what the disk check measures against (tests) */
  fitEnv?: FitInput['env'];
}

/** Segments a stack and streams labels (uint8, uint16 above 255 classes) and optionally probabilities (float32, K channels) to disk. */
export async function segmentToFiles(model: Model, image: Volume, o: WriteSegmentationOptions): Promise<SegmentResult> {
  const { x: W, y: H, z: D } = image.shape;
  const K = model.config.numClasses;
  // uint16 labels when K > 255: uint8 would wrap class 281 to 25 (issue 14, item 13)
  // NAME.zarr / NAME.ome.zarr outputs are OME-Zarr stores (a label image; probabilities one channel per class)
  const zarr = (channels: number, dtype: 'uint8' | 'uint16' | 'float32', label: boolean): SlabZarrOptions => ({
    width: W,
    height: H,
    depth: D,
    channels,
    dtype,
    spacing: image.spacing,
    label,
    channelNames: label ? undefined : Array.from({ length: K }, (_, k) => `class${k + 1}`),
  });
  const slabWriter = (path: string, channels: number, dtype: 'uint8' | 'uint16' | 'float32', label: boolean) =>
    isZarrOutputPath(path)
      ? SlabZarrWriter.create(path, zarr(channels, dtype, label))
      : SlabTiffWriter.create(path, { width: W, height: H, depth: D, channels, dtype, spacing: image.spacing, displayRange: label ? [0, K] : [0, 1] });
  // the outputs must fit on their disks before the prediction starts (the stack is in memory already)
  const need = (path: string, channels: number, dtype: 'uint8' | 'uint16' | 'float32', label: boolean) =>
    isZarrOutputPath(path)
      ? { path, bytes: slabZarrMaxBytes(zarr(channels, dtype, label)), upTo: 'OME-Zarr: whole chunks uncompressed, pyramid included' }
      : { path, bytes: W * H * D * channels * DTYPE_BYTES[dtype] };
  await fitCheck({
    outputs: [need(o.out, 1, labelDType(K), true), ...(o.probabilitiesOut ? [need(o.probabilitiesOut, K, 'float32', false)] : [])],
    env: o.fitEnv,
  });
  const lw = await slabWriter(o.out, 1, labelDType(K), true);
  let pw: SlabTiffWriter | SlabZarrWriter | null = null;
  try {
    if (o.probabilitiesOut) pw = await slabWriter(o.probabilitiesOut, K, 'float32', false);
    const res = await segmentVolume(model, image, {
      normalisation: o.normalisation,
      downsample: o.downsample,
      testTimeFlips: o.testTimeFlips,
      maxTileInputVoxels: o.maxTileInputVoxels,
      decisionWeights: o.decisionWeights,
      mixer: o.mixer,
      probabilities: Boolean(pw),
      collect: o.collect ?? false,
      signal: o.signal,
      onProgress: o.onProgress,
      onSlab: async (slab) => {
        await lw.writeSlab(slab.labels, slab.depth);
        if (pw && slab.probabilities) await pw.writeSlab(slab.probabilities, slab.depth);
      },
    });
    await lw.close();
    if (pw) await pw.close();
    return res;
  } catch (e) {
    await lw.abort();
    if (pw) await pw.abort();
    throw e;
  }
}
