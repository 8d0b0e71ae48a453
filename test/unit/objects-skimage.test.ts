/**
 * Objects algorithms against an independent implementation: scikit-image / scipy (Debian python3-skimage,
 * via /usr/bin/python3) on small crops of the real plant-nuclei ground truth (label > 0 = nucleus).
 * Connected components and the distance transform must agree exactly (ids included: both number components
 * by their first voxel in raster order); the watershed must give the same partition up to id permutation
 * except on plateaus, where the two heaps may break ties differently: the test measures that fraction.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readVolume } from '../../main/io/index.js';
import { labelComponents, SlabLabeller } from '../../main/objects/components.js';
import { distanceTransform, gaussianSmooth } from '../../main/objects/distance.js';
import { findSeeds } from '../../main/objects/instances.js';
import { watershed } from '../../main/objects/watershed.js';
import type { Dims, Microns } from '../../main/objects/grid.js';
import { dataFile, DEBIAN_PYTHON } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'sf-objects-'));
let mask: Uint8Array;
let d: Dims;
let sp: Microns;

/** crop z0..z1, y0..y1, x0..x1 of a ZYX volume */
function crop(src: ArrayLike<number>, s: Dims, z0: number, z1: number, y0: number, y1: number, x0: number, x1: number): Uint8Array {
  const out = new Uint8Array((z1 - z0) * (y1 - y0) * (x1 - x0));
  let k = 0;
  for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) out[k++] = src[(z * s.y + y) * s.x + x]! > 0 ? 1 : 0;
  return out;
}

function py(script: string): void {
  execFileSync(DEBIAN_PYTHON, ['-c', script], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

const readI32 = (f: string) => new Int32Array(new Uint8Array(readFileSync(join(dir, f))).buffer);
const readF64 = (f: string) => new Float64Array(new Uint8Array(readFileSync(join(dir, f))).buffer);

function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/** same partition up to a bijection of ids: fraction of voxels where the id map is consistent */
function partitionAgreement(a: ArrayLike<number>, b: ArrayLike<number>): { agree: number; bijective: boolean } {
  // best match per id of a (by overlap), then the fraction of voxels that follow it
  const pairs = new Map<string, number>();
  for (let i = 0; i < a.length; i++) if (a[i] || b[i]) pairs.set(`${a[i]},${b[i]}`, (pairs.get(`${a[i]},${b[i]}`) ?? 0) + 1);
  const best = new Map<number, [number, number]>();
  for (const [k, n] of pairs) {
    const [ia, ib] = k.split(',').map(Number) as [number, number];
    const cur = best.get(ia);
    if (!cur || n > cur[1]) best.set(ia, [ib, n]);
  }
  let agree = 0;
  let total = 0;
  for (let i = 0; i < a.length; i++) {
    if (!a[i] && !b[i]) continue;
    total++;
    if (best.get(a[i]!)?.[0] === b[i]) agree++;
  }
  const targets = [...best.values()].map((v) => v[0]);
  return { agree: agree / total, bijective: new Set(targets).size === targets.length };
}

beforeAll(async () => {
  const v = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'label' });
  const s = { x: v.shape.x, y: v.shape.y, z: v.shape.z };
  d = { z: 40, y: 60, x: 60 };
  mask = crop(v.data, s, 30, 70, 20, 80, 20, 80);
  sp = { x: v.spacing.x, y: v.spacing.y, z: v.spacing.z };
  writeFileSync(join(dir, 'mask.u8'), mask);
  // spacing and shape for the oracle
  writeFileSync(join(dir, 'meta.txt'), `${d.z} ${d.y} ${d.x} ${sp.z} ${sp.y} ${sp.x}`);
});

const HEAD = `
import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label
from skimage.segmentation import watershed
Z, Y, X, sz, sy, sx = open('meta.txt').read().split()
shape = (int(Z), int(Y), int(X)); sp = (float(sz), float(sy), float(sx))
m = np.fromfile('mask.u8', np.uint8).reshape(shape)
`;

describe('objects vs scikit-image on a real crop (1135 nuclei, 40x60x60)', () => {
  it('the crop has several touching nuclei (the case worth testing)', () => {
    const n = mask.reduce((a, b) => a + b, 0);
    expect(n / mask.length).toBeGreaterThan(0.1);
    expect(labelComponents(mask, d).count).toBeGreaterThanOrEqual(4);
  });

  it('connected components equal skimage.measure.label (6- and 26-connectivity), ids included', () => {
    py(HEAD + `label(m, connectivity=1).astype(np.int32).tofile('cc6.i32')\nlabel(m, connectivity=3).astype(np.int32).tofile('cc26.i32')`);
    for (const [conn, f] of [[6, 'cc6.i32'], [26, 'cc26.i32']] as const) {
      const ours = labelComponents(mask, d, { connectivity: conn });
      const ref = readI32(f);
      expect(ours.count).toBe(ref.reduce((a, b) => Math.max(a, b), 0));
      expect(mismatches(ours.labels, ref)).toBe(0);
    }
  });

  it('z-slabs joined by union-find equal the whole-volume labelling (slab depths 1, 7, 13)', () => {
    const whole = labelComponents(mask, d, { connectivity: 26 });
    for (const depth of [1, 7, 13]) {
      const sl = new SlabLabeller({ x: d.x, y: d.y }, { connectivity: 26 });
      const parts: Int32Array[] = [];
      for (let z0 = 0; z0 < d.z; z0 += depth) {
        const z1 = Math.min(d.z, z0 + depth);
        parts.push(sl.push(mask.subarray(z0 * d.x * d.y, z1 * d.x * d.y), z1 - z0));
      }
      const { map, count } = sl.finish();
      const joined = new Int32Array(mask.length);
      let o = 0;
      for (const p of parts) for (let i = 0; i < p.length; i++) joined[o++] = p[i] ? map[p[i]!]! : 0;
      expect(count).toBe(whole.count);
      expect(mismatches(joined, whole.labels)).toBe(0);
    }
  });

  it('anisotropic distance transform equals scipy.ndimage.distance_transform_edt(sampling=µm)', () => {
    py(HEAD + `ndi.distance_transform_edt(m, sampling=sp).astype(np.float64).tofile('edt.f64')`);
    const ours = distanceTransform(mask, d, sp);
    const ref = readF64('edt.f64');
    let maxErr = 0;
    let maxVal = 0;
    for (let i = 0; i < ref.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(ours[i]! - ref[i]!));
      maxVal = Math.max(maxVal, ref[i]!);
    }
    expect(maxVal).toBeGreaterThan(1); // µm: nuclei are a few µm across
    expect(maxErr).toBeLessThan(1e-5);
  });

  it('Gaussian smoothing (sigma in µm) equals scipy.ndimage.gaussian_filter (reflect, truncate 3)', () => {
    const dist = distanceTransform(mask, d, sp);
    writeFileSync(join(dir, 'dist.f32'), new Uint8Array(dist.buffer));
    py(HEAD + `f = np.fromfile('dist.f32', np.float32).reshape(shape).astype(np.float64)\nndi.gaussian_filter(f, sigma=[0.5/s for s in sp], mode='reflect', truncate=3.0).tofile('g.f64')`);
    const ours = gaussianSmooth(dist, d, sp, 0.5);
    const ref = readF64('g.f64');
    let maxErr = 0;
    for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(ours[i]! - ref[i]!));
    expect(maxErr).toBeLessThan(1e-4);
  });

  it('seeded watershed on the smoothed distance = skimage.segmentation.watershed up to id permutation', () => {
    const comps = labelComponents(mask, d, { connectivity: 26 });
    const score = gaussianSmooth(distanceTransform(mask, d, sp), d, sp, 0.5);
    const { markers, count } = findSeeds(score, comps.labels, comps.count, d, sp, 2.5);
    expect(count).toBeGreaterThan(comps.count); // touching nuclei are split
    const land = new Float64Array(score.length);
    for (let i = 0; i < land.length; i++) land[i] = -score[i]!;
    writeFileSync(join(dir, 'land.f64'), new Uint8Array(land.buffer));
    writeFileSync(join(dir, 'markers.i32'), new Uint8Array(markers.buffer));
    py(
      HEAD +
        `land = np.fromfile('land.f64', np.float64).reshape(shape)\nmk = np.fromfile('markers.i32', np.int32).reshape(shape)\n` +
        `watershed(land, mk, mask=m.astype(bool), connectivity=1).astype(np.int32).tofile('ws6.i32')\n` +
        `watershed(land, mk, mask=m.astype(bool), connectivity=3).astype(np.int32).tofile('ws26.i32')`,
    );
    for (const [conn, f, minAgree] of [[6, 'ws6.i32', 0.999], [26, 'ws26.i32', 0.99]] as const) {
      const ours = watershed(land, markers, d, { mask, connectivity: conn });
      const ref = readI32(f);
      const cmp = partitionAgreement(ours, ref);
      expect(cmp.bijective).toBe(true);
      expect(cmp.agree).toBeGreaterThanOrEqual(minAgree);
      // same seed ids survive (ids are the markers' own ids in both)
      let same = 0;
      for (let i = 0; i < ref.length; i++) if (ours[i] === ref[i]) same++;
      expect(same / ref.length).toBeGreaterThanOrEqual(minAgree);
      console.log(`watershed conn ${conn}: ${(100 * cmp.agree).toFixed(3)} % of object voxels agree with skimage`);
    }
  });
});
