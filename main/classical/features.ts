/**
 * Multiscale voxel features for the classical learner: the same stack as scikit-image 0.19's
 * `feature.multiscale_basic_features(intensity=True, edges=True, texture=True, sigma_min, sigma_max)` on a
 * single-channel float volume, so our forest can be compared with (and stand in for) the random-forest anchor
 * of issue 18. Pure (no Node): typed arrays in, typed arrays out.
 *
 * For each sigma of skimage's list (sigma_min * 2^i, num_sigma = int(log2(sigma_max) - log2(sigma_min) + 1),
 * so 1, 2, 4, 8 for 1..8), in this order:
 *  - intensity: `filters.gaussian(img, sigma)` = scipy `gaussian_filter(mode='nearest', truncate=4.0)`:
 *    separable kernel exp(-x²/2σ²) normalised, radius int(4σ + 0.5), edge voxels repeated;
 *  - edges: `filters.sobel` of the smoothed volume: per axis the difference [1, 0, -1] along it and the
 *    smoothing [1, 2, 1] / 4 along the others (mode 'reflect', which for a 3-tap kernel is edge repetition),
 *    magnitude sqrt(Σ_axis g²) / sqrt(ndim);
 *  - texture: eigenvalues, largest first, of the Hessian built (skimage 0.19 `_texture_filter`) as
 *    `np.gradient(np.gradient(g)[a], axis=b)` for a ≤ b: central differences, one-sided at the borders.
 * A volume with one plane (Z = 1) is a 2D image, as skimage would see it: ndim 2, sobel over y and x, a 2×2
 * Hessian and two eigenvalues per sigma.
 *
 * Multi-channel volumes: the stack of each channel, concatenated channel by channel (skimage's channel_axis).
 *
 * Our own option (off by default, so the oracle test compares like with like): `anisotropic` gives each axis
 * sigma * (finest spacing / that axis's spacing) voxels, and scales the derivatives to the finest axis's unit,
 * so a scale means the same physical size along z as along x in anisotropic stacks.
 *
 * Layout: feature-planar like a Volume's channels: value of feature f at voxel i = data[f * N + i], voxels x
 * fastest. Every pass runs along contiguous memory (the y and z passes accumulate whole rows / planes), Float64
 * accumulation, Float32 storage like scipy's float32 output.
 */

export interface FeatureDims {
  x: number;
  y: number;
  z: number;
}

export interface FeatureOptions {
  /** default 1 */
  sigmaMin?: number;
  /** default 8 */
  sigmaMax?: number;
  /** default: sigmaMin times powers of 2 up to sigmaMax (skimage's default) */
  numSigma?: number;
  /** Gaussian-smoothed intensity (default true) */
  intensity?: boolean;
  /** Sobel gradient magnitude of the smoothed volume (default true) */
  edges?: boolean;
  /** Hessian eigenvalues of the smoothed volume (default true) */
  texture?: boolean;
  /** kernel radius in sigmas (scipy's truncate, default 4) */
  truncate?: number;
  /**
   * Voxel spacing for anisotropic scales (our improvement, off when absent): sigma per axis in voxels =
   * sigma * min(spacing) / spacing[axis], derivatives per unit of the finest axis.
   */
  spacing?: FeatureDims;
}

export interface FeatureStack {
  /** feature-planar: data[f * N + i], N = x * y * z */
  data: Float32Array;
  /** number of features */
  count: number;
  /** one name per feature, e.g. 'c0 σ2 edges' */
  names: string[];
  dims: FeatureDims;
  /** the sigmas used (isotropic values; per-axis values are these scaled by the spacing when anisotropic) */
  sigmas: number[];
}

/** skimage's list: logspace(log2(min), log2(max), num, base 2). */
export function skimageSigmas(sigmaMin = 1, sigmaMax = 8, numSigma?: number): number[] {
  if (!(sigmaMin > 0 && sigmaMax >= sigmaMin)) throw new RangeError(`need 0 < sigmaMin <= sigmaMax, got ${sigmaMin}, ${sigmaMax}`);
  const n = numSigma ?? Math.floor(Math.log2(sigmaMax) - Math.log2(sigmaMin) + 1);
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`numSigma must be a positive integer, got ${n}`);
  const a = Math.log2(sigmaMin);
  const b = Math.log2(sigmaMax);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.pow(2, n === 1 ? a : a + ((b - a) * i) / (n - 1)));
  return out;
}

/** Number of features per channel for the options and dimensionality. */
export function featuresPerChannel(opts: FeatureOptions, is2d: boolean): number {
  const per = (opts.intensity ?? true ? 1 : 0) + (opts.edges ?? true ? 1 : 0) + (opts.texture ?? true ? (is2d ? 2 : 3) : 0);
  return per * skimageSigmas(opts.sigmaMin ?? 1, opts.sigmaMax ?? 8, opts.numSigma).length;
}

/** scipy.ndimage._gaussian_kernel1d (order 0). */
export function gaussianKernel(sigma: number, truncate = 4): Float64Array {
  const r = Math.floor(truncate * sigma + 0.5);
  const k = new Float64Array(2 * r + 1);
  if (sigma <= 0) {
    k[r] = 1;
    return k;
  }
  let s = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp((-0.5 * i * i) / (sigma * sigma));
    k[i + r] = v;
    s += v;
  }
  for (let i = 0; i < k.length; i++) k[i]! /= s;
  return k;
}

function clampIndex(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/**
 * 1D correlation with `k` along one axis (0 = z, 1 = y, 2 = x), edges repeated ('nearest'). src and dst may not
 * alias. Along x each row is padded once; along y and z whole rows / planes are accumulated (contiguous loops).
 */
export function convolveAxis(src: Float32Array, dst: Float32Array, d: FeatureDims, axis: 0 | 1 | 2, k: Float64Array): void {
  const { x: X, y: Y, z: Z } = d;
  const r = (k.length - 1) >> 1;
  if (axis === 2) {
    const pad = new Float64Array(X + 2 * r);
    for (let row = 0; row < Y * Z; row++) {
      const o = row * X;
      for (let i = 0; i < X + 2 * r; i++) pad[i] = src[o + clampIndex(i - r, X)]!;
      for (let x = 0; x < X; x++) {
        let s = 0;
        for (let t = 0; t < k.length; t++) s += k[t]! * pad[x + t]!;
        dst[o + x] = s;
      }
    }
    return;
  }
  if (axis === 1) {
    const acc = new Float64Array(X);
    for (let z = 0; z < Z; z++) {
      const plane = z * Y * X;
      for (let y = 0; y < Y; y++) {
        acc.fill(0);
        for (let t = 0; t < k.length; t++) {
          const w = k[t]!;
          const o = plane + clampIndex(y + t - r, Y) * X;
          for (let x = 0; x < X; x++) acc[x]! += w * src[o + x]!;
        }
        dst.set(acc, plane + y * X);
      }
    }
    return;
  }
  const P = Y * X;
  const acc = new Float64Array(P);
  for (let z = 0; z < Z; z++) {
    acc.fill(0);
    for (let t = 0; t < k.length; t++) {
      const w = k[t]!;
      const o = clampIndex(z + t - r, Z) * P;
      for (let i = 0; i < P; i++) acc[i]! += w * src[o + i]!;
    }
    dst.set(acc, z * P);
  }
}

/** scipy gaussian_filter(mode='nearest'): axes in order z, y, x (scipy's), each pass rounded to float32. */
export function gaussianFilter(src: Float32Array, d: FeatureDims, sigma: [number, number, number], truncate = 4, scratch?: Float32Array): Float32Array {
  const a = scratch ?? new Float32Array(src.length);
  const b = new Float32Array(src.length);
  let cur = src;
  let useA = true;
  for (const axis of [0, 1, 2] as const) {
    if (sigma[axis] <= 0 || [d.z, d.y, d.x][axis] === 1) continue;
    const out = useA ? a : b;
    convolveAxis(cur, out, d, axis, gaussianKernel(sigma[axis], truncate));
    cur = out;
    useA = !useA;
  }
  if (cur === src) return Float32Array.from(src);
  if (cur === a) {
    b.set(a);
    return b;
  }
  return cur;
}

/** np.gradient along one axis (edge_order 1), float32 like numpy on float32 input; scaled by `scale`. */
export function gradientAxis(src: Float32Array, dst: Float32Array, d: FeatureDims, axis: 0 | 1 | 2, scale = 1): void {
  const { x: X, y: Y, z: Z } = d;
  const n = [Z, Y, X][axis]!;
  const stride = axis === 0 ? Y * X : axis === 1 ? X : 1;
  if (n < 2) {
    dst.fill(0);
    return;
  }
  const outer = (X * Y * Z) / (n * stride);
  for (let o = 0; o < outer; o++)
    for (let p = 0; p < n; p++) {
      const base = (o * n + p) * stride;
      for (let j = 0; j < stride; j++) {
        const i = base + j;
        let g: number;
        if (p === 0) g = Math.fround(src[i + stride]! - src[i]!);
        else if (p === n - 1) g = Math.fround(src[i]! - src[i - stride]!);
        else g = Math.fround(src[i + stride]! - src[i - stride]!) / 2;
        dst[i] = scale === 1 ? g : g * scale;
      }
    }
}

/**
 * skimage.filters.sobel magnitude for a 2D (Z = 1) or 3D volume: per axis the edge kernel [1, 0, -1] along it,
 * [1, 2, 1] / 4 along the others, edges repeated; sqrt(Σ g²) / sqrt(ndim). `scale[axis]` multiplies each axis's
 * derivative (anisotropic option; 1 for skimage).
 */
export function sobelMagnitude(src: Float32Array, d: FeatureDims, scale: [number, number, number] = [1, 1, 1]): Float32Array {
  const N = src.length;
  const axes: (0 | 1 | 2)[] = d.z === 1 ? [1, 2] : [0, 1, 2];
  const edge = Float64Array.of(-1, 0, 1);
  const smooth = Float64Array.of(0.25, 0.5, 0.25);
  const acc = new Float64Array(N);
  const t1 = new Float32Array(N);
  const t2 = new Float32Array(N);
  for (const ea of axes) {
    let cur: Float32Array = src;
    let useT1 = true;
    for (const ax of axes) {
      const out = useT1 ? t1 : t2;
      convolveAxis(cur, out, d, ax, ax === ea ? edge : smooth);
      cur = out;
      useT1 = !useT1;
    }
    const s = scale[ea];
    for (let i = 0; i < N; i++) {
      const g = cur[i]! * s;
      acc[i]! += g * g;
    }
  }
  const out = new Float32Array(N);
  const inv = 1 / Math.sqrt(axes.length);
  for (let i = 0; i < N; i++) out[i] = Math.sqrt(acc[i]!) * inv;
  return out;
}

/**
 * Eigenvalues of the symmetric 3×3 matrices [[a, b, c], [b, d, e], [c, e, f]] per voxel, largest first, into
 * out0 ≥ out1 ≥ out2 (trigonometric closed form in float64).
 */
export function symmetricEigenvalues3(a: Float32Array, b: Float32Array, c: Float32Array, d: Float32Array, e: Float32Array, f: Float32Array, out0: Float32Array, out1: Float32Array, out2: Float32Array): void {
  const N = a.length;
  for (let i = 0; i < N; i++) {
    const a00 = a[i]!, a01 = b[i]!, a02 = c[i]!, a11 = d[i]!, a12 = e[i]!, a22 = f[i]!;
    const p1 = a01 * a01 + a02 * a02 + a12 * a12;
    const q = (a00 + a11 + a22) / 3;
    const b00 = a00 - q, b11 = a11 - q, b22 = a22 - q;
    const p2 = b00 * b00 + b11 * b11 + b22 * b22 + 2 * p1;
    if (p2 <= 0) {
      out0[i] = q;
      out1[i] = q;
      out2[i] = q;
      continue;
    }
    if (p1 === 0) {
      // diagonal: sort
      let x0 = a00, x1 = a11, x2 = a22, t: number;
      if (x0 < x1) { t = x0; x0 = x1; x1 = t; }
      if (x1 < x2) { t = x1; x1 = x2; x2 = t; }
      if (x0 < x1) { t = x0; x0 = x1; x1 = t; }
      out0[i] = x0;
      out1[i] = x1;
      out2[i] = x2;
      continue;
    }
    const p = Math.sqrt(p2 / 6);
    const ip = 1 / p;
    const c00 = b00 * ip, c11 = b11 * ip, c22 = b22 * ip, c01 = a01 * ip, c02 = a02 * ip, c12 = a12 * ip;
    const det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02);
    let r = det / 2;
    if (r < -1) r = -1;
    else if (r > 1) r = 1;
    const phi = Math.acos(r) / 3;
    const e0 = q + 2 * p * Math.cos(phi);
    const e2 = q + 2 * p * Math.cos(phi + (2 * Math.PI) / 3);
    out0[i] = e0;
    out2[i] = e2;
    out1[i] = 3 * q - e0 - e2;
  }
}

/** Eigenvalues of [[a, b], [b, d]], largest first. */
export function symmetricEigenvalues2(a: Float32Array, b: Float32Array, d: Float32Array, out0: Float32Array, out1: Float32Array): void {
  for (let i = 0; i < a.length; i++) {
    const m = (a[i]! + d[i]!) / 2;
    const h = (a[i]! - d[i]!) / 2;
    const r = Math.sqrt(h * h + b[i]! * b[i]!);
    out0[i] = m + r;
    out1[i] = m - r;
  }
}

/** The features of one single-channel volume at one sigma, written into `out` at feature offset `f0`. */
function singleScale(img: Float32Array, d: FeatureDims, sigma: number, o: Required<Pick<FeatureOptions, 'intensity' | 'edges' | 'texture' | 'truncate'>> & { spacing?: FeatureDims }, out: Float32Array, f0: number): number {
  const N = img.length;
  const is2d = d.z === 1;
  let sig: [number, number, number] = [sigma, sigma, sigma];
  let scale: [number, number, number] = [1, 1, 1];
  if (o.spacing) {
    const sp = [o.spacing.z, o.spacing.y, o.spacing.x];
    const used = is2d ? sp.slice(1) : sp;
    const fine = Math.min(...used);
    sig = sp.map((s) => (sigma * fine) / s) as [number, number, number];
    scale = sp.map((s) => fine / s) as [number, number, number];
  }
  const g = gaussianFilter(img, d, sig, o.truncate);
  let f = f0;
  if (o.intensity) out.set(g, f++ * N);
  if (o.edges) out.set(sobelMagnitude(g, d, scale), f++ * N);
  if (o.texture) {
    const axes: (0 | 1 | 2)[] = is2d ? [1, 2] : [0, 1, 2];
    const first = axes.map((a) => {
      const t = new Float32Array(N);
      gradientAxis(g, t, d, a, scale[a]);
      return t;
    });
    const H: Float32Array[] = [];
    for (let i = 0; i < axes.length; i++)
      for (let j = i; j < axes.length; j++) {
        const t = new Float32Array(N);
        gradientAxis(first[i]!, t, d, axes[j]!, scale[axes[j]!]);
        H.push(t);
      }
    const view = (k: number) => out.subarray((f + k) * N, (f + k + 1) * N);
    if (is2d) {
      symmetricEigenvalues2(H[0]!, H[1]!, H[2]!, view(0), view(1));
      f += 2;
    } else {
      symmetricEigenvalues3(H[0]!, H[1]!, H[2]!, H[3]!, H[4]!, H[5]!, view(0), view(1), view(2));
      f += 3;
    }
  }
  return f;
}

/**
 * Feature stack of a channel-planar volume (`data[c * N + i]`, any numeric typed array, values used as they are:
 * "the float image"). `onScale` is called after each (channel, sigma) so a caller can report progress or yield.
 */
export function multiscaleFeatures(data: ArrayLike<number>, dims: FeatureDims, channels = 1, opts: FeatureOptions = {}, onScale?: (done: number, total: number) => void): FeatureStack {
  const { x: X, y: Y, z: Z } = dims;
  const N = X * Y * Z;
  if (![X, Y, Z, channels].every((v) => Number.isInteger(v) && v >= 1)) throw new RangeError(`bad dimensions ${X}×${Y}×${Z}×${channels}`);
  if (data.length !== N * channels) throw new RangeError(`data has ${data.length} values, expected ${N * channels} (${X}×${Y}×${Z}×${channels})`);
  const o = { intensity: opts.intensity ?? true, edges: opts.edges ?? true, texture: opts.texture ?? true, truncate: opts.truncate ?? 4, spacing: opts.spacing };
  if (!o.intensity && !o.edges && !o.texture) throw new RangeError('at least one of intensity, edges, texture must be on');
  if (o.spacing && ![o.spacing.x, o.spacing.y, o.spacing.z].every((s) => s > 0 && Number.isFinite(s))) throw new RangeError(`spacing must be positive, got ${JSON.stringify(o.spacing)}`);
  const sigmas = skimageSigmas(opts.sigmaMin ?? 1, opts.sigmaMax ?? 8, opts.numSigma);
  const is2d = Z === 1;
  const per = featuresPerChannel(opts, is2d);
  const count = per * channels;
  const out = new Float32Array(count * N);
  const names: string[] = [];
  const img = new Float32Array(N);
  let f = 0;
  let done = 0;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < N; i++) img[i] = data[c * N + i]!;
    for (const s of sigmas) {
      const kinds = [...(o.intensity ? ['intensity'] : []), ...(o.edges ? ['edges'] : []), ...(o.texture ? (is2d ? ['hessian0', 'hessian1'] : ['hessian0', 'hessian1', 'hessian2']) : [])];
      for (const k of kinds) names.push(`c${c} σ${+s.toPrecision(4)} ${k}`);
      f = singleScale(img, dims, s, o, out, f);
      onScale?.(++done, channels * sigmas.length);
    }
  }
  return { data: out, count, names, dims: { x: X, y: Y, z: Z }, sigmas };
}
