import { describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { progressPrinter, segmentFolder } from '../../main/cli/commands/segment-folder.js';
import type { CliIO } from '../../main/cli/command.js';

function capture(isTTY = false) {
  const err: string[] = [];
  const out: string[] = [];
  const io: CliIO = { out: (s) => out.push(s), err: (s) => err.push(s), isTTY };
  return { io, out, err };
}

describe('segment folder mode: arguments', () => {
  it('refuses bad arguments before loading anything (exit 2 kinds)', async () => {
    const d = await mkdtemp(join(tmpdir(), 'sf-batch-cli-'));
    try {
      await mkdir(join(d, 'in'));
      const sig = new AbortController().signal;
      const base = { model: join(d, 'model'), input: join(d, 'in'), out: join(d, 'out') };
      const { io } = capture();
      const expectBad = async (values: Record<string, unknown>, re: RegExp) => {
        const p = segmentFolder(values, io, sig);
        await expect(p).rejects.toThrow(re);
        await p.catch((e: { exitCode: number }) => expect(e.exitCode).toBe(2));
      };
      await expectBad({ ...base, shard: '0/4' }, /between 1 and N/);
      await expectBad({ ...base, shard: 'x' }, /I\/N/);
      await expectBad({ ...base, device: 'tpu' }, /--device must be cpu or cuda/);
      await expectBad({ ...base, out: join(d, 'in') }, /another folder than --input/);
      await expectBad({ ...base, input: join(d, 'nope') }, /nope: input folder not found/);
      await expectBad(base, /model: not a Sliceform model folder/);
      await expectBad({ input: base.input, out: base.out }, /--model/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});

describe('progress output', () => {
  it('prints JSON lines with --json-progress and readable lines otherwise', () => {
    const j = capture();
    const pj = progressPrinter(j.io, true);
    pj({ event: 'progress', filesDone: 1, filesTotal: 4, fraction: 0.5, voxelsPerSecond: 1.5e6, etaSeconds: 30, file: 'a.tif' });
    expect(JSON.parse(j.err[0]!)).toMatchObject({ event: 'progress', fraction: 0.5, voxelsPerSecond: 1.5e6, etaSeconds: 30 });

    const t = capture(false);
    const pt = progressPrinter(t.io, false);
    pt({ event: 'start', files: 4, skipped: 1, toRun: 3, totalVoxels: 3e6, shard: '2/8' });
    pt({ event: 'progress', filesDone: 1, filesTotal: 4, fraction: 0.5, voxelsPerSecond: 1.5e6, etaSeconds: 30, file: 'a.tif' });
    pt({ event: 'file-done', file: 'b.tif', status: 'failed', seconds: 0, output: '', error: 'b.tif: truncated' });
    pt({ event: 'file-done', file: 'a.tif', status: 'ok', seconds: 2.25, output: 'a.tif', error: '' });
    pt({ event: 'done', summary: { total: 4, ok: 2, skipped: 1, failed: 1, seconds: 75 }, report: '/o/report.json', exitCode: 3 });
    expect(t.err).toEqual([
      'segmenting 3 of 4 stack(s) (shard 2/8), 3.00 Mvoxels; 1 already done',
      'FAILED  b.tif: b.tif: truncated',
      'ok      a.tif -> a.tif (2.3 s)',
      'done: 2 segmented, 1 skipped, 1 failed in 1m15s; report /o/report.json',
    ]);
  });
});
