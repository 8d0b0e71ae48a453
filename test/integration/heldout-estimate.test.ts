/**
 * The recipe's held-out estimate ('early' self-validation, the default) on a crop of a real volume (plant nuclei
 * 1135, ../shared/data) with the native engine and the tiny preset: from paint on 3 planes the estimate exists,
 * is in [0, 1], was scored on blocks the model had not been trained on at that point (the sampler's labels
 * before the release are exactly the split's training labels), and is recorded in model.json; from 2 planes
 * there is none and the reason says why, and everything is trained on from the start.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { loadEngine } from '../../main/engine/index.js';
import type { Engine } from '../../main/common/engine.js';
import type { Volume } from '../../main/common/volume.js';
import { EARLY_RELEASE_AT, planRecipe, saveRecipeModel, trainRecipe } from '../../main/pipeline/recipe.js';
import { recipeSettings } from '../../main/pipeline/settings.js';
import { splitBlocks } from '../../main/pipeline/holdout.js';
import { downsampleLabelVolume } from '../../main/volume/resample.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const OUT = join(ARTIFACTS, 'heldout-estimate');
const [Z, Y, X] = [48, 96, 96];

function crop(v: Volume, z0: number, y0: number, x0: number): Volume {
  const s = v.shape;
  const data = new (v.data.constructor as new (n: number) => Uint8Array)(Z * Y * X);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) data[(z * Y + y) * X + x] = v.data[((z0 + z) * s.y + y0 + y) * s.x + x0 + x]!;
  return { ...v, data, shape: { ...s, x: X, y: Y, z: Z } };
}

let engine: Engine;
let image: Volume;
let gt: Volume;
let truth: Uint8Array;

/** Sparse labels: the ground truth on the middle plane of the given axes (0 = z, 1 = y, 2 = x). */
function sparseOn(axes: number[]): Volume {
  const d = new Uint8Array(truth.length);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const c = [z, y, x];
        const mid = [Z / 2, Y / 2, X / 2];
        if (axes.some((a) => c[a] === mid[a])) d[(z * Y + y) * X + x] = truth[(z * Y + y) * X + x]!;
      }
  return { ...gt, data: d, dtype: 'uint8' };
}

beforeAll(async () => {
  engine = await loadEngine({ engine: 'native' });
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const raw = await readVolume(H5, { dataset: 'raw' });
  const lab = await readVolume(H5, { dataset: 'label' });
  image = crop(raw, 20, 30, 30);
  gt = crop(lab, 20, 30, 30);
  truth = Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1));
});

const settings = () => recipeSettings({ preset: 'tiny', iterations: 8, seed: 4, threads: 2, flips: false });

describe('held-out estimate (early self-validation, the default)', () => {
  it('from 3 painted planes: scored on blocks not trained on before the release, then all paint is trained on', async () => {
    const labels = sparseOn([0, 1, 2]);
    const s = settings();
    expect(s.validation).toBe('early');
    const phases: { phase: string; labels: Uint8Array }[] = [];
    const t = await trainRecipe(engine, [{ image, labels }], s, {
      onTrainLabels: (ls, phase) => phases.push({ phase, labels: Uint8Array.from(ls[0]!) }),
    });
    try {
      const v = t.selfValidation;
      expect(v.reason).toBeNull();
      expect(v.paintedPlanes).toBe(3);
      expect(v.estimate).not.toBeNull();
      expect(v.estimate!).toBeGreaterThanOrEqual(0);
      expect(v.estimate!).toBeLessThanOrEqual(1);
      expect(v.estimateNetwork!).toBeGreaterThanOrEqual(0);
      expect(v.estimateNetwork!).toBeLessThanOrEqual(1);
      expect(v.scoredAtIteration).toBe(8 * EARLY_RELEASE_AT);
      expect(t.summary.iterations).toBe(8);
      // the split the recipe makes, rebuilt here: the same working resolution and seed
      const low = downsampleLabelVolume(labels, planRecipe([image], 2, s).downsample);
      const split = splitBlocks(low.data, [low.shape.z, low.shape.y, low.shape.x], 2, { seed: s.seed });
      expect(split.heldOutVoxels).toBeGreaterThanOrEqual(500);
      expect(v.heldOutVoxels).toBe(split.heldOutVoxels);
      expect(v.heldOutBlocks).toBe(split.heldOutBlocks);
      expect(phases.map((p) => p.phase)).toEqual(['before-release', 'all']);
      // before the release the sampler never sees a held-out voxel; after it, it sees all the paint
      const before = phases[0]!.labels;
      let leaked = 0;
      for (let i = 0; i < before.length; i++) if (split.heldOut[i] && before[i]) leaked++;
      expect(leaked).toBe(0);
      expect(Array.from(before)).toEqual(Array.from(split.train));
      expect(Array.from(phases[1]!.labels)).toEqual(Array.from(low.data));
      // the final model's decision is the default one ('fraction', fitted on all the paint after training):
      // nothing was chosen on the scored voxels
      expect(t.calibration.mode).toBe('fraction');
      expect(t.selfValidation.fittedOn).toBe('training');
      expect(t.ensemble?.weight).toBe(0.5);
      await saveRecipeModel(join(OUT, 'three'), t, { classNames: ['background', 'nucleus'], spacing: { ...image.spacing, unit: 'um' }, preset: 'tiny' });
      const m = JSON.parse(await readFile(join(OUT, 'three', 'model.json'), 'utf8'));
      expect(m.heldOut).toMatchObject({ iou: v.estimate, mode: 'early', planes: 3, voxels: split.heldOutVoxels, when: 4, conservative: true });
    } finally {
      t.model.dispose();
    }
  }, 180_000);

  it('from 2 painted planes: no estimate, the reason says why, all paint is trained on from the start', async () => {
    const labels = sparseOn([0, 1]);
    const phases: string[] = [];
    const trainedOn: Uint8Array[] = [];
    const s = settings();
    const t = await trainRecipe(engine, [{ image, labels }], s, {
      onTrainLabels: (ls, phase) => {
        phases.push(phase);
        trainedOn.push(Uint8Array.from(ls[0]!));
      },
    });
    try {
      const v = t.selfValidation;
      expect(v.estimate).toBeNull();
      expect(v.paintedPlanes).toBe(2);
      expect(v.reason).toBe('the paint lies on 2 planes; a held-out estimate needs paint on at least 3 planes (any axes)');
      expect(v.heldOutVoxels).toBe(0);
      expect(v.scoredAtIteration).toBeNull();
      expect(phases).toEqual(['all']);
      const low = downsampleLabelVolume(labels, planRecipe([image], 2, s).downsample);
      expect(Array.from(trainedOn[0]!)).toEqual(Array.from(low.data));
    } finally {
      t.model.dispose();
    }
  }, 180_000);
});
