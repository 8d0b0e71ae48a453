import { describe, expect, it } from 'vitest';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ARTIFACTS, DEBIAN_PYTHON } from '../helpers/paths.js';
import { SlabTiffWriter } from '../../main/inference/slab-writer.js';
import { readVolume } from '../../main/io/index.js';

// Synthetic slabs: the writer's job is byte layout, checked against our reader and tifffile.
const DIR = join(ARTIFACTS, 'slab-writer');

describe('SlabTiffWriter', () => {
  it('streams z-slabs into a calibrated ImageJ TIFF that both readers understand', async () => {
    await rm(DIR, { recursive: true, force: true });
    await mkdir(DIR, { recursive: true });
    const [W, H, D] = [7, 5, 6];
    const path = join(DIR, 'labels.tif');
    const w = await SlabTiffWriter.create(path, { width: W, height: H, depth: D, channels: 1, dtype: 'uint8', spacing: { x: 0.25, y: 0.25, z: 0.5, unit: 'µm' }, displayRange: [0, 2] });
    const all = new Uint8Array(W * H * D).map((_, i) => 1 + (i % 3 === 0 ? 1 : 0));
    for (const [z0, d] of [[0, 2], [2, 3], [5, 1]] as const) await w.writeSlab(all.subarray(z0 * W * H, (z0 + d) * W * H), d);
    // nothing under the final name until close()
    expect((await readdir(DIR)).includes('labels.tif')).toBe(false);
    await w.close();
    const v = await readVolume(path);
    expect(v.shape).toMatchObject({ x: W, y: H, z: D, c: 1 });
    expect(v.dtype).toBe('uint8');
    expect(v.spacing.z).toBeCloseTo(0.5);
    expect(v.spacing.x).toBeCloseTo(0.25);
    expect(Array.from(v.data)).toEqual(Array.from(all));
    const py = execFileSync(DEBIAN_PYTHON, ['-c', `import tifffile; t=tifffile.TiffFile(${JSON.stringify(path)}); a=t.asarray(); print(a.shape, int(a.sum()), t.imagej_metadata['slices'])`]).toString().trim();
    expect(py).toBe(`(${D}, ${H}, ${W}) ${all.reduce((s, x) => s + x, 0)} ${D}`);
  });

  it('writes multi-channel float probabilities as a hyperstack (channel fastest)', async () => {
    await mkdir(DIR, { recursive: true });
    const [W, H, D, C] = [4, 3, 5, 2];
    const path = join(DIR, 'probs.tif');
    const w = await SlabTiffWriter.create(path, { width: W, height: H, depth: D, channels: C, dtype: 'float32', spacing: { x: 1, y: 1, z: 1, unit: 'pixel' }, displayRange: [0, 1] });
    // slab layout: C * depth * H * W
    const full = new Float32Array(C * D * H * W).map((_, i) => i / 1000);
    for (const [z0, d] of [[0, 3], [3, 2]] as const) {
      const slab = new Float32Array(C * d * H * W);
      for (let c = 0; c < C; c++) slab.set(full.subarray((c * D + z0) * H * W, (c * D + z0 + d) * H * W), c * d * H * W);
      await w.writeSlab(slab, d);
    }
    await w.close();
    const v = await readVolume(path);
    expect(v.shape).toMatchObject({ x: W, y: H, z: D, c: C });
    expect(Array.from(v.data as Float32Array)).toEqual(Array.from(full));
  });

  it('refuses the wrong amount of data and cleans up on abort', async () => {
    await mkdir(DIR, { recursive: true });
    const path = join(DIR, 'aborted.tif');
    const w = await SlabTiffWriter.create(path, { width: 2, height: 2, depth: 2, channels: 1, dtype: 'uint8', spacing: { x: 1, y: 1, z: 1, unit: 'pixel' }, displayRange: [0, 1] });
    await expect(w.writeSlab(new Uint8Array(3), 1)).rejects.toThrow(/slab has 3 values/);
    await expect(w.close()).rejects.toThrow(/only 0 of 2 z-planes/);
    await w.abort();
    expect((await readdir(DIR)).filter((f) => f.includes('aborted'))).toEqual([]);
  });
});
