/**
 * The classical learner: multiscale features (./features.ts, skimage's stack) + a random forest
 * (./forest.ts) fitted on the annotated voxels of a sparse label volume. A preview within seconds for the live
 * loop (features once per image, then any plane in milliseconds) and an ensemble member / teacher for the
 * 3D U-Net. Pure TypeScript over typed arrays: imports only main/common.
 *
 *   const model = fitClassical(image, labels, { forest: { seed: 1 } });
 *   const plane = model.predictProba({ axis: 'z', index: 40 });   // K × Y × X probabilities
 *   const all = densifyClassical(image, labels);                   // K-channel volume + argmax labels
 */
import { SliceformError } from '../common/errors.js';
import type { Volume } from '../common/volume.js';
import { multiscaleFeatures, type FeatureDims, type FeatureOptions, type FeatureStack } from './features.js';
import { compileForest, predictChunk, trainForest, type CompiledForest, type Forest, type ForestOptions } from './forest.js';

export { multiscaleFeatures, skimageSigmas, type FeatureDims, type FeatureOptions, type FeatureStack } from './features.js';
export { trainForest, compileForest, predictForestInto, forestStats, type CompiledForest, type Forest, type ForestOptions, type TrainingSet } from './forest.js';

export interface ClassicalOptions {
  /** feature stack settings (default skimage's sigma 1..8, intensity + edges + texture) */
  features?: FeatureOptions;
  /** scale sigmas per axis from the image's voxel spacing (our improvement; default false = skimage's stack) */
  anisotropic?: boolean;
  /** forest settings (default the anchor's: 100 trees, depth 10, 5 % bootstrap, sqrt features, seed 0) */
  forest?: ForestOptions;
  /** classes 1..K (default: the largest label present) */
  numClasses?: number;
  /** features already computed for this image (same options), e.g. kept between live-loop refits */
  precomputed?: FeatureStack;
}

/** A whole volume, one plane named by the axis it is normal to ('z' = an xy plane), or a box [start, end). */
export type Region = { axis: 'z' | 'y' | 'x'; index: number } | { z: [number, number]; y: [number, number]; x: [number, number] };

export interface Probabilities {
  /** channel-planar K × voxels of `dims` (channel c - 1 = class c), x fastest */
  data: Float32Array;
  dims: FeatureDims;
  numClasses: number;
}

export interface ClassicalModel {
  numClasses: number;
  features: FeatureStack;
  forest: Forest;
  /** training voxels used */
  trainingVoxels: number;
  featureSeconds: number;
  fitSeconds: number;
  /** per-class probabilities of every voxel of the region (default the whole volume) */
  predictProba(region?: Region): Probabilities;
}

export interface ClassicalResult {
  /** K × N, channel c - 1 = class c */
  probabilities: Float32Array;
  /** argmax class 1..K per voxel (ties → the lower class) */
  labels: Uint8Array;
  numClasses: number;
  /** fraction of voxels predicted as each class 1..K (index 0 unused) */
  predictedFractions: number[];
  /** fraction of annotated voxels painted as each class 1..K (index 0 unused) */
  paintedFractions: number[];
  featureSeconds: number;
  fitSeconds: number;
  predictSeconds: number;
}

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

function dimsOf(image: Volume): FeatureDims {
  return { x: image.shape.x, y: image.shape.y, z: image.shape.z };
}

/** Features of a Volume (every channel), with the anisotropic option read from its spacing. */
export function volumeFeatures(image: Volume, opts: Pick<ClassicalOptions, 'features' | 'anisotropic'> = {}): FeatureStack {
  const d = dimsOf(image);
  const N = d.x * d.y * d.z;
  const C = image.shape.c;
  if (image.data.length < N * C) throw new SliceformError('bad-input', `image holds ${image.data.length} values, expected ${N * C} (${d.x}×${d.y}×${d.z}×${C})`, { file: image.source });
  const f: FeatureOptions = { ...opts.features };
  if (opts.anisotropic) f.spacing = { x: image.spacing.x, y: image.spacing.y, z: image.spacing.z };
  return multiscaleFeatures(image.data.length === N * C ? image.data : image.data.subarray(0, N * C), d, C, f);
}

/** Trains the forest on the annotated voxels (labels > 0) of `image`. */
export function fitClassical(image: Volume, labels: ArrayLike<number>, opts: ClassicalOptions = {}): ClassicalModel {
  const d = dimsOf(image);
  const N = d.x * d.y * d.z;
  if (labels.length !== N) throw new SliceformError('bad-input', `labels have ${labels.length} voxels, the image ${N} (${d.x}×${d.y}×${d.z})`, { file: image.source });
  let maxLabel = 0;
  let annotated = 0;
  for (let i = 0; i < N; i++) {
    const l = labels[i]!;
    if (l > 0) {
      annotated++;
      if (l > maxLabel) maxLabel = l;
    }
  }
  if (annotated === 0) throw new SliceformError('bad-input', 'no annotated voxels (every label is 0)', { file: image.source });
  const K = opts.numClasses ?? maxLabel;
  if (!(Number.isInteger(K) && K >= 1 && K <= 255)) throw new SliceformError('bad-input', `number of classes must be 1..255, got ${K}`);
  if (maxLabel > K) throw new SliceformError('bad-input', `label ${maxLabel} exceeds the ${K} classes`, { file: image.source });

  const t0 = now();
  const features = opts.precomputed ?? volumeFeatures(image, opts);
  if (features.dims.x !== d.x || features.dims.y !== d.y || features.dims.z !== d.z) throw new SliceformError('bad-input', 'precomputed features are for another volume shape');
  const t1 = now();
  const F = features.count;
  const values = new Float32Array(annotated * F);
  const y = new Uint8Array(annotated);
  let s = 0;
  for (let i = 0; i < N; i++) {
    const l = labels[i]!;
    if (l > 0) {
      y[s] = l;
      for (let f = 0; f < F; f++) values[f * annotated + s] = features.data[f * N + i]!;
      s++;
    }
  }
  const forest = trainForest({ values, n: annotated, numFeatures: F, labels: y, numClasses: K }, opts.forest);
  const t2 = now();
  const compiled = compileForest(forest);
  return {
    numClasses: K,
    features,
    forest,
    trainingVoxels: annotated,
    featureSeconds: opts.precomputed ? 0 : (t1 - t0) / 1000,
    fitSeconds: (t2 - t1) / 1000,
    predictProba: (region) => predictRegion(compiled, features, region),
  };
}

function regionBox(d: FeatureDims, region?: Region): { z: [number, number]; y: [number, number]; x: [number, number] } {
  if (!region) return { z: [0, d.z], y: [0, d.y], x: [0, d.x] };
  if ('axis' in region) {
    const n = d[region.axis];
    if (!(Number.isInteger(region.index) && region.index >= 0 && region.index < n)) throw new SliceformError('bad-input', `plane ${region.axis} = ${region.index} is outside 0..${n - 1}`);
    const box = { z: [0, d.z], y: [0, d.y], x: [0, d.x] } as { z: [number, number]; y: [number, number]; x: [number, number] };
    box[region.axis] = [region.index, region.index + 1];
    return box;
  }
  for (const a of ['z', 'y', 'x'] as const) {
    const [lo, hi] = region[a];
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi <= d[a] && lo < hi)) throw new SliceformError('bad-input', `region ${a} [${lo}, ${hi}) is outside 0..${d[a]}`);
  }
  return region;
}

/** Row-chunked prediction: chunks of ≤ 256 contiguous voxels, tree by tree (./forest.ts predictChunk). */
function predictRegion(cf: CompiledForest, features: FeatureStack, region?: Region): Probabilities {
  const d = features.dims;
  const box = regionBox(d, region);
  const rx = box.x[1] - box.x[0];
  const ry = box.y[1] - box.y[0];
  const rz = box.z[1] - box.z[0];
  const M = rx * ry * rz;
  const K = cf.numClasses;
  const out = new Float32Array(K * M);
  const N = d.x * d.y * d.z;
  const CH = 256;
  const acc = new Float64Array(K * CH);
  let o = 0;
  for (let z = box.z[0]; z < box.z[1]; z++)
    for (let y = box.y[0]; y < box.y[1]; y++) {
      const rowStart = (z * d.y + y) * d.x;
      for (let x0 = box.x[0]; x0 < box.x[1]; x0 += CH) {
        const cnt = Math.min(CH, box.x[1] - x0);
        acc.fill(0);
        predictChunk(cf, features.data, N, rowStart + x0, cnt, acc, CH);
        for (let c = 0; c < K; c++) for (let j = 0; j < cnt; j++) out[c * M + o + j] = acc[c * CH + j]!;
        o += cnt;
      }
    }
  return { data: out, dims: { x: rx, y: ry, z: rz }, numClasses: K };
}

/** argmax class (1..K) per voxel of channel-planar K × M probabilities; ties go to the lower class. */
export function argmaxClasses(prob: Float32Array, numClasses: number): Uint8Array {
  const M = prob.length / numClasses;
  const out = new Uint8Array(M).fill(1);
  const best = prob.slice(0, M);
  for (let c = 1; c < numClasses; c++)
    for (let i = 0; i < M; i++) {
      const p = prob[c * M + i]!;
      if (p > best[i]!) {
        best[i] = p;
        out[i] = c + 1;
      }
    }
  return out;
}

/**
 * Volume + sparse labels → K-channel probability volume (Float32, channel-planar like a Volume) and argmax
 * labels, with the timings and the predicted vs painted class fractions.
 */
export function densifyClassical(image: Volume, labels: ArrayLike<number>, opts: ClassicalOptions = {}): ClassicalResult {
  const model = fitClassical(image, labels, opts);
  const t0 = now();
  const p = model.predictProba();
  const t1 = now();
  const K = model.numClasses;
  const lab = argmaxClasses(p.data, K);
  const predicted = new Array<number>(K + 1).fill(0);
  for (const c of lab) predicted[c]!++;
  const painted = model.forest.classCounts.map((c) => c / model.trainingVoxels);
  painted[0] = 0;
  return {
    probabilities: p.data,
    labels: lab,
    numClasses: K,
    predictedFractions: predicted.map((c, i) => (i === 0 ? 0 : c / lab.length)),
    paintedFractions: painted,
    featureSeconds: model.featureSeconds,
    fitSeconds: model.fitSeconds,
    predictSeconds: (t1 - t0) / 1000,
  };
}
