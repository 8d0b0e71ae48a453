/**
 * The recipe's second learner: a random forest on multiscale features (main/classical), fitted on the same
 * painted voxels as the U-Net at the same working resolution, on the same normalised intensities. Its class
 * probabilities are mixed into the network's, p = (1 - a) p_cnn + a p_forest, with the weight a chosen on the
 * held-out blocks of the paint (holdout.ts). Features are computed z-slab by z-slab with a halo of the largest
 * kernel, so memory is bounded by the slab, not by the volume. The forest is saved beside the weights
 * (forest.bin) so `segment` repeats the same decision on other stacks.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import {
  RECOMMENDED_FOREST,
  compileForest,
  featureBytesPerVoxel,
  multiscaleFeatures,
  predictForestInto,
  trainForest,
  type FeatureOptions,
  type Forest,
} from '../classical/index.js';
import { SliceformError } from '../common/errors.js';

/** The anchor's feature stack (scikit-image multiscale_basic_features, sigma 1..8, intensity, edges, texture). */
export const ENSEMBLE_FEATURES: FeatureOptions = {
  sigmaMin: 1,
  sigmaMax: 8,
  intensity: true,
  edges: true,
  texture: true,
};

export interface NormalisedImage {
  /** channel-planar float32, x fastest, already normalised as the network sees it */
  data: Float32Array;
  /** [Z, Y, X] */
  shape: [number, number, number];
  channels: number;
}

/** Voxels per feature slab (with its halo): 20 float32 features per voxel and channel, ~320 MB per channel. */
const MAX_SLAB_VOXELS = 4_000_000;

/**
 * Feature stacks of whole images, by an owner object (the data array of the stack they were computed from, so
 * they go when the stack goes) and a key (working resolution, normalisation): training computes them, the
 * densify that follows in the same process (the app's compute process, the CLI) reuses them.
 */
const featureCache = new WeakMap<object, Map<string, Float32Array>>();

export interface FeatureCacheKey {
  owner: object;
  key: string;
}

/** How far (voxels) the features of a voxel reach: feature slabs carry this halo, streamed segment too. */
export function featureHalo(o: FeatureOptions = ENSEMBLE_FEATURES): number {
  return halo(o);
}

function halo(o: FeatureOptions): number {
  return Math.ceil((o.truncate ?? 4) * (o.sigmaMax ?? 8)) + 2;
}

/** The planes of the z-slabs forEachFeatureSlab computes features for at once (inner planes + halo, clamped). */
function slabPlanes(Z: number, plane: number, h: number, maxSlabVoxels: number): { depth: number; planes: number } {
  const depth = Z * plane <= maxSlabVoxels ? Z : Math.max(2 * h, Math.floor(maxSlabVoxels / plane) - 2 * h);
  return { depth, planes: Math.min(Z, depth + 2 * h) };
}

/**
 * Peak bytes of the forest member's feature stack for an image of this shape (one z-slab with its halo, all
 * planes of it: slabs are whole planes, so a wide plane makes a slab of up to 2 halos + 2 halos deep).
 */
export function forestFeatureBytes(shape: { x: number; y: number; z: number }, channels: number, o: FeatureOptions = ENSEMBLE_FEATURES, maxSlabVoxels = MAX_SLAB_VOXELS): number {
  const plane = shape.x * shape.y;
  const { planes } = slabPlanes(shape.z, plane, halo(o), maxSlabVoxels);
  return planes * plane * featureBytesPerVoxel(o, channels, shape.z === 1);
}

/** The most the forest member's features may take before the recipe falls back to the working resolution. */
export function forestFeatureBudget(totalMemory: number): number {
  return Math.min(4 * 2 ** 30, totalMemory / 4);
}

/** Calls `fn` with feature stacks of z-slabs (with halo) covering the image; fn gets the slab's inner range. */
function forEachFeatureSlab(
  img: NormalisedImage,
  o: FeatureOptions,
  maxSlabVoxels: number,
  fn: (features: Float32Array, slabN: number, z0: number, z1: number, innerOffset: number) => void,
  cache?: FeatureCacheKey,
): void {
  const [Z, Y, X] = img.shape;
  const plane = Y * X;
  const h = halo(o);
  // slabs at least twice as deep as their halo, so the halo does not dominate the work
  const { depth } = slabPlanes(Z, plane, h, maxSlabVoxels);
  for (let z0 = 0; z0 < Z; z0 += depth) {
    const z1 = Math.min(Z, z0 + depth);
    const a = Math.max(0, z0 - h);
    const b = Math.min(Z, z1 + h);
    const n = (b - a) * plane;
    const N = Z * plane;
    let data: Float32Array;
    if (a === 0 && b === Z) data = img.data;
    else {
      data = new Float32Array(img.channels * n);
      for (let c = 0; c < img.channels; c++)
        data.set(img.data.subarray(c * N + a * plane, c * N + b * plane), c * n);
    }
    const whole = a === 0 && b === Z;
    const ck = cache ? `${cache.key}|${JSON.stringify(o)}` : '';
    let feat = whole && cache ? featureCache.get(cache.owner)?.get(ck) : undefined;
    if (!feat) {
      feat = multiscaleFeatures(data, { z: b - a, y: Y, x: X }, img.channels, o).data;
      if (whole && cache) {
        const m = featureCache.get(cache.owner) ?? new Map<string, Float32Array>();
        m.clear(); // one stack per source: a new normalisation or resolution replaces the old one
        m.set(ck, feat);
        featureCache.set(cache.owner, m);
      }
    }
    fn(feat, n, z0, z1, (z0 - a) * plane);
  }
}

/**
 * Painted voxels the forest is fitted on at most (evenly strided beyond): 20 float features each, 160 MB. At full
 * resolution a painting of three 2048² planes would otherwise hold 12 M voxels (1 GB of features); the shared
 * tasks paint 12k–40k voxels and are not strided.
 */
export const MAX_FOREST_SAMPLES = 2_000_000;

/** Fits the forest on the labelled voxels (1..K) of normalised images (full or working resolution). */
export function fitEnsembleForest(
  images: NormalisedImage[],
  labelSets: ArrayLike<number>[],
  K: number,
  seed: number,
  o: FeatureOptions = ENSEMBLE_FEATURES,
  caches: (FeatureCacheKey | undefined)[] = [],
  maxSamples = MAX_FOREST_SAMPLES,
): Forest {
  let all = 0;
  for (const l of labelSets) for (let i = 0; i < l.length; i++) if (l[i]) all++;
  if (all === 0) throw new SliceformError('bad-input', 'no annotated voxels for the forest');
  const stride = Math.ceil(all / maxSamples);
  const n = Math.ceil(all / stride);
  let seen = 0;
  let values: Float32Array | null = null;
  let F = 0;
  const y = new Uint8Array(n);
  let s = 0;
  for (let v = 0; v < images.length; v++) {
    const img = images[v]!;
    const lab = labelSets[v]!;
    const plane = img.shape[1] * img.shape[2];
    forEachFeatureSlab(
      img,
      o,
      MAX_SLAB_VOXELS,
      (feat, slabN, z0, z1, inner) => {
        F = feat.length / slabN;
        values ??= new Float32Array(n * F);
        for (let i = z0 * plane, j = inner; i < z1 * plane; i++, j++) {
          const l = lab[i]!;
          if (!l || seen++ % stride !== 0) continue;
          y[s] = l;
          for (let f = 0; f < F; f++) values![f * n + s] = feat[f * slabN + j]!;
          s++;
        }
      },
      caches[v],
    );
  }
  // a quarter of the paint per tree: better than the anchor's 5 % on all six shared task/k cells (so also by
  // leave-one-task-out), docs/classical.md
  return trainForest(
    { values: values!, n, numFeatures: F, labels: y, numClasses: K },
    { ...RECOMMENDED_FOREST, seed },
  );
}

/** Class probabilities (class-planar K x N) of the forest for a normalised working-resolution image. */
export function forestProbabilities(
  img: NormalisedImage,
  forest: Forest,
  o: FeatureOptions = ENSEMBLE_FEATURES,
  maxSlabVoxels = MAX_SLAB_VOXELS,
  cache?: FeatureCacheKey,
): Float32Array {
  const [Z, Y, X] = img.shape;
  const N = Z * Y * X;
  const plane = Y * X;
  const K = forest.numClasses;
  const cf = compileForest(forest);
  const out = new Float32Array(K * N);
  forEachFeatureSlab(
    img,
    o,
    maxSlabVoxels,
    (feat, slabN, z0, z1, inner) => {
      if (feat.length / slabN !== forest.numFeatures)
        throw new SliceformError(
          'bad-input',
          `the forest expects ${forest.numFeatures} features, the image gives ${feat.length / slabN}`,
        );
      predictForestInto(cf, feat, slabN, inner, (z1 - z0) * plane, out, N, z0 * plane);
    },
    cache,
  );
  return out;
}

/**
 * The forest's class probabilities (class-planar K x n) at the voxels `at` (indices into the image, increasing)
 * only: the same values as forestProbabilities there (same features, same trees), at a fraction of its cost when
 * few voxels are asked for (the held-out scoring, the decision's fit on the paint).
 */
export function forestProbabilitiesAt(
  img: NormalisedImage,
  forest: Forest,
  at: ArrayLike<number>,
  o: FeatureOptions = ENSEMBLE_FEATURES,
  cache?: FeatureCacheKey,
): Float32Array {
  const [, Y, X] = img.shape;
  const plane = Y * X;
  const K = forest.numClasses;
  const n = at.length;
  const cf = compileForest(forest);
  const out = new Float32Array(K * n);
  let j = 0;
  forEachFeatureSlab(
    img,
    o,
    MAX_SLAB_VOXELS,
    (feat, slabN, z0, z1, inner) => {
      const F = feat.length / slabN;
      if (F !== forest.numFeatures)
        throw new SliceformError('bad-input', `the forest expects ${forest.numFeatures} features, the image gives ${F}`);
      const j0 = j;
      while (j < n && at[j]! < z1 * plane) j++;
      const m = j - j0;
      if (m === 0) return;
      // the asked-for voxels' features, gathered (feature-planar F x m), then predicted as one block
      const g = new Float32Array(F * m);
      for (let i = 0; i < m; i++) {
        const src = at[j0 + i]! - z0 * plane + inner;
        for (let f = 0; f < F; f++) g[f * m + i] = feat[f * slabN + src]!;
      }
      predictForestInto(cf, g, m, 0, m, out, n, j0);
    },
    cache,
  );
  if (j !== n) throw new SliceformError('internal', 'forestProbabilitiesAt: voxel indices must increase and lie in the image');
  return out;
}

// ---------------------------------------------------------------------------------------------- forest.bin
const MAGIC = 'SFFOREST1';

/** Binary form of a forest: magic, header JSON length, header JSON, then the arrays (8-byte aligned). */
export function serializeForest(f: Forest): Uint8Array {
  const arrays = [f.roots, f.feature, f.threshold, f.left, f.right, f.value] as const;
  const header = JSON.stringify({
    numClasses: f.numClasses,
    numFeatures: f.numFeatures,
    classCounts: f.classCounts,
    splits: f.splits,
    lengths: arrays.map((a) => a.length),
  });
  const hb = new TextEncoder().encode(header);
  let off = MAGIC.length + 4 + hb.length;
  off = Math.ceil(off / 8) * 8;
  const offsets: number[] = [];
  for (const a of arrays) {
    offsets.push(off);
    off = Math.ceil((off + a.byteLength) / 8) * 8;
  }
  const out = new Uint8Array(off);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(MAGIC.length, hb.length, true);
  out.set(hb, MAGIC.length + 4);
  arrays.forEach((a, i) => out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offsets[i]!));
  return out;
}

export function deserializeForest(buf: Uint8Array, file = 'forest.bin'): Forest {
  const bad = (why: string) =>
    new SliceformError('bad-input', `not a Sliceform forest file: ${why}`, { file });
  if (buf.length < MAGIC.length + 4 || new TextDecoder().decode(buf.subarray(0, MAGIC.length)) !== MAGIC)
    throw bad('wrong magic');
  const hl = new DataView(buf.buffer, buf.byteOffset).getUint32(MAGIC.length, true);
  if (MAGIC.length + 4 + hl > buf.length) throw bad('truncated header');
  let h: {
    numClasses: number;
    numFeatures: number;
    classCounts: number[];
    splits: string;
    lengths: number[];
  };
  try {
    h = JSON.parse(new TextDecoder().decode(buf.subarray(MAGIC.length + 4, MAGIC.length + 4 + hl)));
  } catch {
    throw bad('unreadable header');
  }
  const ctors = [Int32Array, Int32Array, Float64Array, Int32Array, Int32Array, Float32Array] as const;
  if (!Array.isArray(h.lengths) || h.lengths.length !== 6) throw bad('header lacks the array lengths');
  let off = Math.ceil((MAGIC.length + 4 + hl) / 8) * 8;
  const arrays = ctors.map((C, i) => {
    const len = h.lengths[i]!;
    const bytes = len * C.BYTES_PER_ELEMENT;
    if (!(Number.isInteger(len) && len >= 0) || off + bytes > buf.length) throw bad('truncated arrays');
    const copy = new Uint8Array(bytes);
    copy.set(buf.subarray(off, off + bytes));
    off = Math.ceil((off + bytes) / 8) * 8;
    return new C(copy.buffer);
  });
  const [roots, feature, threshold, left, right, value] = arrays as [
    Int32Array,
    Int32Array,
    Float64Array,
    Int32Array,
    Int32Array,
    Float32Array,
  ];
  const nodes = feature.length;
  if (
    threshold.length !== nodes ||
    left.length !== nodes ||
    right.length !== nodes ||
    value.length !== nodes * h.numClasses
  )
    throw bad('inconsistent node arrays');
  for (let i = 0; i < nodes; i++) {
    if (feature[i]! >= h.numFeatures) throw bad(`node ${i} uses feature ${feature[i]} of ${h.numFeatures}`);
    if (feature[i]! >= 0 && (left[i]! < 0 || left[i]! >= nodes || right[i]! < 0 || right[i]! >= nodes))
      throw bad(`node ${i} has children outside the forest`);
  }
  for (const r of roots) if (r < 0 || r >= nodes) throw bad('a root outside the forest');
  return {
    numClasses: h.numClasses,
    numFeatures: h.numFeatures,
    classCounts: h.classCounts,
    splits: h.splits,
    roots,
    feature,
    threshold,
    left,
    right,
    value,
  };
}

export async function saveForest(path: string, f: Forest): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, serializeForest(f));
  await rename(tmp, path);
}

export async function loadForest(path: string): Promise<Forest> {
  let b: Buffer;
  try {
    b = await readFile(path);
  } catch (e) {
    throw new SliceformError('bad-input', `cannot read the model's forest (${(e as Error).message})`, {
      file: path,
      cause: e,
    });
  }
  return deserializeForest(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), path);
}
