// The recipe's pure parts: settings and their ranges, the CLI option parser, the calibrated decision and the
// block hold-out. Synthetic probabilities and labels: these are arithmetic checks, no image is involved.
import { describe, expect, it } from 'vitest';
import { fitCalibration, predictedFractions } from '../../main/pipeline/calibration.js';
import { splitBlocks } from '../../main/pipeline/holdout.js';
import { foregroundIoU } from '../../main/volume/iou.js';
import { recipeFromApi, recipeSettings, RECIPE_DEFAULTS } from '../../main/pipeline/settings.js';
import { recipeFromValues } from '../../main/pipeline/options.js';
import { planRecipe } from '../../main/pipeline/recipe.js';
import type { Volume } from '../../main/common/volume.js';

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

describe('recipe settings', () => {
  it('fills the defaults and refuses out-of-range values with their range', () => {
    const s = recipeSettings({ minutes: 4 });
    expect(s.preset).toBe('desktop');
    expect(s.balance).toBe(RECIPE_DEFAULTS.balance);
    expect(s.calibration).toBe('fraction');
    expect(s.downsample).toBe('auto');
    expect(recipeSettings({ preset: 'paper', iterations: 1 }).downsample).toEqual([1, 1, 1]);
    expect(() => recipeSettings({})).toThrow(/training budget/);
    expect(() => recipeSettings({ minutes: 4, balance: -3 })).toThrow(/balance must be a number 0\.\.2, got -3/);
    expect(() => recipeSettings({ minutes: 4, planeTile: 0 })).toThrow(
      /plane-tile must be an integer 4\.\.512/,
    );
    expect(() => recipeSettings({ minutes: 4, dice: -1 })).toThrow(/dice must be a number 0\.\.10, got -1/);
    expect(() => recipeSettings({ minutes: 4, preset: 'huge' })).toThrow(/unknown preset "huge"/);
    expect(recipeSettings({ minutes: 4, threads: 1000 }, 2).threads).toBe(2);
  });

  it('parses CLI values into the same settings and names the option in errors', () => {
    const s = recipeFromValues({ iterations: '7', balance: '1', downsample: 'none', 'no-flips': true }, 4);
    expect(s.iterations).toBe(7);
    expect(s.minutes).toBeUndefined();
    expect(s.balance).toBe(1);
    expect(s.downsample).toEqual([1, 1, 1]);
    expect(s.flips).toBe(false);
    expect(recipeFromValues({}, 4).minutes).toBe(4);
    expect(() => recipeFromValues({ downsample: '9' }, 4)).toThrow(
      /--downsample must be auto, none, F or Z,Y,X with integers 1\.\.8/,
    );
    expect(() => recipeFromValues({ balance: '-3' }, 4)).toThrow(/^--balance must be a number 0\.\.2, got -3$/);
    expect(() => recipeFromValues({ lr: 'abc' }, 4)).toThrow(/--lr must be a number/);
    expect(() => recipeFromValues({ preset: 'huge' }, 4)).toThrow(/unknown --preset "huge"/);
  });

  it('gives the app the CLI defaults: the same plan for the same request', () => {
    const image = {
      shape: { x: 100, y: 100, z: 100, c: 1, t: 1 },
      spacing: { x: 0.127, y: 0.127, z: 0.2837, unit: 'µm' },
    } as Volume;
    const app = planRecipe([image], 2, recipeFromApi({ preset: 'desktop', minutes: 4, seed: 3 }));
    const cli = planRecipe([image], 2, recipeFromValues({ seed: '3' }, 4));
    expect(app).toEqual(cli);
    expect(app.downsample).toEqual([1, 2, 2]);
    expect(app.net.bnAtTest).toBe('batch');
    expect(app.classWeightPower).toBe(0.75);
  });
});

describe('calibrated decision', () => {
  it('K = 2: cuts so that the predicted class fractions equal the painted ones', () => {
    const rnd = lcg(7);
    const n = 5000;
    const labels = new Uint8Array(n);
    const p = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      labels[i] = rnd() < 0.2 ? 2 : 1;
      // biased towards class 2, as strong class weights make it
      const q = Math.min(0.999, Math.max(0.001, (labels[i] === 2 ? 0.75 : 0.45) + 0.3 * (rnd() - 0.5)));
      p[n + i] = q;
      p[i] = 1 - q;
    }
    const c = fitCalibration(p, labels, 2);
    expect(c.mode).toBe('fraction');
    expect(c.paintedFractions[1]).toBeCloseTo(labels.filter((l) => l === 2).length / n, 10);
    expect(c.predictedFractionsArgmax[1]).toBeGreaterThan(0.3);
    expect(Math.abs(c.predictedFractions[1]! - c.paintedFractions[1]!)).toBeLessThan(1 / n + 1e-9);
    expect(c.weights[0]! / c.weights[1]!).toBeGreaterThan(1); // class 2 needs more evidence than before
    expect(predictedFractions(p, n, 2, c.weights)).toEqual(c.predictedFractions);
  });

  it('K = 3: iterative fitting reaches the painted fractions within a percent', () => {
    const rnd = lcg(11);
    const n = 6000;
    const K = 3;
    const labels = new Uint8Array(n);
    const p = new Float32Array(K * n);
    for (let i = 0; i < n; i++) {
      const r = rnd();
      labels[i] = r < 0.6 ? 1 : r < 0.9 ? 2 : 3;
      const raw = [rnd(), rnd() + 0.3, rnd() + 0.4];
      raw[labels[i]! - 1]! += 0.8;
      const sum = raw.reduce((a, b) => a + b, 0);
      for (let k = 0; k < K; k++) p[k * n + i] = raw[k]! / sum;
    }
    const c = fitCalibration(p, labels, K);
    for (let k = 0; k < K; k++)
      expect(Math.abs(c.predictedFractions[k]! - c.paintedFractions[k]!)).toBeLessThan(0.01);
    expect(Math.abs(c.predictedFractionsArgmax[0]! - c.paintedFractions[0]!)).toBeGreaterThan(0.05);
  });

  it('iou: the weights that maximise the foreground IoU on the fitting voxels, never below the argmax', () => {
    const rnd = lcg(3);
    const n = 4000;
    const labels = new Uint8Array(n);
    const p = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      labels[i] = rnd() < 0.25 ? 2 : 1;
      const q = Math.min(0.999, Math.max(0.001, (labels[i] === 2 ? 0.7 : 0.45) + 0.35 * (rnd() - 0.5)));
      p[n + i] = q;
      p[i] = 1 - q;
    }
    const iouOf = (w: number[]) => {
      let tp = 0;
      let fpn = 0;
      for (let i = 0; i < n; i++) {
        const d = p[n + i]! * w[1]! > p[i]! * w[0]! ? 2 : 1;
        if (d === 2 && labels[i] === 2) tp++;
        else if (d === 2 || labels[i] === 2) fpn++;
      }
      return tp / (tp + fpn);
    };
    const c = fitCalibration(p, labels, 2, 'iou');
    expect(c.mode).toBe('iou');
    expect(iouOf(c.weights)).toBeGreaterThan(iouOf([1, 1]) + 0.02);
    // probabilities that are already right keep the argmax
    const good = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      good[n + i] = labels[i] === 2 ? 0.9 : 0.1;
      good[i] = 1 - good[n + i]!;
    }
    expect(fitCalibration(good, labels, 2, 'iou').weights).toEqual([1, 1]);
  });

  it('leaves the argmax alone with mode none, too few voxels or one painted class', () => {
    const p = new Float32Array([0.2, 0.3, 0.8, 0.7]);
    expect(fitCalibration(p, [1, 2], 2).weights).toEqual([1, 1]);
    const q = new Float32Array(200).fill(0.5);
    expect(fitCalibration(q, new Uint8Array(100).fill(1), 2).weights).toEqual([1, 1]);
    expect(fitCalibration(q, new Uint8Array(100).fill(1), 2, 'none').mode).toBe('none');
    expect(() => fitCalibration(new Float32Array(3), [1, 2], 2)).toThrow(/3 probabilities for 2 voxels/);
  });
});

describe('block hold-out', () => {
  it('holds out about a fifth of the painted voxels in blocks, disjoint from training', () => {
    const shape: [number, number, number] = [40, 60, 60];
    const n = 40 * 60 * 60;
    const labels = new Uint8Array(n);
    // three painted planes, as make-sparse --slices 1 draws them
    for (let z = 0; z < 40; z++)
      for (let y = 0; y < 60; y++)
        for (let x = 0; x < 60; x++)
          if (z === 20 || y === 30 || x === 30) labels[(z * 60 + y) * 60 + x] = (x + y) % 7 === 0 ? 2 : 1;
    const annotated = labels.filter((l) => l > 0).length;
    const s = splitBlocks(labels, shape, 2, { seed: 3 });
    expect(s.heldOutVoxels / annotated).toBeGreaterThan(0.08);
    expect(s.heldOutVoxels / annotated).toBeLessThan(0.35);
    let both = 0;
    let lost = 0;
    for (let i = 0; i < n; i++) {
      if (s.train[i]! > 0 && s.heldOut[i]! > 0) both++;
      if (labels[i] && (s.train[i] || s.heldOut[i]) !== labels[i]) lost++;
    }
    expect(both).toBe(0);
    expect(lost).toBe(0);
    expect(s.heldOutCounts[1]! + s.heldOutCounts[2]!).toBe(s.heldOutVoxels);
    // blocks: held-out voxels come in runs, not scattered single voxels
    let runs = 0;
    let inPlane = 0;
    const z0 = 20 * 60 * 60;
    for (let i = z0 + 1; i < z0 + 3600; i++) {
      if (s.heldOut[i]) inPlane++;
      if (s.heldOut[i] && !s.heldOut[i - 1]) runs++;
    }
    expect(inPlane / runs).toBeGreaterThan(5);
    // another seed, other blocks; the same seed, the same split
    expect(splitBlocks(labels, shape, 2, { seed: 4 }).heldOut).not.toEqual(s.heldOut);
    expect(splitBlocks(labels, shape, 2, { seed: 3 }).heldOut).toEqual(s.heldOut);
  });

  it('holds nothing out of thin paint, and scores the foreground classes', () => {
    const labels = new Uint8Array(1000);
    labels.fill(1, 0, 500);
    expect(splitBlocks(labels, [10, 10, 10], 2).heldOutVoxels).toBe(0);
    expect(foregroundIoU([2, 2, 1, 1], [2, 1, 2, 1], 2)).toBeCloseTo(1 / 3, 10);
    expect(foregroundIoU([1, 1], [1, 1], 2)).toBeNull();
  });
});

describe('forest member', () => {
  it('round-trips a forest through forest.bin and refuses a damaged file naming it', async () => {
    const { trainForest } = await import('../../main/classical/index.js');
    const { serializeForest, deserializeForest } = await import('../../main/pipeline/ensemble.js');
    // two separable synthetic classes in 3 features (arithmetic check of the file format)
    const rnd = lcg(5);
    const n = 400;
    const values = new Float32Array(3 * n);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 2 ? 2 : 1;
      for (let f = 0; f < 3; f++) values[f * n + i] = rnd() + (labels[i] === 2 ? 0.7 * f : 0);
    }
    const f = trainForest({ values, n, numFeatures: 3, labels, numClasses: 2 }, { trees: 7, seed: 3 });
    const g = deserializeForest(serializeForest(f));
    expect(g.numClasses).toBe(2);
    expect(g.numFeatures).toBe(3);
    expect(g.roots).toEqual(f.roots);
    expect(g.feature).toEqual(f.feature);
    expect(g.threshold).toEqual(f.threshold);
    expect(g.value).toEqual(f.value);
    const bin = serializeForest(f);
    expect(() => deserializeForest(bin.subarray(0, bin.length - 40), 'm/forest.bin')).toThrow(
      /not a Sliceform forest file: truncated arrays/,
    );
    expect(() => deserializeForest(new Uint8Array(64), 'm/forest.bin')).toThrow(/wrong magic/);
  });
});
