/**
 * `densify` with OME-Zarr in and out, checked by Debian's python3-zarr 2.13: the image is a crop of the real
 * 1135_mini.h5 written as OME-Zarr (NGFF 0.4), the sparse labels come from make-sparse, and --out / --probabilities
 * name .ome.zarr stores. python3-zarr reads the label image (shape, chunks, image-label, voxel size, pyramid)
 * and its class counts equal the JSON summary's; the probabilities sum to 1 and their argmax is the labels.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile, DEBIAN_PYTHON } from '../helpers/paths.js';
import { main } from '../../main/cli/index.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import { writeOmeZarr } from '../../main/io/zarr/writer.js';
import type { Volume } from '../../main/common/volume.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
let dir: string;

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n'), isTTY: false });
  return { code, out, err };
}

function crop(v: Volume, Z: number, Y: number, X: number): Volume {
  const s = v.shape;
  const data = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) data[(z * Y + y) * X + x] = v.data[((30 + z) * s.y + 20 + y) * s.x + 20 + x]!;
  return { ...v, data, dtype: 'uint8', shape: { ...s, x: X, y: Y, z: Z } };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-zarrcli-'));
  const raw = crop(await readVolume(H5, { dataset: 'raw' }), 24, 48, 48);
  const lab = crop(await readVolume(H5, { dataset: 'label' }), 24, 48, 48);
  await writeOmeZarr(join(dir, 'raw.ome.zarr'), { image: raw }, { chunks: [8, 32, 32] });
  await writeImageJTiff(join(dir, 'gt.tif'), { ...lab, data: Uint8Array.from(lab.data, (v) => (v > 0 ? 2 : 1)) });
  const r = await run(['make-sparse', '--truth', join(dir, 'gt.tif'), '--mode', 'classes', '--slices', '1', '--out', join(dir, 'sparse.tif')]);
  expect(r.code).toBe(0);
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('densify with OME-Zarr input and outputs', () => {
  it('writes label and probability stores that python3-zarr reads, matching the summary', async () => {
    const seg = join(dir, 'seg.ome.zarr');
    const prob = join(dir, 'prob.ome.zarr');
    const r = await run(['densify', '--image', join(dir, 'raw.ome.zarr'), '--labels', join(dir, 'sparse.tif'), '--out', seg, '--probabilities', prob, '--preset', 'tiny', '--iterations', '3', '--seed', '2', '--threads', '2']);
    expect(r.err).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    const raw = await readVolume(join(dir, 'raw.ome.zarr'));
    const p = JSON.parse(
      execFileSync(
        DEBIAN_PYTHON,
        [
          '-c',
          `import zarr, numpy as np, json
g = zarr.open_group(${JSON.stringify(seg)}, mode='r'); q = zarr.open_group(${JSON.stringify(prob)}, mode='r')
lab = g['0'][...]; pr = q['0'][...]
ms = g.attrs['multiscales'][0]
print(json.dumps(dict(shape=list(lab.shape), dtype=str(lab.dtype), chunks=list(g['0'].chunks), il='image-label' in g.attrs, levels=len(ms['datasets']),
  scale=ms['datasets'][0]['coordinateTransformations'][0]['scale'], counts={int(k): int(v) for k, v in zip(*np.unique(lab, return_counts=True))},
  pshape=list(pr.shape), pdtype=str(pr.dtype), psum=float(np.abs(pr.sum(axis=0) - 1).max()), argmax=bool((pr.argmax(axis=0) + 1 == lab).mean() > 0.99),
  channels=[c['label'] for c in q.attrs['omero']['channels']])))`,
        ],
        { encoding: 'utf8' },
      ),
    );
    expect(p).toMatchObject({ shape: [24, 48, 48], dtype: 'uint8', chunks: [24, 48, 48], il: true, pshape: [2, 24, 48, 48], pdtype: 'float32', argmax: true, channels: ['class1', 'class2'] });
    expect(p.levels).toBeGreaterThanOrEqual(1);
    expect(p.psum).toBeLessThan(1e-4);
    expect(p.counts).toEqual(Object.fromEntries(Object.entries(j.classCounts).filter(([, n]) => (n as number) > 0)));
    expect(p.scale[0]).toBeCloseTo(raw.spacing.z, 9);
    expect(p.scale[2]).toBeCloseTo(raw.spacing.x, 9);
    // a second run replaces the store Sliceform wrote
    const again = await run(['densify', '--image', join(dir, 'raw.ome.zarr'), '--labels', join(dir, 'sparse.tif'), '--out', seg, '--preset', 'tiny', '--iterations', '2', '--seed', '2', '--threads', '2']);
    expect(again.code).toBe(0);
  }, 300_000);

  it('refuses to replace a Zarr store it did not write', async () => {
    const r = await run(['densify', '--image', join(dir, 'raw.ome.zarr'), '--labels', join(dir, 'sparse.tif'), '--out', join(dir, 'foreign.zarr'), '--preset', 'tiny', '--iterations', '1', '--threads', '2']);
    expect(r.code).toBe(0);
    execFileSync(DEBIAN_PYTHON, ['-c', `import zarr, numpy as np; zarr.save_array(${JSON.stringify(join(dir, 'theirs.zarr'))}, np.zeros((4, 4), 'u1'))`]);
    const bad = await run(['densify', '--image', join(dir, 'raw.ome.zarr'), '--labels', join(dir, 'sparse.tif'), '--out', join(dir, 'theirs.zarr'), '--preset', 'tiny', '--iterations', '1', '--threads', '2']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/theirs\.zarr.*exists and is not a Zarr store written by Sliceform/);
  }, 300_000);
});
