/**
 * Folder mode of `sliceform segment` (--input FOLDER): option spec, help text and the handler, kept here so
 * the single-file command (main/cli/commands/segment.ts) only has to delegate when --input is a folder.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CliIO, OptionSpec } from '../command.js';
import { strOpt } from '../command.js';
import { SliceformError, isSliceformError } from '../../common/errors.js';
import { parseShard } from '../../batch/files.js';
import { runBatch, type BatchEvent } from '../../batch/runner.js';
import { createSegmenter } from '../../batch/segmenter.js';
import { sameFile } from '../../services/path-guard.js';
import { threadsOpt } from '../validate.js';

export const FOLDER_USAGE = `Folder mode: sliceform segment --model MODEL --input FOLDER --out DIR [--probabilities PDIR] [--device cpu|cuda]
                                [--recursive] [--shard I/N] [--json-progress] [--dataset D] [--no-flips]
  Every stack in FOLDER (.tif .tiff .ome.tif .lsm .h5) gets a calibrated label TIFF DIR/<name>.tif, and DIR gets
  report.json + report.csv (file, shape, spacing, seconds, voxels and µm³ per class, status, error).
  Rerunning skips outputs that are complete and valid (same model, shape checked) and redoes the rest; outputs
  appear under their final name only when complete.
  --probabilities PDIR  also write PDIR/<name>_probabilities.tif (float32, one channel per class); PDIR may be DIR
  --recursive          include sub-folders (outputs keep the sub-folder)
  --shard I/N          process shard I of N (1-based; a stable hash of each file's path decides its shard), with
                       its own report.shard-I-of-N.json; merge them with 'sliceform report --merge'
  --json-progress      progress as JSON lines on stderr instead of a progress bar
  --dataset D          HDF5 dataset of the inputs
  --no-flips           no test-time flip averaging (4x faster prediction)
  --objects            also the objects of each stack (sliceform objects, default recipe): DIR/<name>_objects.csv,
                       count and mean/median volume per stack in the report, DIR/objects.csv with every object
  Exit codes: 0 every file segmented (or already done), 3 some files failed (see the report), 2 nothing could
  run (bad model, bad arguments, no stacks in FOLDER), 130 cancelled.`;

/** Options only the folder mode has (segment.ts adds them to its own spec). */
export const FOLDER_OPTIONS: OptionSpec = {
  recursive: { type: 'boolean' },
  shard: { type: 'string' },
  'json-progress': { type: 'boolean' },
  objects: { type: 'boolean' },
};

export async function isFolder(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function duration(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

/** Progress as a redrawn bar (TTY), plain lines (pipe) or JSON lines (--json-progress), all on stderr. */
export function progressPrinter(io: CliIO, json: boolean): (e: BatchEvent) => void {
  let lastDraw = 0;
  let drawn = false;
  const clear = () => {
    if (drawn && io.isTTY) io.err('\r\x1b[2K');
    drawn = false;
  };
  return (e) => {
    if (json) {
      io.err(JSON.stringify(e));
      return;
    }
    switch (e.event) {
      case 'start':
        io.err(
          `segmenting ${e.toRun} of ${e.files} stack(s)${e.shard ? ` (shard ${e.shard})` : ''}, ${human(e.totalVoxels)}voxels` +
            (e.skipped ? `; ${e.skipped} already done` : ''),
        );
        break;
      case 'progress': {
        const now = Date.now();
        if (!io.isTTY || now - lastDraw < 200) return;
        lastDraw = now;
        const w = 24;
        const f = Math.max(0, Math.min(1, e.fraction));
        const bar = '#'.repeat(Math.round(f * w)).padEnd(w, '.');
        process.stderr.write(
          `\r\x1b[2K[${bar}] ${(f * 100).toFixed(0)}% ${e.filesDone}/${e.filesTotal} files  ${human(e.voxelsPerSecond)}voxels/s  ETA ${duration(e.etaSeconds)}  ${e.file}`,
        );
        drawn = true;
        break;
      }
      case 'file-done':
        clear();
        if (e.status === 'failed') io.err(`FAILED  ${e.file}: ${e.error}`);
        else if (e.status === 'skipped') io.err(`skip    ${e.file} (done: ${e.output})`);
        else io.err(`ok      ${e.file} -> ${e.output} (${e.seconds.toFixed(1)} s)`);
        break;
      case 'done':
        clear();
        io.err(
          `done: ${e.summary.ok} segmented, ${e.summary.skipped} skipped, ${e.summary.failed} failed in ${duration(e.summary.seconds)}; report ${e.report}`,
        );
        break;
      default:
        break;
    }
  };
}

/** `segment --input FOLDER`: returns the exit code. */
export async function segmentFolder(values: Record<string, unknown>, io: CliIO, signal: AbortSignal): Promise<number> {
  const modelDir = strOpt(values, 'model', true);
  const inputDir = strOpt(values, 'input', true);
  const outDir = strOpt(values, 'out', true);
  const device = strOpt(values, 'device') ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new SliceformError('bad-input', `--device must be cpu or cuda, got "${device}"`);
  const shardStr = strOpt(values, 'shard');
  const shard = shardStr ? parseShard(shardStr) : undefined;
  // 1..cores, capped at the cores (issue 14 item 19); the same folder also through a symlink (item 12)
  const threads = values.threads === undefined ? undefined : threadsOpt(values, io);
  if (resolve(outDir) === resolve(inputDir) || (await sameFile(outDir, inputDir))) throw new SliceformError('bad-input', '--out must be another folder than --input (outputs are .tif stacks too)');
  if (!(await isFolder(inputDir))) throw new SliceformError('bad-input', 'input folder not found', { file: inputDir });
  let seg;
  try {
    seg = await createSegmenter(modelDir, {
      device,
      threads,
      dataset: strOpt(values, 'dataset'),
      testTimeFlips: !values['no-flips'],
      onWarning: (w) => io.err(`sliceform segment: warning: ${w}`),
    });
  } catch (e) {
    // nothing can run without a model: exit 2 whatever the cause
    if (isSliceformError(e) && e.exitCode === 2) throw e;
    throw new SliceformError('bad-input', `cannot load the model: ${(e as Error).message}`, { file: modelDir, cause: e });
  }
  try {
    const res = await runBatch(
      {
        inputDir,
        outDir,
        recursive: Boolean(values.recursive),
        shard,
        probabilitiesDir: strOpt(values, 'probabilities'),
        objects: Boolean(values.objects),
        signal,
        onEvent: progressPrinter(io, Boolean(values['json-progress'])),
        version: seg.manifest.sliceformVersion,
      },
      seg.deps,
    );
    io.out(JSON.stringify({ report: res.reportPath, csv: res.csvPath, summary: res.report.summary }));
    return res.exitCode;
  } finally {
    seg.dispose();
  }
}
