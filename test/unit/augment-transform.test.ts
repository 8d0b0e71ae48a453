import { describe, expect, it } from 'vitest';
import { elasticField, planeRotation, renderSample, toVoxelSpace, IDENTITY3, type SampleSpec, type TrainVolumeData, type Vec3 } from '../../main/training/augment.js';
import { mirrorIndex } from '../../main/volume/mirror.js';
import { Rng } from '../../main/training/rng.js';
import { DEFAULT_AUGMENT, NO_AUGMENT, TileSampler, planTileShapes } from '../../main/training/sampler.js';
import { analyseLabels } from '../../main/training/sparse.js';

// Synthetic volumes: augmentation is pure geometry, so a random image and a random 3-class labelling are the
// most demanding inputs (every voxel differs); no real file is needed for these properties.
function randomVolume(shape: Vec3, channels = 1, classes = 3, seed = 1): TrainVolumeData {
  const rng = new Rng(seed);
  const n = shape[0] * shape[1] * shape[2];
  const image = new Float32Array(channels * n).map(() => rng.normal());
  const labels = new Uint8Array(n).map(() => rng.int(classes + 1));
  return { shape, channels, image, labels };
}

describe('mirrorIndex', () => {
  it('reflects without repeating the edge and is periodic', () => {
    expect([-3, -2, -1, 0, 1, 4, 5, 6, 7, 8, 9].map((i) => mirrorIndex(i, 5))).toEqual([3, 2, 1, 0, 1, 4, 3, 2, 1, 0, 1]);
    expect(mirrorIndex(-17, 1)).toBe(0);
  });
});

describe('renderSample', () => {
  const vol = randomVolume([12, 14, 16], 2);
  it('zero-strength parameters are the identity (image and labels are plain crops)', () => {
    const spec: SampleSpec = {
      volume: 0,
      inShape: [8, 10, 12],
      outShape: [4, 6, 8],
      pivotVol: [6, 7, 8],
      pivotTile: [4, 5, 6],
      matrix: [...IDENTITY3],
      elastic: { seed: 3, grid: 32, sigma: 0 },
      gray: { gamma: [1, 1], contrast: [1, 1], brightness: [0, 0] },
    };
    const s = renderSample(vol, spec, (seed) => new Rng(seed));
    const [Z, Y, X] = vol.shape;
    // input voxel (z,y,x) = volume voxel (z+2, y+2, x+2)
    for (let c = 0; c < 2; c++)
      for (let z = 0; z < 8; z++)
        for (let y = 0; y < 10; y++)
          for (let x = 0; x < 12; x++) {
            expect(s.input[((c * 8 + z) * 10 + y) * 12 + x]).toBe(vol.image[((c * Z + z + 2) * Y + y + 2) * X + x + 2]);
          }
    // output starts 2 voxels inside the input tile
    for (let z = 0; z < 4; z++)
      for (let y = 0; y < 6; y++)
        for (let x = 0; x < 8; x++) expect(s.labels[(z * 6 + y) * 8 + x]).toBe(vol.labels[((z + 4) * Y + y + 4) * X + x + 4]);
  });

  it('mirrors at the volume border', () => {
    const spec: SampleSpec = { volume: 0, inShape: [4, 4, 4], outShape: [2, 2, 2], pivotVol: [0, 0, 0], pivotTile: [2, 2, 2], matrix: [...IDENTITY3] };
    const s = renderSample(vol, spec);
    const [, Y, X] = vol.shape;
    // tile voxel (0,0,0) -> volume (-2,-2,-2) -> mirrored (2,2,2)
    expect(s.input[0]).toBe(vol.image[(2 * Y + 2) * X + 2]);
  });

  it('keeps labels in the class set under strong rotation, scaling and elastic deformation', () => {
    const rng = new Rng(5);
    const m = toVoxelSpace(planeRotation(1, 2, 0.7), [2.2, 1, 1]).map((v) => v * 1.2) as typeof IDENTITY3;
    for (let t = 0; t < 5; t++) {
      const s = renderSample(
        vol,
        { volume: 0, inShape: [20, 20, 20], outShape: [8, 8, 8], pivotVol: [6, 7, 8], pivotTile: [10, 10, 10], matrix: m, elastic: { seed: rng.nextU32(), grid: 8, sigma: 4 } },
        (seed) => new Rng(seed),
      );
      for (const l of s.labels) expect([0, 1, 2, 3]).toContain(l);
      expect(s.input.every(Number.isFinite)).toBe(true);
    }
  });

  it('rotating a volume by 90° in xy maps voxels exactly', () => {
    const spec: SampleSpec = { volume: 0, inShape: [4, 6, 6], outShape: [4, 6, 6], pivotVol: [5, 7, 8], pivotTile: [0, 0, 0], matrix: planeRotation(1, 2, Math.PI / 2).map((v) => Math.round(v)) as typeof IDENTITY3 };
    const s = renderSample(vol, spec);
    const [, Y, X] = vol.shape;
    // source = pivot + R p with R = [[0,-1],[1,0]] in (y,x): sy = 7 - x, sx = 8 + y
    expect(s.labels[(1 * 6 + 2) * 6 + 3]).toBe(vol.labels[((5 + 1) * Y + (7 - 3)) * X + (8 + 2)]);
  });

  it('gray-value changes act per channel', () => {
    const spec: SampleSpec = { volume: 0, inShape: [4, 4, 4], outShape: [2, 2, 2], pivotVol: [5, 5, 5], pivotTile: [2, 2, 2], matrix: [...IDENTITY3] };
    const plain = renderSample(vol, spec);
    const g = renderSample(vol, { ...spec, gray: { gamma: [1, 1], contrast: [2, 1], brightness: [0.5, 0] } });
    expect(g.input[3]).toBeCloseTo(plain.input[3]! * 2 + 0.5, 5);
    expect(g.input[64 + 3]).toBeCloseTo(plain.input[64 + 3]!, 6);
  });
});

describe('elasticField', () => {
  it('passes through the control vectors: statistics at the knots match sigma', () => {
    const vals: number[] = [];
    for (let s = 0; s < 80; s++) {
      const f = elasticField([33, 33, 33], { seed: s, grid: 32, sigma: 4 }, new Rng(s));
      for (const k of [0, 32])
        for (const j of [0, 32]) for (const i of [0, 32]) for (let c = 0; c < 3; c++) vals.push(f[c]![(k * 33 + j) * 33 + i]!);
    }
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    const std = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length);
    expect(Math.abs(mean)).toBeLessThan(0.3);
    expect(std).toBeGreaterThan(3.7);
    expect(std).toBeLessThan(4.3);
  });

  it('is smooth between knots and deterministic for a seed; a frozen axis stays 0', () => {
    const a = elasticField([40, 40, 40], { seed: 1, grid: 32, sigma: 4, freezeAxis: 0 }, new Rng(9));
    const b = elasticField([40, 40, 40], { seed: 1, grid: 32, sigma: 4, freezeAxis: 0 }, new Rng(9));
    expect(Array.from(a[1].slice(0, 100))).toEqual(Array.from(b[1].slice(0, 100)));
    expect(a[0].every((v) => v === 0)).toBe(true);
    let maxStep = 0;
    for (let i = 1; i < 40; i++) maxStep = Math.max(maxStep, Math.abs(a[2][i]! - a[2][i - 1]!));
    expect(maxStep).toBeLessThan(1.5); // neighbouring voxels move together
    const std = Math.sqrt(a[2].reduce((s, v) => s + v * v, 0) / a[2].length);
    expect(std).toBeGreaterThan(1);
  });
});

describe('TileSampler', () => {
  it('puts the annotated plane on an output row of thin tiles and reports the share', () => {
    const shape: Vec3 = [40, 50, 50];
    const n = 40 * 50 * 50;
    const labels = new Uint8Array(n);
    // one annotated xy plane at z = 20
    for (let i = 0; i < 50 * 50; i++) labels[20 * 2500 + i] = 1 + (i % 7 === 0 ? 1 : 0);
    const image = new Float32Array(n).map((_, i) => i % 13);
    const vol: TrainVolumeData = { shape, channels: 1, image, labels };
    const summary = analyseLabels(labels, shape, 2);
    expect(summary.planes.map((p) => [p.axis, p.index])).toEqual([[0, 20]]);
    const shapes = planTileShapes({ levels: 3, padding: 'valid' }, 40, 20);
    expect(shapes.thinOut[0]).toEqual([4, 40, 40]);
    expect(shapes.thinIn[0]).toEqual([44, 80, 80]);
    for (const aug of [NO_AUGMENT, DEFAULT_AUGMENT]) {
      const sampler = new TileSampler([{ shape, spacing: [2.2, 1, 1], channels: 1 }], [summary], shapes, aug);
      const rng = new Rng(3);
      for (let t = 0; t < 4; t++) {
        const spec = sampler.next(rng);
        const s = renderSample(vol, spec, (seed) => new Rng(seed));
        const annotated = s.labels.reduce((a, l) => a + (l > 0 ? 1 : 0), 0);
        // one of the 4 output rows is the plane: 25 % annotated even after rotation/scaling/elastic
        expect(annotated / s.labels.length).toBeCloseTo(0.25, 2);
      }
    }
  });
  it('draws a batch whose samples share one tile shape, planes of every axis across batches', () => {
    // annotated planes on all three axes: z = 10, y = 30, x = 12 (tile shapes differ per normal axis)
    const shape: Vec3 = [24, 48, 40];
    const labels = new Uint8Array(24 * 48 * 40);
    for (let z = 0; z < 24; z++)
      for (let y = 0; y < 48; y++)
        for (let x = 0; x < 40; x++) if (z === 10 || y === 30 || x === 12) labels[(z * 48 + y) * 40 + x] = 1 + ((x + y + z) % 3 === 0 ? 1 : 0);
    const summary = analyseLabels(labels, shape, 2);
    expect(summary.planes.map((p) => p.axis).sort()).toEqual([0, 1, 2]);
    const shapes = planTileShapes({ levels: 2, padding: 'valid' }, 32, 16, shape);
    const keys = new Set(shapes.thinIn.map((s) => s.join('x')));
    expect(keys.size).toBe(3);
    const sampler = new TileSampler([{ shape, spacing: [1, 1, 1], channels: 1 }], [summary], shapes, DEFAULT_AUGMENT);
    const seen = new Map<string, number>();
    for (let t = 0; t < 60; t++) {
      const b = sampler.nextBatch(new Rng(100 + t), 3);
      expect(b).toHaveLength(3);
      const k = b[0]!.inShape.join('x');
      for (const s of b) expect(s.inShape.join('x')).toBe(k);
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual([...keys].sort());
    // deterministic for a seed, and a batch is not one sample repeated
    const a = sampler.nextBatch(new Rng(5), 2);
    expect(JSON.stringify(a)).toBe(JSON.stringify(sampler.nextBatch(new Rng(5), 2)));
    expect(JSON.stringify(a[0])).not.toBe(JSON.stringify(a[1]));
    expect(() => sampler.next(new Rng(1), '1x2x3')).toThrow(/no annotated source gives a 1x2x3 tile/);
  });
  it('is deterministic for a seed', () => {
    const shape: Vec3 = [10, 10, 10];
    const labels = new Uint8Array(1000);
    labels[555] = 2;
    const summary = analyseLabels(labels, shape, 2);
    const sampler = new TileSampler([{ shape, spacing: [1, 1, 1], channels: 1 }], [summary], planTileShapes({ levels: 2, padding: 'valid' }, 8, 8), DEFAULT_AUGMENT);
    expect(JSON.stringify(sampler.next(new Rng(7)))).toBe(JSON.stringify(sampler.next(new Rng(7))));
    expect(JSON.stringify(sampler.next(new Rng(7)))).not.toBe(JSON.stringify(sampler.next(new Rng(8))));
  });
});
