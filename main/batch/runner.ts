/**
 * Batch folder segmentation: every stack in a folder → a calibrated label TIFF, a report, resumable, sharded.
 *
 * The runner owns the workflow (listing, sharding, naming, resume, atomic outputs, reports, progress, exit
 * status); reading, predicting and writing one file are injected (`BatchDeps`), so the rules are tested
 * without an engine and the CLI wires in the real reader, model and writer (see ./segmenter.ts).
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { objectsForStack } from '../objects/files.js';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { CancelledError, SliceformError } from '../common/errors.js';
import { listStacks, outputNames, selectShard, type InputFile, type Shard } from './files.js';
import {
  readReport,
  reportBaseName,
  reportFilesIn,
  summarise,
  writeReport,
  type BatchReport,
  type ReportRow,
} from './report.js';

export interface StackHeader {
  x: number;
  y: number;
  z: number;
  c: number;
  spacing: { x: number; y: number; z: number; unit: string };
}

export interface ModelInfo {
  dir: string;
  /** changes whenever the weights or config change; outputs of another model are never reused */
  fingerprint: string;
  /** class names, class 1 first (background) */
  classNames: string[];
  inChannels: number;
}

export interface SegmentFileResult {
  /** voxels per class 1..K (index 0 = class 1) in the written labels */
  counts: number[];
}

export interface BatchDeps {
  model: ModelInfo;
  /** header only (shape, channels, spacing); throws a SliceformError naming the file when unreadable */
  probe(path: string): Promise<StackHeader>;
  /**
   * Reads `input`, segments it and writes the label TIFF to `labelsPath` (and probabilities to
   * `probabilitiesPath` when given). Paths are temporary names; the runner renames them when this resolves.
   */
  segment(
    input: string,
    header: StackHeader,
    out: { labelsPath: string; probabilitiesPath?: string },
    ctx: { signal?: AbortSignal; onVoxels?: (doneVoxels: number) => void },
  ): Promise<SegmentFileResult>;
  /**
   * Checks an existing output: readable, label dtype, shape equal to the input's. Returns the per-class counts
   * when valid, or the reason it is not.
   */
  checkOutput(path: string, expect: StackHeader): Promise<{ ok: true; counts: number[] } | { ok: false; reason: string }>;
}

export interface BatchOptions {
  inputDir: string;
  outDir: string;
  recursive?: boolean;
  shard?: Shard;
  /** also write per-class probabilities, as <name>_probabilities.tif in this folder (may be outDir) */
  probabilitiesDir?: string;
  signal?: AbortSignal;
  onEvent?: (e: BatchEvent) => void;
  /** version string stored in the report */
  version?: string;
  /** also count and measure the objects of each stack: <name>_objects.csv beside its labels, a summary per row, objects.csv for the run */
  objects?: boolean;
}

export type BatchEvent =
  | { event: 'start'; files: number; skipped: number; toRun: number; totalVoxels: number; shard: string | null }
  | { event: 'file-start'; file: string; index: number; of: number; voxels: number }
  | {
      event: 'progress';
      filesDone: number;
      filesTotal: number;
      fraction: number;
      voxelsPerSecond: number;
      etaSeconds: number | null;
      file: string;
    }
  | { event: 'file-done'; file: string; status: ReportRow['status']; seconds: number; output: string; error: string }
  | { event: 'done'; summary: BatchReport['summary']; report: string; exitCode: number };

export interface BatchResult {
  report: BatchReport;
  reportPath: string;
  csvPath: string;
  /** 0 all ok, 3 some failed */
  exitCode: number;
}

const MICRON = new Set(['µm', 'um', 'micron', 'microns', 'micrometer', 'micrometre', '\u03bcm']);

export function classVolumes(
  counts: number[],
  classNames: string[],
  spacing: StackHeader['spacing'],
): Record<string, number> | null {
  if (!MICRON.has(spacing.unit.toLowerCase())) return null;
  const v = spacing.x * spacing.y * spacing.z;
  const out: Record<string, number> = {};
  counts.forEach((c, i) => (out[classNames[i] ?? `class${i + 1}`] = Number((c * v).toPrecision(10))));
  return out;
}

function countsRecord(counts: number[], classNames: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  counts.forEach((c, i) => (out[classNames[i] ?? `class${i + 1}`] = c));
  return out;
}

function errMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Previous rows for this output folder and model, from every report in it (all shards). */
async function previousRows(outDir: string, fingerprint: string): Promise<Map<string, ReportRow>> {
  const rows = new Map<string, ReportRow>();
  for (const f of await reportFilesIn(outDir)) {
    let r: BatchReport;
    try {
      r = await readReport(f);
    } catch {
      continue; // a damaged report only costs recomputation
    }
    if (r.model.fingerprint !== fingerprint) continue;
    for (const row of r.files) if (row.status !== 'failed' && row.output) rows.set(row.file, row);
  }
  return rows;
}

/** Temp name beside the final one; hidden, so a folder listing never picks it up as an input. */
function tempPath(final: string): string {
  return join(dirname(final), `.${basename(final)}.partial-${process.pid}`);
}

/** Removes temp files a killed run left for this output. */
async function removeStaleTemps(final: string): Promise<void> {
  const dir = dirname(final);
  const prefix = `.${basename(final)}.partial-`;
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(dir, n), { force: true })));
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

interface Planned {
  file: InputFile;
  output: string;
  header?: StackHeader;
}

export async function runBatch(opts: BatchOptions, deps: BatchDeps): Promise<BatchResult> {
  const emit = opts.onEvent ?? (() => {});
  const started = Date.now();
  const { model } = deps;
  const all = await listStacks(opts.inputDir, {
    recursive: opts.recursive,
    exclude: [opts.outDir, ...(opts.probabilitiesDir ? [opts.probabilitiesDir] : [])],
  });
  if (all.length === 0)
    throw new SliceformError('bad-input', 'no stacks (.tif .tiff .ome.tif .lsm .h5) found' + (opts.recursive ? '' : ' (use --recursive for sub-folders)'), {
      file: opts.inputDir,
    });
  const names = outputNames(all.map((f) => f.rel));
  const mine = selectShard(all, opts.shard);
  await mkdir(opts.outDir, { recursive: true });
  const shardName = opts.shard && opts.shard.count > 1 ? `${opts.shard.index}/${opts.shard.count}` : null;
  const reportBase = reportBaseName(opts.shard);
  const prev = await previousRows(opts.outDir, model.fingerprint);

  const report: BatchReport = {
    sliceform: opts.version ?? '0',
    kind: 'sliceform-batch-report',
    created: new Date().toISOString(),
    inputDir: opts.inputDir,
    model: { dir: model.dir, fingerprint: model.fingerprint, classNames: model.classNames },
    shard: shardName,
    summary: summarise([], 0),
    files: [],
  };
  const rows = new Map<string, ReportRow>();
  const flush = async () => {
    report.files = mine.map((f) => rows.get(f.rel)).filter((r): r is ReportRow => r !== undefined);
    report.summary = summarise(report.files, (Date.now() - started) / 1000);
    return writeReport(opts.outDir, report, reportBase);
  };

  const failRow = (f: InputFile, error: string, header?: StackHeader): ReportRow => ({
    file: f.rel,
    output: '',
    status: 'failed',
    shape: header ? [header.x, header.y, header.z, header.c] : [],
    spacing: header?.spacing ?? null,
    seconds: 0,
    voxels: {},
    volumesUm3: null,
    error,
    model: model.fingerprint,
  });

  // Plan: probe every file (cheap), check channels, decide skip or run.
  const plan: Planned[] = [];
  for (const f of mine) {
    if (opts.signal?.aborted) throw new CancelledError();
    const output = names.get(f.rel)!;
    const p: Planned = { file: f, output };
    plan.push(p);
    try {
      p.header = await deps.probe(f.path);
    } catch (e) {
      rows.set(f.rel, failRow(f, errMessage(e)));
      continue;
    }
    const h = p.header;
    if (h.c !== model.inChannels) {
      rows.set(
        f.rel,
        failRow(f, `${f.path}: has ${h.c} channel${h.c === 1 ? '' : 's'} but the model (${model.dir}) expects ${model.inChannels}`, h),
      );
      continue;
    }
    const before = prev.get(f.rel);
    const finalPath = join(opts.outDir, output);
    if (before && before.output === output && (await exists(finalPath))) {
      const chk = await deps.checkOutput(finalPath, h).catch((e) => ({ ok: false as const, reason: errMessage(e) }));
      const probsOk = !opts.probabilitiesDir || (before.probabilities !== undefined && (await exists(resolve(opts.outDir, before.probabilities))));
      if (chk.ok && probsOk) {
        rows.set(f.rel, {
          ...before,
          status: 'skipped',
          shape: [h.x, h.y, h.z, h.c],
          spacing: h.spacing,
          voxels: countsRecord(chk.counts, model.classNames),
          volumesUm3: classVolumes(chk.counts, model.classNames, h.spacing),
          error: '',
        });
        continue;
      }
    }
  }
  const toRun = plan.filter((p) => p.header && !rows.has(p.file.rel));
  const totalVoxels = toRun.reduce((s, p) => s + p.header!.x * p.header!.y * p.header!.z, 0);
  emit({
    event: 'start',
    files: mine.length,
    skipped: [...rows.values()].filter((r) => r.status === 'skipped').length,
    toRun: toRun.length,
    totalVoxels,
    shard: shardName,
  });
  for (const r of rows.values()) {
    emit({ event: 'file-done', file: r.file, status: r.status, seconds: r.seconds, output: r.output, error: r.error });
  }
  await flush();

  let doneVoxels = 0;
  let filesDone = mine.length - toRun.length;
  const runStart = Date.now();
  for (let i = 0; i < toRun.length; i++) {
    const p = toRun[i]!;
    const h = p.header!;
    const vox = h.x * h.y * h.z;
    emit({ event: 'file-start', file: p.file.rel, index: i + 1, of: toRun.length, voxels: vox });
    const finalPath = join(opts.outDir, p.output);
    // probabilities: <name>_probabilities.tif in their folder; the report keeps the path relative to outDir
    const probsFinal = opts.probabilitiesDir ? join(opts.probabilitiesDir, p.output.replace(/\.tif$/, '') + '_probabilities.tif') : undefined;
    const probsRel = probsFinal ? relative(opts.outDir, probsFinal).split(sep).join('/') : undefined;
    if (probsFinal) await mkdir(dirname(probsFinal), { recursive: true });
    await mkdir(dirname(finalPath), { recursive: true });
    await removeStaleTemps(finalPath);
    if (probsFinal) await removeStaleTemps(probsFinal);
    const tmp = tempPath(finalPath);
    const tmpProbs = probsFinal ? tempPath(probsFinal) : undefined;
    const t0 = Date.now();
    let lastEmit = 0;
    const onVoxels = (d: number) => {
      const now = Date.now();
      if (now - lastEmit < 250 && d < vox) return;
      lastEmit = now;
      const done = doneVoxels + Math.min(d, vox);
      const secs = (now - runStart) / 1000;
      const rate = secs > 0 ? done / secs : 0;
      emit({
        event: 'progress',
        filesDone,
        filesTotal: mine.length,
        fraction: totalVoxels > 0 ? done / totalVoxels : 1,
        voxelsPerSecond: rate,
        etaSeconds: rate > 0 ? (totalVoxels - done) / rate : null,
        file: p.file.rel,
      });
    };
    try {
      const res = await deps.segment(p.file.path, h, { labelsPath: tmp, probabilitiesPath: tmpProbs }, { signal: opts.signal, onVoxels });
      if (opts.signal?.aborted) throw new CancelledError();
      // Probabilities first: the label file under its final name is what marks the file done.
      if (tmpProbs && probsFinal) await rename(tmpProbs, probsFinal);
      await rename(tmp, finalPath);
      let objects: ReportRow['objects'];
      if (opts.objects) {
        const csvFinal = finalPath.replace(/\.tif$/, '') + '_objects.csv';
        const sum = await objectsForStack(finalPath, p.file.path, csvFinal);
        objects = { table: relative(opts.outDir, csvFinal).split(sep).join('/'), ...sum };
      }
      const seconds = (Date.now() - t0) / 1000;
      rows.set(p.file.rel, {
        file: p.file.rel,
        output: p.output,
        status: 'ok',
        shape: [h.x, h.y, h.z, h.c],
        spacing: h.spacing,
        seconds: Math.round(seconds * 1000) / 1000,
        voxels: countsRecord(res.counts, model.classNames),
        volumesUm3: classVolumes(res.counts, model.classNames, h.spacing),
        error: '',
        model: model.fingerprint,
        ...(probsRel ? { probabilities: probsRel } : {}),
        ...(objects ? { objects } : {}),
      });
    } catch (e) {
      await rm(tmp, { force: true });
      if (tmpProbs) await rm(tmpProbs, { force: true });
      if (e instanceof CancelledError || opts.signal?.aborted) {
        await flush();
        throw e instanceof CancelledError ? e : new CancelledError();
      }
      // An engine failure that is not about this file (out of memory, a broken model) still only fails the file:
      // the next file may be smaller.
      rows.set(p.file.rel, failRow(p.file, errMessage(e), h));
    }
    doneVoxels += vox;
    filesDone++;
    const row = rows.get(p.file.rel)!;
    emit({ event: 'file-done', file: row.file, status: row.status, seconds: row.seconds, output: row.output, error: row.error });
    await flush();
  }
  const { json, csv } = await flush();
  if (opts.objects) await writeRunObjects(opts.outDir, report, reportBase.replace(/^report/, 'objects'));
  const exitCode = report.summary.failed > 0 ? 3 : 0;
  emit({ event: 'done', summary: report.summary, report: json, exitCode });
  return { report, reportPath: json, csvPath: csv, exitCode };
}

/** One table of every object of the run: the per-stack CSVs with the stack's file as first column. */
async function writeRunObjects(outDir: string, report: BatchReport, base: string): Promise<void> {
  let head: string | null = null;
  const lines: string[] = [];
  for (const r of report.files) {
    if (r.status !== 'ok' || !r.objects) continue;
    const text = await readFile(join(outDir, r.objects.table), 'utf8').catch(() => '');
    const [h, ...rows] = text.trim().split('\n');
    if (!h) continue;
    head ??= `file,${h}`;
    const f = /[",\n]/.test(r.file) ? `"${r.file.replace(/"/g, '""')}"` : r.file;
    for (const row of rows) if (row) lines.push(`${f},${row}`);
  }
  if (head) await writeFile(join(outDir, `${base}.csv`), [head, ...lines].join('\n') + '\n');
}
