/**
 * OME-Zarr against an independent implementation: Debian's python3-zarr (zarr-python 2.13, numcodecs 0.11,
 * Zarr v2). Stores we write are read by it (shape, chunks, compressor, axes, voxel size, voxels of every
 * level); stores it writes (its default Blosc/LZ4, zstd, gzip, '.' and '/' chunk keys, F order,
 * big-endian, int64 labels, missing chunks, the NGFF spec example's 5D layout) are read by ours. Voxels come
 * from the real 1135_mini.h5 (read by h5py on the Python side).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile, DEBIAN_PYTHON } from '../helpers/paths.js';
import { openZarrSource, readVolume } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import { createOmeZarrImage, writeOmeZarr, type ZarrCompression } from '../../main/io/zarr/writer.js';

const NUC = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
let dir: string;
let raw: Volume;
let ids: Uint16Array;

function py(code: string): Record<string, unknown> {
  return JSON.parse(execFileSync(DEBIAN_PYTHON, ['-c', code], { encoding: 'utf8', maxBuffer: 64 << 20 }).trim().split('\n').pop()!);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-zarrpy-'));
  raw = await readVolume(NUC, { dataset: 'raw' });
  ids = Uint16Array.from((await readVolume(NUC, { dataset: 'label' })).data);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('stores we write, read by python3-zarr 2.13', () => {
  for (const compression of ['blosc', 'zstd', 'gzip'] as ZarrCompression[]) {
    it(`image + labels/nuclei + pyramid, ${compression}: shape, chunks, axes, voxel size, voxels, levels`, async () => {
      const out = join(dir, `ours-${compression}.ome.zarr`);
      await writeOmeZarr(out, { image: raw, labels: [{ name: 'nuclei', data: ids }] }, { compression, chunks: [32, 64, 64], pyramid: { minSize: 16 } });
      const j = py(`import zarr, numpy as np, h5py, json
g = zarr.open_group(${JSON.stringify(out)}, mode='r')
raw = h5py.File(${JSON.stringify(NUC)}, 'r')['raw'][...]
lab = h5py.File(${JSON.stringify(NUC)}, 'r')['label'][...]
ms = g.attrs['multiscales'][0]
a0 = g['0']; l1 = g['1'][...].astype(float)
ref1 = raw.reshape(100, 50, 2, 50, 2).astype(float).mean(axis=(2, 4))
L = g['labels/nuclei']
print(json.dumps(dict(shape=list(a0.shape), chunks=list(a0.chunks), dtype=str(a0.dtype), codec=a0.compressor.codec_id, version=ms['version'],
  axes=[[a['name'], a.get('type'), a.get('unit')] for a in ms['axes']], paths=[d['path'] for d in ms['datasets']],
  scales=[d['coordinateTransformations'][0]['scale'] for d in ms['datasets']], same=bool((a0[...] == raw).all()),
  l1shape=list(l1.shape), l1err=float(np.abs(l1 - ref1).max()), labels=g['labels'].attrs['labels'],
  labdtype=str(L['0'].dtype), labsame=bool((L['0'][...] == lab).all()), imagelabel=L.attrs['image-label'],
  labpaths=[d['path'] for d in L.attrs['multiscales'][0]['datasets']], lab1ok=bool(np.isin(np.unique(L['1'][...]), np.unique(lab)).all()))))`);
      expect(j).toMatchObject({
        shape: [100, 100, 100],
        chunks: [32, 64, 64],
        dtype: 'uint8',
        codec: compression,
        version: '0.4',
        axes: [['z', 'space', 'micrometer'], ['y', 'space', 'micrometer'], ['x', 'space', 'micrometer']],
        paths: ['0', '1', '2'],
        same: true,
        l1shape: [100, 50, 50],
        labels: ['nuclei'],
        labdtype: 'uint16',
        labsame: true,
        imagelabel: { version: '0.4', source: { image: '../../' } },
        labpaths: ['0', '1', '2'],
        lab1ok: true,
      });
      expect(j.l1err as number).toBeLessThanOrEqual(0.5);
      const sc = j.scales as number[][];
      expect(sc[0]![0]).toBeCloseTo(raw.spacing.z, 9);
      expect(sc[0]![2]).toBeCloseTo(raw.spacing.x, 9);
      expect(sc[1]![2]).toBeCloseTo(2 * raw.spacing.x, 9);
      expect(sc[2]![0]).toBeCloseTo(2 * raw.spacing.z, 9);
    }, 120_000);
  }

  it('a sparse store of 2^31+ voxels written chunk by chunk: python reads the last chunk at the right indices', async () => {
    const out = join(dir, 'sparse.ome.zarr');
    const shape = { x: 1536, y: 1536, z: 1000, c: 1 }; // 2.36e9 voxels
    const w = await createOmeZarrImage(out, '', { shape, dtype: 'uint8', spacing: raw.spacing, chunks: [64, 64, 64] });
    expect(shape.x * shape.y * shape.z).toBeGreaterThan(2 ** 31);
    // the last chunk (z 960..999: clipped) carries a crop of 1135 so a misplaced offset shows
    const block = new Uint8Array(40 * 64 * 64);
    for (let z = 0; z < 40; z++) for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) block[(z * 64 + y) * 64 + x] = raw.data[(z * 100 + y) * 100 + x]!;
    await w.writeRegion({ x0: 1472, y0: 1472, z0: 960, x1: 1536, y1: 1536, z1: 1000 }, block);
    const j = py(`import zarr, numpy as np, h5py, json
a = zarr.open(${JSON.stringify(join(out, '0'))}, mode='r')
raw = h5py.File(${JSON.stringify(NUC)}, 'r')['raw'][...]
last = a[960:1000, 1472:1536, 1472:1536]
print(json.dumps(dict(shape=list(a.shape), initialized=a.nchunks_initialized, same=bool((last == raw[:40, :64, :64]).all()), before=int(a[959, 1500, 1500]), corner=int(a[999, 1535, 1535]))))`);
    expect(j).toEqual({ shape: [1000, 1536, 1536], initialized: 1, same: true, before: 0, corner: raw.data[(39 * 100 + 63) * 100 + 63] });
  }, 120_000);
});

describe('stores python3-zarr writes, read by ours', () => {
  it('default compressor (Blosc/LZ4), "." chunk keys, a raw 3D array: voxels of 1135', async () => {
    const out = join(dir, 'py-default.zarr');
    py(`import zarr, h5py, json
raw = h5py.File(${JSON.stringify(NUC)}, 'r')['raw'][...]
zarr.save_array(${JSON.stringify(out)}, raw, chunks=(25, 40, 30))
print(json.dumps(dict(codec=zarr.open(${JSON.stringify(out)}, mode='r').compressor.codec_id)))`);
    const warnings: string[] = [];
    const v = await readVolume(out, { onWarning: (w) => warnings.push(w) });
    expect(v.format).toBe('zarr');
    expect(v.shape).toEqual({ x: 100, y: 100, z: 100, c: 1, t: 1 });
    expect(v.spacing.unit).toBe('pixel');
    expect(Buffer.from(v.data.buffer).equals(Buffer.from(raw.data.buffer))).toBe(true);
    expect(warnings.some((w) => /without OME-NGFF metadata: axes zyx by its rank/.test(w))).toBe(true);
  }, 60_000);

  it('2D: an NGFF 0.4 c, y, x image (two planes of 1135 as channels, µm) and a raw y, x array read as one-slice volumes', async () => {
    const out = join(dir, 'py-2d.ome.zarr');
    const flat = join(dir, 'py-2d-raw.zarr');
    py(`import zarr, h5py, json, numpy as np
raw = h5py.File(${JSON.stringify(NUC)}, 'r')['raw'][...]
g = zarr.open_group(${JSON.stringify(out)}, mode='w')
g.create_dataset('0', data=np.stack([raw[40], raw[60]]), chunks=(1, 64, 64), dimension_separator='/')
g.attrs['multiscales'] = [dict(version='0.4', axes=[dict(name='c', type='channel'), dict(name='y', type='space', unit='micrometer'), dict(name='x', type='space', unit='micrometer')],
  datasets=[dict(path='0', coordinateTransformations=[dict(type='scale', scale=[1.0, 0.25, 0.125])])])]
zarr.save_array(${JSON.stringify(flat)}, raw[70])
print(json.dumps({}))`);
    const v = await readVolume(out);
    expect(v.shape).toEqual({ x: 100, y: 100, z: 1, c: 2, t: 1 });
    expect(v.spacing).toMatchObject({ x: 0.125, y: 0.25, unit: 'µm' });
    expect(Array.from(v.data.subarray(10000, 10100))).toEqual(Array.from(raw.data.subarray(60 * 10000, 60 * 10000 + 100)));
    expect(Array.from(v.data.subarray(0, 10000))).toEqual(Array.from(raw.data.subarray(40 * 10000, 41 * 10000)));
    const f = await readVolume(flat);
    expect(f.shape).toEqual({ x: 100, y: 100, z: 1, c: 1, t: 1 });
    expect(Array.from(f.data)).toEqual(Array.from(raw.data.subarray(70 * 10000, 71 * 10000)));
  }, 60_000);

  it('an NGFF 0.4 image (the spec example layout: t, c, z, y, x, three levels, nanometre units, zstd, F order, big-endian) and int64 labels with missing chunks', async () => {
    const out = join(dir, 'py-ngff.ome.zarr');
    py(`import zarr, h5py, json, numpy as np
from numcodecs import Zstd, GZip
raw = h5py.File(${JSON.stringify(NUC)}, 'r')['raw'][...].astype('>u2')
lab = h5py.File(${JSON.stringify(NUC)}, 'r')['label'][...].astype('int64')
g = zarr.open_group(${JSON.stringify(out)}, mode='w')
img = np.stack([np.stack([raw, 1000 - raw]), np.stack([raw + 1, raw + 2])])  # t, c, z, y, x
for i, p in enumerate(['s0', 's1', 's2']):
    f = 2 ** i
    g.create_dataset(p, data=np.ascontiguousarray(img[:, :, ::f, ::f, ::f]), chunks=(1, 1, 16, 32, 32), compressor=Zstd(level=3), order='F', dimension_separator='/')
sp = lambda f: [1.0, 1.0, 283.7 * f, 126.8 * f, 126.8 * f]
g.attrs['multiscales'] = [dict(version='0.4', name='example', type='gaussian',
  axes=[dict(name='t', type='time', unit='millisecond'), dict(name='c', type='channel'), dict(name='z', type='space', unit='nanometer'), dict(name='y', type='space', unit='nanometer'), dict(name='x', type='space', unit='nanometer')],
  datasets=[dict(path=p, coordinateTransformations=[dict(type='scale', scale=sp(2 ** i))]) for i, p in enumerate(['s0', 's1', 's2'])],
  coordinateTransformations=[dict(type='scale', scale=[0.1, 1.0, 1.0, 1.0, 1.0])])]
g.attrs['omero'] = dict(channels=[dict(label='nuclei'), dict(label='inverse')])
L = g.create_group('labels'); L.attrs['labels'] = ['cells']
c = L.create_group('cells')
a = c.zeros('0', shape=lab.shape, chunks=(50, 50, 50), dtype='int64', compressor=GZip(5), dimension_separator='/')
a[:50] = lab[:50]  # z 50..99 never written: its chunks are missing
c.attrs['multiscales'] = [dict(version='0.4', axes=[dict(name=n, type='space', unit='micrometer') for n in 'zyx'], datasets=[dict(path='0', coordinateTransformations=[dict(type='scale', scale=[0.2837, 0.1268, 0.1268])])])]
c.attrs['image-label'] = dict(version='0.4', source=dict(image='../../'))
print(json.dumps(dict(missing=a.nchunks - a.nchunks_initialized)))`);
    const warnings: string[] = [];
    const s = await openZarrSource(out, { timepoint: 1, onWarning: (w) => warnings.push(w) });
    expect(s.info.format).toBe('ome-zarr');
    expect(s.info.dtype).toBe('uint16');
    expect(s.info.shape).toEqual({ x: 100, y: 100, z: 100, c: 2, t: 2 });
    expect(s.info.channelNames).toEqual(['nuclei', 'inverse']);
    expect(s.info.spacing.unit).toBe('µm');
    expect(s.info.spacing.z).toBeCloseTo(0.2837, 9);
    expect(s.info.spacing.x).toBeCloseTo(0.1268, 9);
    expect(s.levels.map((l) => l.factors)).toEqual([[1, 1, 1], [2, 2, 2], [4, 4, 4]]);
    expect(s.levels[2]!.shape).toEqual({ x: 25, y: 25, z: 25 });
    expect(s.labels).toEqual(['cells']);
    // time point 1: channel 0 = raw + 1, channel 1 = raw + 2
    const b = { x0: 7, y0: 3, z0: 11, x1: 60, y1: 41, z1: 30 };
    const r = await s.read(b, { channels: [1] });
    let bad = 0;
    let k = 0;
    for (let z = b.z0; z < b.z1; z++) for (let y = b.y0; y < b.y1; y++) for (let x = b.x0; x < b.x1; x++) if (r[k++] !== raw.data[(z * 100 + y) * 100 + x]! + 2) bad++;
    expect(bad).toBe(0);
    const r2 = await s.read({ x0: 10, y0: 20, z0: 5, x1: 11, y1: 21, z1: 6 }, { level: 2, channels: [0] });
    expect(r2[0]).toBe(raw.data[(20 * 100 + 80) * 100 + 40]! + 1);
    await s.close();
    const lab = await readVolume(out, { dataset: 'labels/cells', onWarning: (w) => warnings.push(w) });
    expect(lab.dtype).toBe('uint32');
    expect(lab.metadata.zarrDtype).toBe('int64');
    let diff = 0;
    for (let i = 0; i < ids.length; i++) if (lab.data[i] !== (i < 50 * 10000 ? ids[i] : 0)) diff++;
    expect(diff).toBe(0);
    expect(warnings.some((w) => /int64 voxels read as uint32/.test(w))).toBe(true);
  }, 120_000);
});
