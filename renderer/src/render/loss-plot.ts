/**
 * The training panel's loss plot and progress line: loss on a log axis against the iteration, with labelled
 * axes, and the text the panel shows for one progress event. Pure helpers (ticks, text) are exported for the
 * unit test (test/unit/ui-live.test.ts); drawing needs a canvas.
 */
import type { TrainProgress } from '../../../main/common/api.js';

export interface LossPoint {
  iteration: number;
  loss: number;
}

/**
 * Decade ticks of a log axis over [lo, hi] (loss values, > 0): 1e-3, 1e-2, … inside the range; when the
 * range spans less than one decade, the 1-2-5 steps inside it, and at least the two ends.
 */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0) || !(hi > 0) || !Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(Number(v.toPrecision(3)));
    }
  }
  const decades = out.filter((v) => Number.isInteger(Math.log10(v)) || Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9);
  if (decades.length >= 2) return decades;
  if (out.length >= 2) return out;
  return lo === hi ? [Number(lo.toPrecision(3))] : [Number(lo.toPrecision(3)), Number(hi.toPrecision(3))];
}

/** "Nice" linear ticks 0..max (1, 2 or 5 times a power of ten apart), at most about `count` of them. */
export function linearTicks(min: number, max: number, count = 4): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max <= min) return [min];
  const raw = (max - min) / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

/** a tick label: 0.05, 0.5, 2, 1e-3 */
export function tickLabel(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-2) return v.toExponential(0).replace('e+', 'e');
  if (Math.abs(v) >= 1000) return `${Math.round(v / 100) / 10}k`;
  return String(Number(v.toPrecision(2)));
}

/**
 * The progress line for one event. A session that has not finished a step yet (iteration 0, or a loss that
 * is not a number) says "starting…", never "iteration 0 · loss NaN". A continued session counts iterations
 * from where its model stopped.
 */
export function progressText(p: TrainProgress): string {
  const rate = Number.isFinite(p.voxelsPerSecond) && p.voxelsPerSecond > 0 ? ` · ${Math.round(p.voxelsPerSecond).toLocaleString()} voxels/s` : '';
  const from = p.startIteration ? ` (continued from ${p.startIteration})` : '';
  if (!(p.iteration > 0) || !Number.isFinite(p.loss) || (p.startIteration !== undefined && p.iteration <= p.startIteration && !Number.isFinite(p.loss)))
    return `starting…${from}`;
  return `iteration ${p.iteration}${p.totalIterations ? ` / ${p.totalIterations}` : ''} · loss ${p.loss.toFixed(4)}${rate}${from}`;
}

const PAD = { left: 34, right: 6, top: 14, bottom: 18 };

/**
 * Loss (log axis, left) against iteration (bottom), the newest point on the right; the axes carry ticks and
 * the labels "loss" and "iteration"; the latest loss is written top right. An empty plot says what it waits for.
 */
export function drawLossPlot(canvas: HTMLCanvasElement, points: LossPoint[], waiting = 'loss appears after the first steps'): void {
  const g = canvas.getContext('2d');
  if (!g) return;
  const { width: w, height: h } = canvas;
  g.clearRect(0, 0, w, h);
  g.fillStyle = '#14161c';
  g.fillRect(0, 0, w, h);
  g.font = '9px sans-serif';
  const pts = points.filter((p) => Number.isFinite(p.loss) && p.loss > 0 && Number.isFinite(p.iteration));
  const x0 = PAD.left;
  const x1 = w - PAD.right;
  const y0 = h - PAD.bottom;
  const y1 = PAD.top;
  // axes
  g.strokeStyle = '#4b5566';
  g.lineWidth = 1;
  g.beginPath();
  g.moveTo(x0 + 0.5, y1);
  g.lineTo(x0 + 0.5, y0 + 0.5);
  g.lineTo(x1, y0 + 0.5);
  g.stroke();
  g.fillStyle = '#9aa3b2';
  g.textAlign = 'right';
  g.fillText('iteration', x1, h - 2);
  g.textAlign = 'left';
  g.fillText('loss (log)', 2, 9);
  if (pts.length === 0) {
    g.textAlign = 'center';
    g.fillText(waiting, (x0 + x1) / 2, (y0 + y1) / 2 + 3);
    g.textAlign = 'left';
    return;
  }
  const lo = Math.min(...pts.map((p) => p.loss));
  const hi = Math.max(...pts.map((p) => p.loss));
  const llo = Math.log10(lo);
  const lhi = Math.log10(hi);
  const lspan = lhi - llo || 1;
  const ilo = pts[0].iteration;
  const ihi = pts[pts.length - 1].iteration;
  const ispan = ihi - ilo || 1;
  const X = (it: number) => (pts.length === 1 ? (x0 + x1) / 2 : x0 + ((it - ilo) / ispan) * (x1 - x0 - 2) + 2);
  const Y = (l: number) => (lhi === llo ? (y0 + y1) / 2 : y0 - ((Math.log10(l) - llo) / lspan) * (y0 - y1));
  // y ticks
  g.textAlign = 'right';
  for (const t of logTicks(lo, hi)) {
    const y = Y(t);
    g.fillStyle = '#2a2f3a';
    g.fillRect(x0 + 1, Math.round(y), x1 - x0 - 1, 1);
    g.fillStyle = '#9aa3b2';
    g.fillText(tickLabel(t), x0 - 3, y + 3);
  }
  // x ticks
  g.textAlign = 'center';
  for (const t of linearTicks(ilo, ihi, 4)) {
    const x = X(t);
    g.fillStyle = '#4b5566';
    g.fillRect(Math.round(x), y0, 1, 3);
    g.fillStyle = '#9aa3b2';
    if (x < x1 - 30) g.fillText(tickLabel(t), x, y0 + 11);
  }
  g.strokeStyle = '#f97316';
  g.lineWidth = 1.5;
  g.beginPath();
  pts.forEach((p, i) => {
    if (i === 0) g.moveTo(X(p.iteration), Y(p.loss));
    else g.lineTo(X(p.iteration), Y(p.loss));
  });
  g.stroke();
  g.fillStyle = '#d7dce5';
  g.textAlign = 'right';
  g.fillText(`loss ${pts[pts.length - 1].loss.toPrecision(3)} @ ${pts[pts.length - 1].iteration}`, x1, 9);
  g.textAlign = 'left';
}
