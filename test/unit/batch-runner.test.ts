/**
 * The batch workflow rules (resume, atomic outputs, errors, exit status, shards, progress) with injected
 * fake I/O: the "stacks" here are tiny JSON stand-ins, not images — the real reader, model and writer are
 * exercised by test/integration/batch-segment.test.ts on real volumes.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBatch, type BatchDeps, type BatchEvent, type StackHeader } from '../../main/batch/runner.js';
import { readReport } from '../../main/batch/report.js';
import { SliceformError, VolumeReadError } from '../../main/common/errors.js';

function fakeDeps(fingerprint = 'fp1', opts: { failOn?: string; abortAfter?: AbortController } = {}) {
  const calls: string[] = [];
  const deps: BatchDeps = {
    model: { dir: '/models/m', fingerprint, classNames: ['background', 'nucleus'], inChannels: 1 },
    async probe(path) {
      const text = await readFile(path, 'utf8');
      try {
        const h = JSON.parse(text) as StackHeader;
        return { ...h, spacing: h.spacing ?? { x: 1, y: 1, z: 1, unit: 'µm' } };
      } catch {
        throw new VolumeReadError(path, 'not a stack (bad magic)');
      }
    },
    async segment(input, h, out, ctx) {
      calls.push(input);
      if (opts.failOn && input.endsWith(opts.failOn)) throw new SliceformError('engine', 'out of memory in predict');
      const n = h.x * h.y * h.z;
      ctx.onVoxels?.(n / 2);
      if (opts.abortAfter) opts.abortAfter.abort();
      ctx.onVoxels?.(n);
      await writeFile(out.labelsPath, JSON.stringify({ x: h.x, y: h.y, z: h.z, fg: 1 }));
      if (out.probabilitiesPath) await writeFile(out.probabilitiesPath, 'p');
      return { counts: [n - 1, 1] };
    },
    async checkOutput(path, h) {
      const j = JSON.parse(await readFile(path, 'utf8')) as { x: number; y: number; z: number; fg: number };
      if (j.x !== h.x || j.y !== h.y || j.z !== h.z) return { ok: false, reason: 'shape differs' };
      return { ok: true, counts: [h.x * h.y * h.z - j.fg, j.fg] };
    },
  };
  return { deps, calls };
}

async function folder() {
  const d = await mkdtemp(join(tmpdir(), 'sf-batch-run-'));
  const inDir = join(d, 'in');
  const outDir = join(d, 'out');
  await import('node:fs/promises').then((fs) => fs.mkdir(inDir));
  await writeFile(join(inDir, 'a.tif'), JSON.stringify({ x: 4, y: 3, z: 2, c: 1, spacing: { x: 0.5, y: 0.5, z: 2, unit: 'µm' } }));
  await writeFile(join(inDir, 'b.h5'), JSON.stringify({ x: 2, y: 2, z: 2, c: 1 }));
  await writeFile(join(inDir, 'two.tif'), JSON.stringify({ x: 2, y: 2, z: 2, c: 2 }));
  await writeFile(join(inDir, 'broken.tif'), 'garbage');
  return { d, inDir, outDir };
}

describe('runBatch', () => {
  it('segments good files, reports bad ones, exits 3, then resumes by skipping verified outputs', async () => {
    const { d, inDir, outDir } = await folder();
    try {
      const events: BatchEvent[] = [];
      const f1 = fakeDeps();
      const r1 = await runBatch({ inputDir: inDir, outDir, onEvent: (e) => events.push(e) }, f1.deps);
      expect(r1.exitCode).toBe(3);
      expect(r1.report.summary).toMatchObject({ total: 4, ok: 2, failed: 2, skipped: 0 });
      const byFile = Object.fromEntries(r1.report.files.map((r) => [r.file, r]));
      expect(byFile['broken.tif']!.error).toMatch(/broken\.tif: not a stack/);
      expect(byFile['two.tif']!.error).toMatch(/two\.tif: has 2 channels but the model \(\/models\/m\) expects 1/);
      expect(byFile['a.tif']).toMatchObject({ status: 'ok', output: 'a.tif', shape: [4, 3, 2, 1], voxels: { background: 23, nucleus: 1 } });
      expect(byFile['a.tif']!.volumesUm3).toEqual({ background: 11.5, nucleus: 0.5 });
      expect((await readdir(outDir)).sort()).toEqual(['a.tif', 'b.tif', 'report.csv', 'report.json']);
      expect(f1.calls).toHaveLength(2);
      const progress = events.filter((e) => e.event === 'progress');
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.at(-1)).toMatchObject({ event: 'progress', fraction: 1 });
      expect(events.at(-1)).toMatchObject({ event: 'done', exitCode: 3 });
      const csv = await readFile(join(outDir, 'report.csv'), 'utf8');
      expect(csv).toContain('two.tif,,failed');

      // Rerun: both finished outputs are verified and skipped, the bad ones are tried (and fail) again.
      const f2 = fakeDeps();
      const r2 = await runBatch({ inputDir: inDir, outDir }, f2.deps);
      expect(f2.calls).toEqual([]);
      expect(r2.report.summary).toMatchObject({ ok: 0, skipped: 2, failed: 2 });
      expect(r2.exitCode).toBe(3);

      // A damaged output (wrong shape) is redone; a different model redoes everything.
      await writeFile(join(outDir, 'a.tif'), JSON.stringify({ x: 1, y: 1, z: 1, fg: 0 }));
      const f3 = fakeDeps();
      await runBatch({ inputDir: inDir, outDir }, f3.deps);
      expect(f3.calls.map((c) => c.split('/').at(-1))).toEqual(['a.tif']);
      const f4 = fakeDeps('fp2');
      await runBatch({ inputDir: inDir, outDir }, f4.deps);
      expect(f4.calls).toHaveLength(2);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it('leaves no output under the final name when a file fails or the run is cancelled, and exits 0 when all succeed', async () => {
    const { d, inDir, outDir } = await folder();
    try {
      await rm(join(inDir, 'broken.tif'));
      await rm(join(inDir, 'two.tif'));
      const f = fakeDeps('fp1', { failOn: 'a.tif' });
      const r = await runBatch({ inputDir: inDir, outDir }, f.deps);
      expect(r.report.files.find((x) => x.file === 'a.tif')).toMatchObject({ status: 'failed', error: 'out of memory in predict' });
      expect((await readdir(outDir)).sort()).toEqual(['b.tif', 'report.csv', 'report.json']);

      const ac = new AbortController();
      const c = fakeDeps('fp1', { abortAfter: ac });
      await expect(runBatch({ inputDir: inDir, outDir, signal: ac.signal }, c.deps)).rejects.toThrow(/cancelled/);
      expect((await readdir(outDir)).sort()).toEqual(['b.tif', 'report.csv', 'report.json']);

      const ok = fakeDeps();
      const r2 = await runBatch({ inputDir: inDir, outDir, probabilitiesDir: outDir }, ok.deps);
      expect(r2.exitCode).toBe(0);
      // b.tif had no probabilities yet, so it is redone with them
      expect(ok.calls).toHaveLength(2);
      expect((await readdir(outDir)).sort()).toEqual(['a.tif', 'a_probabilities.tif', 'b.tif', 'b_probabilities.tif', 'report.csv', 'report.json']);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it('splits a folder over shards with separate reports, and refuses an empty folder', async () => {
    const { d, inDir, outDir } = await folder();
    try {
      const seen: string[] = [];
      for (const i of [1, 2, 3]) {
        const r = await runBatch({ inputDir: inDir, outDir, shard: { index: i, count: 3 } }, fakeDeps().deps);
        seen.push(...r.report.files.map((x) => x.file));
        expect(r.reportPath).toBe(join(outDir, `report.shard-${i}-of-3.json`));
        expect((await readReport(r.reportPath)).shard).toBe(`${i}/3`);
      }
      expect(seen.sort()).toEqual(['a.tif', 'b.h5', 'broken.tif', 'two.tif']);
      const empty = join(d, 'empty');
      await import('node:fs/promises').then((fs) => fs.mkdir(empty));
      await expect(runBatch({ inputDir: empty, outDir }, fakeDeps().deps)).rejects.toThrow(/no stacks/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
