/**
 * The live session's sampler parts (pipeline/live.ts, training/sampler.ts) on the real 1135 labels (ground truth
 * on the middle xy, xz and yz slices, downsampled as the recipe does, [1, 2, 2]):
 *  - a label change brought to the working grid block by block equals downsampling the whole new volume;
 *  - hot spots: share 1 centres every batch's first tile on a hot voxel, share 0 draws exactly what a sampler
 *    without hot spots draws, 0.75 about three in four.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import { downsampleLabelVolume, type Factors } from '../../main/volume/resample.js';
import { downsampleChange } from '../../main/pipeline/live.js';
import { analyseLabels } from '../../main/training/sparse.js';
import { DEFAULT_AUGMENT, TileSampler, planTileShapes } from '../../main/training/sampler.js';
import { Rng } from '../../main/training/rng.js';
import type { Vec3 } from '../../main/training/augment.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
let full: Volume;
let sparse: Uint8Array;
let truth: Uint8Array;
const N = 100;
const F: Factors = [1, 2, 2];

beforeAll(async () => {
  const gt = await readVolume(H5, { dataset: 'label' });
  truth = Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1));
  sparse = new Uint8Array(truth.length);
  for (let z = 0; z < N; z++)
    for (let y = 0; y < N; y++)
      for (let x = 0; x < N; x++)
        if (z === 50 || y === 50 || x === 50) sparse[(z * N + y) * N + x] = truth[(z * N + y) * N + x]!;
  full = { ...gt, data: sparse, dtype: 'uint8' };
}, 30_000);

describe('downsampleChange', () => {
  it('equals downsampling the whole changed volume, for a stroke, an erasure and a whole-volume change', () => {
    const low = Uint8Array.from(downsampleLabelVolume(full, F).data);
    const lowShape: Vec3 = [100, 50, 50];
    const labels = Uint8Array.from(sparse);
    // a stroke on the unpainted xy plane z = 20 (the truth in a 31 x 17 box, odd offsets: blocks cut in half)
    const box = {
      min: [13, 27, 20] as [number, number, number],
      max: [44, 44, 21] as [number, number, number],
    };
    for (let y = box.min[1]; y < box.max[1]; y++)
      for (let x = box.min[0]; x < box.max[0]; x++)
        labels[(20 * N + y) * N + x] = truth[(20 * N + y) * N + x]!;
    const r = downsampleChange(labels, [N, N, N], low, lowShape, F, box);
    expect(r).toEqual({ min: [20, 13, 6], max: [21, 22, 22] });
    const want = downsampleLabelVolume({ ...full, data: labels }, F).data;
    expect(Buffer.compare(Buffer.from(low), Buffer.from(want))).toBe(0);
    // an erasure across the painted xz plane y = 50
    const er = {
      min: [30, 45, 40] as [number, number, number],
      max: [61, 56, 61] as [number, number, number],
    };
    for (let z = er.min[2]; z < er.max[2]; z++)
      for (let y = er.min[1]; y < er.max[1]; y++)
        for (let x = er.min[0]; x < er.max[0]; x++) labels[(z * N + y) * N + x] = 0;
    downsampleChange(labels, [N, N, N], low, lowShape, F, er);
    const want2 = downsampleLabelVolume({ ...full, data: labels }, F).data;
    expect(Buffer.compare(Buffer.from(low), Buffer.from(want2))).toBe(0);
    expect(want2.filter((l) => l > 0).length).toBeLessThan(want.filter((l) => l > 0).length);
    // null box: the whole volume
    labels.set(sparse);
    downsampleChange(labels, [N, N, N], low, lowShape, F, null);
    expect(Buffer.compare(Buffer.from(low), Buffer.from(downsampleLabelVolume(full, F).data))).toBe(0);
  });
});

describe('TileSampler hot spots', () => {
  const shape: Vec3 = [100, 50, 50];
  const sampler = () => {
    const low = downsampleLabelVolume(full, F).data;
    const summary = analyseLabels(low, shape, 2, 0);
    const shapes = planTileShapes({ levels: 2, padding: 'valid' }, 92, 36, shape);
    return new TileSampler(
      [{ shape, spacing: [0.28, 0.25, 0.25], channels: 1 }],
      [summary],
      shapes,
      DEFAULT_AUGMENT,
    );
  };
  // the hot spot: voxels of the (working-resolution) xy plane z = 20, x 10..19, y 10..19
  const voxels = Uint32Array.from(
    { length: 100 },
    (_, i) => (20 * 50 + 10 + Math.floor(i / 10)) * 50 + 10 + (i % 10),
  );
  const isHot = (p: Vec3) => p[0] === 20 && p[1] >= 10 && p[1] < 20 && p[2] >= 10 && p[2] < 20;

  it('share 1: every batch starts on a hot voxel, with a thin tile over its plane', () => {
    const s = sampler();
    s.setHotSpots([{ volume: 0, voxels, axis: 0, index: 20 }], 1);
    for (let i = 0; i < 50; i++) {
      const b = s.nextBatch(new Rng(1000 + i), 2);
      expect(isHot(b[0]!.pivotVol)).toBe(true);
      expect(b[1]!.inShape).toEqual(b[0]!.inShape);
      expect(b[0]!.outShape[0]).toBeLessThan(b[0]!.outShape[1]); // thin along z
    }
  });

  it('share 0 draws what a sampler without hot spots draws; 0.75 starts about three in four batches hot', () => {
    const a = sampler();
    const b = sampler();
    b.setHotSpots([{ volume: 0, voxels, axis: 0, index: 20 }], 0);
    for (let i = 0; i < 50; i++) expect(b.nextBatch(new Rng(i), 2)).toEqual(a.nextBatch(new Rng(i), 2));
    const c = sampler();
    c.setHotSpots([{ volume: 0, voxels, axis: 0, index: 20 }], 0.75);
    let hot = 0;
    for (let i = 0; i < 400; i++) if (isHot(c.nextBatch(new Rng(5000 + i), 2)[0]!.pivotVol)) hot++;
    expect(hot / 400).toBeGreaterThan(0.65);
    expect(hot / 400).toBeLessThan(0.85);
    // without hot spots none of them is on that (unpainted) patch
    let none = 0;
    for (let i = 0; i < 200; i++) if (isHot(a.nextBatch(new Rng(9000 + i), 2)[0]!.pivotVol)) none++;
    expect(none).toBe(0);
  });
});
