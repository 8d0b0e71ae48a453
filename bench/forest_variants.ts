// Forest-member variants for the offline mix experiments (bench/quality_mix.py --variants): for a run kept by
// `bench/quality.mjs --keep`, refits the recipe's forest (same paint, same seed, same normalisation as the
// model) with other settings and writes its full-resolution class-2 probabilities as raw float32 (Z*Y*X,
// x fastest) beside the run: forest-<variant>.f32.
//   work      the product's member (working resolution, RECOMMENDED_FOREST): a check against forest.tif
//   full      features and forest at full resolution (the anchor's resolution), mixed at full resolution
//   fullbox   the same forest, its probabilities box-averaged to the working grid (a working-resolution mix)
//   trees300  300 trees instead of 100
//   depth14   depth limit 14 instead of 10
//
//   npx tsx bench/forest_variants.ts RUN_DIR IMAGE DATASET [variants, comma-separated]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RECOMMENDED_FOREST, multiscaleFeatures, predictForestInto, trainForest, type ForestOptions } from '../main/classical/index.ts';
import { readVolume } from '../main/io/index.ts';
import { ENSEMBLE_FEATURES } from '../main/pipeline/ensemble.ts';
import { normaliseVolume } from '../main/volume/preprocess.ts';
import { downsampleLabelVolume, downsampleVolume, upsampleSlab, type Factors } from '../main/volume/resample.ts';
import type { Volume } from '../main/common/volume.ts';

const [dir, imagePath, dataset, which = 'work,full,trees300,depth14'] = process.argv.slice(2);
if (!dir || !imagePath) throw new Error('usage: forest_variants.ts RUN_DIR IMAGE DATASET [variants]');
const manifest = JSON.parse(readFileSync(join(dir, 'model', 'model.json'), 'utf8'));
const seed: number = manifest.training.seed;
const image = await readVolume(imagePath, dataset ? { dataset } : {});
const labels = await readVolume(join(dir, 'sparse.tif'));
const K = manifest.net.numClasses as number;

function fitPredict(img: Volume, lab: Volume, opts: ForestOptions): Float32Array {
  const data = normaliseVolume(img, manifest.normalisation);
  const dims = { z: img.shape.z, y: img.shape.y, x: img.shape.x };
  const N = dims.z * dims.y * dims.x;
  const feat = multiscaleFeatures(data, dims, img.shape.c, ENSEMBLE_FEATURES);
  const F = feat.count;
  let n = 0;
  for (let i = 0; i < N; i++) if (lab.data[i]) n++;
  const values = new Float32Array(n * F);
  const y = new Uint8Array(n);
  for (let i = 0, s = 0; i < N; i++) {
    const l = lab.data[i]!;
    if (!l) continue;
    y[s] = l;
    for (let f = 0; f < F; f++) values[f * n + s] = feat.data[f * N + i]!;
    s++;
  }
  const forest = trainForest({ values, n, numFeatures: F, labels: y, numClasses: K }, { ...RECOMMENDED_FOREST, seed, ...opts });
  const out = new Float32Array(K * N);
  predictForestInto(forest, feat.data, N, 0, N, out, N, 0);
  return out;
}

const f = manifest.downsample as Factors;
const full: Factors = [image.shape.z, image.shape.y, image.shape.x];
const low = downsampleVolume(image, f);
const lowLab = downsampleLabelVolume(labels, f);
const lowShape: Factors = [low.shape.z, low.shape.y, low.shape.x];
const variants: Record<string, () => Float32Array> = {
  work: () => upsampleSlab(fitPredict(low, lowLab, {}), K, lowShape, full, f, 0, full[0]),
  full: () => fitPredict(image, labels, {}),
  // full-resolution forest, box-averaged to the working grid and interpolated back (a mix at the working
  // resolution, as the product's prediction path does it)
  fullbox: () => {
    const p = fitPredict(image, labels, {});
    const pv: Volume = { ...image, data: p, dtype: 'float32', shape: { ...image.shape, c: K } };
    return upsampleSlab(downsampleVolume(pv, f).data as Float32Array, K, lowShape, full, f, 0, full[0]);
  },
  trees300: () => upsampleSlab(fitPredict(low, lowLab, { trees: 300 }), K, lowShape, full, f, 0, full[0]),
  depth14: () => upsampleSlab(fitPredict(low, lowLab, { maxDepth: 14 }), K, lowShape, full, f, 0, full[0]),
};
for (const v of which.split(',')) {
  const t0 = Date.now();
  const p = variants[v]!();
  const N = full[0] * full[1] * full[2];
  const p2 = new Float32Array(N);
  for (let i = 0; i < N; i++) p2[i] = p[N + i]! / Math.max(p[i]! + p[N + i]!, 1e-12);
  writeFileSync(join(dir, `forest-${v}.f32`), Buffer.from(p2.buffer));
  console.log(`${dir} ${v}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
