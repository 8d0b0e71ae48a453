/**
 * Every real file in ../shared/data: shape, dtype (with sign), spacing and channels as its README
 * states, and voxels identical to Debian's tifffile / h5py (compared by SHA-256 of the CZYX data).
 */
import { describe, expect, it } from 'vitest';
import { dataFile } from '../helpers/paths.js';
import { probeVolume, readVolume } from '../../main/io/index.js';
import { PY_PRELUDE, py, sha } from './io-helpers.js';

const F = {
  imagej: dataFile('formats/imagej_hyperstack/xyzc_16bit__dna_conf_wf.tif'),
  ome: dataFile('formats/ome_tiff/multi-channel-z-series.ome.tif'),
  lsm16: dataFile('formats/lsm/jefferislab_jimpipeline_test.lsm'),
  lsm3: dataFile('formats/lsm/nytra_test.lsm'),
  h5a: dataFile('plantseg_nuclei_mini/1135_mini.h5'),
  h5b: dataFile('plantseg_nuclei_mini/1136_mini.h5'),
};

// Reference: tifffile series → CZYX, h5py datasets as stored (ZYX).
const ref = py<Record<string, { sha: string; shape: number[]; dtype: string; sum: number }>>(
  PY_PRELUDE +
    `
import tifffile, h5py
out = {}
def put(k, a):
    out[k] = {'sha': czyx_sha(a), 'shape': list(a.shape), 'dtype': str(a.dtype), 'sum': int(a.astype(np.int64).sum())}
f = dict(zip(['imagej','ome','lsm16','lsm3','h5a','h5b'], sys.argv[1:]))
s = tifffile.TiffFile(f['imagej']).series[0]; assert s.axes == 'ZCYX'; put('imagej', s.asarray().transpose(1,0,2,3))
s = tifffile.TiffFile(f['ome']).series[0]; assert s.axes == 'CZYX'; put('ome', s.asarray())
s = tifffile.TiffFile(f['lsm16']).series[0]; assert s.axes == 'YX'; put('lsm16', s.asarray()[None, None])
s = tifffile.TiffFile(f['lsm3']).series[0]; assert s.axes == 'CYX'; put('lsm3', s.asarray()[:, None])
for k in ('h5a','h5b'):
    with h5py.File(f[k]) as h: put(k, h['raw'][...]); put(k + '_label', h['label'][...])
print(json.dumps(out))
`,
  [F.imagej, F.ome, F.lsm16, F.lsm3, F.h5a, F.h5b],
);

describe('real fixtures (../shared/data)', () => {
  it('ImageJ hyperstack: ZCYX uint16 big-endian, 2 channels x 45 slices, calibrated', async () => {
    const v = await readVolume(F.imagej);
    expect(v.format).toBe('imagej');
    expect(v.shape).toEqual({ x: 133, y: 130, z: 45, c: 2, t: 1 });
    expect(v.dtype).toBe('uint16');
    expect(v.data).toBeInstanceOf(Uint16Array);
    expect(v.spacing.unit).toBe('µm');
    expect(v.spacing.z).toBeCloseTo(0.4994, 4);
    expect(v.spacing.x).toBeCloseTo(0.512, 3); // 1 / XResolution (1953591/1e6 px per µm)
    expect(v.spacing.y).toBeCloseTo(0.512, 3);
    expect(v.channelNames).toHaveLength(2);
    expect(v.metadata.byteOrder).toBe('big-endian');
    expect(sha(v.data)).toBe(ref.imagej!.sha);
  });

  it('OME-TIFF: XYZCT int8 (signed) big-endian read as CZYX (3, 5, 167, 439)', async () => {
    const v = await readVolume(F.ome);
    expect(v.format).toBe('ome-tiff');
    expect(v.shape).toEqual({ x: 439, y: 167, z: 5, c: 3, t: 1 });
    expect(v.dtype).toBe('int8');
    expect(v.data).toBeInstanceOf(Int8Array);
    expect(Math.min(...v.data.subarray(0, 100000))).toBeLessThan(0); // the sign survives
    expect(v.spacing.unit).toBe('pixel'); // the file has no PhysicalSize
    expect(v.metadata.ome).toMatchObject({ dimensionOrder: 'XYZCT' });
    expect(sha(v.data)).toBe(ref.ome!.sha);
  });

  it('LSM uint16, 1 channel, 0.692 µm, thumbnail IFD skipped', async () => {
    const v = await readVolume(F.lsm16);
    expect(v.format).toBe('lsm');
    expect(v.shape).toEqual({ x: 512, y: 512, z: 1, c: 1, t: 1 });
    expect(v.dtype).toBe('uint16');
    expect(v.spacing.x).toBeCloseTo(0.692, 3);
    expect(v.spacing.y).toBeCloseTo(0.692, 3);
    expect(v.spacing.unit).toBe('µm');
    expect(v.metadata.ifds).toBe(2);
    expect(sha(v.data)).toBe(ref.lsm16!.sha);
  });

  it('LSM uint8, 3 planar channels with dye names, 0.415 µm', async () => {
    const v = await readVolume(F.lsm3);
    expect(v.shape).toEqual({ x: 512, y: 512, z: 1, c: 3, t: 1 });
    expect(v.dtype).toBe('uint8');
    expect(v.spacing.x).toBeCloseTo(0.415, 3);
    expect(v.channelNames).toEqual(['DAPI', 'FITC', 'Rhodamine B']);
    expect(sha(v.data)).toBe(ref.lsm3!.sha);
  });

  it.each([
    ['h5a', 0.127],
    ['h5b', 0.1276],
  ] as const)('HDF5 %s: raw (100,100,100) uint8, element_size_um as spacing', async (k, xy) => {
    const v = await readVolume(F[k]);
    expect(v.format).toBe('hdf5');
    expect(v.metadata.dataset).toBe('raw'); // the default prefers "raw" over "label"
    expect(v.shape).toEqual({ x: 100, y: 100, z: 100, c: 1, t: 1 });
    expect(v.dtype).toBe('uint8');
    expect(v.spacing.z).toBeCloseTo(0.2837, 4);
    expect(v.spacing.x).toBeCloseTo(xy, 3);
    expect(v.spacing.y).toBeCloseTo(xy, 3);
    expect(sha(v.data)).toBe(ref[k]!.sha);
    const lab = await readVolume(F[k], { dataset: 'label' });
    expect(sha(lab.data)).toBe(ref[`${k}_label`]!.sha);
  });

  it('probeVolume reads the header only and agrees with readVolume', async () => {
    for (const f of Object.values(F)) {
      const p = await probeVolume(f);
      const v = await readVolume(f);
      expect(p.shape).toEqual(v.shape);
      expect(p.dtype).toBe(v.dtype);
      expect(p.spacing).toEqual(v.spacing);
      expect(p.channelNames).toEqual(v.channelNames);
      expect((p as { data?: unknown }).data).toBeUndefined();
    }
  });

  it('reports progress to 1 and honours cancellation', async () => {
    const fr: number[] = [];
    await readVolume(F.imagej, { onProgress: (p) => fr.push(p.fraction) });
    expect(fr[0]).toBe(0);
    expect(fr.at(-1)).toBe(1);
    expect([...fr].sort((a, b) => a - b)).toEqual(fr);
    const ac = new AbortController();
    ac.abort();
    await expect(readVolume(F.imagej, { signal: ac.signal })).rejects.toMatchObject({
      name: 'CancelledError',
    });
    await expect(readVolume(F.h5a, { signal: ac.signal })).rejects.toMatchObject({ name: 'CancelledError' });
  });
});
