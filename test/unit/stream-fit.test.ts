/**
 * The whole-volume fit check of streamed segment (issue 16 item 5), for the outputs it did not cover before:
 * an OME-Zarr store (its whole chunks uncompressed, edge chunks padded, plus the pyramid) and one shard of a
 * sharded store (its own chunk rows only), and the input's chunk cache (TIFF/OME-Zarr sources); the in-memory
 * path's outputs (segment --in-memory, densify) get the disk part. The bound is
 * checked against the bytes our writer really puts on disk (compression none: equal), and the refusals come
 * before any work: the model is never called and nothing is created. Real data: plant nuclei 1135 (100³ uint8,
 * HDF5), also written here as an OME-Zarr input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { openRegionSource } from '../../main/io/regions.js';
import type { RegionSource } from '../../main/io/region.js';
import { writeOmeZarr } from '../../main/io/zarr/writer.js';
import { SlabZarrWriter, slabZarrMaxBytes, type SlabZarrOptions } from '../../main/io/zarr/slab.js';
import { estimateStreamMemory, freeDiskBytes, segmentSourceToFiles, shardRange } from '../../main/inference/stream.js';
import { segmentToFiles } from '../../main/inference/files.js';
import { resolveNet } from '../../main/training/presets.js';
import type { Model } from '../../main/common/engine.js';
import type { Volume } from '../../main/common/volume.js';
import { SliceformError } from '../../main/common/errors.js';

const NUC = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
let dir: string;
let raw: Volume;
let zarrIn: string;

/** A model that may only be looked at: any prediction means work started. */
const net = resolveNet('tiny', 1, 2);
const untouchable = new Proxy({ config: net } as unknown as Model, {
  get(t, k) {
    if (k === 'config' || k === 'then') return (t as unknown as Record<string | symbol, unknown>)[k];
    throw new Error(`the model was used (${String(k)}) before the fit check refused`);
  },
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-fit-'));
  raw = await readVolume(NUC, { dataset: 'raw' });
  zarrIn = join(dir, 'in', '1135.ome.zarr');
  await writeOmeZarr(zarrIn, { image: raw }, { chunks: [25, 50, 50] });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Bytes of the chunk files of a store (metadata files excluded). */
async function chunkBytes(store: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(store, { recursive: true, withFileTypes: true })) {
    if (!f.isFile() || f.name.startsWith('.') || f.name === 'zarr.json') continue;
    total += (await stat(join(f.parentPath, f.name))).size;
  }
  return total;
}

async function withSource<T>(path: string, fn: (s: RegionSource) => Promise<T>, dataset?: string): Promise<T> {
  const s = await openRegionSource(path, dataset ? { dataset } : {});
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

function opts(o: Partial<SlabZarrOptions> = {}): SlabZarrOptions {
  return { width: 100, height: 100, depth: 100, channels: 1, dtype: 'uint8', spacing: raw.spacing, label: true, chunks: [16, 64, 64], compression: 'none', ...o };
}

describe('the disk bound of an OME-Zarr output is what the writer puts on disk (compression none)', () => {
  it('a whole store: padded edge chunks of level 0 and the pyramid', async () => {
    const o = opts();
    const out = join(dir, 'bound.ome.zarr');
    const w = await SlabZarrWriter.create(out, o);
    await w.writeSlab(raw.data as Uint8Array, 100);
    await w.close();
    // 7 chunk rows of 16 planes x 2 x 2 chunks of 64², level 1 (z kept: 0.28 µm vs 2 x 0.127) 7 x 50 x 50
    expect(slabZarrMaxBytes(o)).toBe(7 * 16 * 128 * 128 + 7 * 16 * 50 * 50);
    expect(await chunkBytes(out)).toBe(slabZarrMaxBytes(o));
  });

  it("a shard: its own chunk rows, no pyramid; an empty shard: nothing", async () => {
    const zRange = shardRange(100, 16, { index: 2, count: 3 });
    expect(zRange).toEqual([32, 64]);
    const o = opts({ shard: zRange });
    const out = join(dir, 'bound-shard.ome.zarr');
    const w = await SlabZarrWriter.create(out, o);
    await w.writeSlab((raw.data as Uint8Array).subarray(32 * 10_000, 64 * 10_000), 32);
    await w.close();
    expect(slabZarrMaxBytes(o)).toBe(2 * 16 * 128 * 128);
    expect(await chunkBytes(out)).toBe(slabZarrMaxBytes(o));
    expect(slabZarrMaxBytes(opts({ shard: [96, 100] }))).toBe(16 * 128 * 128);
    expect(slabZarrMaxBytes(opts({ shard: [100, 100] }))).toBe(0);
  });
});

describe('segmentSourceToFiles refuses before any work, naming the numbers', () => {
  it('one shard of a sharded OME-Zarr store: only its chunk rows are counted', async () => {
    const out = join(dir, 'out', 'sharded.ome.zarr');
    const bytes = slabZarrMaxBytes(opts({ compression: undefined, shard: [32, 64] }));
    expect(bytes).toBe(512 * 1024);
    const e = await withSource(
      NUC,
      (s) =>
        segmentSourceToFiles(untouchable, s, {
          normalisation: { method: 'percentile-standardise', percentiles: [1, 99.8], channels: [{ lo: 2, hi: 164, mean: 0.2, std: 0.15 }] },
          out,
          shard: { index: 2, count: 3 },
          chunks: [16, 64, 64],
          fitEnv: { freeDisk: async () => 100 * 1024, freeMemory: () => 2 ** 40 },
        }).catch((x: unknown) => x),
      'raw',
    );
    expect(e).toBeInstanceOf(SliceformError);
    expect((e as SliceformError).kind).toBe('too-large');
    expect((e as Error).message).toBe(
      `${out}: not enough disk space: the output needs up to 512 KiB (OME-Zarr: this shard's chunk rows, uncompressed), ${join(dir, 'out')} has 100 KiB free`,
    );
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
  });

  it('a single run into OME-Zarr labels + probabilities in one folder: both stores with their pyramids', async () => {
    const out = join(dir, 'out', 'seg.ome.zarr');
    const probs = join(dir, 'out', 'probs.ome.zarr');
    const labels = slabZarrMaxBytes(opts({ compression: undefined, chunks: [16, 64, 64] }));
    const p = slabZarrMaxBytes(opts({ compression: undefined, chunks: [16, 64, 64], channels: 2, dtype: 'float32', label: false }));
    expect(p).toBe(2 * 4 * labels);
    const e = await withSource(
      NUC,
      (s) =>
        segmentSourceToFiles(untouchable, s, {
          normalisation: { method: 'percentile-standardise', percentiles: [1, 99.8], channels: [{ lo: 2, hi: 164, mean: 0.2, std: 0.15 }] },
          out,
          probabilitiesOut: probs,
          chunks: [16, 64, 64],
          fitEnv: { freeDisk: async () => 10 * 2 ** 20, freeMemory: () => 2 ** 40 },
        }).catch((x: unknown) => x),
      'raw',
    );
    expect((e as Error).message).toBe(
      `${out}, ${probs}: not enough disk space: the 2 outputs need up to ${((labels + p) / 2 ** 20).toFixed(0)} MiB (OME-Zarr: whole chunks uncompressed, pyramid included), ${join(dir, 'out')} has 10 MiB free`,
    );
    expect((await readdir(join(dir, 'out')).catch(() => [])).filter((f) => f.includes('seg') || f.includes('probs'))).toEqual([]);
  });

  it("an OME-Zarr input: the source's chunk cache and the chunk-row buffers are in the memory numbers", async () => {
    const est = await withSource(zarrIn, async (s) => estimateStreamMemory(net, s.info, { maxTileInputVoxels: 200_000 }));
    // at most 256 MiB, here the whole 1 MB volume
    expect(est.parts['input cache']).toBe(1_000_000);
    const h5 = await withSource(NUC, async (s) => estimateStreamMemory(net, s.info, { maxTileInputVoxels: 200_000 }), 'raw');
    expect(h5.parts['input cache']).toBe(0);
    expect(est.memoryBytes - h5.memoryBytes).toBe(1_000_000);
    const e = await withSource(zarrIn, (s) =>
      segmentSourceToFiles(untouchable, s, {
        normalisation: { method: 'percentile-standardise', percentiles: [1, 99.8], channels: [{ lo: 2, hi: 164, mean: 0.2, std: 0.15 }] },
        out: join(dir, 'out', 'mem.ome.zarr'),
        chunks: [16, 64, 64],
        maxTileInputVoxels: 200_000,
        fitEnv: { freeDisk: async () => 2 ** 40, freeMemory: () => 10 * 2 ** 20 },
      }).catch((x: unknown) => x),
    );
    expect((e as SliceformError).kind).toBe('too-large');
    expect((e as Error).message).toMatch(
      /^not enough memory: the tile plan \(input tile \d+x\d+x\d+, output \d+x\d+x\d+\) needs [\d.]+ MiB \(network [\d.]+ MiB, .*input cache 977 KiB, chunk-row buffers 156 KiB\), 10 MiB is available; lower the tile size/,
    );
    await expect(stat(join(dir, 'out', 'mem.ome.zarr'))).rejects.toThrow(/ENOENT/);
  });
});

describe('the in-memory path (segment --in-memory, densify) checks its outputs\' disk space first', () => {
  it('a TIFF label file and an OME-Zarr probability store in one folder', async () => {
    const out = join(dir, 'mem-out', 'seg.tif');
    const probs = join(dir, 'mem-out', 'probs.ome.zarr');
    const p = slabZarrMaxBytes(opts({ compression: undefined, chunks: undefined, channels: 2, dtype: 'float32', label: false }));
    // default chunks 64x100x100: 2 rows of 64 planes, level 1 (100x50x50) 2 rows too
    expect(p).toBe(2 * 4 * (128 * 100 * 100 + 128 * 50 * 50));
    const e = await segmentToFiles(untouchable, raw, {
      normalisation: { method: 'percentile-standardise', percentiles: [1, 99.8], channels: [{ lo: 2, hi: 164, mean: 0.2, std: 0.15 }] },
      out,
      probabilitiesOut: probs,
      fitEnv: { freeDisk: async () => 2 ** 20 },
    }).catch((x: unknown) => x);
    expect((e as SliceformError).kind).toBe('too-large');
    expect((e as Error).message).toBe(
      `${out}, ${probs}: not enough disk space: the 2 outputs need up to ${((1_000_000 + p) / 2 ** 20).toFixed(0)} MiB (OME-Zarr: whole chunks uncompressed, pyramid included), ${join(dir, 'mem-out')} has 1 MiB free`,
    );
    await expect(stat(join(dir, 'mem-out'))).rejects.toThrow(/ENOENT/);
  });

  it('the free space of a folder not made yet is that of the nearest one above it', async () => {
    const free = await freeDiskBytes(join(dir, 'not', 'yet', 'made', 'seg.ome.zarr'));
    // the same file system (others write to it meanwhile: equal within 256 MiB)
    expect(Math.abs(free - (await freeDiskBytes(join(dir, 'x.tif'))))).toBeLessThan(2 ** 28);
    expect(free).toBeGreaterThan(0);
  });
});
