/**
 * The paper's evaluation protocols (Çiçek et al. 2016, section 3), independent of how a network is trained:
 * - semi-automatic k-fold cross-validation over annotated slices (Table 1),
 * - IoU versus the number of annotated slices (Table 2),
 * - fully automatic leave-one-volume-out (Table 3).
 * Training and prediction are injected as a `Learner` (3D U-Net, 2D U-Net slice by slice, or a fake in tests).
 * Pure apart from the learner.
 */
import type { Volume } from '../common/volume.js';
import { CancelledError } from '../common/errors.js';
import { Confusion, type Score } from './score.js';
import {
  evenlySpaced,
  AXES,
  sliceCurveSplit,
  sliceKey,
  sliceMask,
  sparseFromSlices,
  splitFolds,
  type AnnotatedSlice,
  type Axis,
  type Dims,
} from './slices.js';

export interface EvalVolume {
  /** file name (for tables) */
  name: string;
  image: Volume;
  dims: Dims;
  /** classes 1..K, 0 = unannotated (dense when drawn from a full ground truth) */
  labels: Uint8Array;
  /** the annotated slices the protocols may use (their `volume` is this volume's index) */
  slices: AnnotatedSlice[];
  /** labels are a full ground truth: protocols also report whole-volume scores where that makes sense */
  dense?: boolean;
}

export interface PlaneRef {
  axis: Axis;
  index: number;
}

export interface Predictor {
  /**
   * Predicted classes (1..K) as a full-size volume; only the voxels of `planes` need to be filled
   * ('all' = every voxel). Other voxels may be 0.
   */
  predict(v: EvalVolume, planes: PlaneRef[] | 'all', ctx: RunContext): Promise<Uint8Array>;
  dispose(): void;
  /** training iterations that produced it (reported beside the scores) */
  iterations?: number;
}

export interface Learner {
  /**
   * Trains a fresh network on the given sparse labels (0 = unannotated; volumes without labels are left out).
   * `slices` are the training slices the labels lie on (the 2D learner trains on them as separate images).
   */
  fit(train: TrainEntry[], ctx: RunContext): Promise<Predictor>;
}

export interface TrainEntry {
  volume: EvalVolume;
  labels: Uint8Array;
  slices: PlaneRef[];
}

export interface RunContext {
  signal?: AbortSignal;
  /** human label of the current run, e.g. "fold 2/3" */
  label: string;
  log?: (message: string) => void;
}

export interface RunResult {
  label: string;
  trainSlices: number;
  testSlices: number;
  /** score on the held-out slices */
  score: Score;
  /** whole-volume score (dense truth only, leave-one-volume-out) */
  wholeVolume?: Score;
  trainSeconds: number;
  predictSeconds: number;
  /** training iterations, when the learner reports them */
  iterations?: number;
}

export interface ProtocolResult {
  protocol: 'crossval' | 'slice-curve' | 'leave-one-volume-out';
  runs: RunResult[];
  /** all runs' held-out voxels scored together (crossval: the pooled score over every fold) */
  pooled?: Score;
  /** mean over runs of the foreground IoU (classes 2..K) */
  meanForegroundIoU: number | null;
  meanIoU: number | null;
  seconds: number;
}

function check(signal?: AbortSignal) {
  if (signal?.aborted) throw new CancelledError();
}

function mean(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

/**
 * Training labels for one volume: its labels on `train` slices, with every voxel of a `test` slice removed
 * (also where a test slice crosses a training slice), so nothing scored is ever seen in training.
 */
export function trainingLabels(v: EvalVolume, train: PlaneRef[], test: PlaneRef[]): Uint8Array {
  const out = sparseFromSlices(v.labels, v.dims, train);
  if (test.length) {
    const m = sliceMask(v.dims, test);
    for (let i = 0; i < out.length; i++) if (m[i]) out[i] = 0;
  }
  return out;
}

function numClassesOf(vols: EvalVolume[]): number {
  let k = 1;
  for (const v of vols) for (let i = 0; i < v.labels.length; i++) if (v.labels[i]! > k) k = v.labels[i]!;
  return k;
}

/** Trains on `train`, predicts each volume's `test` slices, scores them. */
async function trainAndScore(
  vols: EvalVolume[],
  train: AnnotatedSlice[],
  test: AnnotatedSlice[],
  learner: Learner,
  ctx: RunContext,
  k: number,
  classNames: string[] | undefined,
  extra: { wholeVolume?: boolean } = {},
): Promise<{ result: RunResult; confusion: Confusion }> {
  check(ctx.signal);
  const t0 = Date.now();
  const set = vols
    .map((volume, vi): TrainEntry => {
      const slices = train.filter((s) => s.volume === vi);
      return { volume, slices, labels: trainingLabels(volume, slices, test.filter((s) => s.volume === vi)) };
    })
    .filter((e) => e.labels.some((x) => x > 0));
  ctx.log?.(`${ctx.label}: training on ${train.length} slices of ${set.length} volume(s), ${test.length} held out`);
  const predictor = await learner.fit(set, ctx);
  const trainSeconds = (Date.now() - t0) / 1000;
  const t1 = Date.now();
  const confusion = new Confusion(k);
  const whole = new Confusion(k);
  try {
    for (let vi = 0; vi < vols.length; vi++) {
      const v = vols[vi]!;
      const mine = test.filter((s) => s.volume === vi);
      const wantWhole = extra.wholeVolume && v.dense && mine.length > 0;
      if (!mine.length) continue;
      check(ctx.signal);
      const pred = await predictor.predict(v, wantWhole ? 'all' : mine, ctx);
      confusion.add(pred, v.labels, sliceMask(v.dims, mine));
      if (wantWhole) whole.add(pred, v.labels);
    }
  } finally {
    predictor.dispose();
  }
  const result: RunResult = {
    label: ctx.label,
    trainSlices: train.length,
    testSlices: test.length,
    score: confusion.score(classNames),
    trainSeconds,
    predictSeconds: (Date.now() - t1) / 1000,
    ...(predictor.iterations !== undefined ? { iterations: predictor.iterations } : {}),
  };
  if (extra.wholeVolume && vols.some((v) => v.dense)) result.wholeVolume = whole.score(classNames);
  return { result, confusion };
}

export interface ProtocolOptions {
  signal?: AbortSignal;
  log?: (message: string) => void;
  classNames?: string[];
  /** called after each run (fold / curve point / volume), e.g. to print a table row */
  onRun?: (r: RunResult) => void;
}

/**
 * Semi-automatic k-fold cross-validation (paper Table 1): the annotated slices of all volumes are split
 * evenly into k folds; for each fold a network is trained with that fold's slices removed and scored on them.
 */
export async function crossValidate(vols: EvalVolume[], folds: number, learner: Learner, opts: ProtocolOptions = {}): Promise<ProtocolResult> {
  const t0 = Date.now();
  const all = vols.flatMap((v) => v.slices);
  const split = splitFolds(all, folds);
  const k = numClassesOf(vols);
  const pooled = new Confusion(k);
  const runs: RunResult[] = [];
  for (let f = 0; f < folds; f++) {
    const test = split[f]!;
    const testKeys = new Set(test.map(sliceKey));
    const train = all.filter((s) => !testKeys.has(sliceKey(s)));
    const { result, confusion } = await trainAndScore(vols, train, test, learner, { signal: opts.signal, log: opts.log, label: `fold ${f + 1}/${folds}` }, k, opts.classNames);
    pooled.merge(confusion);
    runs.push(result);
    opts.onRun?.(result);
  }
  return {
    protocol: 'crossval',
    runs,
    pooled: pooled.score(opts.classNames),
    meanForegroundIoU: mean(runs.map((r) => r.score.foregroundIoU)),
    meanIoU: mean(runs.map((r) => r.score.meanIoU)),
    seconds: (Date.now() - t0) / 1000,
  };
}

/**
 * The slice pool of the curve: a volume's annotated slices, or, for a dense ground truth, 2·max(counts)
 * evenly spaced slices per axis (so half the pool is never trained on and scores every point).
 */
export function curvePool(vols: EvalVolume[], counts: number[]): AnnotatedSlice[] {
  const max = Math.max(...counts);
  return vols.flatMap((v, vi) =>
    v.dense ? AXES.flatMap((axis) => evenlySpaced(v.dims[axis], 2 * max).map((index) => ({ volume: vi, axis, index }))) : v.slices,
  );
}

/**
 * IoU versus the number of annotated slices per axis (paper Table 2): for each count n, train on n slices per
 * axis and volume (nested sets) and score on pool slices never used for training at any count.
 */
export async function sliceCurve(vols: EvalVolume[], counts: number[], learner: Learner, opts: ProtocolOptions = {}): Promise<ProtocolResult> {
  const t0 = Date.now();
  const k = numClassesOf(vols);
  const { test, train } = sliceCurveSplit(curvePool(vols, counts), counts);
  if (test.length === 0) throw new RangeError(`no slices left to score: the largest count ${Math.max(...counts)} uses every annotated slice`);
  const runs: RunResult[] = [];
  for (const n of counts) {
    const { result } = await trainAndScore(vols, train.get(n)!, test, learner, { signal: opts.signal, log: opts.log, label: `${n} slice${n === 1 ? '' : 's'} per axis` }, k, opts.classNames);
    runs.push(result);
    opts.onRun?.(result);
  }
  return {
    protocol: 'slice-curve',
    runs,
    meanForegroundIoU: mean(runs.map((r) => r.score.foregroundIoU)),
    meanIoU: mean(runs.map((r) => r.score.meanIoU)),
    seconds: (Date.now() - t0) / 1000,
  };
}

/**
 * Fully automatic leave-one-volume-out (paper Table 3): train on the annotated slices of all volumes but one,
 * segment that one and score its annotated slices (and, for a dense truth, every voxel).
 */
export async function leaveOneVolumeOut(vols: EvalVolume[], learner: Learner, opts: ProtocolOptions = {}): Promise<ProtocolResult> {
  if (vols.length < 2) throw new RangeError('leave-one-volume-out needs at least two volumes');
  const t0 = Date.now();
  const k = numClassesOf(vols);
  const runs: RunResult[] = [];
  for (let vi = 0; vi < vols.length; vi++) {
    const train = vols.flatMap((v, j) => (j === vi ? [] : v.slices));
    const test = vols[vi]!.slices;
    const { result } = await trainAndScore(vols, train, test, learner, { signal: opts.signal, log: opts.log, label: `test ${vols[vi]!.name}` }, k, opts.classNames, {
      wholeVolume: true,
    });
    runs.push(result);
    opts.onRun?.(result);
  }
  return {
    protocol: 'leave-one-volume-out',
    runs,
    meanForegroundIoU: mean(runs.map((r) => r.score.foregroundIoU)),
    meanIoU: mean(runs.map((r) => r.score.meanIoU)),
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Keys of slices, for tests and logs. */
export function describeSlices(slices: AnnotatedSlice[]): string {
  return slices.map(sliceKey).join(' ');
}
