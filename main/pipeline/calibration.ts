/**
 * Calibrated decisions. The class weights of the loss (rare classes weigh more) bias the network's
 * probabilities towards the rare classes; a plain argmax turns that bias into false positives (rare foreground
 * over-segmented). The decision instead takes argmax_k w_k p_k with per-class weights w fitted on the annotated
 * voxels: 'fraction' chooses w so that the predicted class fractions on the annotated voxels equal the painted
 * fractions there. Any K (iterative proportional fitting; exact quantile cut for K = 2). Pure.
 */
import { decideInto } from '../volume/predict.js';
import { foregroundIoU } from '../volume/iou.js';

export interface Calibration {
  mode: CalibrationMode;
  /** decision weights w_k, index k-1 = class k (all 1 = plain argmax) */
  weights: number[];
  /** annotated voxels the fit used */
  voxels: number;
  /** painted class fractions on those voxels (index k-1 = class k) */
  paintedFractions: number[];
  /** predicted fractions there with a plain argmax, and with the fitted weights */
  predictedFractionsArgmax: number[];
  predictedFractions: number[];
}

/**
 * 'iou': the weights that maximise the mean IoU of the foreground classes (2..K) on these voxels — meant for
 * held-out paint; a plain argmax (all 1) is among the candidates and wins ties, so on the fitting voxels the
 * decision is never worse than the argmax. 'fraction': the predicted class fractions equal the painted ones.
 */
export type CalibrationMode = 'iou' | 'fraction' | 'none';

/** Mean foreground IoU (classes 2..K) of argmax_k w_k p_k against labels. */
function meanFgIoU(
  p: Float32Array,
  labels: ArrayLike<number>,
  n: number,
  K: number,
  w: ArrayLike<number>,
): number {
  const dec = new Uint8Array(n);
  decideInto(p, n, K, w, dec);
  return foregroundIoU(dec, labels, K) ?? 0;
}

function fitIoU(p: Float32Array, labels: ArrayLike<number>, n: number, K: number): number[] {
  const w = new Array<number>(K).fill(1);
  let best = meanFgIoU(p, labels, n, K, w);
  // log-weight grid for each foreground class in turn (class 1 stays the reference), three rounds
  const steps: number[] = [];
  for (let e = -2; e <= 2.0001; e += 0.1) steps.push(Math.exp(e));
  for (let round = 0; round < (K === 2 ? 1 : 3); round++) {
    for (let k = 1; k < K; k++) {
      const keep = w[k]!;
      let bk = keep;
      for (const m of steps) {
        w[k] = m;
        const v = meanFgIoU(p, labels, n, K, w);
        // a different weight must win clearly (0.002) over the argmax-like current one
        if (v > best + 0.002) {
          best = v;
          bk = m;
        }
      }
      w[k] = bk;
    }
  }
  return w;
}

/** Most extreme weight ratio the fit may choose (a guard against a degenerate fit on few voxels). */
const MAX_RATIO = 50;

/** Class fractions of argmax_k w_k p_k over n voxels (p is class-planar: p[k * n + i]). */
export function predictedFractions(p: Float32Array, n: number, K: number, w: ArrayLike<number>): number[] {
  const counts = new Array<number>(K + 1).fill(0);
  decideInto(p, n, K, w, new Uint8Array(n), counts);
  return counts.slice(1).map((v) => v / Math.max(1, n));
}

/**
 * Fits decision weights on probabilities `p` (class-planar, K x n) of n annotated voxels with labels 1..K.
 * With mode 'none', or fewer than 50 voxels, or a class missing from the paint, the weights stay 1.
 */
export function fitCalibration(
  p: Float32Array,
  labels: ArrayLike<number>,
  K: number,
  mode: CalibrationMode = 'fraction',
): Calibration {
  const n = labels.length;
  if (p.length !== K * n)
    throw new RangeError(`calibration: ${p.length} probabilities for ${n} voxels and ${K} classes`);
  const counts = new Float64Array(K);
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (l >= 1 && l <= K) counts[l - 1]!++;
  }
  const painted = Array.from(counts, (c) => c / Math.max(1, n));
  const ones = new Array<number>(K).fill(1);
  const before = predictedFractions(p, n, K, ones);
  const base: Calibration = {
    mode: 'none',
    weights: ones,
    voxels: n,
    paintedFractions: painted,
    predictedFractionsArgmax: before,
    predictedFractions: before,
  };
  if (mode === 'none' || n < 50 || painted.filter((f) => f > 0).length < 2) return base;
  let w: number[];
  if (mode === 'iou') w = fitIoU(p, labels, n, K);
  else if (K === 2) {
    // exact: a cut on the probability ratio r = p2 / p1 such that the share above it is the painted share of 2
    const r = new Float64Array(n);
    for (let i = 0; i < n; i++) r[i] = p[n + i]! / Math.max(1e-12, p[i]!);
    const sorted = Float64Array.from(r).sort();
    const m = Math.round(painted[1]! * n); // voxels that should be class 2
    let cut: number;
    if (m <= 0) cut = sorted[n - 1]! * 1.0001;
    else if (m >= n) cut = sorted[0]! * 0.9999;
    else cut = Math.sqrt(Math.max(1e-12, sorted[n - m - 1]!) * Math.max(1e-12, sorted[n - m]!));
    // class 2 wins when w2 p2 > w1 p1, i.e. r > w1 / w2 = cut
    const c = Math.min(MAX_RATIO, Math.max(1 / MAX_RATIO, cut));
    w = [Math.sqrt(c), 1 / Math.sqrt(c)];
  } else {
    // iterative proportional fitting of the decision fractions
    w = ones.slice();
    for (let it = 0; it < 60; it++) {
      const f = predictedFractions(p, n, K, w);
      let moved = 0;
      for (let k = 0; k < K; k++) {
        if (painted[k]! <= 0) continue;
        const g = Math.pow((painted[k]! + 1e-4) / (f[k]! + 1e-4), 0.5);
        w[k]! *= g;
        moved = Math.max(moved, Math.abs(Math.log(g)));
      }
      const gm = Math.exp(w.reduce((a, v) => a + Math.log(v), 0) / K);
      for (let k = 0; k < K; k++) w[k] = Math.min(MAX_RATIO, Math.max(1 / MAX_RATIO, w[k]! / gm));
      if (moved < 1e-3) break;
    }
  }
  return {
    mode,
    weights: w,
    voxels: n,
    paintedFractions: painted,
    predictedFractionsArgmax: before,
    predictedFractions: predictedFractions(p, n, K, w),
  };
}
