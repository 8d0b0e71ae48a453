import { describe, expect, it } from 'vitest';
import { analyseLabels, chooseHoldout, classWeights, withoutPlanes } from '../../main/training/sparse.js';
import { computeNormalisation, normaliseVolume, percentiles } from '../../main/volume/preprocess.js';
import { Rng } from '../../main/training/rng.js';
import { progressLine } from '../../main/training/progress-line.js';
import type { Volume } from '../../main/common/volume.js';

// Synthetic label layouts: the plane detector must tell painted slices from crossing lines and dense labels,
// which is easiest to pin down on hand-made layouts.
function slices(shape: [number, number, number], planes: [number, number][]): Uint8Array {
  const [Z, Y, X] = shape;
  const l = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) for (const [a, i] of planes) if ([z, y, x][a] === i) l[(z * Y + y) * X + x] = (x + y + z) % 5 === 0 ? 2 : 1;
  return l;
}

describe('analyseLabels', () => {
  it('finds painted slices (not the lines where they cross) and counts classes', () => {
    const shape: [number, number, number] = [20, 24, 30];
    const s = analyseLabels(slices(shape, [[0, 10], [1, 12], [2, 15]]), shape, 2);
    expect(s.planes.map((p) => [p.axis, p.index])).toEqual([[0, 10], [1, 12], [2, 15]]);
    expect(s.scattered.length).toBe(0);
    expect(s.classCounts[1]! + s.classCounts[2]!).toBe(s.annotated);
    expect(s.planes[0]!.count).toBe(24 * 30);
  });
  it('treats dense or scattered labels as scattered voxels', () => {
    const shape: [number, number, number] = [6, 6, 6];
    const dense = new Uint8Array(216).fill(1);
    expect(analyseLabels(dense, shape, 2).planes).toEqual([]);
    const dots = new Uint8Array(216);
    dots[7] = 2;
    dots[100] = 1;
    const s = analyseLabels(dots, shape, 2);
    expect(s.planes).toEqual([]);
    expect(Array.from(s.scattered)).toEqual([7, 100]);
  });
  it('rejects labels beyond the class count', () => {
    const l = new Uint8Array(8);
    l[3] = 3;
    expect(() => analyseLabels(l, [2, 2, 2], 2)).toThrow(/label 3 .* exceeds the 2 classes/);
  });
});

describe('class weights and held-out planes', () => {
  it('lowers the frequent class, raises the rare one, keeps the mean weight 1', () => {
    const w = classWeights([0, 900, 100]);
    expect(w[0]).toBeLessThan(1);
    expect(w[1]).toBeGreaterThan(1);
    expect((900 * w[0]! + 100 * w[1]!) / 1000).toBeCloseTo(1);
    expect(w[1]! / w[0]!).toBeCloseTo(3); // sqrt(900/100)
    expect(classWeights([0, 5, 5])).toEqual([1, 1]);
  });
  it('holds out one interior plane per axis only when an axis has >= 4 planes', () => {
    const shape: [number, number, number] = [40, 10, 10];
    const few = analyseLabels(slices(shape, [[0, 5], [0, 20], [0, 35]]), shape, 2);
    expect(chooseHoldout(few.planes)).toEqual([]);
    const many = analyseLabels(slices(shape, [[0, 4], [0, 12], [0, 20], [0, 28], [0, 36]]), shape, 2);
    const ho = chooseHoldout(many.planes);
    expect(ho.map((p) => p.index)).toEqual([12]);
    const removed = withoutPlanes(slices(shape, [[0, 4], [0, 12]]), shape, ho);
    expect(analyseLabels(removed, shape, 2).planes.map((p) => p.index)).toEqual([4]);
  });
});

describe('normalisation', () => {
  it('percentiles interpolate like numpy', () => {
    expect(percentiles([1, 2, 3, 4, 5], [0, 50, 100, 25])).toEqual([1, 3, 5, 2]);
  });
  it('maps the robust range to zero mean, unit variance (per channel)', () => {
    const rng = new Rng(4);
    const n = 20000;
    const data = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      data[i] = 100 + 10 * rng.normal();
      data[n + i] = rng.next() * 1000;
    }
    data[5] = 1e6; // a hot pixel must not matter
    const v = { data, dtype: 'float32', shape: { x: n, y: 1, z: 1, c: 2, t: 1 } } as unknown as Volume;
    const norm = computeNormalisation([v]);
    expect(norm.channels).toHaveLength(2);
    const out = normaliseVolume(v, norm);
    for (const c of [0, 1]) {
      const part = Array.from(out.subarray(c * n, (c + 1) * n)).filter((x) => Math.abs(x) < 10);
      const mean = part.reduce((a, b) => a + b, 0) / part.length;
      const sd = Math.sqrt(part.reduce((a, b) => a + (b - mean) ** 2, 0) / part.length);
      expect(Math.abs(mean)).toBeLessThan(0.05);
      expect(sd).toBeGreaterThan(0.9);
      expect(sd).toBeLessThan(1.1);
    }
  });
});

describe('Rng and progress line', () => {
  it('is deterministic and roughly uniform / normal', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 5000 }, () => a.next());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b.next()));
    expect(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5)).toBeLessThan(0.02);
    const ns = Array.from({ length: 5000 }, () => a.normal());
    const sd = Math.sqrt(ns.reduce((s, x) => s + x * x, 0) / ns.length);
    expect(sd).toBeGreaterThan(0.95);
    expect(sd).toBeLessThan(1.05);
  });
  it('shows iteration, loss, voxels/s, held-out IoU and ETA', () => {
    const s = progressLine({ fraction: 0.5, etaSeconds: 75, stage: 'training', details: { iteration: 12, loss: 0.25, voxelsPerSecond: 3000, heldOutIoU: 0.8 } });
    expect(s).toContain('50%');
    expect(s).toContain('it 12');
    expect(s).toContain('loss 0.2500');
    expect(s).toContain('3000 vox/s');
    expect(s).toContain('held-out IoU 0.800');
    expect(s).toContain('ETA 01:15');
  });
});
