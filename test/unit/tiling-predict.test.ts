import { describe, expect, it } from 'vitest';
import { unetOutputSize, type Model, type NetConfig } from '../../main/common/engine.js';
import { planTiles, validOutputs } from '../../main/volume/tiling.js';
import { extractTile, predictRegion, sourceFromNormalised, type Slab } from '../../main/volume/predict.js';
import { upsampleSlab, downsampleLabelVolume, autoDownsample, parseFactors } from '../../main/volume/resample.js';
import type { Volume } from '../../main/common/volume.js';

/**
 * A fake Model (tests only): a translation-equivariant "valid" filter with the geometry of a real U-Net config:
 * output voxel = sigmoid(mean of its receptive window) -> [1-p, p]. Enough to check tile placement, mirroring,
 * cropping and slab order; the real engine's pooling alignment is checked in test/integration.
 */
function fakeModel(config: NetConfig): Model & { calls: number[][] } {
  const calls: number[][] = [];
  return {
    config,
    paramCount: 0,
    bnParamCount: 0,
    calls,
    outputShape: (s) => s.map((n) => unetOutputSize(n, config.levels, config.padding)!),
    async predict(input, shape) {
      calls.push(shape);
      const [, , D, H, W] = shape as [number, number, number, number, number];
      const o = [D, H, W].map((n) => unetOutputSize(n, config.levels, config.padding));
      if (o.some((v) => v === null)) throw new Error(`invalid tile ${shape}`);
      const [oD, oH, oW] = o as [number, number, number];
      const cz = D - oD;
      const out = new Float32Array(2 * oD * oH * oW);
      const n = oD * oH * oW;
      for (let z = 0; z < oD; z++)
        for (let y = 0; y < oH; y++)
          for (let x = 0; x < oW; x++) {
            // a sparse window (corners + centre) keeps the test fast while depending on the whole context
            let s = 0;
            for (const dz of [0, cz / 2, cz]) for (const dy of [0, cz / 2, cz]) for (const dx of [0, cz / 2, cz]) s += input[((z + dz) * H + y + dy) * W + x + dx]!;
            const p = 1 / (1 + Math.exp(-s / 27));
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

const NET: NetConfig = { dims: 3, inChannels: 1, numClasses: 2, levels: 3, baseFilters: 4, padding: 'valid', batchNorm: true, bnAtTest: 'running' };

describe('planTiles', () => {
  it('valid outputs of a 3-level valid net are multiples of the pooling stride', () => {
    const outs = validOutputs({ levels: 3, padding: 'valid' }, 60);
    expect(outs.slice(0, 4)).toEqual([4, 8, 12, 16]);
    for (const o of outs) expect(o % 4).toBe(0);
  });
  it('covers the region with one tile when it fits, else shrinks the largest axis', () => {
    const g = { levels: 3, padding: 'valid' as const };
    const one = planTiles([30, 50, 70], g, 1e9);
    expect(one.out).toEqual([32, 52, 72]);
    expect(one.in).toEqual([72, 92, 112]);
    expect(one.count).toBe(1);
    const many = planTiles([30, 50, 70], g, 60 * 60 * 60);
    expect(many.in[0] * many.in[1] * many.in[2]).toBeLessThanOrEqual(60 ** 3);
    expect(many.count).toBeGreaterThan(1);
    expect(many.starts[2]).toEqual(Array.from({ length: Math.ceil(70 / many.out[2]) }, (_, i) => i * many.out[2]));
  });
});

describe('predictRegion', () => {
  const shape: [number, number, number] = [13, 21, 18];
  const n = shape[0] * shape[1] * shape[2];
  // synthetic smooth image with structure on every axis
  const img = new Float32Array(n).map((_, i) => Math.sin(i * 0.37) + Math.cos(i * 0.011));
  const src = sourceFromNormalised(img, shape, 1);
  const opts = { numClasses: 2, levels: 3, padding: 'valid' as const };

  it('tiled prediction equals a single large tile, slabs arrive in order', async () => {
    const collect = async (budget: number) => {
      const m = fakeModel(NET);
      const slabs: Slab[] = [];
      const r = await predictRegion(m, src, [0, 0, 0], shape, { ...opts, maxTileInputVoxels: budget, probabilities: true }, (s) => {
        slabs.push(s);
      });
      return { r, slabs, calls: m.calls.length };
    };
    const big = await collect(1e9);
    const small = await collect(48 * 48 * 48);
    expect(big.calls).toBe(1);
    expect(small.calls).toBeGreaterThan(4);
    expect(small.slabs.map((s) => s.z0)).toEqual(small.r.plan.starts[0]);
    const cat = (slabs: Slab[]) => {
      const lab = new Uint8Array(n);
      const p = new Float32Array(n);
      for (const s of slabs) {
        lab.set(s.labels, s.z0 * shape[1] * shape[2]);
        const m = s.depth * shape[1] * shape[2];
        p.set(s.probabilities!.subarray(m, 2 * m), s.z0 * shape[1] * shape[2]);
      }
      return { lab, p };
    };
    const a = cat(big.slabs);
    const b = cat(small.slabs);
    expect(Array.from(b.lab)).toEqual(Array.from(a.lab));
    for (let i = 0; i < n; i += 7) expect(b.p[i]).toBeCloseTo(a.p[i]!, 6);
    expect(big.r.classCounts[1]! + big.r.classCounts[2]!).toBe(n);
    // labels are the argmax + 1
    expect(new Set(a.lab)).toEqual(new Set([1, 2]));
  });

  it('test-time flips average four mirrored predictions', async () => {
    const m = fakeModel(NET);
    await predictRegion(m, src, [0, 0, 0], shape, { ...opts, testTimeFlips: true }, () => {});
    expect(m.calls.length).toBe(4);
  });

  it('stops when cancelled', async () => {
    const m = fakeModel(NET);
    await expect(predictRegion(m, src, [0, 0, 0], shape, { ...opts, maxTileInputVoxels: 48 ** 3, signal: { aborted: true } }, () => {})).rejects.toThrow(/cancelled/);
  });

  it('mirrors the input at the borders', () => {
    const t = extractTile(src, [-2, 0, 0], [3, 1, 1]);
    // z = -2, -1, 0 -> 2, 1, 0
    const plane = shape[1] * shape[2];
    expect(Array.from(t)).toEqual([img[2 * plane], img[plane], img[0]].map((v) => Math.fround(v!)));
  });
});

describe('resampling', () => {
  it('auto downsampling evens out anisotropic voxels', () => {
    expect(autoDownsample({ z: 0.2837, y: 0.1268, x: 0.1268 })).toEqual([1, 2, 2]);
    expect(autoDownsample({ z: 1, y: 1, x: 1 })).toEqual([1, 1, 1]);
    expect(autoDownsample({ z: 5, y: 0.5, x: 0.5 })).toEqual([1, 2, 2]);
    expect(parseFactors('2')).toEqual([1, 2, 2]);
    expect(parseFactors('1,2,3')).toEqual([1, 2, 3]);
    expect(parseFactors('x')).toBeNull();
  });
  it('a painted slice survives label downsampling at any position', () => {
    const X = 6;
    const data = new Uint8Array(2 * 6 * X);
    for (let z = 0; z < 2; z++) for (let y = 0; y < 6; y++) data[(z * 6 + y) * X + 3] = y < 3 ? 1 : 2; // yz plane at x = 3
    const v = { data, dtype: 'uint8', shape: { x: X, y: 6, z: 2, c: 1, t: 1 }, spacing: { x: 1, y: 1, z: 2, unit: 'µm' } } as unknown as Volume;
    const d = downsampleLabelVolume(v, [1, 2, 2]);
    expect(d.shape).toMatchObject({ x: 3, y: 3, z: 2 });
    // column x = 1 (holds x = 2, 3) carries the plane; rows y: [0,1] -> 1, [2,3] -> tie 1 vs 2, [4,5] -> 2
    const row = Array.from(d.data.subarray(0, 9));
    expect([row[0], row[2], row[3], row[5], row[6], row[8]]).toEqual([0, 0, 0, 0, 0, 0]);
    expect([row[1], row[7]]).toEqual([1, 2]);
    expect([1, 2]).toContain(row[4]);
  });
  it('breaks ties between classes evenly (no class grows on average)', () => {
    // a 2-voxel-wide stripe pattern: every 2x2 block holds two voxels of each class
    const X = 64;
    const data = new Uint8Array(X * X).map((_, i) => 1 + ((i % X) % 2));
    const v = { data, dtype: 'uint8', shape: { x: X, y: X, z: 1, c: 1, t: 1 }, spacing: { x: 1, y: 1, z: 1, unit: 'µm' } } as unknown as Volume;
    const d = downsampleLabelVolume(v, [1, 2, 2]);
    const twos = Array.from(d.data).filter((l) => l === 2).length / d.data.length;
    expect(twos).toBeGreaterThan(0.4);
    expect(twos).toBeLessThan(0.6);
  });
  it('upsampling is exact for constant fields and interpolates between centres', () => {
    const low = new Float32Array([0, 1, 0, 1, 0, 1, 0, 1]); // K=1, 1x2x... lowShape [1,2,4]? use [1,1,8]
    const lowShape: [number, number, number] = [1, 1, 8];
    const up = upsampleSlab(low, 1, lowShape, [1, 1, 16], [1, 1, 2], 0, 1);
    expect(up.length).toBe(16);
    expect(up[0]).toBeCloseTo(0); // clamped at the border
    expect(up[1]).toBeCloseTo(0.25);
    expect(up[2]).toBeCloseTo(0.75);
  });
});
