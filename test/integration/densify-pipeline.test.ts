/**
 * Densify end to end on a crop of a real volume (plant nuclei 1135, ../shared/data), with the native engine
 * and the tiny preset so that it stays short: sparse labels from the ground truth's middle slices, training,
 * overlap-tile prediction, IoU over the unannotated voxels; plus tiled == single tile with a real U-Net
 * (pooling alignment), checkpoint/resume, cancel, model folders and the augmentation worker.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, rm, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { loadEngine } from '../../main/engine/index.js';
import type { Engine } from '../../main/common/engine.js';
import type { Volume } from '../../main/common/volume.js';
import { trainModel, type TrainOptions } from '../../main/training/trainer.js';
import { resolveNet } from '../../main/training/presets.js';
import { segmentVolume } from '../../main/inference/segment.js';
import { predictRegion, sourceFromNormalised, type Slab } from '../../main/volume/predict.js';
import { loadModelDir, saveModelDir } from '../../main/inference/model-dir.js';
import { createSampleSource } from '../../main/training/samples.js';
import { renderSample } from '../../main/training/augment.js';
import { TileSampler, planTileShapes, DEFAULT_AUGMENT } from '../../main/training/sampler.js';
import { analyseLabels } from '../../main/training/sparse.js';
import { Rng } from '../../main/training/rng.js';
import { classIoU } from '../../main/evaluation/metrics.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const OUT = join(ARTIFACTS, 'densify-pipeline');

function crop(v: Volume, z0: number, y0: number, x0: number, Z: number, Y: number, X: number): Volume {
  const s = v.shape;
  const data = new (v.data.constructor as new (n: number) => Uint8Array)(Z * Y * X);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) data[(z * Y + y) * X + x] = v.data[((z0 + z) * s.y + y0 + y) * s.x + x0 + x]!;
  return { ...v, data, shape: { ...s, x: X, y: Y, z: Z } };
}

let engine: Engine;
let image: Volume;
let truth: Uint8Array; // 1 = background, 2 = nucleus
let sparse: Volume;

beforeAll(async () => {
  engine = await loadEngine({ engine: 'native' });
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const raw = await readVolume(H5, { dataset: 'raw' });
  const lab = await readVolume(H5, { dataset: 'label' });
  image = crop(raw, 30, 20, 20, 40, 56, 56);
  const gt = crop(lab, 30, 20, 20, 40, 56, 56);
  truth = Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1));
  // sparse: the middle slice of each axis
  const d = new Uint8Array(truth.length);
  for (let z = 0; z < 40; z++)
    for (let y = 0; y < 56; y++)
      for (let x = 0; x < 56; x++) if (z === 20 || y === 28 || x === 28) d[(z * 56 + y) * 56 + x] = truth[(z * 56 + y) * 56 + x]!;
  sparse = { ...gt, data: d, dtype: 'uint8' };
});

const tinyOpts = (over: Partial<TrainOptions> = {}): TrainOptions => ({
  net: resolveNet('tiny', 1, 2),
  optim: { optimizer: 'adam', lr: 3e-3 },
  modelOptions: { threads: 2, seed: 3 },
  seed: 3,
  planeOut: 40,
  cubeOut: 16,
  worker: 'inline',
  ...over,
});

describe('densify on a crop of a real volume', () => {
  it('learns from three sparse slices: nucleus IoU on unannotated voxels clearly beats the trivial floor', async () => {
    const r = await trainModel(engine, [{ image, labels: sparse }], tinyOpts({ iterations: 60 }));
    expect(r.summary.iterations).toBe(60);
    expect(r.summary.samplesPerStep).toBe(2); // the default: 2 samples of one tile shape per step
    expect(r.summary.annotatedShare).toBeGreaterThan(0.45); // thin tiles: 1 of 2 output rows is the plane
    const seg = await segmentVolume(r.model, image, { normalisation: r.normalisation });
    const mask = Uint8Array.from(sparse.data, (v) => (v === 0 ? 1 : 0));
    const iou = classIoU(seg.labels!, truth, 2, mask)!;
    // trivial floor: everything nucleus -> IoU = nucleus fraction
    let fg = 0;
    let n = 0;
    for (let i = 0; i < truth.length; i++) {
      if (!mask[i]) continue;
      n++;
      if (truth[i] === 2) fg++;
    }
    const trivial = fg / n;
    expect(trivial).toBeLessThan(0.4);
    expect(iou).toBeGreaterThan(trivial + 0.2);
    r.model.dispose();
  });

  it('tiled prediction with a real U-Net equals one large tile', async () => {
    const model = await engine.createModel({ ...resolveNet('desktop', 1, 2), levels: 3, baseFilters: 4, bnAtTest: 'running' }, { optimizer: 'adam', lr: 1e-3 }, { threads: 2, seed: 5 });
    const img = new Float32Array(image.data.length);
    for (let i = 0; i < img.length; i++) img[i] = (image.data[i]! - 30) / 30;
    const src = sourceFromNormalised(img, [40, 56, 56], 1);
    const run = async (budget: number) => {
      const slabs: Slab[] = [];
      const res = await predictRegion(model, src, [0, 0, 0], [40, 56, 56], { numClasses: 2, levels: 3, padding: 'valid', maxTileInputVoxels: budget, probabilities: true }, (s) => {
        slabs.push(s);
      });
      const p = new Float32Array(2 * img.length);
      const plane = 56 * 56;
      for (const s of slabs) {
        const m = s.depth * plane;
        for (let k = 0; k < 2; k++) p.set(s.probabilities!.subarray(k * m, (k + 1) * m), k * img.length + s.z0 * plane);
      }
      return { p, count: res.plan.count };
    };
    const one = await run(1e8);
    const tiled = await run(64 * 64 * 64);
    expect(one.count).toBe(1);
    expect(tiled.count).toBeGreaterThanOrEqual(8);
    let maxDiff = 0;
    for (let i = 0; i < one.p.length; i++) maxDiff = Math.max(maxDiff, Math.abs(one.p[i]! - tiled.p[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
    model.dispose();
  });

  it('resumes from a checkpoint, keeps the iteration count, and saves/loads a model folder', async () => {
    const ck = join(OUT, 'ckpt');
    const a = await trainModel(engine, [{ image, labels: sparse }], tinyOpts({ iterations: 4, checkpointDir: ck }));
    expect(a.summary.iterations).toBe(4);
    a.model.dispose();
    const state = JSON.parse(await readFile(join(ck, 'checkpoint.json'), 'utf8'));
    expect(state.iteration).toBe(4);
    const b = await trainModel(engine, [{ image, labels: sparse }], tinyOpts({ iterations: 7, checkpointDir: ck, resume: true }));
    expect(b.summary.iterations).toBe(7);
    expect(JSON.parse(await readFile(join(ck, 'checkpoint.json'), 'utf8')).iteration).toBe(7);
    // model folder round trip: identical predictions
    const dir = join(OUT, 'model');
    await saveModelDir(dir, b.model, { net: b.model.config, optim: { optimizer: 'adam', lr: 3e-3 }, normalisation: b.normalisation, classNames: ['background', 'nucleus'], spacing: { ...image.spacing }, downsample: [1, 1, 1], training: b.summary });
    const first = await segmentVolume(b.model, image, { normalisation: b.normalisation });
    const { model, manifest } = await loadModelDir(dir, engine, { threads: 2 });
    expect(manifest.classNames).toEqual(['background', 'nucleus']);
    expect(manifest.training?.iterations).toBe(7);
    const second = await segmentVolume(model, image, { normalisation: manifest.normalisation });
    expect(Array.from(second.labels!)).toEqual(Array.from(first.labels!));
    model.dispose();
    b.model.dispose();
    await expect(trainModel(engine, [{ image, labels: sparse }], tinyOpts({ iterations: 2, checkpointDir: join(OUT, 'empty'), resume: true }))).rejects.toThrow(/no checkpoint to resume from/);
    await expect(loadModelDir(join(OUT, 'nothing'), engine)).rejects.toThrow(/not a Sliceform model folder/);
  });

  it('cancels between steps and reports it', async () => {
    const ac = new AbortController();
    const r = await trainModel(engine, [{ image, labels: sparse }], tinyOpts({ iterations: 1000, signal: ac.signal, onStep: (s) => s.iteration >= 3 && ac.abort() }));
    expect(r.cancelled).toBe(true);
    expect(r.summary.iterations).toBe(3);
    r.model.dispose();
    const ac2 = new AbortController();
    ac2.abort();
    await expect(trainModel(engine, [{ image, labels: sparse }], tinyOpts({ iterations: 5, signal: ac2.signal }))).rejects.toThrow(/cancelled/);
  });

  it('the augmentation worker renders exactly what the inline path renders', async () => {
    const shape: [number, number, number] = [40, 56, 56];
    const vol = { shape, channels: 1, image: Float32Array.from(image.data), labels: Uint8Array.from(sparse.data) };
    const sampler = new TileSampler([{ shape, spacing: [0.28, 0.13, 0.13], channels: 1 }], [analyseLabels(vol.labels, shape, 2)], planTileShapes({ levels: 2, padding: 'valid' }, 40, 16, shape), DEFAULT_AUGMENT);
    const spec = sampler.next(new Rng(11));
    const src = createSampleSource([vol], 'worker');
    expect(src.kind).toBe('worker');
    const w = await src.render(spec);
    await src.dispose();
    const inline = renderSample(vol, spec, (s) => new Rng(s));
    expect(Array.from(w.labels)).toEqual(Array.from(inline.labels));
    expect(Array.from(w.input.slice(0, 500))).toEqual(Array.from(inline.input.slice(0, 500)));
  });

  it('rejects bad inputs with clear messages', async () => {
    const wrong = { ...sparse, shape: { ...sparse.shape, x: 10 } };
    await expect(trainModel(engine, [{ image, labels: wrong }], tinyOpts({ iterations: 1 }))).rejects.toThrow(/labels are 10x56x40 .* but the image/);
    const empty = { ...sparse, data: new Uint8Array(sparse.data.length) };
    await expect(trainModel(engine, [{ image, labels: empty }], tinyOpts({ iterations: 1 }))).rejects.toThrow(/no annotated voxels/);
    const three = { ...sparse, data: Uint8Array.from(sparse.data, (v) => (v === 2 ? 3 : v)) };
    await expect(trainModel(engine, [{ image, labels: three }], tinyOpts({ iterations: 1 }))).rejects.toThrow(/labels go up to 3 but the network has 2 classes/);
    await expect(trainModel(engine, [{ image, labels: sparse }], tinyOpts({ iterations: 1, batch: 0 }))).rejects.toThrow(/batch must be an integer 1\.\.64, got 0/);
    expect(existsSync(OUT)).toBe(true);
  });
});
