/**
 * The forest member at full resolution (issue 18 item 4): fitted on the full-resolution paint with
 * full-resolution features and mixed after the network's trilinear interpolation, in the in-memory and the
 * streamed (sharded) prediction paths; model folders record the forest's resolution, older ones (no field)
 * keep their working-resolution mix. Real data: a 32x64x64 crop of plant nuclei 1135 (../shared/data) and its
 * truth on three middle planes as paint. The network is a fake (tests only: a fixed "valid" filter with a real
 * U-Net's geometry, as in tiling-predict.test.ts) so that these are exact arithmetic checks of the mixing; the
 * trained recipe through the real engine is test/integration/app-cli-recipe.test.ts. The forest uses sigma 1..2
 * features here (halo 10 planes, so the streamed slabs really are partial windows of the 32 planes).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { volumeRegionSource } from '../../main/io/regions.js';
import { unetOutputSize, type Model, type NetConfig } from '../../main/common/engine.js';
import type { Volume } from '../../main/common/volume.js';
import { segmentVolume, type SegmentOptions } from '../../main/inference/segment.js';
import { estimateStreamMemory, segmentSource } from '../../main/inference/stream.js';
import { readModelManifest, type ModelManifest } from '../../main/inference/model-dir.js';
import { computeNormalisation, normaliseVolume } from '../../main/volume/preprocess.js';
import { downsampleLabelVolume, downsampleVolume, upsampleSlab } from '../../main/volume/resample.js';
import { ENSEMBLE_FEATURES, featureHalo, fitEnsembleForest, forestFeatureBudget, forestFeatureBytes, forestProbabilities } from '../../main/pipeline/ensemble.js';
import { featureBytesPerVoxel } from '../../main/classical/index.js';
import { forestResolutionFor, fullResPaint, planRecipe, segmentOptionsFor } from '../../main/pipeline/recipe.js';
import { recipeSettings } from '../../main/pipeline/settings.js';
import { recipeFromValues } from '../../main/pipeline/options.js';
import type { FeatureOptions } from '../../main/classical/index.js';

const NET: NetConfig = { dims: 3, inChannels: 1, numClasses: 2, levels: 2, baseFilters: 4, padding: 'valid', batchNorm: true, bnAtTest: 'running' };
const FEAT: FeatureOptions = { sigmaMin: 1, sigmaMax: 2, intensity: true, edges: true, texture: true };
const [Z, Y, X] = [32, 64, 64];
const N = Z * Y * X;
const F: [number, number, number] = [1, 2, 2];

/** A fake network (tests only): output voxel = sigmoid(sparse window mean of its receptive field) -> [1-p, p]. */
function fakeModel(config: NetConfig): Model {
  return {
    config,
    paramCount: 0,
    bnParamCount: 0,
    outputShape: (s) => s.map((n) => unetOutputSize(n, config.levels, config.padding)!),
    async predict(input, shape) {
      const [, , D, H, W] = shape as [number, number, number, number, number];
      const [oD, oH, oW] = [D, H, W].map((n) => unetOutputSize(n, config.levels, config.padding)!) as [number, number, number];
      const c = D - oD;
      const n = oD * oH * oW;
      const out = new Float32Array(2 * n);
      for (let z = 0; z < oD; z++)
        for (let y = 0; y < oH; y++)
          for (let x = 0; x < oW; x++) {
            let s = 0;
            for (const d of [0, c / 2, c]) s += input[((z + d) * H + y + c / 2) * W + x + c / 2]! + input[((z + c / 2) * H + y + d) * W + x + d]!;
            const p = 1 / (1 + Math.exp(-(s / 6 - 0.3) * 3));
            const i = (z * oH + y) * oW + x;
            out[i] = 1 - p;
            out[n + i] = p;
          }
      return out;
    },
    trainStep: async () => ({ loss: 0, annotatedVoxels: 0, outputVoxels: 0 }),
    setLearningRate() {},
    save: async () => {},
    load: async () => {},
    exportParams: async () => [],
    importParams: async () => {},
    dispose() {},
  };
}

let image: Volume;
let paint: Volume;
let norm: SegmentOptions['normalisation'];
const model = fakeModel(NET);

function nimg(v: Volume) {
  return { data: normaliseVolume(v, norm), shape: [v.shape.z, v.shape.y, v.shape.x] as [number, number, number], channels: v.shape.c };
}

/** labels and probabilities (class-planar, full volume) of one segment run */
async function run(o: SegmentOptions, streamed?: { zRange?: [number, number] }) {
  const probs = new Float32Array(2 * N);
  const labels = new Uint8Array(N);
  const onSlab = (s: { z0: number; depth: number; labels: ArrayLike<number>; probabilities?: Float32Array }) => {
    const n = s.depth * Y * X;
    labels.set(s.labels as Uint8Array, s.z0 * Y * X);
    for (let k = 0; k < 2; k++) probs.set(s.probabilities!.subarray(k * n, (k + 1) * n), k * N + s.z0 * Y * X);
  };
  const opts = { ...o, probabilities: true, onSlab, collect: false };
  if (streamed) await segmentSource(model, volumeRegionSource(image), { ...opts, ...(streamed.zRange ? { zRange: streamed.zRange } : {}) });
  else await segmentVolume(model, image, opts);
  return { probs, labels };
}

beforeAll(async () => {
  const whole = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'raw' });
  const truth = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'label' });
  const crop = (v: Volume): Volume => {
    const d = new Uint8Array(N);
    for (let z = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++) d[(z * Y + y) * X + x] = v.data[((z + 34) * 100 + y + 18) * 100 + x + 18]!;
    return { ...v, dtype: 'uint8', shape: { ...v.shape, z: Z, y: Y, x: X }, data: d };
  };
  image = crop(whole);
  const t = crop(truth);
  const d = new Uint8Array(N);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const i = (z * Y + y) * X + x;
        if (z === 16 || y === 32 || x === 32) d[i] = t.data[i]! > 0 ? 2 : 1;
      }
  paint = { ...t, data: d };
  norm = computeNormalisation([image]);
}, 60_000);

describe('full-resolution forest member', () => {
  let forest: ReturnType<typeof fitEnsembleForest>;
  let q: Float32Array;
  let net: { probs: Float32Array; labels: Uint8Array };
  const mixer = (resolution: 'full' | 'working', extra: object = {}) => ({
    weight: 0.5,
    halo: featureHalo(FEAT),
    resolution,
    ...extra,
    probabilities: (v: Volume) => forestProbabilities(nimg(v), forest, FEAT),
  });
  beforeAll(async () => {
    forest = fitEnsembleForest([nimg(image)], [paint.data], 2, 1, FEAT);
    q = forestProbabilities(nimg(image), forest, FEAT);
    net = await run({ normalisation: norm, downsample: F, testTimeFlips: false, maxTileInputVoxels: 30_000 });
  }, 120_000);

  it('mixes after the interpolation: p = 0.5 up(p_network) + 0.5 p_forest at full resolution, argmax labels', async () => {
    const r = await run({ normalisation: norm, downsample: F, testTimeFlips: false, maxTileInputVoxels: 30_000, mixer: mixer('full') });
    let maxErr = 0;
    let wrong = 0;
    for (let i = 0; i < 2 * N; i++) maxErr = Math.max(maxErr, Math.abs(r.probs[i]! - (0.5 * net.probs[i]! + 0.5 * q[i]!)));
    for (let i = 0; i < N; i++) if (r.labels[i] !== (r.probs[N + i]! > r.probs[i]! ? 2 : 1)) wrong++;
    expect(maxErr).toBeLessThan(1e-6);
    expect(wrong).toBe(0);
    // the mix moves decisions: neither member alone, nor the same forest box-averaged (working grid)
    let vsNet = 0;
    for (let i = 0; i < N; i++) if (r.labels[i] !== net.labels[i]) vsNet++;
    expect(vsNet).toBeGreaterThan(100);
    const nucleus = r.labels.reduce((s, v) => s + (v === 2 ? 1 : 0), 0) / N;
    expect(nucleus).toBeGreaterThan(0.05);
    expect(nucleus).toBeLessThan(0.6);
  }, 120_000);

  it('the forest at chosen voxels only equals the whole-volume probabilities there', async () => {
    const { forestProbabilitiesAt } = await import('../../main/pipeline/ensemble.js');
    const at: number[] = [];
    for (let i = 0; i < N; i++) if (paint.data[i] && i % 3 === 0) at.push(i);
    const p = forestProbabilitiesAt(nimg(image), forest, at, FEAT);
    let maxErr = 0;
    for (let k = 0; k < 2; k++) for (let j = 0; j < at.length; j++) maxErr = Math.max(maxErr, Math.abs(p[k * at.length + j]! - q[k * N + at[j]!]!));
    expect(at.length).toBeGreaterThan(1000);
    expect(maxErr).toBe(0);
    expect(() => forestProbabilitiesAt(nimg(image), forest, [5, N + 5], FEAT)).toThrow(/indices must increase and lie in the image/);
  });

  it('fits on at most maxSamples painted voxels, evenly strided (a 2 M cap by default)', () => {
    const all = paint.data.reduce((n, v) => n + (v ? 1 : 0), 0);
    const capped = fitEnsembleForest([nimg(image)], [paint.data], 2, 1, FEAT, [], 1000);
    const stride = Math.ceil(all / 1000);
    expect(capped.classCounts.reduce((a, b) => a + b, 0)).toBe(Math.ceil(all / stride));
    expect(forest.classCounts.reduce((a, b) => a + b, 0)).toBe(all);
  });

  it("an old model folder's working-resolution forest is mixed before the interpolation, as before", async () => {
    const lowImage = downsampleVolume(image, F);
    const lowForest = fitEnsembleForest([nimg(lowImage)], [downsampleLabelVolume(paint, F).data], 2, 1, FEAT);
    const m = { weight: 0.5, halo: featureHalo(FEAT), probabilities: (v: Volume) => forestProbabilities(nimg(v), lowForest, FEAT) };
    const r = await run({ normalisation: norm, downsample: F, testTimeFlips: false, maxTileInputVoxels: 30_000, mixer: m });
    const qLow = forestProbabilities(nimg(lowImage), lowForest, FEAT);
    const up = upsampleSlab(qLow, 2, [Z, Y / 2, X / 2], [Z, Y, X], F, 0, Z);
    let maxErr = 0;
    for (let i = 0; i < 2 * N; i++) maxErr = Math.max(maxErr, Math.abs(r.probs[i]! - (0.5 * net.probs[i]! + 0.5 * up[i]!)));
    expect(maxErr).toBeLessThan(1e-5);
  }, 120_000);

  it('streamed (forest slabs of 6 planes with a 10-plane halo, and three z shards) == in memory, voxel for voxel', async () => {
    const o: SegmentOptions = { normalisation: norm, downsample: F, testTimeFlips: false, maxTileInputVoxels: 30_000, decisionWeights: [1, 1.2] };
    const mem = await run({ ...o, mixer: mixer('full') });
    const st = await run({ ...o, mixer: mixer('full', { slabPlanes: 6 }) }, {});
    let d = 0;
    for (let i = 0; i < N; i++) if (st.labels[i] !== mem.labels[i]) d++;
    expect(d).toBe(0);
    expect(Array.from(st.probs)).toEqual(Array.from(mem.probs));
    const shards = new Uint8Array(N);
    for (const zr of [[0, 9], [9, 23], [23, 32]] as [number, number][]) {
      const s = await run({ ...o, mixer: mixer('full', { slabPlanes: 6 }) }, { zRange: zr });
      shards.set(s.labels.subarray(zr[0] * Y * X, zr[1] * Y * X), zr[0] * Y * X);
    }
    let ds = 0;
    for (let i = 0; i < N; i++) if (shards[i] !== mem.labels[i]) ds++;
    expect(ds).toBe(0);
    // the streamed memory estimate counts the full-resolution member's slab, not the low-resolution volume
    const est = estimateStreamMemory(NET, volumeRegionSource(image).info, { downsample: F, mixer: mixer('full', { slabPlanes: 6 }) });
    const planes = 6 + 2 * featureHalo(FEAT); // 26 of the 32: slab plus both halos
    expect(est.parts['forest member']).toBe(planes * Y * X * (1 * (1 + 4) + 2 * 2 * 4) + 20 * 4 * planes * Y * X);
  }, 240_000);
});

describe('model folders and settings', () => {
  it('records the resolution; a folder without it mixes at the working resolution; a bad value is refused', async () => {
    const dir = join(ARTIFACTS, 'forest-resolution');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const manifest = {
      format: 'sliceform-model',
      version: 1,
      sliceformVersion: 'test',
      created: '2026-12-01T00:00:00Z',
      net: NET,
      optim: { optimizer: 'adam', lr: 0.002 },
      normalisation: norm,
      classNames: ['background', 'nucleus'],
      spacing: { z: 0.28, y: 0.127, x: 0.127, unit: 'µm' },
      downsample: F,
      weights: 'weights.pt',
      training: null,
      ensemble: { kind: 'forest', file: 'forest.bin', weight: 0.5, features: {} },
    } as ModelManifest;
    const f = fitEnsembleForest([nimg(image)], [paint.data], 2, 1, FEAT);
    expect(segmentOptionsFor(manifest, f).mixer!.resolution).toBe('working');
    expect(segmentOptionsFor({ ...manifest, ensemble: { ...manifest.ensemble!, resolution: 'full' } }, f).mixer!.resolution).toBe('full');
    await writeFile(join(dir, 'model.json'), JSON.stringify({ ...manifest, ensemble: { ...manifest.ensemble, resolution: 'half' } }));
    await expect(readModelManifest(dir)).rejects.toThrow(/ensemble.resolution must be "working" or "full", got "half"/);
    await writeFile(join(dir, 'model.json'), JSON.stringify(manifest));
    expect((await readModelManifest(dir)).ensemble!.resolution).toBeUndefined();
  }, 60_000);

  it("defaults to 'full'; --forest-resolution working selects the earlier member; other values are refused", () => {
    expect(recipeSettings({ minutes: 4 }).forestResolution).toBe('full');
    expect(planRecipe([image], 2, recipeSettings({ minutes: 4 })).forestResolution).toBe('full');
    expect(recipeFromValues({ 'forest-resolution': 'working' }, 4).forestResolution).toBe('working');
    expect(() => recipeFromValues({ 'forest-resolution': 'half' }, 4)).toThrow(/--forest-resolution must be full or working, got "half"/);
  });

  it("the forest's training paint without held-out blocks: a full-resolution voxel goes with its working-resolution voxel", () => {
    const low = downsampleLabelVolume(paint, F);
    const held = new Uint8Array(low.data.length);
    // hold out the working-resolution voxels of one 12-voxel block on the middle xy plane
    for (let y = 4; y < 16; y++) for (let x = 4; x < 16; x++) held[(16 * (Y / 2) + y) * (X / 2) + x] = low.data[(16 * (Y / 2) + y) * (X / 2) + x]!;
    const out = fullResPaint(paint, held, F);
    let removed = 0;
    for (let i = 0; i < N; i++) {
      const z = Math.floor(i / (Y * X));
      const y = Math.floor(i / X) % Y;
      const x = i % X;
      const inBlock = z === 16 && y >= 8 && y < 32 && x >= 8 && x < 32;
      expect(out[i]).toBe(inBlock ? 0 : paint.data[i]);
      if (inBlock && paint.data[i]) removed++;
    }
    expect(removed).toBe(24 * 24);
  });
});

describe('the full-resolution forest falls back to the working resolution when its features would not fit', () => {
  // arithmetic only (no data): the slab rule of the feature pass and the budget
  const bpv = featureBytesPerVoxel(ENSEMBLE_FEATURES, 1, false);
  const h = featureHalo(ENSEMBLE_FEATURES);
  it('counts one whole-plane z-slab with its halo (all of a small stack)', () => {
    expect(bpv).toBeGreaterThan(100);
    expect(forestFeatureBytes({ x: 100, y: 100, z: 100 }, 1)).toBe(100 * 100 * 100 * bpv);
    // a 1024x1024 plane: slabs of 2 halos inside plus a halo each side, clamped to the stack
    expect(forestFeatureBytes({ x: 1024, y: 1024, z: 64 }, 1)).toBe(64 * 1024 * 1024 * bpv);
    expect(forestFeatureBytes({ x: 1024, y: 1024, z: 512 }, 1)).toBe(4 * h * 1024 * 1024 * bpv);
    expect(forestFeatureBytes({ x: 1024, y: 1024, z: 64 }, 3)).toBe(64 * 1024 * 1024 * featureBytesPerVoxel(ENSEMBLE_FEATURES, 3, false));
  });
  it('budget: a quarter of the memory, at most 4 GiB', () => {
    expect(forestFeatureBudget(24 * 2 ** 30)).toBe(4 * 2 ** 30);
    expect(forestFeatureBudget(8 * 2 ** 30)).toBe(2 * 2 ** 30);
  });
  it('keeps full resolution for the shared stacks, falls back with a note for a wide one', () => {
    const budget = forestFeatureBudget(24 * 2 ** 30);
    const small = forestResolutionFor('full', [{ x: 100, y: 100, z: 100, c: 1 }], [1, 2, 2], budget);
    expect(small).toEqual({ resolution: 'full', featureBytes: 100 * 100 * 100 * bpv });
    const wide = forestResolutionFor('full', [{ x: 100, y: 100, z: 100, c: 1 }, { x: 1024, y: 1024, z: 64, c: 1 }], [1, 2, 2], budget);
    expect(wide.resolution).toBe('working');
    expect(wide.note).toMatch(/^forest member at the working resolution: its full-resolution features would take \d+\.\d GiB, more than 4\.0 GiB$/);
    // at factors 1 full and working are one grid: nothing to fall back to
    expect(forestResolutionFor('full', [{ x: 1024, y: 1024, z: 64, c: 1 }], [1, 1, 1], budget).resolution).toBe('full');
    expect(forestResolutionFor('working', [{ x: 100, y: 100, z: 100, c: 1 }], [1, 2, 2], budget).resolution).toBe('working');
  });
});
