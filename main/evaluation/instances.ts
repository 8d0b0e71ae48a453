/**
 * Instance segmentation scores, the StarDist / Cellpose convention: a predicted object matches a true one when
 * their IoU is at least the threshold t (for t >= 0.5 a match is necessarily unique; pairs are still taken
 * greedily by decreasing IoU so that it holds at exactly 0.5), then
 *   AP(t) = TP / (TP + FP + FN)   ("average precision" as StarDist and Cellpose report it),
 * with precision TP / (TP + FP), recall TP / (TP + FN), F1, and the object count error (pred − true) / true.
 * Id 0 is background in both volumes; ids need not be consecutive.
 */
export interface InstanceThresholdScore {
  threshold: number;
  tp: number;
  fp: number;
  fn: number;
  ap: number;
  precision: number;
  recall: number;
  f1: number;
  /** mean IoU of the matched pairs */
  meanMatchedIoU: number;
}

export interface InstanceScore {
  predObjects: number;
  trueObjects: number;
  countError: number;
  relativeCountError: number;
  thresholds: InstanceThresholdScore[];
}

export function scoreInstances(pred: ArrayLike<number>, truth: ArrayLike<number>, thresholds: number[] = [0.5, 0.75]): InstanceScore {
  if (pred.length !== truth.length) throw new RangeError(`pred has ${pred.length} voxels, truth ${truth.length}`);
  const psize = new Map<number, number>();
  const tsize = new Map<number, number>();
  const inter = new Map<number, Map<number, number>>();
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i]!;
    const t = truth[i]!;
    if (p) psize.set(p, (psize.get(p) ?? 0) + 1);
    if (t) tsize.set(t, (tsize.get(t) ?? 0) + 1);
    if (p && t) {
      let m = inter.get(p);
      if (!m) inter.set(p, (m = new Map()));
      m.set(t, (m.get(t) ?? 0) + 1);
    }
  }
  const pairs: { p: number; t: number; iou: number }[] = [];
  for (const [p, m] of inter) {
    for (const [t, n] of m) pairs.push({ p, t, iou: n / (psize.get(p)! + tsize.get(t)! - n) });
  }
  pairs.sort((a, b) => b.iou - a.iou || a.p - b.p || a.t - b.t);
  const np = psize.size;
  const nt = tsize.size;
  const out: InstanceThresholdScore[] = thresholds.map((th) => {
    const usedP = new Set<number>();
    const usedT = new Set<number>();
    let sumIoU = 0;
    for (const q of pairs) {
      if (q.iou < th) break;
      if (usedP.has(q.p) || usedT.has(q.t)) continue;
      usedP.add(q.p);
      usedT.add(q.t);
      sumIoU += q.iou;
    }
    const tp = usedP.size;
    const fp = np - tp;
    const fn = nt - tp;
    const div = (a: number, b: number) => (b > 0 ? a / b : 0);
    return {
      threshold: th,
      tp,
      fp,
      fn,
      ap: div(tp, tp + fp + fn),
      precision: div(tp, tp + fp),
      recall: div(tp, tp + fn),
      f1: div(2 * tp, 2 * tp + fp + fn),
      meanMatchedIoU: div(sumIoU, tp),
    };
  });
  return { predObjects: np, trueObjects: nt, countError: np - nt, relativeCountError: nt ? (np - nt) / nt : 0, thresholds: out };
}
