/**
 * Scoring a prediction against labels on a chosen set of voxels: the paper's IoU = TP / (TP + FP + FN) per
 * class, Dice = 2TP / (2TP + FP + FN), on exactly the voxels the protocol scores (held-out annotated slices,
 * or every labelled voxel). Pure.
 */
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
 * A K×K confusion matrix accumulator: rows truth 1..K, columns prediction 0..K (0 = the prediction left a
 * voxel unlabelled; it counts as a miss for the truth class). Voxels whose truth is 0 (unannotated) are
 * never scored; `mask` (non-zero = score) restricts further. Can be fed several volumes, e.g. folds.
 */
export class Confusion {
  readonly k: number;
  /** m[t * (k + 1) + p] */
  readonly m: Float64Array;
  constructor(numClasses: number) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`numClasses must be >= 1, got ${numClasses}`);
    this.k = numClasses;
    this.m = new Float64Array(numClasses * (numClasses + 1));
  }

  add(pred: ArrayLike<number>, truth: ArrayLike<number>, mask?: ArrayLike<number>): this {
    if (pred.length !== truth.length) throw new RangeError(`prediction has ${pred.length} voxels but truth has ${truth.length}`);
    if (mask && mask.length !== truth.length) throw new RangeError(`mask has ${mask.length} voxels but truth has ${truth.length}`);
    const k = this.k;
    const w = k + 1;
    for (let i = 0; i < truth.length; i++) {
      const t = truth[i]!;
      if (t === 0 || (mask && mask[i] === 0)) continue;
      let p = pred[i]!;
      if (t > k) throw new RangeError(`truth class ${t} at voxel ${i} exceeds ${k} classes`);
      if (p > k || p < 0) p = 0;
      this.m[(t - 1) * w + p]!++;
    }
    return this;
  }

  merge(o: Confusion): this {
    if (o.k !== this.k) throw new RangeError('cannot merge confusion matrices of different class counts');
    for (let i = 0; i < this.m.length; i++) this.m[i]! += o.m[i]!;
    return this;
  }

  score(classNames?: string[]): Score {
    const k = this.k;
    const w = k + 1;
    let total = 0;
    let correct = 0;
    const classes: ClassScore[] = [];
    for (let c = 1; c <= k; c++) {
      let truthVoxels = 0;
      let predVoxels = 0;
      for (let p = 0; p <= k; p++) truthVoxels += this.m[(c - 1) * w + p]!;
      for (let t = 1; t <= k; t++) predVoxels += this.m[(t - 1) * w + c]!;
      const tp = this.m[(c - 1) * w + c]!;
      const fp = predVoxels - tp;
      const fn = truthVoxels - tp;
      total += truthVoxels;
      correct += tp;
      const denom = tp + fp + fn;
      classes.push({
        class: c,
        ...(classNames?.[c - 1] ? { name: classNames[c - 1] } : {}),
        tp,
        fp,
        fn,
        truthVoxels,
        predVoxels,
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
