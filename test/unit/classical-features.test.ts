/**
 * The classical learner's features against scikit-image 0.19's multiscale_basic_features (Debian
 * python3-skimage) on real crops of the shared plant nuclei, channel by channel.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { gaussianKernel, multiscaleFeatures, skimageSigmas } from '../../main/classical/features.js';
import type { FeatureDims } from '../../main/classical/features.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const dir = mkdtempSync(join(tmpdir(), 'sliceform-classical-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** skimage's stack for raw[z0:z0+n, y0:y0+n, x0:x0+n] (float32 of the uint8 values), written as raw float32 F×Z×Y×X. */
function skimageFeatures(z0: number, y0: number, x0: number, d: FeatureDims, extra = ''): Float32Array {
  const out = join(dir, `sk-${z0}-${y0}-${x0}-${d.z}${extra ? '-2d' : ''}.f32`);
  const script = `
import sys, h5py, numpy as np
from skimage.feature import multiscale_basic_features
with h5py.File(sys.argv[1], 'r') as f:
    a = np.asarray(f['raw'])[${z0}:${z0 + d.z}, ${y0}:${y0 + d.y}, ${x0}:${x0 + d.x}].astype(np.float32)
${extra}
feats = multiscale_basic_features(a, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=8)
np.ascontiguousarray(np.moveaxis(feats, -1, 0)).astype('<f4').tofile(sys.argv[2])
print(feats.shape)
`;
  execFileSync(DEBIAN_PYTHON, ['-c', script, H5, out], { encoding: 'utf8', timeout: 120_000 });
  const b = readFileSync(out);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

async function crop(z0: number, y0: number, x0: number, d: FeatureDims): Promise<Float32Array> {
  const v = await readVolume(H5, { dataset: 'raw' });
  expect([v.shape.z, v.shape.y, v.shape.x]).toEqual([100, 100, 100]);
  const out = new Float32Array(d.x * d.y * d.z);
  for (let z = 0; z < d.z; z++)
    for (let y = 0; y < d.y; y++)
      for (let x = 0; x < d.x; x++) out[(z * d.y + y) * d.x + x] = v.data[((z0 + z) * 100 + y0 + y) * 100 + x0 + x]!;
  return out;
}

/** max |a - b| over one channel, relative to that channel's largest magnitude in the oracle. */
function channelErrors(ours: Float32Array, ref: Float32Array, count: number, n: number): { maxAbs: number; scale: number }[] {
  const res = [];
  for (let f = 0; f < count; f++) {
    let maxAbs = 0;
    let scale = 0;
    for (let i = 0; i < n; i++) {
      const r = ref[f * n + i]!;
      maxAbs = Math.max(maxAbs, Math.abs(ours[f * n + i]! - r));
      scale = Math.max(scale, Math.abs(r));
    }
    res.push({ maxAbs, scale });
  }
  return res;
}

describe('multiscale features (skimage oracle)', () => {
  it('uses skimage sigmas and scipy kernels', () => {
    expect(skimageSigmas(1, 8)).toEqual([1, 2, 4, 8]);
    expect(skimageSigmas(0.5, 16)).toEqual([0.5, 1, 2, 4, 8, 16]);
    const k = gaussianKernel(2);
    expect(k.length).toBe(17); // radius int(4 * 2 + 0.5) = 8
    expect(k.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(k[8]! / k[6]!).toBeCloseTo(Math.exp(0.5), 12);
  });

  it('equals multiscale_basic_features on a 32³ crop of 1135, channel by channel', async () => {
    const d = { x: 32, y: 32, z: 32 };
    const img = await crop(34, 20, 50, d);
    const ours = multiscaleFeatures(img, d);
    expect(ours.count).toBe(20);
    expect(ours.names.slice(0, 5)).toEqual(['c0 σ1 intensity', 'c0 σ1 edges', 'c0 σ1 hessian0', 'c0 σ1 hessian1', 'c0 σ1 hessian2']);
    expect(ours.names[19]).toBe('c0 σ8 hessian2');
    const ref = skimageFeatures(34, 20, 50, d);
    expect(ref.length).toBe(20 * 32 ** 3);
    const errs = channelErrors(ours.data, ref, 20, 32 ** 3);
    for (const [f, e] of errs.entries()) {
      expect(e.scale, ours.names[f]).toBeGreaterThan(0);
      expect(e.maxAbs / e.scale, `${ours.names[f]}: max error ${e.maxAbs} of ${e.scale}`).toBeLessThan(2e-5);
    }
    // ordering of the eigenvalues: largest first, as skimage
    const n = 32 ** 3;
    for (let i = 0; i < n; i += 97) {
      expect(ours.data[2 * n + i]!).toBeGreaterThanOrEqual(ours.data[3 * n + i]!);
      expect(ours.data[3 * n + i]!).toBeGreaterThanOrEqual(ours.data[4 * n + i]!);
    }
  });

  it('equals skimage on a thin non-cubic crop (sigma 8 kernels wider than the volume along z)', async () => {
    const d = { x: 40, y: 24, z: 12 };
    const img = await crop(60, 10, 5, d);
    const ours = multiscaleFeatures(img, d);
    const ref = skimageFeatures(60, 10, 5, d);
    const errs = channelErrors(ours.data, ref, 20, d.x * d.y * d.z);
    for (const [f, e] of errs.entries()) expect(e.maxAbs / e.scale, ours.names[f]).toBeLessThan(2e-5);
  });

  it('treats one plane as a 2D image like skimage (4 features per sigma)', async () => {
    const d = { x: 48, y: 40, z: 1 };
    const img = await crop(50, 30, 20, d);
    const ours = multiscaleFeatures(img, d);
    expect(ours.count).toBe(16);
    const ref = skimageFeatures(50, 30, 20, d, 'a = a[0]');
    const errs = channelErrors(ours.data, ref, 16, d.x * d.y);
    for (const [f, e] of errs.entries()) expect(e.maxAbs / e.scale, ours.names[f]).toBeLessThan(2e-5);
  });

  it('concatenates channels and applies the anisotropic option', async () => {
    const d = { x: 20, y: 20, z: 20 };
    const a = await crop(10, 10, 10, d);
    const b = await crop(50, 50, 50, d);
    const both = new Float32Array(2 * a.length);
    both.set(a);
    both.set(b, a.length);
    const two = multiscaleFeatures(both, d, 2);
    const fa = multiscaleFeatures(a, d);
    const fb = multiscaleFeatures(b, d);
    expect(two.count).toBe(40);
    expect(two.names[20]).toBe('c1 σ1 intensity');
    expect(Array.from(two.data.subarray(0, fa.data.length))).toEqual(Array.from(fa.data));
    expect(Array.from(two.data.subarray(fa.data.length))).toEqual(Array.from(fb.data));
    // spacing (z twice as coarse as x, y): z gets half the sigma in voxels; equal spacing = the isotropic stack
    const iso = multiscaleFeatures(a, d, 1, { spacing: { x: 0.5, y: 0.5, z: 0.5 } });
    expect(Array.from(iso.data)).toEqual(Array.from(fa.data));
    const an = multiscaleFeatures(a, d, 1, { spacing: { x: 0.5, y: 0.5, z: 1 } });
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(an.data[i]! - fa.data[i]!));
    expect(diff).toBeGreaterThan(0.5);
    expect(() => multiscaleFeatures(a, d, 1, { spacing: { x: 0, y: 1, z: 1 } })).toThrow(/spacing must be positive/);
    expect(() => multiscaleFeatures(a.subarray(1), d)).toThrow(/expected 8000/);
  });
});
