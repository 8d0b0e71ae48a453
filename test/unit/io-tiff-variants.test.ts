/**
 * TIFF variants that no real fixture covers, made synthetically at test time (so said here):
 * byte orders, every integer/float sample type, Deflate (+ horizontal and floating-point predictors; the latter via libtiff),
 * LZW and PackBits (written by libtiff through PIL), tiles, BigTIFF, RGB contiguous and planar,
 * ImageJ time series and OME-TIFF with units. Written by Debian's tifffile / PIL, never by our code;
 * expected voxels are the numpy arrays they were written from (SHA-256 of CZYX little-endian bytes).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readVolume, probeVolume } from '../../main/io/index.js';
import { PY_PRELUDE, py, sha, tempDir } from './io-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

interface Case {
  name: string;
  file: string;
  sha: string;
  shape: { x: number; y: number; z: number; c: number; t: number };
  dtype: string;
  check: Record<string, unknown>;
}

const cases = py<Case[]>(
  PY_PRELUDE +
    `
import os, tifffile
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(7)
cases = []
def rand(dtype, shape):
    dt = np.dtype(dtype)
    if dt.kind == 'f':
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, endpoint=True, dtype=dt)
def add(name, czyx, t=1, **check):
    c, z, y, x = czyx.shape
    cases.append({'name': name, 'file': os.path.join(d, name), 'sha': czyx_sha(czyx), 'dtype': str(czyx.dtype),
                  'shape': {'x': x, 'y': y, 'z': z, 'c': c, 't': t}, 'check': check})
# plain multi-page stacks, both byte orders, every sample type, several strips per page
for bo in '<>':
    for dt in ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64']:
        a = rand(dt, (3, 17, 23))
        n = f'plain_{dt}_{"le" if bo == "<" else "be"}.tif'
        tifffile.imwrite(os.path.join(d, n), a, byteorder=bo, rowsperstrip=5, photometric='minisblack', metadata=None)
        add(n, a[None], format='tiff')
# Deflate with and without predictors
a = rand('uint16', (4, 33, 41)); tifffile.imwrite(os.path.join(d, 'deflate_u16_be_pred.tif'), a, byteorder='>', compression='zlib', predictor=True, rowsperstrip=8, photometric='minisblack', metadata=None); add('deflate_u16_be_pred.tif', a[None], predictor=2)
a = rand('int8', (2, 20, 30)); tifffile.imwrite(os.path.join(d, 'deflate_i8_pred.tif'), a, compression='zlib', predictor=2, metadata=None); add('deflate_i8_pred.tif', a[None], predictor=2)
# tiles (edges not a multiple of the tile size)
a = rand('uint16', (3, 37, 40)); tifffile.imwrite(os.path.join(d, 'tiled_u16_deflate.tif'), a, tile=(16, 16), compression='zlib', photometric='minisblack', metadata=None); add('tiled_u16_deflate.tif', a[None])
a = rand('int16', (2, 37, 40)); tifffile.imwrite(os.path.join(d, 'tiled_i16_be.tif'), a, tile=(16, 32), byteorder='>', metadata=None); add('tiled_i16_be.tif', a[None])
# BigTIFF
a = rand('uint16', (3, 21, 19)); tifffile.imwrite(os.path.join(d, 'big_u16.tif'), a, bigtiff=True, photometric='minisblack', metadata=None); add('big_u16.tif', a[None], bigTiff=True)
a = rand('float32', (2, 37, 40)); tifffile.imwrite(os.path.join(d, 'big_f32_be_tiled_deflate.tif'), a, bigtiff=True, byteorder='>', tile=(16, 16), compression='zlib', metadata=None); add('big_f32_be_tiled_deflate.tif', a[None], bigTiff=True)
# RGB: contiguous samples and planar configuration 2
a = rand('uint8', (2, 15, 18, 3)); tifffile.imwrite(os.path.join(d, 'rgb_contig.tif'), a, photometric='rgb', metadata=None); add('rgb_contig.tif', a.transpose(3, 0, 1, 2))
a = rand('uint16', (2, 3, 15, 18)); tifffile.imwrite(os.path.join(d, 'rgb_planar.tif'), a, photometric='rgb', planarconfig='separate', metadata=None); add('rgb_planar.tif', a.transpose(1, 0, 2, 3))
# RGB tiled planar, RGB contiguous with horizontal predictor
a = rand('uint8', (2, 3, 37, 40)); tifffile.imwrite(os.path.join(d, 'rgb_tiled_planar.tif'), a, photometric='rgb', planarconfig='separate', tile=(16, 16), compression='zlib', metadata=None); add('rgb_tiled_planar.tif', a.transpose(1, 0, 2, 3))
a = rand('uint16', (2, 15, 18, 3)); tifffile.imwrite(os.path.join(d, 'rgb_contig_pred.tif'), a, photometric='rgb', compression='zlib', predictor=True, metadata=None); add('rgb_contig_pred.tif', a.transpose(3, 0, 1, 2), predictor=2)
# ImageJ file with a single IFD and contiguous planes (how ImageJ writes stacks > 4 GiB): tifffile's
# ImageJ output with IFD 0's next pointer cleared; tifffile itself still reads all planes
a = rand('uint16', (3, 2, 10, 12))
n = os.path.join(d, 'ij_single_ifd.tif'); tifffile.imwrite(n, a, imagej=True, metadata={'axes': 'ZCYX'})
with tifffile.TiffFile(n) as t:
    offs = [p.dataoffsets[0] for p in t.pages]; ifd0 = t.pages[0].offset; ntags = len(t.pages[0].tags)
assert all(offs[k] == offs[0] + k * 240 for k in range(6)), offs
with open(n, 'r+b') as f:
    f.seek(ifd0 + 2 + ntags * 12); f.write(bytes(4))
with tifffile.TiffFile(n) as t:
    assert len(t.pages) == 1 and t.series[0].shape == (3, 2, 10, 12), t.series[0].shape
add('ij_single_ifd.tif', a.transpose(1, 0, 2, 3), format='imagej')
# libtiff (PIL): LZW (with and without predictor, several strips) and PackBits
def pil_stack(name, arr, **kw):
    ims = [Image.fromarray(p) for p in arr]
    ims[0].save(os.path.join(d, name), save_all=True, append_images=ims[1:], **kw)
a = rand('uint8', (3, 90, 120)) // 16; pil_stack('lzw_u8.tif', a, compression='tiff_lzw', tiffinfo={278: 16}); add('lzw_u8.tif', a[None], compression=5)
a = rand('uint16', (2, 70, 90)); pil_stack('lzw_u16_pred.tif', a, compression='tiff_lzw', tiffinfo={317: 2, 278: 10}); add('lzw_u16_pred.tif', a[None], compression=5, predictor=2)
a = np.repeat(rand('uint8', (3, 40, 25)) // 64, 3, axis=2); pil_stack('packbits_u8.tif', a, compression='packbits'); add('packbits_u8.tif', a[None], compression=32773)
a = rand('float32', (2, 20, 30)); pil_stack('deflate_f32_fpred.tif', a, compression='tiff_adobe_deflate', tiffinfo={317: 3, 278: 7}); add('deflate_f32_fpred.tif', a[None], compression=8, predictor=3)
# ImageJ hyperstack with frames (time series), channels, spacing in nm
a = rand('uint16', (3, 4, 2, 20, 25))  # TZCYX
tifffile.imwrite(os.path.join(d, 'ij_tzc.tif'), a, imagej=True, resolution=(1 / 250.0, 1 / 250.0), metadata={'axes': 'TZCYX', 'spacing': 800.0, 'unit': 'nm'})
for t in range(3):
    add(f'ij_tzc.tif#t{t}', a[t].transpose(1, 0, 2, 3), t=3, format='imagej', timepoint=t, spacing={'x': 0.25, 'y': 0.25, 'z': 0.8, 'unit': 'µm'})
# OME-TIFF: ZCT order via tifffile, PhysicalSize in nm, channel names
a = rand('uint16', (2, 3, 4, 16, 20))  # TCZYX
tifffile.imwrite(os.path.join(d, 'ome_tczyx.ome.tif'), a, ome=True, metadata={'axes': 'TCZYX', 'PhysicalSizeX': 120.0, 'PhysicalSizeXUnit': 'nm', 'PhysicalSizeY': 130.0, 'PhysicalSizeYUnit': 'nm', 'PhysicalSizeZ': 0.5, 'PhysicalSizeZUnit': 'µm', 'Channel': {'Name': ['DAPI', 'GFP', 'mCherry']}})
for t in range(2):
    add(f'ome_tczyx.ome.tif#t{t}', a[t], t=2, format='ome-tiff', timepoint=t, channels=['DAPI', 'GFP', 'mCherry'], spacing={'x': 0.12, 'y': 0.13, 'z': 0.5, 'unit': 'µm'})
# independent check that the libtiff-written files are valid: PIL reads them back identically
for n in ('lzw_u8.tif', 'lzw_u16_pred.tif', 'packbits_u8.tif', 'deflate_f32_fpred.tif'):
    im = Image.open(os.path.join(d, n)); planes = []
    for i in range(im.n_frames):
        im.seek(i); planes.append(np.array(im))
    case = next(c for c in cases if c['name'] == n)
    assert czyx_sha(np.array(planes)[None]) == case['sha'], n
print(json.dumps(cases))
`,
  [tmp.dir],
  120_000,
);

describe('synthetic TIFF variants (made by tifffile / libtiff at test time)', () => {
  it('covers the variants the issue lists', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    const [file] = c.file.split('#');
    const t = c.check.timepoint as number | undefined;
    const warnings: string[] = [];
    const v = await readVolume(file!, { timepoint: t, onWarning: (w) => warnings.push(w) });
    expect(v.shape).toEqual(c.shape);
    expect(v.dtype).toBe(c.dtype);
    expect(sha(v.data)).toBe(c.sha);
    if (c.check.format) expect(v.format).toBe(c.check.format);
    if (c.check.bigTiff) expect(v.metadata.bigTiff).toBe(true);
    if (c.check.compression) expect(v.metadata.compression).toBe(c.check.compression);
    if (c.check.channels) expect(v.channelNames).toEqual(c.check.channels);
    if (c.check.spacing) {
      const s = c.check.spacing as { x: number; y: number; z: number; unit: string };
      expect(v.spacing.unit).toBe(s.unit);
      expect(v.spacing.x).toBeCloseTo(s.x, 6);
      expect(v.spacing.y).toBeCloseTo(s.y, 6);
      expect(v.spacing.z).toBeCloseTo(s.z, 6);
    }
    expect(v.timepoint).toBe(t ?? 0);
  });

  it('time series without --timepoint: first time point plus a warning naming the option', async () => {
    const warnings: string[] = [];
    const v = await readVolume(join(tmp.dir, 'ij_tzc.tif'), { onWarning: (w) => warnings.push(w) });
    expect(v.timepoint).toBe(0);
    expect(v.shape.t).toBe(3);
    expect(warnings.join('\n')).toMatch(/3 time points.*--timepoint/);
    await expect(readVolume(join(tmp.dir, 'ij_tzc.tif'), { timepoint: 3 })).rejects.toThrow(
      /time point 3 out of range/,
    );
    const p = await probeVolume(join(tmp.dir, 'ome_tczyx.ome.tif'));
    expect(p.shape).toEqual({ x: 20, y: 16, z: 4, c: 3, t: 2 });
  });
});
