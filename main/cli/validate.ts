/**
 * Argument and path checks the training/inference commands run at the top of run(), before reading a file or
 * starting an engine (issue 14 items 12 and 19): every out-of-range value is refused with its range, --threads
 * is capped at the cores, an output that is an input (or an existing folder) is refused, and images whose
 * values are not finite are refused naming the file. Each check throws SliceformError 'bad-input' (exit 2).
 */
import { availableParallelism } from 'node:os';
import type { CliIO } from './command.js';
import { numOpt, strOpt } from './command.js';
import { SliceformError } from '../common/errors.js';
import type { Volume } from '../common/volume.js';
import type { EngineInfo } from '../common/engine.js';
import { engineLimitsShort } from '../common/engine-limits.js';
import { refuseExistingKind, refuseOutputOverInput, requireRegularFile } from '../services/path-guard.js';
import { RECIPE_RANGES, inRange, rangeMessage, type Range } from '../pipeline/settings.js';

type Values = Record<string, unknown>;

export type { Range };

/** A numeric option inside its range, or undefined when absent. */
export function rangeOpt(values: Values, name: string, r: Range): number | undefined {
  const n = numOpt(values, name);
  if (n === undefined) return undefined;
  if (!inRange(n, r)) throw new SliceformError('bad-input', `--${rangeMessage(name, r, strOpt(values, name) ?? n)}`);
  return n;
}

/**
 * The documented ranges for densify, train, segment, crossval: the recipe's own table (main/pipeline/settings.ts
 * RECIPE_RANGES, the one the API checks too) and the ranges of options only commands have.
 */
export const RANGES = {
  ...RECIPE_RANGES,
  'checkpoint-minutes': { min: 0, max: 7 * 24 * 60, minExclusive: true },
  folds: { min: 2, max: 100, integer: true },
  'slice-min-fraction': { min: 0, max: 1, minExclusive: true },
} satisfies Record<string, Range>;

/** Checks every option of `names` that is present against RANGES. */
export function checkRanges(values: Values, names: Array<keyof typeof RANGES>): void {
  for (const n of names) rangeOpt(values, n, RANGES[n]);
}

/** --threads: 1..cores; more than the cores is capped (with a note), the default is all cores. */
export function threadsOpt(values: Values, io: Pick<CliIO, 'err'>, cores = availableParallelism()): number {
  const t = rangeOpt(values, 'threads', RANGES.threads);
  if (t === undefined) return cores;
  if (t > cores) {
    io.err(`note: --threads ${t} is more than the ${cores} cores here; using ${cores}`);
    return cores;
  }
  return t;
}

/** --downsample: auto | none | F | Z,Y,X with integers 1..8 (the documented range), checked before parsing. */
export function checkDownsample(values: Values): void {
  const s = strOpt(values, 'downsample');
  if (s === undefined || s === 'auto' || s === 'none') return;
  const parts = s.split(',');
  const ok = (parts.length === 1 || parts.length === 3) && parts.every((p) => /^\d+$/.test(p.trim()) && Number(p) >= 1 && Number(p) <= 8);
  if (!ok) throw new SliceformError('bad-input', `--downsample must be auto, none, F or Z,Y,X with integers 1..8, got "${s}"`);
}

/**
 * Paths of a command: outputs must not be inputs (realpath and hard links), outputs that are files must not be
 * existing folders, model folders must not be existing files, inputs must be regular files when they exist.
 */
export async function checkPaths(p: {
  inputs: Array<{ label: string; path?: string }>;
  fileOutputs?: Array<{ label: string; path?: string }>;
  dirOutputs?: Array<{ label: string; path?: string }>;
}): Promise<void> {
  for (const i of p.inputs) if (i.path) await requireRegularFile(i.path, { label: i.label });
  for (const o of p.fileOutputs ?? []) await refuseExistingKind(o.label, o.path, 'dir');
  for (const o of p.dirOutputs ?? []) await refuseExistingKind(o.label, o.path, 'file');
  await refuseOutputOverInput([...(p.fileOutputs ?? []), ...(p.dirOutputs ?? [])], p.inputs);
}

/** An image whose values are NaN or infinite cannot be normalised or trained on: refuse it naming the file. */
export function assertFiniteImage(v: Volume, file: string): void {
  const d = v.data as ArrayLike<number>;
  if (!(d instanceof Float32Array || d instanceof Float64Array)) return;
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < d.length; i++) {
    const x = d[i]!;
    if (x !== x) nan++;
    else if (x === Infinity || x === -Infinity) inf++;
  }
  if (nan || inf) {
    const parts = [nan ? `${nan} NaN` : '', inf ? `${inf} infinite` : ''].filter(Boolean).join(' and ');
    throw new SliceformError('bad-input', `the image has ${parts} voxel values (of ${d.length}); replace them (e.g. with 0) before training or segmenting`, { file });
  }
}

/** The TF.js fallback is slow: say so before a long run starts (issue 14 item 11; `sliceform system` has more). */
export function engineNote(info: EngineInfo, io: Pick<CliIO, 'err'>): void {
  const note = engineLimitsShort(info);
  if (note) io.err(`note: ${note} (see 'sliceform system')`);
}
