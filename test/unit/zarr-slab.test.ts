/**
 * The one OME-Zarr slab writer (main/io/zarr/slab.ts SlabZarrWriter), used by in-memory segment/densify and by
 * streamed and sharded segment: z-slabs of any depth in order, whole chunk rows written as they fill. A whole
 * volume is built beside the target (nothing under the final name until close; abort leaves nothing), gets its
 * pyramid and replaces only a store Sliceform wrote. Shards write disjoint chunk rows of one store at once (no
 * locking, no temporary folder), level 0 only, and assemble to the whole volume; a resubmitted shard rewrites its
 * chunks; abort keeps the whole chunks. Refusals name the planes. Real data: plant nuclei 1135 (100³ uint8) and
 * the 2-channel ImageJ hyperstack (45 planes, as float32: channel-planar slabs and a partial last chunk row).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { openZarrSource } from '../../main/io/zarr/reader.js';
import { SlabZarrWriter, type SlabZarrOptions } from '../../main/io/zarr/slab.js';
import { shardRange } from '../../main/inference/stream.js';
import type { Volume } from '../../main/common/volume.js';

const NUC = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const HYPER = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');

let dir: string;
let raw: Volume;
let hyper: Volume;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-zarr-slab-'));
  raw = await readVolume(NUC, { dataset: 'raw' });
  const h = await readVolume(HYPER);
  hyper = { ...h, dtype: 'float32', data: Float32Array.from(h.data, (v) => v / 7) };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Planes [z0, z1) of a volume, channel-planar (the slab layout). */
function slab(v: Volume, z0: number, z1: number): Uint8Array | Float32Array {
  const { x: X, y: Y, z: Z, c: C } = v.shape;
  const plane = X * Y;
  const d = z1 - z0;
  const out = v.dtype === 'float32' ? new Float32Array(C * d * plane) : new Uint8Array(C * d * plane);
  for (let c = 0; c < C; c++) out.set(v.data.subarray((c * Z + z0) * plane, (c * Z + z1) * plane) as never, c * d * plane);
  return out;
}

function opts(v: Volume, o: Partial<SlabZarrOptions> = {}): SlabZarrOptions {
  return {
    width: v.shape.x,
    height: v.shape.y,
    depth: v.shape.z,
    channels: v.shape.c,
    dtype: v.dtype as 'uint8' | 'float32',
    spacing: v.spacing,
    label: v.shape.c === 1,
    chunks: [16, 64, 64],
    ...o,
  };
}

/** Writes planes [z0, z1) in slabs of the given depths (cycled). */
async function writeRange(w: SlabZarrWriter, v: Volume, z0: number, z1: number, depths: number[]): Promise<void> {
  for (let z = z0, i = 0; z < z1; i++) {
    const d = Math.min(depths[i % depths.length]!, z1 - z);
    await w.writeSlab(slab(v, z, z + d), d);
    z += d;
  }
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

describe('a whole volume', () => {
  it('slabs of 7, 13 and 1 planes into 16-plane chunks: nothing under the final name until close, then the voxels and a pyramid', async () => {
    const out = join(dir, 'whole.ome.zarr');
    const w = await SlabZarrWriter.create(out, opts(raw));
    expect(w.zRange).toEqual([0, 100]);
    await writeRange(w, raw, 0, 60, [7, 13, 1]);
    expect(await exists(out)).toBe(false);
    expect((await readdir(dir)).some((f) => f.startsWith('.whole.ome.zarr.') && f.endsWith('.tmp'))).toBe(true);
    await writeRange(w, raw, 60, 100, [7, 13, 1]);
    await w.close();
    const back = await readVolume(out);
    expect(back.shape).toMatchObject({ x: 100, y: 100, z: 100, c: 1 });
    expect(firstDiff(back.data, raw.data)).toBe(-1);
    const src = await openZarrSource(out);
    try {
      expect(src.levels.length).toBeGreaterThan(1);
      expect(src.chunk).toEqual([16, 64, 64]);
    } finally {
      await src.close();
    }
    const attrs = JSON.parse(await readFile(join(out, '.zattrs'), 'utf8'));
    expect(attrs['image-label']).toBeDefined();
    expect(attrs.multiscales[0].name).toBe('whole.ome.zarr');
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('2 float32 channels, 45 planes (a partial last chunk row), named multiscales', async () => {
    const out = join(dir, 'hyper.ome.zarr');
    const w = await SlabZarrWriter.create(out, opts(hyper, { name: 'probabilities', channelNames: ['a', 'b'] }));
    await writeRange(w, hyper, 0, 45, [10, 3]);
    await w.close();
    const back = await readVolume(out);
    expect(back.dtype).toBe('float32');
    expect(back.shape).toMatchObject({ x: 133, y: 130, z: 45, c: 2 });
    expect(firstDiff(back.data, hyper.data)).toBe(-1);
    const attrs = JSON.parse(await readFile(join(out, '.zattrs'), 'utf8'));
    expect(attrs.multiscales[0].name).toBe('probabilities');
    expect(attrs.omero.channels.map((c: { label: string }) => c.label)).toEqual(['a', 'b']);
  });

  it('abort leaves nothing; replacing: a Sliceform store yes, a foreign folder never', async () => {
    const out = join(dir, 'aborted.ome.zarr');
    const w = await SlabZarrWriter.create(out, opts(raw));
    await writeRange(w, raw, 0, 40, [20]);
    await w.abort();
    expect(await exists(out)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const again = await SlabZarrWriter.create(join(dir, 'whole.ome.zarr'), opts(raw));
    const flipped = { ...raw, data: Uint8Array.from(raw.data, (v) => 255 - v) };
    await writeRange(again, flipped, 0, 100, [50]);
    await again.close();
    expect(firstDiff((await readVolume(join(dir, 'whole.ome.zarr'))).data, flipped.data)).toBe(-1);

    const theirs = join(dir, 'theirs.zarr');
    await mkdir(theirs);
    await writeFile(join(theirs, '.zgroup'), '{"zarr_format": 2}');
    const w3 = await SlabZarrWriter.create(theirs, opts(raw));
    await writeRange(w3, raw, 0, 100, [100]);
    await expect(w3.close()).rejects.toThrow(/theirs\.zarr: exists and is not a Zarr store written by Sliceform/);
    expect(await readFile(join(theirs, '.zgroup'), 'utf8')).toBe('{"zarr_format": 2}');
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a slab of the wrong type or size, past the end, and a close before the last plane', async () => {
    const w = await SlabZarrWriter.create(join(dir, 'refused.ome.zarr'), opts(raw));
    await expect(w.writeSlab(new Float32Array(100 * 100), 1)).rejects.toThrow(/slab is Float32Array, the store is uint8/);
    await expect(w.writeSlab(new Uint8Array(100 * 99), 1)).rejects.toThrow(/slab has 9900 values, expected 1x1x100x100/);
    await writeRange(w, raw, 0, 30, [30]);
    await expect(w.close()).rejects.toThrow(/only 30 of 100 z-planes were written/);
    await expect(w.writeSlab(slab(raw, 0, 80), 80)).rejects.toThrow(/slab of 80 planes at z 30 runs past 100/);
    await w.abort();
  });
});

describe('shards of one store', () => {
  it('3 shards at once write disjoint chunk rows (no temporary folder, level 0 only) that assemble to the volume', async () => {
    const out = join(dir, 'sharded.ome.zarr');
    const ranges = [1, 2, 3].map((i) => shardRange(100, 16, { index: i, count: 3 }));
    expect(ranges).toEqual([[0, 32], [32, 64], [64, 100]]);
    const writers = await Promise.all(ranges.map((r) => SlabZarrWriter.create(out, opts(raw, { shard: r }))));
    expect(writers.map((w) => w.zRange)).toEqual(ranges);
    // interleaved: slabs of the three shards alternate, as separate processes would write them
    await Promise.all(writers.map((w, i) => writeRange(w, raw, ranges[i]![0], ranges[i]![1], [5 + i, 11])));
    await Promise.all(writers.map((w) => w.close()));
    expect(firstDiff((await readVolume(out)).data, raw.data)).toBe(-1);
    const src = await openZarrSource(out);
    try {
      expect(src.levels).toHaveLength(1);
    } finally {
      await src.close();
    }
    const files = await readdir(out, { recursive: true });
    expect(files.filter((f) => String(f).endsWith('.tmp'))).toEqual([]);
    expect((await readdir(dir)).filter((f) => f.startsWith('.sharded'))).toEqual([]);
  });

  it('a resubmitted shard rewrites its chunks; an aborted one keeps the whole chunks it wrote', async () => {
    const out = join(dir, 'sharded.ome.zarr');
    const flipped = { ...raw, data: Uint8Array.from(raw.data, (v) => 255 - v) };
    const w = await SlabZarrWriter.create(out, opts(raw, { shard: [32, 64] }));
    await writeRange(w, flipped, 32, 64, [32]);
    await w.close();
    const back = (await readVolume(out)).data;
    const plane = 100 * 100;
    expect(firstDiff(back.subarray(0, 32 * plane), raw.data.subarray(0, 32 * plane))).toBe(-1);
    expect(firstDiff(back.subarray(32 * plane, 64 * plane), flipped.data.subarray(32 * plane, 64 * plane))).toBe(-1);
    expect(firstDiff(back.subarray(64 * plane), raw.data.subarray(64 * plane))).toBe(-1);

    const a = await SlabZarrWriter.create(out, opts(raw, { shard: [32, 64] }));
    await writeRange(a, raw, 32, 50, [18]);
    await a.abort();
    const after = (await readVolume(out)).data;
    // the chunk row 32..47 was written whole before the abort; 48..63 still holds the flipped voxels
    expect(firstDiff(after.subarray(32 * plane, 48 * plane), raw.data.subarray(32 * plane, 48 * plane))).toBe(-1);
    expect(firstDiff(after.subarray(48 * plane, 64 * plane), flipped.data.subarray(48 * plane, 64 * plane))).toBe(-1);
  });

  it('2 float32 channels in shards with a partial last row; a range that is not whole chunk rows is refused', async () => {
    const out = join(dir, 'hyper-sharded.ome.zarr');
    const ranges: [number, number][] = [[0, 16], [16, 32], [32, 45]];
    const ws = await Promise.all(ranges.map((r) => SlabZarrWriter.create(out, opts(hyper, { shard: r }))));
    await Promise.all(ws.map((w, i) => writeRange(w, hyper, ranges[i]![0], ranges[i]![1], [4, 9])));
    await Promise.all(ws.map((w) => w.close()));
    expect(firstDiff((await readVolume(out)).data, hyper.data)).toBe(-1);
    await expect(SlabZarrWriter.create(join(dir, 'bad.ome.zarr'), opts(raw, { shard: [8, 32] }))).rejects.toThrow(
      /zarr shard: planes 8\.\.32 are not whole chunk rows of 16 planes in 0\.\.100/,
    );
    await expect(SlabZarrWriter.create(join(dir, 'bad.ome.zarr'), opts(raw, { shard: [16, 40] }))).rejects.toThrow(/planes 16\.\.40 are not whole chunk rows/);
    expect(await exists(join(dir, 'bad.ome.zarr'))).toBe(false);
    // more shards than chunk rows: the extra ones are empty, write only the (identical) metadata and close
    expect(shardRange(100, 64, { index: 1, count: 3 })).toEqual([0, 0]);
    const empty = await SlabZarrWriter.create(join(dir, 'empty.ome.zarr'), opts(raw, { chunks: [64, 64, 64], shard: [0, 0] }));
    await empty.close();
    expect(JSON.parse(await readFile(join(dir, 'empty.ome.zarr', '0', '.zarray'), 'utf8')).shape).toEqual([100, 100, 100]);
  });
});
