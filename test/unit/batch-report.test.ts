import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  mergeReports,
  parseReport,
  reportBaseName,
  reportToCsv,
  summarise,
  writeReport,
  type BatchReport,
  type ReportRow,
} from '../../main/batch/report.js';
import { classVolumes } from '../../main/batch/runner.js';
import { main } from '../../main/cli/index.js';

function row(file: string, status: ReportRow['status'], extra: Partial<ReportRow> = {}): ReportRow {
  return {
    file,
    output: status === 'failed' ? '' : file.replace(/\.\w+$/, '.tif'),
    status,
    shape: [4, 3, 2, 1],
    spacing: { x: 0.5, y: 0.5, z: 2, unit: 'µm' },
    seconds: 1.5,
    voxels: status === 'failed' ? {} : { background: 20, nucleus: 4 },
    volumesUm3: status === 'failed' ? null : { background: 10, nucleus: 2 },
    error: status === 'failed' ? 'x.tif: truncated, "bad", strip' : '',
    model: 'fp1',
    ...extra,
  };
}

function report(files: ReportRow[], created: string, fingerprint = 'fp1', shard: string | null = null): BatchReport {
  return {
    sliceform: '0.1.0',
    kind: 'sliceform-batch-report',
    created,
    inputDir: '/in',
    model: { dir: '/m', fingerprint, classNames: ['background', 'nucleus'] },
    shard,
    summary: summarise(files, 3),
    files,
  };
}

describe('batch report', () => {
  it('computes per-class volumes only for µm calibration', () => {
    expect(classVolumes([20, 4], ['background', 'nucleus'], { x: 0.5, y: 0.5, z: 2, unit: 'µm' })).toEqual({ background: 10, nucleus: 2 });
    expect(classVolumes([20, 4], ['background', 'nucleus'], { x: 1, y: 1, z: 1, unit: 'pixel' })).toBeNull();
  });

  it('writes CSV with one column per class and quotes awkward cells', () => {
    const csv = reportToCsv(report([row('a.tif', 'ok'), row('x.tif', 'failed')], '2026-01-01T00:00:00Z'));
    const lines = csv.trim().split('\n');
    expect(lines[0]).toBe(
      'file,output,status,size_x,size_y,size_z,channels,spacing_x,spacing_y,spacing_z,unit,seconds,voxels_background,voxels_nucleus,volume_um3_background,volume_um3_nucleus,error',
    );
    expect(lines[1]).toBe('a.tif,a.tif,ok,4,3,2,1,0.5,0.5,2,µm,1.5,20,4,10,2,');
    expect(lines[2]).toBe('x.tif,,failed,4,3,2,1,0.5,0.5,2,µm,1.5,,,,,"x.tif: truncated, ""bad"", strip"');
  });

  it('names shard reports apart', () => {
    expect(reportBaseName(undefined)).toBe('report');
    expect(reportBaseName({ index: 1, count: 1 })).toBe('report');
    expect(reportBaseName({ index: 2, count: 8 })).toBe('report.shard-2-of-8');
  });

  it('merges shard reports: union by file, success beats failure, other models refused', () => {
    const a = report([row('a.tif', 'ok'), row('c.tif', 'failed')], '2026-01-01T00:00:00Z', 'fp1', '1/2');
    const b = report([row('b.tif', 'ok')], '2026-01-01T00:00:01Z', 'fp1', '2/2');
    const rerun = report([row('c.tif', 'ok', { seconds: 9 })], '2026-01-01T00:00:02Z', 'fp1', '1/2');
    const m = mergeReports([
      { file: 'r1', report: rerun },
      { file: 'r2', report: a },
      { file: 'r3', report: b },
    ]);
    expect(m.files.map((r) => [r.file, r.status])).toEqual([
      ['a.tif', 'ok'],
      ['b.tif', 'ok'],
      ['c.tif', 'ok'],
    ]);
    expect(m.files[2]!.seconds).toBe(9);
    expect(m.summary).toMatchObject({ total: 3, ok: 3, failed: 0, skipped: 0 });
    expect(m.shard).toBeNull();
    expect(() => mergeReports([{ file: 'r1', report: a }, { file: 'r9', report: report([], 'x', 'other') }])).toThrow(/r9.*another model/);
    expect(() => mergeReports([])).toThrow(/no reports/);
  });

  it('writes JSON + CSV atomically and reads them back', async () => {
    const d = await mkdtemp(join(tmpdir(), 'sf-report-'));
    try {
      const r = report([row('a.tif', 'ok')], '2026-01-01T00:00:00Z');
      const p = await writeReport(d, r, 'report');
      expect((await readdir(d)).sort()).toEqual(['report.csv', 'report.json']);
      expect(parseReport(await readFile(p.json, 'utf8'), p.json)).toEqual(r);
      expect(() => parseReport('{"kind":"other"}', 'f.json')).toThrow(/f\.json: not a Sliceform batch report/);
      expect(() => parseReport('{', 'g.json')).toThrow(/g\.json: not a JSON report/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });

  it('sliceform report --merge combines shard folders into one report.json/csv (exit 3 when some failed)', async () => {
    const d = await mkdtemp(join(tmpdir(), 'sf-merge-'));
    try {
      // two shard runs that wrote into one folder, and a third shard in another folder
      await writeReport(join(d, 'a'), report([row('a.tif', 'ok')], '2026-01-01T00:00:00Z', 'fp1', '1/3'), 'report.shard-1-of-3');
      await writeReport(join(d, 'a'), report([row('c.tif', 'failed')], '2026-01-01T00:00:01Z', 'fp1', '2/3'), 'report.shard-2-of-3');
      await writeReport(join(d, 'b'), report([row('b.tif', 'ok')], '2026-01-01T00:00:02Z', 'fp1', '3/3'), 'report.shard-3-of-3');
      const out: string[] = [];
      const err: string[] = [];
      const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s), isTTY: false };
      const code = await main(['report', '--merge', join(d, 'a'), join(d, 'b'), '--out', join(d, 'all')], io);
      expect(code).toBe(3);
      expect(JSON.parse(out[0]!).summary).toMatchObject({ total: 3, ok: 2, failed: 1 });
      const merged = parseReport(await readFile(join(d, 'all', 'report.json'), 'utf8'), 'merged');
      expect(merged.files.map((r) => r.file)).toEqual(['a.tif', 'b.tif', 'c.tif']);
      expect((await readFile(join(d, 'all', 'report.csv'), 'utf8')).trim().split('\n')).toHaveLength(4);
      // a folder without reports, or no --merge, is bad input
      expect(await main(['report', '--merge', join(d, 'all', 'nothing'), '--out', join(d, 'x')], io)).toBe(2);
      expect(await main(['report', join(d, 'a'), '--out', join(d, 'x')], io)).toBe(2);
      expect(err.join('\n')).toMatch(/nothing: not found/);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
