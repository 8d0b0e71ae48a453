/**
 * The 'fraction' decision without held-out paint is fitted on the training paint (before, it silently fell back
 * to the plain argmax): the decision weights make the predicted class fractions on the painted voxels equal the
 * painted ones (with the full-resolution forest: on the painted full-resolution voxels of the final mix, as
 * segment predicts them), and segmentOptionsFor hands them to prediction. With 'iou' and no held-out paint the decision
 * stays the argmax. Real data: plant-seg 1135_mini.h5, the ground truth on the middle slice of each axis (k = 1),
 * the tiny preset for a few steps (the decision is fitted to whatever the model is; quality is the bench's).
 */
import { describe, expect, it } from 'vitest';
import { loadEngine } from '../../main/engine/index.js';
import { readVolume } from '../../main/io/index.js';
import { segmentOptionsFor, trainRecipe } from '../../main/pipeline/recipe.js';
import { segmentVolume } from '../../main/inference/segment.js';
import { recipeSettings } from '../../main/pipeline/settings.js';
import type { Volume } from '../../main/common/volume.js';
import { dataFile } from '../helpers/paths.js';

const FILE = dataFile('plantseg_nuclei_mini', '1135_mini.h5');

describe('fraction decision on the training paint', () => {
  it('matches the painted class fractions; iou without held-out paint stays the argmax', async () => {
    const engine = await loadEngine({ engine: 'native' });
    const image = await readVolume(FILE, { dataset: 'raw' });
    const truth = await readVolume(FILE, { dataset: 'label' });
    const { x: X, y: Y, z: Z } = image.shape;
    const sparse = new Uint8Array(X * Y * Z);
    for (let z = 0, i = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++, i++)
          if (z === Z >> 1 || y === Y >> 1 || x === X >> 1) sparse[i] = (truth.data[i] as number) > 0 ? 2 : 1;
    const labels: Volume = { ...truth, data: sparse, dtype: 'uint8' };
    const base = { preset: 'tiny', iterations: 6, seed: 1, threads: 2, validation: 'none' as const };
    const frac = await trainRecipe(engine, [{ image, labels }], recipeSettings({ ...base, calibration: 'fraction' }), {
      numClasses: 2,
    });
    const iou = await trainRecipe(engine, [{ image, labels }], recipeSettings({ ...base, calibration: 'iou' }), {
      numClasses: 2,
    });
    try {
      const c = frac.calibration;
      expect(c.mode).toBe('fraction');
      expect(frac.selfValidation.fittedOn).toBe('training');
      // with the full-resolution forest (the default) the decision is fitted on every painted full-resolution
      // voxel of the final mix (not on the working-resolution ones, x and y halved: about a quarter as many)
      const painted = sparse.reduce((n, v) => n + (v ? 1 : 0), 0);
      expect(c.voxels).toBe(painted);
      expect(frac.ensemble?.resolution).toBe('full');
      // 1135's middle planes: about a fifth nucleus
      expect(c.paintedFractions[1]!).toBeGreaterThan(0.1);
      expect(c.paintedFractions[1]!).toBeLessThan(0.4);
      expect(Math.abs(c.predictedFractions[1]! - c.paintedFractions[1]!)).toBeLessThan(0.01);
      expect(c.weights).toHaveLength(2);
      expect(c.weights[0]).not.toBe(c.weights[1]);
      expect(segmentOptionsFor(frac).decisionWeights).toEqual(c.weights);
      // the fit saw exactly the probabilities segment decides on: segment's labels on the painted voxels have
      // the fitted predicted fraction (the same count of nucleus voxels, not just close)
      const seg = await segmentVolume(frac.model, image, segmentOptionsFor(frac));
      let nucleus = 0;
      for (let i = 0; i < sparse.length; i++) if (sparse[i] && seg.labels![i] === 2) nucleus++;
      expect(nucleus).toBe(Math.round(c.predictedFractions[1]! * painted));

      expect(iou.calibration.mode).toBe('none');
      expect(iou.calibration.weights).toEqual([1, 1]);
      expect(iou.selfValidation.fittedOn).toBe('none');
      expect(segmentOptionsFor(iou).decisionWeights).toBeUndefined();
    } finally {
      frac.model.dispose();
      iou.model.dispose();
    }
  }, 300_000);
});
