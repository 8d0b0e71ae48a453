/**
 * Exact Euclidean distance transform in µm (anisotropic spacing), separable (Felzenszwalb & Huttenlocher
 * 2012, lower envelope of parabolas along x, then y, then z), and a separable Gaussian smoothing with sigma
 * in µm. Semantics of scipy.ndimage.distance_transform_edt(mask, sampling=spacing): each voxel inside the
 * mask gets its distance to the nearest voxel outside it; outside the volume counts as nothing (a mask
 * that fills a whole line measures along the other axes only; a mask with no outside at all is Infinity).
 */
import { checkDims, type Dims, type Microns } from './grid.js';

/** 1D squared distance transform of f (sampled at spacing s) into d; v, zc are scratch. */
function dt1d(f: Float64Array, n: number, s: number, d: Float64Array, v: Int32Array, zc: Float64Array): void {
  let k = 0;
  // skip leading infinities: the envelope starts with the first finite sample
  let q0 = 0;
  while (q0 < n && f[q0] === Infinity) q0++;
  if (q0 === n) {
    for (let q = 0; q < n; q++) d[q] = Infinity;
    return;
  }
  v[0] = q0;
  zc[0] = -Infinity;
  zc[1] = Infinity;
  for (let q = q0 + 1; q < n; q++) {
    const fq = f[q]!;
    if (fq === Infinity) continue;
    const pq = q * s;
    let sPos: number;
    for (;;) {
      const r = v[k]!;
      const pr = r * s;
      sPos = (fq + pq * pq - (f[r]! + pr * pr)) / (2 * (pq - pr));
      if (sPos <= zc[k]! && k > 0) k--;
      else break;
    }
    if (sPos <= zc[k]!) {
      // k === 0 and the new parabola dominates everywhere
      v[0] = q;
      zc[0] = -Infinity;
      zc[1] = Infinity;
      continue;
    }
    k++;
    v[k] = q;
    zc[k] = sPos;
    zc[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    const pq = q * s;
    while (zc[k + 1]! < pq) k++;
    const r = v[k]!;
    const dr = pq - r * s;
    d[q] = dr * dr + f[r]!;
  }
}

/** Distance (µm) of every voxel where inside(i) to the nearest voxel where !inside(i); 0 outside. */
export function distanceTransform(inside: ArrayLike<number> | ((i: number) => boolean), d: Dims, spacing: Microns): Float32Array {
  const n = d.x * d.y * d.z;
  const isIn = typeof inside === 'function' ? inside : (i: number) => inside[i]! > 0;
  if (typeof inside !== 'function') checkDims(d, inside.length, 'distanceTransform');
  const g = new Float64Array(n);
  for (let i = 0; i < n; i++) g[i] = isIn(i) ? Infinity : 0;
  const m = Math.max(d.x, d.y, d.z);
  const f = new Float64Array(m);
  const out = new Float64Array(m);
  const v = new Int32Array(m);
  const zc = new Float64Array(m + 1);
  const pass = (len: number, stride: number, s: number, starts: Iterable<number>) => {
    for (const base of starts) {
      for (let q = 0; q < len; q++) f[q] = g[base + q * stride]!;
      dt1d(f, len, s, out, v, zc);
      for (let q = 0; q < len; q++) g[base + q * stride] = out[q]!;
    }
  };
  const X = d.x;
  const XY = d.x * d.y;
  function* linesX() {
    for (let z = 0; z < d.z; z++) for (let y = 0; y < d.y; y++) yield z * XY + y * X;
  }
  function* linesY() {
    for (let z = 0; z < d.z; z++) for (let x = 0; x < X; x++) yield z * XY + x;
  }
  function* linesZ() {
    for (let y = 0; y < d.y; y++) for (let x = 0; x < X; x++) yield y * X + x;
  }
  pass(d.x, 1, spacing.x, linesX());
  pass(d.y, X, spacing.y, linesY());
  pass(d.z, XY, spacing.z, linesZ());
  const res = new Float32Array(n);
  for (let i = 0; i < n; i++) res[i] = Math.sqrt(g[i]!);
  return res;
}

/** Separable Gaussian smoothing, sigma in µm per axis (0 = none on that axis), mirror ('reflect') borders. */
export function gaussianSmooth(src: ArrayLike<number>, d: Dims, spacing: Microns, sigmaUm: number, truncate = 3): Float32Array {
  checkDims(d, src.length, 'gaussianSmooth');
  let cur = Float32Array.from(src as ArrayLike<number>);
  if (!(sigmaUm > 0)) return cur;
  const X = d.x;
  const XY = d.x * d.y;
  const axes: { len: number; stride: number; s: number; lines: () => Generator<number> }[] = [
    { len: d.x, stride: 1, s: spacing.x, lines: function* () { for (let z = 0; z < d.z; z++) for (let y = 0; y < d.y; y++) yield z * XY + y * X; } },
    { len: d.y, stride: X, s: spacing.y, lines: function* () { for (let z = 0; z < d.z; z++) for (let x = 0; x < X; x++) yield z * XY + x; } },
    { len: d.z, stride: XY, s: spacing.z, lines: function* () { for (let y = 0; y < d.y; y++) for (let x = 0; x < X; x++) yield y * X + x; } },
  ];
  const buf = new Float64Array(Math.max(d.x, d.y, d.z));
  for (const a of axes) {
    const sig = sigmaUm / a.s;
    if (sig < 0.05 || a.len === 1) continue;
    const r = Math.max(1, Math.floor(truncate * sig + 0.5)); // scipy.ndimage: int(truncate * sigma + 0.5)
    const w = new Float64Array(2 * r + 1);
    let sum = 0;
    for (let k = -r; k <= r; k++) sum += w[k + r] = Math.exp((-0.5 * k * k) / (sig * sig));
    for (let k = 0; k < w.length; k++) w[k]! /= sum;
    const next = new Float32Array(cur.length);
    const L = a.len;
    const refl = (q: number) => {
      // scipy 'reflect': (d c b a | a b c d | d c b a)
      const period = 2 * L;
      let m = ((q % period) + period) % period;
      if (m >= L) m = period - 1 - m;
      return m;
    };
    for (const base of a.lines()) {
      for (let q = 0; q < L; q++) buf[q] = cur[base + q * a.stride]!;
      for (let q = 0; q < L; q++) {
        let acc = 0;
        for (let k = -r; k <= r; k++) {
          const qq = q + k;
          acc += w[k + r]! * buf[qq >= 0 && qq < L ? qq : refl(qq)]!;
        }
        next[base + q * a.stride] = acc;
      }
    }
    cur = next;
  }
  return cur;
}
