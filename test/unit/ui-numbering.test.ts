/**
 * The renderer's conventions that need no browser: Fiji's 1-based slice numbers for everything the user reads
 * (renderer/src/render/numbering.ts) and the opening display window from robust percentiles
 * (autoWindow in renderer/src/render/composite.ts), checked against numpy on the real NEUBIAS hyperstack and
 * the plant-seg nuclei stack (both read by the project's readers, the oracle by tifffile/h5py).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readVolume } from '../../main/io/index.js';
import type { TypedArray } from '../../main/common/volume.js';
import { AUTO_WINDOW_PERCENTILES, autoWindow } from '../../renderer/src/render/composite.js';
import { planeSliceLabel, shownSlice, sliceIndex, voxelLabel } from '../../renderer/src/render/numbering.js';
import { DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';

const HYPERSTACK = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');
const NUCLEI = dataFile('plantseg_nuclei_mini', '1135_mini.h5');

describe('slice numbering (1-based for the user, 0-based for the API)', () => {
  it('converts both ways and names planes and voxels', () => {
    expect(shownSlice(0)).toBe(1);
    expect(shownSlice(44)).toBe(45);
    expect(sliceIndex(1)).toBe(0);
    for (const i of [0, 7, 99]) expect(sliceIndex(shownSlice(i))).toBe(i);
    expect(planeSliceLabel('xy', 22)).toBe('xy z 23');
    expect(planeSliceLabel('xz', 37)).toBe('xz y 38');
    expect(planeSliceLabel('yz', 0)).toBe('yz x 1');
    expect(voxelLabel([30, 90, 22])).toBe('x 31  y 91  z 23');
  });
});

describe.skipIf(!existsSync(HYPERSTACK) || !existsSync(NUCLEI))('opening display window (autoWindow)', () => {
  const oracle = (script: string, path: string): number[][] => {
    const py = spawnSync(DEBIAN_PYTHON, ['-c', script, path, ...AUTO_WINDOW_PERCENTILES.map(String)], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    return JSON.parse(py.stdout);
  };

  it('is the 0.5 / 99.8 % percentiles of each channel of the hyperstack, well above the 99 % that saturated the nuclei', async () => {
    const vol = await readVolume(HYPERSTACK);
    const n = vol.shape.x * vol.shape.y * vol.shape.z;
    // numpy: ZCYX; per channel [lo, hi, p99, max]
    const expected = oracle(
      'import sys,json,tifffile,numpy as np; a=tifffile.imread(sys.argv[1]); lo,hi=float(sys.argv[2]),float(sys.argv[3]); print(json.dumps([[float(np.percentile(a[:,c],lo)),float(np.percentile(a[:,c],hi)),float(np.percentile(a[:,c],99)),float(a[:,c].max())] for c in range(a.shape[1])]))',
      HYPERSTACK,
    );
    expect(vol.shape.c).toBe(2);
    for (let c = 0; c < 2; c++) {
      const data = vol.data.subarray(c * n, (c + 1) * n) as TypedArray;
      const [lo, hi] = autoWindow(data);
      const [elo, ehi, p99, max] = expected[c]!;
      // integer histogram: within one grey value of numpy's interpolated percentile
      expect(Math.abs(lo - elo!), `channel ${c + 1} low`).toBeLessThanOrEqual(1);
      expect(Math.abs(hi - ehi!), `channel ${c + 1} high`).toBeLessThanOrEqual(Math.max(2, (max! - elo!) * 0.002));
      expect(hi).toBeGreaterThan(p99!);
    }
  });

  it('is the same recipe on a uint8 stack (plant-seg nuclei)', async () => {
    const vol = await readVolume(NUCLEI);
    const expected = oracle(
      'import sys,json,h5py,numpy as np; a=h5py.File(sys.argv[1])["raw"][...]; print(json.dumps([[float(np.percentile(a,float(sys.argv[2]))),float(np.percentile(a,float(sys.argv[3])))]]))',
      NUCLEI,
    );
    const [lo, hi] = autoWindow(vol.data as TypedArray);
    expect(Math.abs(lo - expected[0]![0]!)).toBeLessThanOrEqual(1);
    expect(Math.abs(hi - expected[0]![1]!)).toBeLessThanOrEqual(1);
    expect(hi).toBeGreaterThan(lo);
  });
});
