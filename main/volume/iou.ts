/**
 * Intersection over union of label decisions (1..K) against sparse labels (0 = unannotated, skipped): the one
 * held-out score of the trainer's planes, the recipe's self-validation and the calibration's fit. Dense scoring
 * against a ground truth (per-class Dice, masks) is main/evaluation's. Pure.
 */

/** Per-class true positives, false positives and false negatives of decisions against labels. */
export class ClassConfusion {
  readonly tp: Float64Array;
  readonly fp: Float64Array;
  readonly fn: Float64Array;

  constructor(readonly numClasses: number) {
    this.tp = new Float64Array(numClasses + 1);
    this.fp = new Float64Array(numClasses + 1);
    this.fn = new Float64Array(numClasses + 1);
  }

  /** one voxel: its decision and its label (a label 0 is unannotated and not counted) */
  add(pred: number, truth: number): void {
    if (truth === 0) return;
    if (pred === truth) this.tp[truth]!++;
    else {
      this.fp[pred]!++;
      this.fn[truth]!++;
    }
  }

  addAll(pred: ArrayLike<number>, truth: ArrayLike<number>): this {
    if (pred.length !== truth.length)
      throw new RangeError(`decisions (${pred.length}) and labels (${truth.length}) differ in length`);
    for (let i = 0; i < truth.length; i++) this.add(pred[i]!, truth[i]!);
    return this;
  }

  /** IoU of class k, null when the class is neither painted nor predicted on the counted voxels */
  iou(k: number): number | null {
    const d = this.tp[k]! + this.fp[k]! + this.fn[k]!;
    return d > 0 ? this.tp[k]! / d : null;
  }

  /** mean IoU of the foreground classes 2..K (class 1 is the background), over the classes that occur */
  foregroundIoU(): number | null {
    let s = 0;
    let c = 0;
    for (let k = 2; k <= this.numClasses; k++) {
      const v = this.iou(k);
      if (v !== null) {
        s += v;
        c++;
      }
    }
    return c ? s / c : null;
  }
}

/** Mean IoU over the classes 2..K (the foreground classes) of decisions vs labels, on the labelled voxels. */
export function foregroundIoU(pred: ArrayLike<number>, truth: ArrayLike<number>, K: number): number | null {
  return new ClassConfusion(K).addAll(pred, truth).foregroundIoU();
}
