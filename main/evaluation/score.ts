/**
 * Scoring a prediction against labels on a chosen set of voxels: the paper's IoU = TP / (TP + FP + FN) per
 * class, Dice = 2TP / (2TP + FP + FN), on exactly the voxels the protocol scores (held-out annotated slices,
 * or every labelled voxel), pooled over volumes and folds. Counting is ./metrics.ts's; this adds pooling and
 * the foreground mean. Pure.
 */
import { scoreSegmentation } from './metrics.js';

export interface ClassScore {
  class: number;
  name?: string;
  tp: number;
  fp: number;
  fn: number;
  /** scored voxels whose truth is this class */
  truthVoxels: number;
  /** scored voxels predicted as this class */
  predVoxels: number;
  /** null when the class occurs in neither truth nor prediction on the scored voxels */
  iou: number | null;
  dice: number | null;
}

export interface Score {
  /** voxels that were scored */
  voxels: number;
  classes: ClassScore[];
  /** mean IoU over classes that occur (iou !== null) */
  meanIoU: number | null;
  meanDice: number | null;
  /** mean IoU over classes 2..K (the foreground classes; class 1 = background), the figure the paper quotes */
  foregroundIoU: number | null;
  /** fraction of scored voxels predicted correctly */
  accuracy: number | null;
}

/**
 * Per-class TP/FP/FN accumulated over several volumes or folds (so a protocol can pool all held-out voxels),
 * each volume counted by `scoreSegmentation` (./metrics.ts). Voxels whose truth is 0 (unannotated) are never
 * scored; `mask` (non-zero = score) restricts further. A prediction of 0 or above K counts as a miss.
 */
export class Confusion {
  readonly k: number;
  /** per class 1..K (index 0 unused): tp, fp, fn, truth voxels, predicted voxels */
  private readonly tp: Float64Array;
  private readonly fp: Float64Array;
  private readonly fn: Float64Array;
  private readonly tv: Float64Array;
  private readonly pv: Float64Array;
  constructor(numClasses: number) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`numClasses must be >= 1, got ${numClasses}`);
    this.k = numClasses;
    this.tp = new Float64Array(numClasses + 1);
    this.fp = new Float64Array(numClasses + 1);
    this.fn = new Float64Array(numClasses + 1);
    this.tv = new Float64Array(numClasses + 1);
    this.pv = new Float64Array(numClasses + 1);
  }

  add(pred: ArrayLike<number>, truth: ArrayLike<number>, mask?: ArrayLike<number>): this {
    for (let i = 0; i < truth.length; i++) {
      if (truth[i]! > this.k) throw new RangeError(`truth class ${truth[i]} at voxel ${i} exceeds ${this.k} classes`);
    }
    const s = scoreSegmentation(pred, truth, { numClasses: this.k, annotatedOnly: true, mask });
    for (const c of s.perClass) {
      this.tp[c.class]! += c.tp;
      this.fp[c.class]! += c.fp;
      this.fn[c.class]! += c.fn;
      this.tv[c.class]! += c.truthVoxels;
      this.pv[c.class]! += c.predVoxels;
    }
    return this;
  }

  merge(o: Confusion): this {
    if (o.k !== this.k) throw new RangeError('cannot merge confusion matrices of different class counts');
    for (let c = 1; c <= this.k; c++) {
      this.tp[c]! += o.tp[c]!;
      this.fp[c]! += o.fp[c]!;
      this.fn[c]! += o.fn[c]!;
      this.tv[c]! += o.tv[c]!;
      this.pv[c]! += o.pv[c]!;
    }
    return this;
  }

  score(classNames?: string[]): Score {
    let total = 0;
    let correct = 0;
    const classes: ClassScore[] = [];
    for (let c = 1; c <= this.k; c++) {
      const tp = this.tp[c]!;
      const fp = this.fp[c]!;
      const fn = this.fn[c]!;
      total += this.tv[c]!;
      correct += tp;
      const denom = tp + fp + fn;
      classes.push({
        class: c,
        ...(classNames?.[c - 1] ? { name: classNames[c - 1] } : {}),
        tp,
        fp,
        fn,
        truthVoxels: this.tv[c]!,
        predVoxels: this.pv[c]!,
        iou: denom > 0 ? tp / denom : null,
        dice: denom > 0 ? (2 * tp) / (2 * tp + fp + fn) : null,
      });
    }
    const mean = (xs: (number | null)[]) => {
      const v = xs.filter((x): x is number => x !== null);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    };
    return {
      voxels: total,
      classes,
      meanIoU: mean(classes.map((c) => c.iou)),
      meanDice: mean(classes.map((c) => c.dice)),
      foregroundIoU: mean(classes.slice(1).map((c) => c.iou)),
      accuracy: total > 0 ? correct / total : null,
    };
  }
}

export function scoreLabels(
  pred: ArrayLike<number>,
  truth: ArrayLike<number>,
  opts: { numClasses?: number; mask?: ArrayLike<number>; classNames?: string[] } = {},
): Score {
  let k = opts.numClasses ?? 0;
  if (!k) {
    for (let i = 0; i < truth.length; i++) if (truth[i]! > k) k = truth[i]!;
    for (let i = 0; i < pred.length; i++) if (pred[i]! > k) k = pred[i]!;
  }
  return new Confusion(Math.max(1, k)).add(pred, truth, opts.mask).score(opts.classNames);
}
