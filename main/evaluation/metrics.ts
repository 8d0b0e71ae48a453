/**
 * Segmentation metrics: per-class IoU (TP / (TP + FP + FN), the paper's definition), Dice, mean IoU.
 * `annotatedOnly` scores only voxels whose truth is labelled (truth 0 = unannotated), as the paper scores
 * held-out annotated slices; `mask` restricts scoring further (e.g. to unannotated voxels of a sparse input).
 * Pure.
 */
export interface ClassScore {
  class: number;
  name?: string;
  iou: number | null;
  dice: number | null;
  tp: number;
  fp: number;
  fn: number;
  truthVoxels: number;
  predVoxels: number;
}

export interface SegmentationScores {
  perClass: ClassScore[];
  /** mean IoU over classes present in truth or prediction */
  meanIoU: number | null;
  meanDice: number | null;
  /** voxels scored */
  voxels: number;
  /** fraction of scored voxels where prediction == truth */
  accuracy: number | null;
}

export interface ScoreOptions {
  numClasses?: number;
  /** ignore voxels whose truth is 0 (default true: 0 never counts as a class) */
  annotatedOnly?: boolean;
  /** score only where mask[i] != 0 */
  mask?: ArrayLike<number>;
  classNames?: string[];
}

export function scoreSegmentation(pred: ArrayLike<number>, truth: ArrayLike<number>, opts: ScoreOptions = {}): SegmentationScores {
  if (pred.length !== truth.length) {
    throw new RangeError(`prediction has ${pred.length} voxels, truth has ${truth.length}`);
  }
  if (opts.mask && opts.mask.length !== truth.length) throw new RangeError(`mask has ${opts.mask.length} voxels, truth has ${truth.length}`);
  let K = opts.numClasses ?? 0;
  if (!opts.numClasses) {
    for (let i = 0; i < truth.length; i++) if (truth[i]! > K) K = truth[i]!;
    for (let i = 0; i < pred.length; i++) if (pred[i]! > K) K = pred[i]!;
  }
  const annotatedOnly = opts.annotatedOnly ?? true;
  const tp = new Float64Array(K + 1);
  const fp = new Float64Array(K + 1);
  const fn = new Float64Array(K + 1);
  const tv = new Float64Array(K + 1);
  const pv = new Float64Array(K + 1);
  let voxels = 0;
  let correct = 0;
  const mask = opts.mask;
  for (let i = 0; i < truth.length; i++) {
    if (mask && mask[i] === 0) continue;
    const t = truth[i]!;
    if (annotatedOnly && t === 0) continue;
    const p = pred[i]!;
    voxels++;
    if (t <= K) tv[t]!++;
    if (p <= K) pv[p]!++;
    if (p === t) {
      correct++;
      if (t <= K) tp[t]!++;
    } else {
      if (p <= K) fp[p]!++;
      if (t <= K) fn[t]!++;
    }
  }
  const perClass: ClassScore[] = [];
  let iouSum = 0;
  let diceSum = 0;
  let n = 0;
  for (let k = 1; k <= K; k++) {
    const denom = tp[k]! + fp[k]! + fn[k]!;
    const iou = denom > 0 ? tp[k]! / denom : null;
    const dd = 2 * tp[k]! + fp[k]! + fn[k]!;
    const dice = dd > 0 ? (2 * tp[k]!) / dd : null;
    if (iou !== null && dice !== null) {
      iouSum += iou;
      diceSum += dice;
      n++;
    }
    perClass.push({
      class: k,
      ...(opts.classNames?.[k - 1] ? { name: opts.classNames[k - 1] } : {}),
      iou,
      dice,
      tp: tp[k]!,
      fp: fp[k]!,
      fn: fn[k]!,
      truthVoxels: tv[k]!,
      predVoxels: pv[k]!,
    });
  }
  return { perClass, meanIoU: n ? iouSum / n : null, meanDice: n ? diceSum / n : null, voxels, accuracy: voxels ? correct / voxels : null };
}

/** IoU of one class (k) over the voxels selected by `mask` (all when absent); null when the class is absent. */
export function classIoU(pred: ArrayLike<number>, truth: ArrayLike<number>, k: number, mask?: ArrayLike<number>): number | null {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < truth.length; i++) {
    if (mask && mask[i] === 0) continue;
    const p = pred[i] === k;
    const t = truth[i] === k;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
  }
  const d = tp + fp + fn;
  return d ? tp / d : null;
}
