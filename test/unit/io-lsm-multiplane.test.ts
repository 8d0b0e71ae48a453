/**
 * Multi-plane Zeiss LSM. No real multi-plane LSM under 4 MiB exists publicly, so these files are
 * BUILT FROM THE REAL SINGLE-PLANE FIXTURES: the original bytes are kept as they are (all tags,
 * CZ_LSMINFO and its sub-records), DimensionZ / DimensionTime / VoxelSizeZ are patched in CZ_LSMINFO,
 * and further image IFDs (copies of IFD 0's tags, without CZ_LSMINFO, as Zen writes them) each
 * followed by a thumbnail IFD (copy of the real one, NewSubfileType = 1) are appended with new
 * pixel data. Debian's tifffile reads the result as an LSM series and is the reference.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { FileSource } from '../../main/io/source.js';
import { TAG, TiffFile, type Ifd } from '../../main/io/tiff/ifd.js';
import { PY_PRELUDE, py, sha, tempDir } from './io-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Builds an LSM with nz * nt image planes from a real single-plane LSM. Plane k = original + 29*k (wrapping). */
async function buildLsm(srcPath: string, out: string, nz: number, nt: number, voxelZ: number): Promise<void> {
  const src = await FileSource.open(srcPath);
  const tf = await TiffFile.open(src);
  await src.close();
  const orig = readFileSync(srcPath);
  const [img, thumb] = tf.ifds as [Ifd, Ifd];
  expect(tf.ifds).toHaveLength(2);
  const lsm = tf.entry(img, TAG.CzLsmInfo)!;
  const chunks: Buffer[] = [Buffer.from(orig)];
  const buf = chunks[0]!;
  buf.writeInt32LE(nz, lsm.valueOffset + 16);
  buf.writeInt32LE(nt, lsm.valueOffset + 24);
  buf.writeDoubleLE(voxelZ, lsm.valueOffset + 56);
  let size = buf.length;
  const append = (b: Buffer): number => {
    const at = size;
    chunks.push(b);
    size += b.length;
    if (size % 2) {
      chunks.push(Buffer.alloc(1));
      size += 1;
    }
    return at;
  };
  const offsets = (await tf.nums(img, TAG.StripOffsets))!;
  const counts = (await tf.nums(img, TAG.StripByteCounts))!;
  const bits = (await tf.nums(img, TAG.BitsPerSample))![0]!;
  const ifdBytes = (ifd: Ifd, overrides: Map<number, Buffer>, drop: number[], next: number): Buffer => {
    const tags = [...ifd.entries.values()].filter((e) => !drop.includes(e.tag)).sort((a, b) => a.tag - b.tag);
    const b = Buffer.alloc(2 + tags.length * 12 + 4);
    b.writeUInt16LE(tags.length, 0);
    tags.forEach((e, i) => {
      const p = 2 + i * 12;
      b.writeUInt16LE(e.tag, p);
      b.writeUInt16LE(e.type, p + 2);
      b.writeUInt32LE(e.count, p + 4);
      const o = overrides.get(e.tag);
      if (o) o.copy(b, p + 8);
      else if (e.inline) e.inline.copy(b, p + 8, 0, 4);
      else b.writeUInt32LE(e.valueOffset, p + 8);
    });
    b.writeUInt32LE(next, 2 + tags.length * 12);
    return b;
  };
  // where the previous thumbnail IFD keeps its next-IFD pointer (first: the real thumbnail's)
  let prevLink = { buf, pos: thumb.offset + 2 + thumb.entries.size * 12 };
  for (let k = 1; k < nz * nt; k++) {
    const newOffsets: number[] = [];
    for (let s = 0; s < offsets.length; s++) {
      const plane = Buffer.from(orig.subarray(offsets[s]!, offsets[s]! + counts[s]!));
      if (bits === 8) for (let i = 0; i < plane.length; i++) plane[i] = (plane[i]! + 29 * k) & 0xff;
      else
        for (let i = 0; i < plane.length; i += 2)
          plane.writeUInt16LE((plane.readUInt16LE(i) + 29 * k) & 0xffff, i);
      newOffsets.push(append(plane));
    }
    const ov = new Map<number, Buffer>();
    if (newOffsets.length === 1) {
      const v = Buffer.alloc(4);
      v.writeUInt32LE(newOffsets[0]!, 0);
      ov.set(TAG.StripOffsets, v);
    } else {
      const arr = Buffer.alloc(4 * newOffsets.length);
      newOffsets.forEach((o, i) => arr.writeUInt32LE(o, i * 4));
      const at = append(arr);
      const v = Buffer.alloc(4);
      v.writeUInt32LE(at, 0);
      ov.set(TAG.StripOffsets, v);
    }
    const imgAt = size;
    const imgIfd = ifdBytes(img, ov, [TAG.CzLsmInfo], 0);
    append(imgIfd);
    const thumbAt = size;
    const thumbIfd = ifdBytes(thumb, new Map(), [], 0);
    append(thumbIfd);
    imgIfd.writeUInt32LE(thumbAt, imgIfd.length - 4);
    // link the previous thumbnail to this image IFD
    prevLink.buf.writeUInt32LE(imgAt, prevLink.pos);
    prevLink = { buf: thumbIfd, pos: thumbIfd.length - 4 };
  }
  writeFileSync(out, Buffer.concat(chunks));
}

describe('multi-plane LSM built from the real single-plane files', () => {
  it('3 channels x 4 z-planes (nytra_test.lsm): planar channels, thumbnails skipped, z from CZ_LSMINFO', async () => {
    const f = join(tmp.dir, 'nytra_z4.lsm');
    await buildLsm(dataFile('formats/lsm/nytra_test.lsm'), f, 4, 1, 1.5e-6);
    const r = py<{ axes: string; shape: number[]; sha: string; pages: number }>(
      PY_PRELUDE +
        `
import tifffile
t = tifffile.TiffFile(sys.argv[1]); assert t.is_lsm
s = t.series[0]; a = s.asarray()
print(json.dumps({'axes': s.axes, 'shape': list(a.shape), 'sha': czyx_sha(a.transpose(1, 0, 2, 3)), 'pages': len(t.pages)}))`,
      [f],
    );
    expect(r.axes).toBe('ZCYX');
    expect(r.shape).toEqual([4, 3, 512, 512]);
    expect(r.pages).toBe(8);
    const v = await readVolume(f);
    expect(v.format).toBe('lsm');
    expect(v.shape).toEqual({ x: 512, y: 512, z: 4, c: 3, t: 1 });
    expect(v.dtype).toBe('uint8');
    expect(v.spacing.z).toBeCloseTo(1.5, 6);
    expect(v.spacing.x).toBeCloseTo(0.415, 3);
    expect(v.channelNames).toEqual(['DAPI', 'FITC', 'Rhodamine B']);
    expect(sha(v.data)).toBe(r.sha);
    // plane z=2 of channel 1 is the original channel 1 plus 58
    const plane = 512 * 512;
    const orig = await readVolume(dataFile('formats/lsm/nytra_test.lsm'));
    expect(v.data[(1 * 4 + 2) * plane + 1000]).toBe((orig.data[plane + 1000]! + 58) & 0xff);
  });

  it('uint16 time series, 3 z x 2 t (jefferislab): first time point + warning, --timepoint 1', async () => {
    const f = join(tmp.dir, 'jeff_z3_t2.lsm');
    await buildLsm(dataFile('formats/lsm/jefferislab_jimpipeline_test.lsm'), f, 3, 2, 2e-6);
    const r = py<{ axes: string; shape: number[]; sha0: string; sha1: string }>(
      PY_PRELUDE +
        `
import tifffile
s = tifffile.TiffFile(sys.argv[1]).series[0]; a = s.asarray()
print(json.dumps({'axes': s.axes, 'shape': list(a.shape), 'sha0': czyx_sha(a[0][None]), 'sha1': czyx_sha(a[1][None])}))`,
      [f],
    );
    expect(r.axes).toBe('TZYX');
    expect(r.shape).toEqual([2, 3, 512, 512]);
    const warnings: string[] = [];
    const v0 = await readVolume(f, { onWarning: (w) => warnings.push(w) });
    expect(v0.shape).toEqual({ x: 512, y: 512, z: 3, c: 1, t: 2 });
    expect(v0.spacing.z).toBeCloseTo(2, 6);
    expect(warnings.some((w) => w.includes('--timepoint'))).toBe(true);
    expect(sha(v0.data)).toBe(r.sha0);
    const v1 = await readVolume(f, { timepoint: 1 });
    expect(v1.timepoint).toBe(1);
    expect(sha(v1.data)).toBe(r.sha1);
  });

  it('LSM whose header promises more planes than the file holds is refused', async () => {
    const f = join(tmp.dir, 'short.lsm');
    await buildLsm(dataFile('formats/lsm/jefferislab_jimpipeline_test.lsm'), f, 2, 1, 1e-6);
    const b = readFileSync(f);
    const src = await FileSource.open(f);
    const tf = await TiffFile.open(src);
    const e = tf.entry(tf.ifds[0]!, TAG.CzLsmInfo)!;
    await src.close();
    b.writeInt32LE(5, e.valueOffset + 16);
    writeFileSync(f, b);
    await expect(readVolume(f)).rejects.toThrow(
      /5 z-planes x 1 time points but the file holds 2 image planes/,
    );
  });
});
