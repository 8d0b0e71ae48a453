/**
 * OME-Zarr / Zarr in our own code and against zarrita (an independent Zarr v3 implementation): round trips
 * of real volumes (1135_mini.h5, the ImageJ hyperstack) through the writer and reader, region reads, levels,
 * the chunk cache, sparse stores, a store larger than 2^32 voxels, v3 stores written by zarrita, and the
 * errors. python3-zarr (Zarr v2) checks sit in test/integration/zarr-python.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile, mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as zarr from 'zarrita';
import { dataFile, REPO } from '../helpers/paths.js';
import { openZarrSource, probeVolume, readVolume } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import { FsStore } from '../../main/io/zarr/store.js';
import { createOmeZarrImage, writeOmeZarr, writeOmeZarrLabels, writePyramid, ZarrArrayWriter } from '../../main/io/zarr/writer.js';

const NUC = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const HYPER = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');

let dir: string;
let raw: Volume;
let ids: Uint16Array;
let hyper: Volume;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-zarr-'));
  raw = await readVolume(NUC, { dataset: 'raw' });
  ids = Uint16Array.from((await readVolume(NUC, { dataset: 'label' })).data);
  hyper = await readVolume(HYPER);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** voxels of a box cut from an in-memory volume (the reference for region reads) */
function cut(v: Volume, b: { x0: number; y0: number; z0: number; x1: number; y1: number; z1: number }, channels: number[]): number[] {
  const out: number[] = [];
  const { x, y, z } = v.shape;
  for (const c of channels)
    for (let zz = b.z0; zz < b.z1; zz++)
      for (let yy = b.y0; yy < b.y1; yy++)
        for (let xx = b.x0; xx < b.x1; xx++) out.push(v.data[((c * z + zz) * y + yy) * x + xx]!);
  return out;
}

describe('OME-Zarr round trips through our writer and reader', () => {
  for (const [version, compression] of [['0.4', 'blosc'], ['0.4', 'zstd'], ['0.4', 'gzip'], ['0.4', 'none'], ['0.5', 'blosc'], ['0.5', 'zstd'], ['0.5', 'gzip']] as const) {
    it(`NGFF ${version}, ${compression}: 1135 raw + labels/nuclei read back voxel for voxel, with spacing, levels and label names`, async () => {
      const out = join(dir, `rt-${version}-${compression}.ome.zarr`);
      await writeOmeZarr(out, { image: raw, labels: [{ name: 'nuclei', data: ids }] }, { version, compression, chunks: [32, 48, 48] });
      const back = await readVolume(out);
      expect(back.format).toBe('ome-zarr');
      expect(back.dtype).toBe('uint8');
      expect(back.shape).toEqual({ x: 100, y: 100, z: 100, c: 1, t: 1 });
      expect(back.spacing.unit).toBe('µm');
      expect(back.spacing.z).toBeCloseTo(raw.spacing.z, 9);
      expect(back.spacing.x).toBeCloseTo(raw.spacing.x, 9);
      expect(back.metadata.zarrFormat).toBe(version === '0.4' ? 2 : 3);
      expect(back.metadata.ngffVersion).toBe(version);
      expect(back.metadata.labels).toEqual(['nuclei']);
      expect(Buffer.compare(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength), Buffer.from(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength))).toBe(0);
      const lab = await readVolume(out, { dataset: 'labels/nuclei' });
      expect(lab.dtype).toBe('uint16');
      expect(lab.metadata.imageLabel).toBeDefined();
      let same = true;
      for (let i = 0; i < ids.length; i++) if (lab.data[i] !== ids[i]) same = false;
      expect(same).toBe(true);
      // no temporary chunk files or folders left behind
      const names = await readdir(dir);
      expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);
    }, 60_000);
  }

  it('pyramid: z kept while it is coarser than x/y (0.28 vs 0.13 µm), mean for the image, mode for labels', async () => {
    const out = join(dir, 'pyr.ome.zarr');
    await writeOmeZarr(out, { image: raw, labels: [{ name: 'nuclei', data: ids }] }, { chunks: [32, 64, 64], pyramid: { minSize: 16 } });
    const s = await openZarrSource(out);
    expect(s.levels).toEqual([
      { factors: [1, 1, 1], shape: { x: 100, y: 100, z: 100 } },
      { factors: [1, 2, 2], shape: { x: 50, y: 50, z: 100 } },
      { factors: [2, 4, 4], shape: { x: 25, y: 25, z: 50 } },
    ]);
    const l1 = await s.read({ x0: 0, y0: 0, z0: 0, x1: 50, y1: 50, z1: 100 }, { level: 1 });
    let worst = 0;
    for (let z = 0; z < 100; z++)
      for (let y = 0; y < 50; y++)
        for (let x = 0; x < 50; x++) {
          let sum = 0;
          for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) sum += raw.data[(z * 100 + 2 * y + dy) * 100 + 2 * x + dx]!;
          worst = Math.max(worst, Math.abs(l1[(z * 50 + y) * 50 + x]! - sum / 4));
        }
    expect(worst).toBeLessThanOrEqual(0.5);
    await s.close();
    const ls = await openZarrSource(out, { dataset: 'labels/nuclei' });
    const m1 = await ls.read({ x0: 0, y0: 0, z0: 0, x1: 50, y1: 50, z1: 100 }, { level: 1 });
    const m2 = await ls.read({ x0: 0, y0: 0, z0: 0, x1: 25, y1: 25, z1: 50 }, { level: 2 });
    // every label of a level is the most frequent id of its block in the level below (1×2×2, then 2×2×2)
    const modeOK = (fine: ArrayLike<number>, fn: [number, number, number], coarse: ArrayLike<number>, cn: [number, number, number], k: [number, number, number]) => {
      let wrong = 0;
      for (let z = 0; z < cn[0]; z++)
        for (let y = 0; y < cn[1]; y++)
          for (let x = 0; x < cn[2]; x++) {
            const n = new Map<number, number>();
            for (let dz = 0; dz < k[0]; dz++) for (let dy = 0; dy < k[1]; dy++) for (let dx = 0; dx < k[2]; dx++) {
              const v = fine[((k[0] * z + dz) * fn[1] + k[1] * y + dy) * fn[2] + k[2] * x + dx]!;
              n.set(v, (n.get(v) ?? 0) + 1);
            }
            if (n.get(coarse[(z * cn[1] + y) * cn[2] + x]!) !== Math.max(...n.values())) wrong++;
          }
      return wrong;
    };
    expect(modeOK(ids, [100, 100, 100], m1, [100, 50, 50], [1, 2, 2])).toBe(0);
    expect(modeOK(m1, [100, 50, 50], m2, [50, 25, 25], [2, 2, 2])).toBe(0);
    // a mode, not a mean: no id appears that the level below does not hold
    const have = new Set(ids);
    expect([...new Set(m2)].every((v) => have.has(v))).toBe(true);
    await ls.close();
  }, 60_000);

  it('region reads of a 2-channel uint16 hyperstack: unaligned boxes, channel subsets, cache bound', async () => {
    const out = join(dir, 'hyper.ome.zarr');
    await writeOmeZarr(out, { image: hyper }, { chunks: [8, 32, 32], pyramid: false });
    const s = await openZarrSource(out, { cacheBytes: 40_000 });
    expect(s.info.shape).toEqual({ x: 133, y: 130, z: 45, c: 2, t: 1 });
    expect(s.info.dtype).toBe('uint16');
    expect(s.chunk).toEqual([8, 32, 32]);
    expect(s.info.metadata.axes).toBe('czyx');
    for (const [b, ch] of [
      [{ x0: 0, y0: 0, z0: 0, x1: 133, y1: 130, z1: 45 }, [0, 1]],
      [{ x0: 31, y0: 17, z0: 7, x1: 97, y1: 129, z1: 9 }, [1]],
      [{ x0: 132, y0: 129, z0: 44, x1: 133, y1: 130, z1: 45 }, [1, 0]],
    ] as const) {
      const got = await s.read(b, { channels: [...ch] });
      expect(Array.from(got)).toEqual(cut(hyper, b, [...ch]));
      expect(s.cachedBytes).toBeLessThanOrEqual(40_000);
    }
    await s.close();
    // a cache big enough for the box: reading it twice costs no second chunk read
    const big = await openZarrSource(out);
    const box = { x0: 10, y0: 10, z0: 3, x1: 70, y1: 70, z1: 20 };
    await big.read(box);
    const n = big.chunkReads;
    expect(n).toBe(2 * 3 * 3 * 3);
    await big.read(box);
    expect(big.chunkReads).toBe(n);
    await expect(big.read({ ...box, x1: 134 })).rejects.toThrow(/region x 10\.\.134.*not inside 133×130×45/);
    // cancellation between chunks: a plain { aborted } token and an AbortSignal
    await expect(big.read({ ...box, z0: 30, z1: 40 }, { signal: { aborted: true } })).rejects.toMatchObject({ kind: 'cancelled' });
    const ac = new AbortController();
    ac.abort();
    await expect(readVolume(out, { signal: ac.signal })).rejects.toMatchObject({ kind: 'cancelled' });
    await big.close();
    await expect(big.read(box)).rejects.toThrow(/read after close/);
  }, 60_000);
});

describe('chunk writers', () => {
  it('writeRegion in chunk-aligned boxes from three writers at once == one write; unaligned boxes are refused', async () => {
    const out = join(dir, 'parallel.ome.zarr');
    const spec = { shape: { x: 100, y: 100, z: 100, c: 1 }, dtype: 'uint16' as const, spacing: raw.spacing, label: {}, chunks: [32, 32, 32] as [number, number, number] };
    await createOmeZarrImage(out, '', spec);
    // three "shards": z slabs 0..32, 32..64, 64..100, each through its own writer opened from disk
    const slabs = [[0, 32], [32, 64], [64, 100]] as const;
    await Promise.all(
      slabs.map(async ([z0, z1]) => {
        const w = await ZarrArrayWriter.open(out, '0');
        await w.writeRegion({ x0: 0, y0: 0, z0, x1: 100, y1: 100, z1 }, ids.subarray(z0 * 10000, z1 * 10000));
      }),
    );
    const w = await ZarrArrayWriter.open(out, '0');
    await expect(w.writeRegion({ x0: 0, y0: 0, z0: 16, x1: 100, y1: 100, z1: 48 }, new Uint16Array(100 * 100 * 32))).rejects.toThrow(/region z 16\.\.48 is not aligned to the chunks \(32 voxels\)/);
    await expect(w.writeRegion({ x0: 0, y0: 0, z0: 0, x1: 100, y1: 100, z1: 32 }, new Uint16Array(5))).rejects.toThrow(/region data has 5 values/);
    const back = await readVolume(out);
    expect(Array.from(back.data).every((v, i) => v === ids[i])).toBe(true);
    // a pyramid added afterwards lists its levels in the metadata
    const levels = await writePyramid(out, '', { minSize: 20 });
    expect(levels.map((l) => l.factors)).toEqual([[1, 1, 1], [1, 2, 2], [2, 4, 4]]);
    expect((await openZarrSource(out)).levels.length).toBe(3);
    // sliceform info lists the levels
    const { main } = await import('../../main/cli/index.js');
    const lines: string[] = [];
    expect(await main(['info', out], { out: (l) => lines.push(l), err: () => undefined, isTTY: false })).toBe(0);
    expect(JSON.parse(lines[0]!)).toMatchObject({ format: 'ome-zarr', zarrFormat: 2, ngffVersion: '0.4', chunks: [32, 32, 32], labels: [], levels: [{ path: '0', shape: [100, 100, 100] }, { path: '1', shape: [100, 50, 50] }, { path: '2', shape: [50, 25, 25] }] });
  }, 60_000);

  it('a raw array with fill_value 7: missing chunks read as 7, a chunk of only 7s is not stored, clipped edge chunks are padded', async () => {
    const out = join(dir, 'fill.zarr');
    for (const zarrFormat of [2, 3] as const) {
      await rm(out, { recursive: true, force: true });
      const w = await ZarrArrayWriter.create(out, '', { shape: [10, 20, 30], chunks: [4, 8, 16], dtype: 'int16', axes: 'zyx', zarrFormat, fillValue: 7, compression: 'zstd' });
      expect(w.grid).toEqual([3, 3, 2]);
      // the corner chunk [2, 2, 1] is clipped to 2×4×14; values -1000 - index so sign and position both show
      await w.writeChunk([2, 2, 1], Int16Array.from({ length: 2 * 4 * 14 }, (_, i) => -1000 - i));
      await w.writeChunk([0, 0, 0], new Int16Array(4 * 8 * 16).fill(7));
      const v = await readVolume(out);
      expect(v.dtype).toBe('int16');
      expect(v.shape).toEqual({ x: 30, y: 20, z: 10, c: 1, t: 1 });
      expect(v.data[0]).toBe(7);
      expect(v.data[(8 * 20 + 16) * 30 + 16]).toBe(-1000);
      expect(v.data[(9 * 20 + 19) * 30 + 29]).toBe(-1000 - (1 * 4 * 14 + 3 * 14 + 13));
      expect(v.data[(7 * 20 + 19) * 30 + 29]).toBe(7);
      const files = await readdir(zarrFormat === 2 ? out : join(out, 'c'), { recursive: true });
      expect(files.filter((f) => /^\d/.test(f) && !f.includes('.'))).toContain(join('2', '2', '1'));
      expect(files).not.toContain(join('0', '0', '0'));
    }
  });

  it('a store >2^32 voxels with two chunks on disk: the last (clipped) chunk reads back at its indices, the rest is fill', async () => {
    const out = join(dir, 'huge.ome.zarr');
    const shape = { x: 2048, y: 2048, z: 1025, c: 1 };
    const w = await createOmeZarrImage(out, '', { shape, dtype: 'uint8', spacing: { x: 1, y: 1, z: 1, unit: 'µm' }, chunks: [64, 64, 64], label: { source: null } });
    expect(w.grid).toEqual([17, 32, 32]);
    // the last chunk holds z 1024 only; values depend on the position so a wrong offset shows
    const last = new Uint8Array(1 * 64 * 64);
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) last[y * 64 + x] = 1 + ((x + 3 * y) % 250);
    await w.writeRegion({ x0: 1984, y0: 1984, z0: 1024, x1: 2048, y1: 2048, z1: 1025 }, last);
    const first = new Uint8Array(64 ** 3).fill(9);
    await w.writeChunk([0, 0, 0], first);
    const files = await readdir(join(out, '0', '16', '31'));
    expect(files).toEqual(['31']);
    const info = await probeVolume(out);
    expect(info.shape).toEqual({ x: 2048, y: 2048, z: 1025, c: 1, t: 1 });
    expect(info.shape.x * info.shape.y * info.shape.z).toBeGreaterThan(2 ** 32);
    const s = await openZarrSource(out);
    const r = await s.read({ x0: 2040, y0: 2040, z0: 1023, x1: 2048, y1: 2048, z1: 1025 });
    // plane 1023 is missing (fill 0); plane 1024 is the written chunk at local x, y = 56..63
    expect(Array.from(r.subarray(0, 64))).toEqual(new Array(64).fill(0));
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) expect(r[64 + y * 8 + x]).toBe(1 + ((56 + x + 3 * (56 + y)) % 250));
    const r0 = await s.read({ x0: 60, y0: 60, z0: 60, x1: 68, y1: 61, z1: 61 });
    expect(Array.from(r0)).toEqual([9, 9, 9, 9, 0, 0, 0, 0]);
    await s.close();
    // the whole volume does not fit the limit given: refused before any read, naming the size
    await expect(readVolume(out, { maxBytes: 2 ** 30 })).rejects.toThrow(/volume needs 4\.00 GiB of memory but only 1\.00 GiB/);
  }, 60_000);
});

describe('Zarr v3 against zarrita and the NGFF 0.5 spec example', () => {
  /** the NGFF spec's multiscales example (t, c, z, y, x; levels at 0.5, 1 and 2 µm; 0.1 ms per time point) */
  const specAttrs = {
    ome: {
      version: '0.5',
      multiscales: [
        {
          name: 'example',
          axes: [
            { name: 't', type: 'time', unit: 'millisecond' },
            { name: 'c', type: 'channel' },
            { name: 'z', type: 'space', unit: 'micrometer' },
            { name: 'y', type: 'space', unit: 'micrometer' },
            { name: 'x', type: 'space', unit: 'micrometer' },
          ],
          datasets: [
            { path: 's0', coordinateTransformations: [{ type: 'scale', scale: [1.0, 1.0, 0.5, 0.5, 0.5] }] },
            { path: 's1', coordinateTransformations: [{ type: 'scale', scale: [1.0, 1.0, 1.0, 1.0, 1.0] }] },
            { path: 's2', coordinateTransformations: [{ type: 'scale', scale: [1.0, 1.0, 2.0, 2.0, 2.0] }] },
          ],
          coordinateTransformations: [{ type: 'scale', scale: [0.1, 1.0, 1.0, 1.0, 1.0] }],
          type: 'gaussian',
        },
      ],
    },
  };

  it('a 5D store written by zarrita (zstd, transposed chunks) reads with the spec example metadata: levels, spacing, time point, channels', async () => {
    const out = join(dir, 'spec05.ome.zarr');
    const store = new FsStore(out);
    await zarr.create(zarr.root(store), { attributes: specAttrs });
    // a crop of 1135 as level s0: 2 time points (the second is the image + 1), 2 channels (the second inverted)
    const [nt, nc, nz, ny, nx] = [2, 2, 20, 40, 40];
    for (const [i, path] of ['s0', 's1', 's2'].entries()) {
      const f = 2 ** i;
      const sh = [nt, nc, nz / f, ny / f, nx / f];
      const a = await zarr.create(zarr.root(store).resolve(path), {
        shape: sh,
        chunkShape: [1, 1, 8, 16, 16],
        dtype: 'uint8',
        codecs: [{ name: 'transpose', configuration: { order: [0, 1, 4, 3, 2] } }, { name: 'bytes', configuration: {} }, { name: 'zstd', configuration: { level: 1, checksum: false } }],
        fillValue: 0,
        dimensionNames: ['t', 'c', 'z', 'y', 'x'],
      });
      const data = new Uint8Array(sh.reduce((p, q) => p * q, 1));
      let k = 0;
      for (let t = 0; t < nt; t++)
        for (let c = 0; c < nc; c++)
          for (let z = 0; z < sh[2]!; z++)
            for (let y = 0; y < sh[3]!; y++)
              for (let x = 0; x < sh[4]!; x++) {
                const v = raw.data[(z * f * 100 + y * f) * 100 + x * f]!;
                data[k++] = ((c === 0 ? v : 255 - v) + t) & 255;
              }
      await zarr.set(a, null, { data, shape: sh, stride: [sh[1]! * sh[2]! * sh[3]! * sh[4]!, sh[2]! * sh[3]! * sh[4]!, sh[3]! * sh[4]!, sh[4]!, 1] });
    }
    const warnings: string[] = [];
    const s = await openZarrSource(out, { timepoint: 1, onWarning: (w) => warnings.push(w) });
    expect(s.info.shape).toEqual({ x: 40, y: 40, z: 20, c: 2, t: 2 });
    expect(s.info.spacing).toEqual({ x: 0.5, y: 0.5, z: 0.5, unit: 'µm' });
    expect(s.info.timepoint).toBe(1);
    expect(s.levels.map((l) => l.factors)).toEqual([[1, 1, 1], [2, 2, 2], [4, 4, 4]]);
    expect(s.chunk).toEqual([8, 16, 16]);
    const r = await s.read({ x0: 3, y0: 5, z0: 2, x1: 9, y1: 6, z1: 3 }, { channels: [1] });
    expect(Array.from(r)).toEqual([3, 4, 5, 6, 7, 8].map((x) => ((255 - raw.data[(2 * 100 + 5) * 100 + x]!) + 1) & 255));
    const r2 = await s.read({ x0: 0, y0: 0, z0: 0, x1: 10, y1: 10, z1: 5 }, { level: 2, channels: [0] });
    expect(r2[(4 * 10 + 3) * 10 + 2]).toBe((raw.data[(16 * 100 + 12) * 100 + 8]! + 1) & 255);
    await s.close();
    const t0 = await openZarrSource(out, { onWarning: (w) => warnings.push(w) });
    expect(warnings.some((w) => /time series with 2 time points; loaded time point 0 \(use --timepoint/.test(w))).toBe(true);
    await t0.close();
    await expect(openZarrSource(out, { timepoint: 2 })).rejects.toThrow(/time point 2 out of range \(the store has 2: 0\.\.1\)/);
  }, 60_000);

  it('a sharded v3 array (sharding_indexed, built by hand as the v3 spec lays it out): inner chunks, a missing inner chunk, a missing shard', async () => {
    // zarrita 0.7 cannot write shards: this test writes the bytes itself (inner chunks raw little-endian, then
    // the index of (offset, nbytes) uint64 pairs at the end, 2^64-1 pairs for an empty inner chunk)
    const out = join(dir, 'sharded.zarr');
    const store = new FsStore(out);
    const bytes = { name: 'bytes', configuration: { endian: 'little' } };
    await store.set('/zarr.json', new TextEncoder().encode(JSON.stringify({
      zarr_format: 3, node_type: 'array', shape: [16, 32, 32], data_type: 'uint16',
      chunk_grid: { name: 'regular', configuration: { chunk_shape: [16, 16, 16] } },
      chunk_key_encoding: { name: 'default', configuration: { separator: '/' } }, fill_value: 0,
      codecs: [{ name: 'sharding_indexed', configuration: { chunk_shape: [8, 8, 8], codecs: [bytes], index_codecs: [bytes], index_location: 'end' } }],
      dimension_names: ['z', 'y', 'x'],
    })));
    const value = (z: number, y: number, x: number) => raw.data[(z * 100 + y) * 100 + x]! * 3 + 1;
    for (const [sy, sx] of [[0, 0], [0, 1], [1, 0]]) {
      const parts: Buffer[] = [];
      const index = new BigUint64Array(8 * 2);
      let offset = 0;
      for (let i = 0; i < 8; i++) {
        const [iz, iy, ix] = [i >> 2, (i >> 1) & 1, i & 1];
        if (sy === 0 && sx === 1 && i === 3) {
          index[2 * i] = index[2 * i + 1] = 2n ** 64n - 1n; // an empty inner chunk
          continue;
        }
        const c = new Uint16Array(512);
        for (let z = 0; z < 8; z++) for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) c[(z * 8 + y) * 8 + x] = value(iz * 8 + z, sy * 16 + iy * 8 + y, sx * 16 + ix * 8 + x);
        parts.push(Buffer.from(c.buffer));
        index[2 * i] = BigInt(offset);
        index[2 * i + 1] = 1024n;
        offset += 1024;
      }
      parts.push(Buffer.from(index.buffer));
      await store.set(`/c/0/${sy}/${sx}`, new Uint8Array(Buffer.concat(parts)));
    } // shard (1, 1) is never written
    const s = await openZarrSource(out);
    expect(s.chunk).toEqual([8, 8, 8]);
    const all = await s.read({ x0: 0, y0: 0, z0: 0, x1: 32, y1: 32, z1: 16 });
    let wrong = 0;
    for (let z = 0; z < 16; z++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++) {
          const emptyInner = y < 16 && x >= 16 && z < 8 && y >= 8 && x >= 24; // shard (0, 1), inner chunk 3 = (0, 1, 1)
          const want = (y >= 16 && x >= 16) || emptyInner ? 0 : value(z, y, x);
          if (all[(z * 32 + y) * 32 + x] !== want) wrong++;
        }
    expect(wrong).toBe(0);
    await s.close();
  });

  it('our NGFF 0.5 store reads in zarrita: group attributes under "ome", dimension names, voxels of every level', async () => {
    const out = join(dir, 'ours05.ome.zarr');
    await writeOmeZarr(out, { image: hyper }, { version: '0.5', chunks: [16, 64, 64], pyramid: { minSize: 30 } });
    const store = new FsStore(out);
    const g = await zarr.open(zarr.root(store), { kind: 'group' });
    const ome = g.attrs.ome as { version: string; multiscales: { axes: { name: string; unit?: string }[]; datasets: { path: string; coordinateTransformations: { scale: number[] }[] }[] }[] };
    expect(ome.version).toBe('0.5');
    expect(ome.multiscales[0]!.axes.map((a) => a.name)).toEqual(['c', 'z', 'y', 'x']);
    expect(ome.multiscales[0]!.axes[3]!.unit).toBe('micrometer');
    expect(ome.multiscales[0]!.datasets.map((d) => d.path)).toEqual(['0', '1', '2']);
    expect(ome.multiscales[0]!.datasets[1]!.coordinateTransformations[0]!.scale[3]).toBeCloseTo(hyper.spacing.x * 2, 9);
    const a = await zarr.open(zarr.root(store).resolve('0'), { kind: 'array' });
    expect(a.shape).toEqual([2, 45, 130, 133]);
    expect(a.chunks).toEqual([1, 16, 64, 64]);
    expect(a.dimensionNames).toEqual(['c', 'z', 'y', 'x']);
    const all = await zarr.get(a);
    expect(Array.from(all.data as Uint16Array).every((v, i) => v === hyper.data[i])).toBe(true);
    const l1 = await zarr.open(zarr.root(store).resolve('1'), { kind: 'array' });
    const ours = await (await openZarrSource(out)).read({ x0: 0, y0: 0, z0: 0, x1: 67, y1: 65, z1: l1.shape[1]! }, { level: 1 });
    expect(Array.from((await zarr.get(l1)).data as Uint16Array)).toEqual(Array.from(ours));
  }, 60_000);
});

describe('errors name the store and the problem', () => {
  it('a file, an empty folder, a group without multiscales, a labels group, axes that do not fit, an unsupported type', async () => {
    await expect(openZarrSource(NUC)).rejects.toThrow(/not a Zarr store: a file, not a folder/);
    const empty = join(dir, 'empty.zarr');
    await mkdir(empty, { recursive: true });
    await expect(readVolume(empty)).rejects.toThrow(/not a Zarr store: no \.zarray\/\.zgroup \(v2\) or zarr\.json \(v3\)/);
    await expect(readVolume(empty)).rejects.toMatchObject({ kind: 'bad-input', file: empty });
    const plain = join(dir, 'plain.zarr');
    await mkdir(plain);
    await writeFile(join(plain, '.zgroup'), '{"zarr_format": 2}');
    await expect(readVolume(plain)).rejects.toThrow(/Zarr group without OME-NGFF "multiscales" metadata; name an image or array inside it/);
    const out = join(dir, 'withlabels.ome.zarr');
    await writeOmeZarr(out, { image: raw, labels: [{ name: 'nuclei', data: ids }] }, { pyramid: false });
    await expect(readVolume(out, { dataset: 'labels' })).rejects.toThrow(/is an OME-Zarr labels group \(nuclei\); open one of them \(dataset "labels\/nuclei"\)/);
    // axes listing 4 names for a 3D array
    const attrs = JSON.parse(await readFile(join(out, '.zattrs'), 'utf8'));
    attrs.multiscales[0].axes.unshift({ name: 'c', type: 'channel' });
    await writeFile(join(out, '.zattrs'), JSON.stringify(attrs));
    await expect(readVolume(out)).rejects.toThrow(/bad NGFF metadata: .*datasets\[0\] \("0"\): scale \[[0-9.,]+\] is not 4 numbers \(one per axis\)/);
    for (const d of attrs.multiscales[0].datasets) d.coordinateTransformations[0].scale.unshift(1);
    await writeFile(join(out, '.zattrs'), JSON.stringify(attrs));
    await expect(readVolume(out)).rejects.toThrow(/the NGFF axes \(c, z, y, x\) do not match the 3 dimensions of level "0"/);
    const cplx = join(dir, 'complex.zarr');
    await mkdir(cplx);
    await writeFile(join(cplx, '.zarray'), JSON.stringify({ zarr_format: 2, shape: [4, 4], chunks: [4, 4], dtype: '<c8', compressor: null, fill_value: 0, order: 'C', filters: null }));
    await expect(readVolume(cplx)).rejects.toThrow(/complex\.zarr: the store: unreadable Zarr v2 metadata \(Unsupported or unknown dtype: <c8\)/);
  });

  it('a standalone label store from writeOmeZarrLabels has image-label at its root and no source image', async () => {
    const out = join(dir, 'seg.ome.zarr');
    await writeOmeZarrLabels(out, { data: Uint8Array.from(ids, (v) => (v > 0 ? 2 : 1)), dims: { x: 100, y: 100, z: 100 }, spacing: raw.spacing }, { pyramid: false });
    const attrs = JSON.parse(await readFile(join(out, '.zattrs'), 'utf8'));
    expect(attrs['image-label']).toEqual({ version: '0.4' });
    expect(attrs.multiscales[0].axes.map((a: { name: string }) => a.name)).toEqual(['z', 'y', 'x']);
    const v = await readVolume(out);
    expect(v.dtype).toBe('uint8');
    expect(v.data.reduce((s, x) => s + (x === 2 ? 1 : 0), 0)).toBe(ids.reduce((s, x) => s + (x > 0 ? 1 : 0), 0));
  });

  it("the app's label export (services/modules writeLabels) writes an OME-Zarr label store for a .ome.zarr path", async () => {
    const { loadWriters } = await import('../../main/services/modules.js');
    const out = join(dir, 'export.ome.zarr');
    const data = Uint8Array.from(ids, (v) => (v > 0 ? 2 : 1));
    await (await loadWriters()).writeLabels(out, { data, dtype: 'uint8', shape: { ...raw.shape, c: 1 }, spacing: raw.spacing }, 'tiff');
    const v = await readVolume(out);
    expect(v.format).toBe('ome-zarr');
    expect(v.metadata.imageLabel).toBeDefined();
    expect(v.spacing.z).toBeCloseTo(raw.spacing.z, 9);
    expect(Array.from(v.data).every((x, i) => x === data[i])).toBe(true);
  });

  it('a chunk written by another process (a child node) is visible and leaves no temporary file', async () => {
    const out = join(dir, 'child.ome.zarr');
    await createOmeZarrImage(out, '', { shape: { x: 64, y: 64, z: 64, c: 1 }, dtype: 'uint8', spacing: raw.spacing, chunks: [32, 32, 32] });
    const code = `import { ZarrArrayWriter } from ${JSON.stringify(join(REPO, 'main/io/zarr/writer.ts'))};
const w = await ZarrArrayWriter.open(${JSON.stringify(out)}, '0');
await w.writeChunk([1, 1, 1], new Uint8Array(32 ** 3).fill(42));`;
    await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: REPO });
    const r = await (await openZarrSource(out)).read({ x0: 31, y0: 32, z0: 32, x1: 33, y1: 33, z1: 33 });
    expect(Array.from(r)).toEqual([0, 42]);
    expect((await readdir(join(out, '0', '1', '1'))).sort()).toEqual(['1']);
  }, 60_000);
});
