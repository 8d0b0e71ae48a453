// A check of the product path against the offline mix (bench/quality_mix.py --post, full_w0.5): for a run kept by
// `bench/quality.mjs --keep`, refits the forest member with the product's code at full resolution (same paint,
// seed and normalisation as the kept model), writes RUN/model-full (the kept network, that forest.bin, model.json
// with ensemble.resolution "full" and no calibration: plain argmax) and segments the stack through
// loadRecipeModel + segmentVolume, the path `segment` takes; prints the IoU of class 2 over the unannotated voxels.
//
//   npx tsx bench/forest_full_check.ts RUN_DIR IMAGE DATASET TRUTH [TRUTH_DATASET]
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadEngine } from '../main/engine/index.ts';
import { readVolume } from '../main/io/index.ts';
import { ENSEMBLE_FEATURES, fitEnsembleForest, saveForest } from '../main/pipeline/ensemble.ts';
import { loadRecipeModel } from '../main/pipeline/recipe.ts';
import { segmentVolume } from '../main/inference/segment.ts';
import { normaliseVolume } from '../main/volume/preprocess.ts';

const [dir, imagePath, dataset, truthPath, truthDataset] = process.argv.slice(2);
if (!dir || !imagePath || !truthPath) throw new Error('usage: forest_full_check.ts RUN_DIR IMAGE DATASET TRUTH [TRUTH_DATASET]');
const image = await readVolume(imagePath, dataset ? { dataset } : {});
const sparse = await readVolume(join(dir, 'sparse.tif'));
const truth = await readVolume(truthPath, truthDataset ? { dataset: truthDataset } : {});
const manifest = JSON.parse(readFileSync(join(dir, 'model', 'model.json'), 'utf8'));
const md = join(dir, 'model-full');
rmSync(md, { recursive: true, force: true });
cpSync(join(dir, 'model'), md, { recursive: true });
const t0 = Date.now();
const img = { data: normaliseVolume(image, manifest.normalisation), shape: [image.shape.z, image.shape.y, image.shape.x] as [number, number, number], channels: image.shape.c };
const forest = fitEnsembleForest([img], [sparse.data], manifest.net.numClasses, manifest.training.seed, ENSEMBLE_FEATURES, [{ owner: image.data, key: 'check' }]);
const fitSeconds = (Date.now() - t0) / 1000;
await saveForest(join(md, 'forest.bin'), forest);
const m = { ...manifest, ensemble: { ...manifest.ensemble, resolution: 'full' } };
delete m.calibration;
writeFileSync(join(md, 'model.json'), JSON.stringify(m, null, 2));
const engine = await loadEngine();
const { model, segment } = await loadRecipeModel(md, engine, { threads: 2 });
const t1 = Date.now();
const r = await segmentVolume(model, image, { ...segment });
const segSeconds = (Date.now() - t1) / 1000;
let inter = 0;
let union = 0;
const fg = (v: number) => (truthPath.endsWith('.tif') ? v === 255 : v > 0);
for (let i = 0; i < r.labels!.length; i++) {
  if (sparse.data[i]) continue;
  const p = r.labels![i] === 2;
  const t = fg(truth.data[i] as number);
  if (p && t) inter++;
  if (p || t) union++;
}
console.log(JSON.stringify({ run: dir, iou: inter / union, forestFitSeconds: fitSeconds, segmentSeconds: segSeconds, mixer: segment.mixer?.resolution }));
model.dispose();
