import { describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  baseName,
  fnv1a,
  listStacks,
  outputNames,
  parseShard,
  selectShard,
  shardOfFile,
  stackExtension,
} from '../../main/batch/files.js';

describe('batch file naming', () => {
  it('recognises stack extensions, longest first', () => {
    expect(stackExtension('a.ome.tif')).toBe('.ome.tif');
    expect(stackExtension('A.TIFF')).toBe('.tiff');
    expect(stackExtension('x.lsm')).toBe('.lsm');
    expect(stackExtension('x.h5')).toBe('.h5');
    expect(stackExtension('notes.txt')).toBeNull();
    expect(stackExtension('.tif')).toBeNull();
    expect(baseName('d/e/x.ome.tif')).toBe('d/e/x');
  });

  it('gives each input its own output name, disambiguating clashes', () => {
    const m = outputNames(['a.tif', 'b.h5', 'b.tif', 'sub/c.lsm', 'd.ome.tif']);
    expect(m.get('a.tif')).toBe('a.tif');
    expect(m.get('b.h5')).toBe('b.h5.tif');
    expect(m.get('b.tif')).toBe('b.tif.tif');
    expect(m.get('sub/c.lsm')).toBe('sub/c.tif');
    expect(m.get('d.ome.tif')).toBe('d.tif');
    expect(new Set(m.values()).size).toBe(5);
  });
});

describe('shards', () => {
  it('parses I/N (1-based) and rejects nonsense', () => {
    expect(parseShard('2/8')).toEqual({ index: 2, count: 8 });
    expect(() => parseShard('0/4')).toThrow(/between 1 and N/);
    expect(() => parseShard('5/4')).toThrow(/between 1 and N/);
    expect(() => parseShard('a/b')).toThrow(/I\/N/);
  });

  it('uses a stable hash (FNV-1a reference values)', () => {
    // Reference values of 32-bit FNV-1a
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
  });

  it('partitions any file list exactly and deterministically', () => {
    const files = Array.from({ length: 200 }, (_, i) => ({ rel: `plate${i % 7}/well_${i}.tif` }));
    for (const n of [1, 2, 3, 8]) {
      const parts = Array.from({ length: n }, (_, i) => selectShard(files, { index: i + 1, count: n }));
      const seen = parts.flat().map((f) => f.rel).sort();
      expect(seen).toEqual(files.map((f) => f.rel).sort());
      expect(new Set(seen).size).toBe(files.length);
      // same answer on a shuffled listing, and each share is reasonably balanced
      const shuffled = [...files].reverse();
      for (let i = 0; i < n; i++) {
        expect(selectShard(shuffled, { index: i + 1, count: n }).map((f) => f.rel).sort()).toEqual(parts[i]!.map((f) => f.rel).sort());
        if (n > 1) expect(parts[i]!.length).toBeGreaterThan(files.length / n / 2);
      }
    }
    // a file's shard does not depend on which other files exist
    expect(shardOfFile('plate1/well_8.tif', 8)).toBe(shardOfFile('plate1/well_8.tif', 8));
    expect(selectShard([{ rel: 'plate1/well_8.tif' }], { index: shardOfFile('plate1/well_8.tif', 8), count: 8 })).toHaveLength(1);
  });
});

describe('listStacks', () => {
  it('lists stacks sorted, skips hidden/temp/non-stack files, recurses on request, excludes the output folder', async () => {
    const d = await mkdtemp(join(tmpdir(), 'sf-batch-files-'));
    try {
      await mkdir(join(d, 'sub'));
      await mkdir(join(d, 'out'));
      for (const f of ['b.tif', 'a.h5', 'readme.txt', '.hidden.tif', 'sub/c.lsm', 'out/a.tif', '.a.tif.partial-12'])
        await writeFile(join(d, f), 'x');
      expect((await listStacks(d)).map((f) => f.rel)).toEqual(['a.h5', 'b.tif']);
      expect((await listStacks(d, { recursive: true, exclude: join(d, 'out') })).map((f) => f.rel)).toEqual(['a.h5', 'b.tif', 'sub/c.lsm']);
      await expect(listStacks(join(d, 'nope'))).rejects.toThrow(/input folder not found/);
      await expect(listStacks(join(d, 'b.tif'))).rejects.toThrow(/not a folder/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
