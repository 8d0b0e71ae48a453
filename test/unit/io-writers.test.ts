/**
 * Writers round-trip: label/probability volumes written as ImageJ TIFF and OME-TIFF, checked with an
 * independent reader (Debian's tifffile: shape, axes, dtype, spacing, identical voxels) and with ours.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readVolume, writeImageJTiff, writeOmeTiff } from '../../main/io/index.js';
import { allocTyped, type DType, type Volume } from '../../main/common/volume.js';
import { PY_PRELUDE, py, sha, tempDir } from './io-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function synth(
  dtype: DType,
  x: number,
  y: number,
  z: number,
  c: number,
  spacing = { x: 0.127, y: 0.131, z: 0.2837, unit: 'µm' },
): Volume {
  const n = x * y * z * c;
  const data = allocTyped(dtype, n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] =
      dtype === 'float32'
        ? (s / 2 ** 32) * 2 - 0.5
        : dtype === 'uint8'
          ? s % 7
          : dtype === 'int8'
            ? (s % 256) - 128
            : s % 60000;
  }
  return {
    data,
    dtype,
    shape: { x, y, z, c, t: 1 },
    spacing,
    channelNames: Array.from({ length: c }, (_, i) => `ch ${i} <&>`),
    format: 'synthetic',
    source: 'memory',
    timepoint: 0,
    metadata: {},
  };
}

interface TfInfo {
  axes: string;
  shape: number[];
  dtype: string;
  sha: string;
  imagej?: Record<string, unknown>;
  xres?: number;
  yres?: number;
  ome?: { px: number; py: number; pz: number; ux: string; names: string[]; order: string };
  bigtiff: boolean;
}

const TF_INFO =
  PY_PRELUDE +
  `
import tifffile, xml.etree.ElementTree as ET
t = tifffile.TiffFile(sys.argv[1]); s = t.series[0]; a = s.asarray()
p = t.pages[0]
out = {'axes': s.axes, 'shape': list(a.shape), 'dtype': str(a.dtype), 'bigtiff': t.is_bigtiff}
ax = s.axes
if ax in ('ZCYX',): a = a.transpose(1, 0, 2, 3)
elif ax in ('ZYX', 'YX'): a = a.reshape((1,) + ((1,) if ax == 'YX' else ()) + a.shape)
elif ax == 'CYX': a = a[:, None]
out['sha'] = czyx_sha(a)
if t.is_imagej:
    out['imagej'] = {k: v for k, v in t.imagej_metadata.items() if isinstance(v, (int, float, str, bool))}
    xr = p.tags['XResolution'].value; yr = p.tags['YResolution'].value
    out['xres'] = xr[0] / xr[1]; out['yres'] = yr[0] / yr[1]
if t.is_ome:
    root = ET.fromstring(t.ome_metadata); ns = {'o': root.tag[1:].split('}')[0]}
    px = root.find('.//o:Pixels', ns)
    out['ome'] = {'px': float(px.get('PhysicalSizeX')), 'py': float(px.get('PhysicalSizeY')), 'pz': float(px.get('PhysicalSizeZ')),
                  'ux': px.get('PhysicalSizeXUnit'), 'order': px.get('DimensionOrder'),
                  'names': [c.get('Name') for c in px.findall('o:Channel', ns)]}
print(json.dumps(out))
`;

describe('ImageJ TIFF writer', () => {
  it.each([
    ['uint8 labels, 1 channel', 'uint8', 1, 'ZYX'],
    ['uint16 labels, 1 channel', 'uint16', 1, 'ZYX'],
    ['float32 probabilities, 3 classes', 'float32', 3, 'ZCYX'],
  ] as const)(
    '%s → tifffile sees an ImageJ hyperstack with the same voxels and calibration',
    async (_n, dtype, c, axes) => {
      const v = synth(dtype, 37, 29, 6, c);
      const f = join(tmp.dir, `ij_${dtype}_${c}.tif`);
      await writeImageJTiff(f, v);
      const r = py<TfInfo>(TF_INFO, [f]);
      expect(r.axes).toBe(axes);
      expect(r.dtype).toBe(dtype);
      expect(r.shape).toEqual(c > 1 ? [6, c, 29, 37] : [6, 29, 37]);
      expect(r.sha).toBe(sha(v.data));
      expect(r.imagej).toMatchObject({ unit: 'micron', slices: 6, images: 6 * c });
      if (c > 1) expect(r.imagej).toMatchObject({ channels: c, hyperstack: true });
      expect(r.imagej!.spacing as number).toBeCloseTo(0.2837, 6);
      expect(1 / r.xres!).toBeCloseTo(0.127, 5); // pixels per micron → Fiji's pixel width
      expect(1 / r.yres!).toBeCloseTo(0.131, 5);
      const back = await readVolume(f);
      expect(back.format).toBe('imagej');
      expect(back.shape).toEqual(v.shape);
      expect(back.dtype).toBe(dtype);
      expect(back.spacing.z).toBeCloseTo(0.2837, 6);
      expect(back.spacing.x).toBeCloseTo(0.127, 5);
      expect(sha(back.data)).toBe(sha(v.data));
    },
  );

  it('refuses dtypes ImageJ cannot hold and leaves no temp files on success or failure', async () => {
    await expect(writeImageJTiff(join(tmp.dir, 'bad.tif'), synth('int8', 4, 4, 2, 1))).rejects.toThrow(
      /ImageJ TIFF holds uint8, uint16(, uint32)? or float32, not int8/,
    );
    await expect(
      writeImageJTiff(join(tmp.dir, 'missing-dir', 'x.tif'), synth('uint8', 4, 4, 2, 1)),
    ).rejects.toThrow(/cannot write/);
    expect(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('replaces an existing file atomically', async () => {
    const f = join(tmp.dir, 'replace.tif');
    writeFileSync(f, 'old contents');
    const v = synth('uint8', 8, 8, 3, 1);
    await writeImageJTiff(f, v);
    expect(sha((await readVolume(f)).data)).toBe(sha(v.data));
  });
});

describe('OME-TIFF writer', () => {
  it.each([
    ['uint16', 3],
    ['int8', 2],
    ['float32', 1],
  ] as const)(
    '%s with %i channel(s) → tifffile reads CZYX, PhysicalSize in µm, channel names',
    async (dtype, c) => {
      const v = synth(dtype, 23, 19, 5, c);
      const f = join(tmp.dir, `ome_${dtype}.ome.tif`);
      await writeOmeTiff(f, v);
      const r = py<TfInfo>(TF_INFO, [f]);
      expect(r.axes).toBe(c > 1 ? 'CZYX' : 'ZYX');
      expect(r.dtype).toBe(dtype);
      expect(r.sha).toBe(sha(v.data));
      expect(r.ome!.order).toBe('XYZCT');
      expect(r.ome!.ux).toBe('µm');
      expect(r.ome!.px).toBeCloseTo(0.127, 9);
      expect(r.ome!.py).toBeCloseTo(0.131, 9);
      expect(r.ome!.pz).toBeCloseTo(0.2837, 9);
      expect(r.ome!.names).toEqual(v.channelNames);
      const back = await readVolume(f);
      expect(back.format).toBe('ome-tiff');
      expect(back.shape).toEqual(v.shape);
      expect(back.channelNames).toEqual(v.channelNames);
      expect(back.spacing).toMatchObject({ unit: 'µm' });
      expect(back.spacing.z).toBeCloseTo(0.2837, 9);
      expect(sha(back.data)).toBe(sha(v.data));
    },
  );

  it('BigTIFF output (forced) round-trips', async () => {
    const v = synth('uint16', 17, 13, 4, 2);
    const f = join(tmp.dir, 'big.ome.tif');
    await writeOmeTiff(f, v, { forceBigTiff: true });
    const r = py<TfInfo>(TF_INFO, [f]);
    expect(r.bigtiff).toBe(true);
    expect(r.sha).toBe(sha(v.data));
    const back = await readVolume(f);
    expect(back.metadata.bigTiff).toBe(true);
    expect(sha(back.data)).toBe(sha(v.data));
  });
});
