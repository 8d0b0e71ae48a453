/**
 * Bad input: every case must end in a VolumeReadError whose message names the file and the problem.
 * The damaged files are made from small valid TIFFs written by our writer (synthetic, since the point
 * is a precise, known defect) and from truncated copies of the real fixtures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { probeVolume, readVolume, writeImageJTiff } from '../../main/io/index.js';
import { VolumeReadError } from '../../main/common/errors.js';
import { FileSource } from '../../main/io/source.js';
import { TAG, TiffFile } from '../../main/io/tiff/ifd.js';
import { dataFile } from '../helpers/paths.js';
import { PY_PRELUDE, py, tempDir } from './io-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
let good: string;
let layout: { ifd0: number; ifd1: number; entries0: Map<number, { pos: number }> };

beforeAll(async () => {
  good = join(tmp.dir, 'good.tif');
  const data = new Uint16Array(16 * 12 * 3).map((_, i) => i);
  await writeImageJTiff(good, {
    data,
    dtype: 'uint16',
    shape: { x: 16, y: 12, z: 3, c: 1, t: 1 },
    spacing: { x: 1, y: 1, z: 1, unit: 'µm' },
  });
  const src = await FileSource.open(good);
  const tf = await TiffFile.open(src);
  await src.close();
  const entries0 = new Map<number, { pos: number }>();
  [...tf.ifds[0]!.entries.keys()].forEach((tag, i) =>
    entries0.set(tag, { pos: tf.ifds[0]!.offset + 2 + i * 12 }),
  );
  layout = { ifd0: tf.ifds[0]!.offset, ifd1: tf.ifds[1]!.offset, entries0 };
});

function variant(name: string, edit: (b: Buffer) => Buffer | void): string {
  const b = readFileSync(good);
  const out = edit(b) ?? b;
  const f = join(tmp.dir, name);
  writeFileSync(f, out);
  return f;
}

/** Position of an IFD-0 entry's value field. */
const valuePos = (tag: number) => layout.entries0.get(tag)!.pos + 8;

async function fails(f: string, re: RegExp, opts = {}): Promise<VolumeReadError> {
  const e = await readVolume(f, opts).then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(VolumeReadError);
  const err = e as VolumeReadError;
  expect(err.message).toContain(f);
  expect(err.message).toMatch(re);
  expect(err.message).not.toContain('\n');
  expect(err.exitCode).toBe(2);
  return err;
}

describe('bad input → VolumeReadError naming the file and the reason', () => {
  it('not a TIFF, empty file, missing file, directory', async () => {
    await fails(
      variant('text.tif', () => Buffer.from('hello, this is not an image at all')),
      /not a TIFF/,
    );
    await fails(
      variant('empty.tif', () => Buffer.alloc(0)),
      /empty file/,
    );
    await fails(join(tmp.dir, 'nope.tif'), /no such file/);
    mkdirSync(join(tmp.dir, 'dir.tif'));
    await fails(join(tmp.dir, 'dir.tif'), /is a directory/);
    await fails(
      variant('hdf.h5', () => Buffer.from('not hdf5 either, just text padding.......')),
      /not an HDF5 file/,
    );
    await fails(
      variant('wrongmagic.tif', (b) => void b.writeUInt16LE(44, 2)),
      /not a TIFF \(magic number 44/,
    );
  });

  it('IFD chain loops', async () => {
    // IFD 1's next pointer → IFD 0
    const f = variant('loop.tif', (b) => {
      const n1 = b.readUInt16LE(layout.ifd1);
      b.writeUInt32LE(layout.ifd0, layout.ifd1 + 2 + n1 * 12);
    });
    await fails(f, /IFD chain loops/);
    await expect(probeVolume(f)).rejects.toThrow(/IFD chain loops/);
  });

  it('truncated strip, offsets past EOF, first IFD past EOF', async () => {
    const full = readFileSync(good);
    await fails(
      variant('trunc.tif', () => full.subarray(0, full.length - 100)),
      /truncated strip at offset \d+/,
    );
    await fails(
      variant('past.tif', (b) => void b.writeUInt32LE(10_000_000, valuePos(TAG.StripOffsets))),
      /points past the end of the file|truncated strip/,
    );
    await fails(
      variant('ifdpast.tif', (b) => void b.writeUInt32LE(99_999_999, 4)),
      /IFD 0 offset 99999999 points past the end/,
    );
    const ome = readFileSync(dataFile('formats/ome_tiff/multi-channel-z-series.ome.tif'));
    await fails(
      variant('ome-half.ome.tif', () => ome.subarray(0, 600_000)),
      /truncated|past the end/,
    );
  });

  it('zero-sized and absurd dimensions; volumes larger than memory', async () => {
    await fails(
      variant('zero.tif', (b) => void b.writeUInt32LE(0, valuePos(TAG.ImageWidth))),
      /zero-sized image/,
    );
    await fails(
      variant('huge.tif', (b) => void b.writeUInt32LE(4_000_000_000, valuePos(TAG.ImageWidth))),
      /absurd image size/,
    );
    // a consistent header that declares more uncompressed data than the file holds
    await fails(
      variant('big.tif', (b) => void b.writeUInt32LE(60_000, valuePos(TAG.ImageWidth))),
      /declares 3 uncompressed planes|holds \d+ bytes, expected|truncated/,
    );
    const e = await fails(good, /needs .* of memory but only .* is available/, { maxBytes: 1000 });
    expect(e.kind).toBe('too-large');
  });

  it('unsupported compression and sample types are named', async () => {
    await fails(
      variant('jpeg.tif', (b) => void b.writeUInt16LE(7, valuePos(TAG.Compression))),
      /unsupported compression JPEG/,
    );
    await fails(
      variant('f16.tif', (b) => void b.writeUInt16LE(3, valuePos(TAG.SampleFormat))),
      /unsupported sample type: 16-bit float/,
    );
  });

  it('HDF5: unknown dataset lists the ones present; bad time point', async () => {
    const h5 = dataFile('plantseg_nuclei_mini/1135_mini.h5');
    await expect(readVolume(h5, { dataset: 'nuclei' })).rejects.toThrow(
      /no dataset "nuclei" \(datasets: label, raw\)/,
    );
    await expect(probeVolume(h5, { timepoint: 2 })).rejects.toThrow(/time point 2 out of range/);
    const cut = readFileSync(h5).subarray(0, 3000);
    await fails(
      variant('cut.h5', () => cut),
      /HDF5 error/,
    );
  });

  it('memory bombs: tiles far larger than the image, impossible compression ratios', async () => {
    // small tiled Deflate TIFF made by tifffile (synthetic: the defect is what matters)
    const f0 = join(tmp.dir, 'tiled.tif');
    py(
      PY_PRELUDE +
        `
import tifffile
tifffile.imwrite(sys.argv[1], np.zeros((2, 256, 256), 'uint16'), tile=(128, 128), compression='zlib', photometric='minisblack', metadata=None)
print('[]')`,
      [f0],
    );
    const src = await FileSource.open(f0);
    const tf = await TiffFile.open(src);
    await src.close();
    const ifd = tf.ifds[0]!;
    const pos = (tag: number) => ifd.offset + 2 + [...ifd.entries.keys()].indexOf(tag) * 12 + 8;
    const typeOf = (tag: number) => tf.entry(ifd, tag)!.type;
    const put = (b: Buffer, tag: number, v: number) =>
      typeOf(tag) === 3 ? b.writeUInt16LE(v, pos(tag)) : b.writeUInt32LE(v, pos(tag));
    const base = readFileSync(f0);
    const big = Buffer.from(base);
    put(big, TAG.TileWidth, 32768);
    put(big, TAG.TileLength, 32768);
    writeFileSync(join(tmp.dir, 'bigtile.tif'), big);
    await fails(
      join(tmp.dir, 'bigtile.tif'),
      /tile size 32768 x 32768 is far larger than the 256 x 256 image/,
    );
    // a tile that claims 1 compressed byte
    const counts = (await tf.nums(ifd, TAG.TileByteCounts))!;
    const cb = Buffer.from(base);
    const cpos = tf.entry(ifd, TAG.TileByteCounts)!.valueOffset;
    cb.writeUInt32LE(1, cpos); // tile 0 only: the page total stays plausible, the per-tile check must catch it
    expect(counts.length).toBe(4);
    writeFileSync(join(tmp.dir, 'ratio.tif'), cb);
    await fails(
      join(tmp.dir, 'ratio.tif'),
      /tile 0 of IFD 0 at offset \d+: 1 Deflate bytes cannot hold 32768 bytes of pixels/,
    );
    // and the page-level check when every tile is tiny
    counts.forEach((_, i) => cb.writeUInt32LE(1, cpos + i * 4));
    writeFileSync(join(tmp.dir, 'ratio2.tif'), cb);
    await fails(
      join(tmp.dir, 'ratio2.tif'),
      /IFD 0 declares 131072 bytes of pixels but stores only 4 compressed bytes/,
    );
  });

  it('registry: extension first, then magic bytes', async () => {
    const h5copy = variant('really-hdf5.tif', () =>
      readFileSync(dataFile('plantseg_nuclei_mini/1136_mini.h5')),
    );
    expect((await probeVolume(h5copy)).format).toBe('hdf5');
    const tifCopy = variant('stack.dat', () => readFileSync(good));
    expect((await probeVolume(tifCopy)).format).toBe('imagej');
    await fails(
      variant('notes.txt', () => Buffer.from('just some text, nothing more')),
      /unsupported file type ".txt"/,
    );
  });
});
