/**
 * Memory-bounded classical learner (main/classical/blocks.ts): box features with the halo equal the whole
 * stack bit for bit, and training / prediction in blocks gives exactly the whole-volume model's output. Real
 * data: crops of the shared 1135 nuclei and of the ovule membrane stack.
 */
import { describe, expect, it } from 'vitest';
import { dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import { boxFeatures, densifyClassical, featureHalo, fitClassical, multiscaleFeatures, planBlocks, type Box } from '../../main/classical/index.js';
import { CancelledError } from '../../main/common/errors.js';
import type { Progress } from '../../main/common/progress.js';

function crop(v: Volume, z0: number, y0: number, x0: number, d: { x: number; y: number; z: number }): Volume {
  const data = new Float32Array(d.x * d.y * d.z);
  for (let z = 0; z < d.z; z++)
    for (let y = 0; y < d.y; y++) for (let x = 0; x < d.x; x++) data[(z * d.y + y) * d.x + x] = v.data[((z0 + z) * v.shape.y + y0 + y) * v.shape.x + x0 + x]!;
  return { ...v, data, dtype: 'float32', shape: { ...d, c: 1, t: 1 } };
}

function sameAsWhole(whole: Float32Array, count: number, d: { x: number; y: number; z: number }, box: Box, part: Float32Array): number {
  const N = d.x * d.y * d.z;
  const bx = box.x[1] - box.x[0];
  const by = box.y[1] - box.y[0];
  const M = bx * by * (box.z[1] - box.z[0]);
  let mismatches = 0;
  for (let f = 0; f < count; f++)
    for (let z = box.z[0]; z < box.z[1]; z++)
      for (let y = box.y[0]; y < box.y[1]; y++)
        for (let x = box.x[0]; x < box.x[1]; x++) {
          const a = whole[f * N + (z * d.y + y) * d.x + x]!;
          const b = part[f * M + ((z - box.z[0]) * by + (y - box.y[0])) * bx + (x - box.x[0])]!;
          if (a !== b) mismatches++;
        }
  return mismatches;
}

describe('classical learner in blocks', () => {
  it('computes the halo from the largest sigma (and the spacing when anisotropic)', () => {
    expect(featureHalo({}, { x: 100, y: 100, z: 100 })).toEqual({ x: 34, y: 34, z: 34 }); // int(4·8 + 0.5) + 2
    expect(featureHalo({ sigmaMax: 2 }, { x: 100, y: 100, z: 1 })).toEqual({ x: 10, y: 10, z: 0 });
    // 1135's spacing: z 0.2837 µm, y/x 0.127 µm → σ_z = 8 · 0.127 / 0.2837 = 3.58 voxels
    expect(featureHalo({ spacing: { x: 0.127, y: 0.127, z: 0.2837 } }, { x: 100, y: 100, z: 100 })).toEqual({ x: 34, y: 34, z: 16 });
  });

  it('box features equal the whole stack bit for bit (inner box, boxes touching the faces)', async () => {
    const v = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'raw' });
    const d = { x: 90, y: 80, z: 84 };
    const c = crop(v, 8, 10, 5, d);
    const whole = multiscaleFeatures(c.data, d);
    for (const box of [
      { z: [38, 45], y: [36, 44], x: [40, 50] },
      { z: [0, 5], y: [70, 80], x: [0, 90] },
      { z: [80, 84], y: [0, 3], x: [85, 90] },
    ] as Box[]) {
      const part = boxFeatures(c.data, d, 1, box);
      expect(part.count).toBe(20);
      expect(part.dims).toEqual({ x: box.x[1] - box.x[0], y: box.y[1] - box.y[0], z: box.z[1] - box.z[0] });
      expect(sameAsWhole(whole.data, 20, d, box, part.data)).toBe(0);
    }
    // the halo is needed: a box cut without it differs
    const tight = multiscaleFeatures(c.data.slice(0, 10 * 80 * 90), { x: 90, y: 80, z: 10 });
    expect(sameAsWhole(whole.data, 20, d, { z: [0, 10], y: [0, 80], x: [0, 90] }, tight.data)).toBeGreaterThan(1000);
  });

  it('plans blocks that cover the region once and fit the budget', () => {
    const d = { x: 200, y: 150, z: 60 };
    const halo = { x: 34, y: 34, z: 34 };
    const region: Box = { z: [0, 60], y: [0, 150], x: [0, 200] };
    const blocks = planBlocks(region, d, halo, 400_000);
    expect(blocks.length).toBeGreaterThan(1);
    const seen = new Uint8Array(d.x * d.y * d.z);
    for (const b of blocks) {
      const g = [b.z, b.y, b.x].map(([lo, hi], k) => Math.min(hi + [34, 34, 34][k]!, [60, 150, 200][k]!) - Math.max(0, lo - 34));
      expect(g[0]! * g[1]! * g[2]!).toBeLessThanOrEqual(400_000);
      for (let z = b.z[0]; z < b.z[1]; z++) for (let y = b.y[0]; y < b.y[1]; y++) for (let x = b.x[0]; x < b.x[1]; x++) seen[(z * d.y + y) * d.x + x]!++;
    }
    expect(seen.every((s) => s === 1)).toBe(true);
    // when the halo spans the volume no cut helps: one block, not a million
    expect(planBlocks({ z: [0, 32], y: [0, 56], x: [0, 64] }, { x: 64, y: 56, z: 32 }, halo, 1000)).toHaveLength(1);
  });

  it('trains and predicts in blocks exactly like the whole-volume model (ovule membrane crop)', async () => {
    const v = await readVolume(dataFile('plantseg_ovule_membrane', 'sample_ovule.h5'), { dataset: 'raw' });
    const t = await readVolume(dataFile('plantseg_ovule_membrane', 'sample_ovule_membrane_truth.tif'));
    const d = { x: 64, y: 56, z: 32 };
    const img = crop(v, 0, 20, 30, d);
    const truth = crop(t, 0, 20, 30, d);
    const labels = new Uint8Array(d.x * d.y * d.z);
    for (let z = 0; z < d.z; z++)
      for (let y = 0; y < d.y; y++)
        for (let x = 0; x < d.x; x++) {
          const i = (z * d.y + y) * d.x + x;
          if (z === 16 || y === 28 || x === 32) labels[i] = truth.data[i] === 255 ? 2 : 1;
        }
    const forest = { trees: 10, seed: 3 };
    // sigma 1..2 (halo 10): a budget of 40k voxels per grown block forces several blocks on this 115k-voxel crop
    const features = { sigmaMax: 2 };
    const whole = fitClassical(img, labels, { forest, features });
    const blocked = fitClassical(img, labels, { forest, features, maxFeatureBytes: 40_000 * 4 * (10 + 1 + 18) });
    expect(planBlocks({ z: [0, 32], y: [0, 56], x: [0, 64] }, d, featureHalo(features, d), 40_000).length).toBeGreaterThanOrEqual(4);
    expect(whole.mode).toBe('whole');
    expect(blocked.mode).toBe('blocks');
    expect(blocked.features).toBeUndefined();
    expect(Array.from(blocked.forest.threshold)).toEqual(Array.from(whole.forest.threshold));
    const pw = whole.predictProba();
    const pb = blocked.predictProba();
    expect(pb.dims).toEqual(pw.dims);
    expect(Array.from(pb.data)).toEqual(Array.from(pw.data));
    const plane = blocked.predictProba({ axis: 'y', index: 40 });
    expect(Array.from(plane.data)).toEqual(Array.from(whole.predictProba({ axis: 'y', index: 40 }).data));
    let fg = 0;
    for (let i = 0; i < pw.data.length / 2; i++) if (pw.data[pw.data.length / 2 + i]! > 0.5) fg++;
    expect(fg / (pw.data.length / 2)).toBeGreaterThan(0.05);
  });

  it('reports progress per stage and cancels between steps', async () => {
    const v = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'raw' });
    const t = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'label' });
    const d = { x: 30, y: 30, z: 30 };
    const img = crop(v, 35, 35, 35, d);
    const truth = crop(t, 35, 35, 35, d);
    const labels = new Uint8Array(d.x * d.y * d.z);
    for (let i = 0; i < labels.length; i++) if (Math.floor(i / 900) === 15) labels[i] = truth.data[i]! > 0 ? 2 : 1;
    const seen: Progress[] = [];
    const r = densifyClassical(img, labels, { forest: { trees: 12 }, onProgress: (p) => seen.push(p) });
    expect(r.labels.length).toBe(27_000);
    const stages = [...new Set(seen.map((p) => p.stage))];
    expect(stages).toEqual(['features', 'forest', 'predict']);
    for (const st of stages) {
      const f = seen.filter((p) => p.stage === st).map((p) => p.fraction);
      expect(f.at(-1)).toBe(1);
      expect(f.every((x, i) => i === 0 || x >= f[i - 1]!)).toBe(true);
    }
    expect(seen.filter((p) => p.stage === 'forest')).toHaveLength(12);
    expect(seen.filter((p) => p.stage === 'features')).toHaveLength(5); // start + 4 sigmas
    // cancel during the forest: CancelledError, and nothing after it
    const signal = { aborted: false };
    let after = 0;
    expect(() =>
      fitClassical(img, labels, {
        forest: { trees: 12 },
        signal,
        onProgress: (p) => {
          if (signal.aborted) after++;
          if (p.stage === 'forest' && p.fraction >= 0.25) signal.aborted = true;
        },
      }),
    ).toThrow(CancelledError);
    expect(after).toBe(0);
    const m = fitClassical(img, labels, { forest: { trees: 3 } });
    expect(() => m.predictProba({ axis: 'z', index: 3 }, { signal: { aborted: true } })).toThrow(/cancelled during predict/);
  });
});
