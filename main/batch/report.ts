/**
 * The batch report: one row per input stack, written as report.json and report.csv after every file (atomic
 * temp + rename), read back to resume, and merged across shards by `sliceform report --merge`.
 */
import { readFile, readdir, rename, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SliceformError } from '../common/errors.js';

export type RowStatus = 'ok' | 'skipped' | 'failed';

export interface ReportRow {
  /** input path relative to the input folder ('/' separated) */
  file: string;
  /** output label TIFF relative to the output folder; '' when none was written */
  output: string;
  status: RowStatus;
  /** [x, y, z, c] of the input ([] when the file could not be read) */
  shape: number[];
  spacing: { x: number; y: number; z: number; unit: string } | null;
  /** seconds spent on this file in the run that produced the output */
  seconds: number;
  /** voxels per class name (background first), from the written labels */
  voxels: Record<string, number>;
  /** µm³ per class; null when the input is not calibrated in µm */
  volumesUm3: Record<string, number> | null;
  /** '' when ok */
  error: string;
  /** fingerprint of the model that made `output` */
  model: string;
  /** probabilities TIFF relative to the output folder, when written */
  probabilities?: string;
  /** with --objects: the stack's objects (main/objects), its per-object CSV relative to the output folder */
  objects?: { table: string; count: number; meanVolume_um3: number; medianVolume_um3: number; meanEquivalentDiameter_um: number };
}

export interface BatchReport {
  sliceform: string;
  kind: 'sliceform-batch-report';
  created: string;
  inputDir: string;
  model: { dir: string; fingerprint: string; classNames: string[] };
  /** "I/N" or null */
  shard: string | null;
  summary: { total: number; ok: number; skipped: number; failed: number; seconds: number };
  files: ReportRow[];
}

export function summarise(rows: ReportRow[], seconds: number): BatchReport['summary'] {
  return {
    total: rows.length,
    ok: rows.filter((r) => r.status === 'ok').length,
    skipped: rows.filter((r) => r.status === 'skipped').length,
    failed: rows.filter((r) => r.status === 'failed').length,
    seconds: Math.round(seconds * 1000) / 1000,
  };
}

/** File names of the report for a shard (or the whole run): report.json / report.shard-2-of-8.json. */
export function reportBaseName(shard: { index: number; count: number } | undefined): string {
  return shard && shard.count > 1 ? `report.shard-${shard.index}-of-${shard.count}` : 'report';
}

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Class names over all rows in first-seen order (the model's order). */
function classColumns(report: BatchReport): string[] {
  const names = [...report.model.classNames];
  for (const r of report.files) for (const k of Object.keys(r.voxels)) if (!names.includes(k)) names.push(k);
  return names;
}

export function reportToCsv(report: BatchReport): string {
  const classes = classColumns(report);
  const head = [
    'file', 'output', 'status', 'size_x', 'size_y', 'size_z', 'channels', 'spacing_x', 'spacing_y', 'spacing_z',
    'unit', 'seconds', ...classes.map((c) => `voxels_${c}`), ...classes.map((c) => `volume_um3_${c}`), 'error',
  ];
  // objects columns only when the run counted objects (segment --objects): older reports keep their columns
  const withObjects = report.files.some((r) => r.objects);
  if (withObjects) head.push('objects', 'objects_table', 'objects_mean_volume_um3', 'objects_median_volume_um3', 'objects_mean_diameter_um');
  const lines = [head.map(csvCell).join(',')];
  for (const r of report.files) {
    const sp = r.spacing;
    lines.push(
      [
        r.file, r.output, r.status, r.shape[0] ?? '', r.shape[1] ?? '', r.shape[2] ?? '', r.shape[3] ?? '',
        sp?.x ?? '', sp?.y ?? '', sp?.z ?? '', sp?.unit ?? '', r.seconds,
        ...classes.map((c) => r.voxels[c] ?? ''),
        ...classes.map((c) => (r.volumesUm3 && r.volumesUm3[c] !== undefined ? r.volumesUm3[c]! : '')),
        r.error,
        ...(withObjects
          ? r.objects
            ? [r.objects.count, r.objects.table, r.objects.meanVolume_um3, r.objects.medianVolume_um3, r.objects.meanEquivalentDiameter_um]
            : ['', '', '', '', '']
          : []),
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return lines.join('\n') + '\n';
}

let tmpCounter = 0;
/** Writes `data` to `path` atomically: a temp file in the same folder, then rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}-${tmpCounter++}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

export async function writeReport(dir: string, report: BatchReport, base = 'report'): Promise<{ json: string; csv: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, `${base}.json`);
  const csv = join(dir, `${base}.csv`);
  await writeFileAtomic(json, JSON.stringify(report, null, 2) + '\n');
  await writeFileAtomic(csv, reportToCsv(report));
  return { json, csv };
}

export function parseReport(text: string, file: string): BatchReport {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new SliceformError('bad-input', `not a JSON report (${(e as Error).message})`, { file });
  }
  const r = j as Partial<BatchReport>;
  if (!r || r.kind !== 'sliceform-batch-report' || !Array.isArray(r.files) || !r.model)
    throw new SliceformError('bad-input', 'not a Sliceform batch report (kind/files/model missing)', { file });
  return r as BatchReport;
}

export async function readReport(file: string): Promise<BatchReport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SliceformError('bad-input', `cannot read report (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file });
  }
  return parseReport(text, file);
}

/** All report JSON files in a folder: report.json and report.shard-*.json, sorted. */
export async function reportFilesIn(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n === 'report.json' || /^report\.shard-\d+-of-\d+\.json$/.test(n))
    .sort()
    .map((n) => join(dir, n));
}

const STATUS_RANK: Record<RowStatus, number> = { failed: 0, skipped: 1, ok: 2 };

/**
 * Merges shard reports into one. Rows are keyed by input file; when a file appears in several reports
 * (a shard rerun, or a file that moved shard), a success beats a failure and a later report beats an earlier
 * one. Reports made with different models cannot be merged.
 */
export function mergeReports(reports: { file: string; report: BatchReport }[]): BatchReport {
  if (reports.length === 0) throw new SliceformError('bad-input', 'report --merge: no reports found');
  const first = reports[0]!;
  for (const { file, report } of reports) {
    if (report.model.fingerprint !== first.report.model.fingerprint)
      throw new SliceformError(
        'bad-input',
        `made with another model (${report.model.dir}, ${report.model.fingerprint}) than ${first.file} (${first.report.model.dir}, ${first.report.model.fingerprint})`,
        { file },
      );
  }
  const rows = new Map<string, ReportRow>();
  const ordered = [...reports].sort((a, b) => (a.report.created < b.report.created ? -1 : a.report.created > b.report.created ? 1 : 0));
  for (const { report } of ordered) {
    for (const row of report.files) {
      const prev = rows.get(row.file);
      if (!prev || STATUS_RANK[row.status] >= STATUS_RANK[prev.status]) rows.set(row.file, row);
    }
  }
  const files = [...rows.values()].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const seconds = files.reduce((s, r) => s + (r.status === 'ok' ? r.seconds : 0), 0);
  return {
    sliceform: first.report.sliceform,
    kind: 'sliceform-batch-report',
    created: new Date().toISOString(),
    inputDir: first.report.inputDir,
    model: first.report.model,
    shard: null,
    summary: summarise(files, seconds),
    files,
  };
}
