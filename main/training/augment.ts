/**
 * On-the-fly augmentation: one geometric transform applied to image (trilinear) and labels (nearest),
 * the paper's smooth dense deformation, and per-channel gray-value changes. Pure functions over typed
 * arrays, so the same code runs in the augmentation worker and in tests.
 *
 * Coordinates are [z, y, x] voxel indices. A sample maps every voxel p of the input tile to a source
 * position  s(p) = pivotVol + M (p - pivotTile) + d(p)  in the volume, where M holds rotation, scaling and
 * flips (built in physical units, so rotations are true rotations for anisotropic voxels) and d is the dense
 * elastic displacement. Sources outside the volume are mirrored (the same mirror padding as inference).
 */
import type { Rng } from './rng.js';
import { mirrorIndex } from '../volume/mirror.js';

export type Vec3 = [number, number, number];
/** row-major 3x3, acting on [z, y, x] column vectors */
export type Mat3 = [number, number, number, number, number, number, number, number, number];

export const IDENTITY3: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];

/** A normalised training volume held by the sampler / worker. */
export interface TrainVolumeData {
  /** [z, y, x] */
  shape: Vec3;
  channels: number;
  /** normalised image, channel-planar, x fastest (c*Z*Y*X) */
  image: Float32Array;
  /** 0 = unannotated, 1..K = class; Z*Y*X */
  labels: Uint8Array | Uint16Array;
}

export interface ElasticSpec {
  seed: number;
  /** control-grid spacing in voxels (paper: 32) */
  grid: number;
  /** standard deviation of the control vectors in voxels (paper: 4) */
  sigma: number;
  /** displacement component forced to 0 (the normal of a thin tile's annotated plane) */
  freezeAxis?: 0 | 1 | 2;
}

export interface GraySpec {
  /** per channel: u -> sign(u)|u|^gamma on the [0,1]-scaled image, then v*contrast + brightness */
  gamma: number[];
  contrast: number[];
  brightness: number[];
}

export interface SampleSpec {
  volume: number;
  inShape: Vec3;
  outShape: Vec3;
  /** pivot in volume voxel coordinates */
  pivotVol: Vec3;
  /** pivot in input-tile voxel coordinates */
  pivotTile: Vec3;
  matrix: Mat3;
  elastic?: ElasticSpec;
  gray?: GraySpec;
}

export interface Sample {
  /** C*D*H*W */
  input: Float32Array;
  /** D'*H'*W' labels at the output shape */
  labels: Uint8Array;
}

/**
 * Interpolating cubic B-spline displacement field: random vectors ~ N(0, sigma²) on a control grid with
 * `grid` voxel spacing (knots at -grid, 0, grid, 2grid, … relative to the tile origin), coefficients
 * prefiltered so that the field passes exactly through the control vectors, evaluated separably.
 * Returns three D*H*W arrays (dz, dy, dx).
 */
export function elasticField(shape: Vec3, spec: ElasticSpec, rng: Rng): [Float32Array, Float32Array, Float32Array] {
  const [D, H, W] = shape;
  const nk = shape.map((s) => Math.ceil(Math.max(s - 1, 1) / spec.grid) + 3) as Vec3;
  const n = nk[0] * nk[1] * nk[2];
  const out: Float32Array[] = [];
  for (let comp = 0; comp < 3; comp++) {
    const c = new Float64Array(n);
    const frozen = spec.freezeAxis === comp;
    for (let i = 0; i < n; i++) c[i] = frozen ? 0 : rng.normal() * spec.sigma;
    if (frozen) {
      out.push(new Float32Array(D * H * W));
      continue;
    }
    prefilter(c, nk);
    out.push(evalSpline(c, nk, shape, spec.grid));
  }
  return out as [Float32Array, Float32Array, Float32Array];
}

/** Solves the interpolation system (1/6, 4/6, 1/6) along each axis, mirror boundaries (c[-1] = c[1]). */
function prefilter(c: Float64Array, nk: Vec3): void {
  const [nz, ny, nx] = nk;
  const strides: Vec3 = [ny * nx, nx, 1];
  for (let axis = 0; axis < 3; axis++) {
    const len = nk[axis];
    const stride = strides[axis];
    const line = new Float64Array(len);
    const others = [0, 1, 2].filter((a) => a !== axis);
    const [a0, a1] = others as [number, number];
    for (let i = 0; i < nk[a0]; i++) {
      for (let j = 0; j < nk[a1]; j++) {
        const base = i * strides[a0] + j * strides[a1];
        for (let k = 0; k < len; k++) line[k] = c[base + k * stride]!;
        solveBspline(line);
        for (let k = 0; k < len; k++) c[base + k * stride] = line[k]!;
      }
    }
  }
  void nz;
  void ny;
}

/** In place: coefficients c with (c[k-1] + 4c[k] + c[k+1])/6 = v[k], c[-1]=c[1], c[n]=c[n-2]. */
function solveBspline(v: Float64Array): void {
  const n = v.length;
  if (n === 1) return;
  // tridiagonal: row0: 4/6 c0 + 2/6 c1; row n-1: 2/6 c[n-2] + 4/6 c[n-1]; interior 1/6 4/6 1/6
  const a = new Float64Array(n); // sub
  const b = new Float64Array(n); // diag
  const cc = new Float64Array(n); // super
  for (let i = 0; i < n; i++) {
    a[i] = 1 / 6;
    b[i] = 4 / 6;
    cc[i] = 1 / 6;
  }
  cc[0] = 2 / 6;
  a[n - 1] = 2 / 6;
  // Thomas algorithm
  const cp = new Float64Array(n);
  const dp = new Float64Array(n);
  cp[0] = cc[0]! / b[0]!;
  dp[0] = v[0]! / b[0]!;
  for (let i = 1; i < n; i++) {
    const m = b[i]! - a[i]! * cp[i - 1]!;
    cp[i] = cc[i]! / m;
    dp[i] = (v[i]! - a[i]! * dp[i - 1]!) / m;
  }
  v[n - 1] = dp[n - 1]!;
  for (let i = n - 2; i >= 0; i--) v[i] = dp[i]! - cp[i]! * v[i + 1]!;
}

/** For each position along an axis: knot index (into the coefficient array) and the four weights. */
function splineWeights(size: number, grid: number): { idx: Int32Array; w: Float64Array } {
  const idx = new Int32Array(size);
  const w = new Float64Array(size * 4);
  for (let t = 0; t < size; t++) {
    const u = t / grid + 1; // knot k sits at (k-1)*grid
    const i = Math.floor(u);
    const f = u - i;
    idx[t] = i;
    w[4 * t] = ((1 - f) ** 3) / 6;
    w[4 * t + 1] = (3 * f ** 3 - 6 * f ** 2 + 4) / 6;
    w[4 * t + 2] = (-3 * f ** 3 + 3 * f ** 2 + 3 * f + 1) / 6;
    w[4 * t + 3] = f ** 3 / 6;
  }
  return { idx, w };
}

function evalSpline(c: Float64Array, nk: Vec3, shape: Vec3, grid: number): Float32Array {
  const [nz, ny, nx] = nk;
  const [D, H, W] = shape;
  // coefficient at knot k, with mirror ends: k = -1 -> 1, k = n -> n-2
  const at = (k: number, n: number) => (k < 0 ? 1 : k >= n ? n - 2 : k);
  const wx = splineWeights(W, grid);
  const wy = splineWeights(H, grid);
  const wz = splineWeights(D, grid);
  // along x: tx[kz][ky][x]
  const tx = new Float64Array(nz * ny * W);
  for (let kz = 0; kz < nz; kz++) {
    for (let ky = 0; ky < ny; ky++) {
      const base = (kz * ny + ky) * nx;
      const ob = (kz * ny + ky) * W;
      for (let x = 0; x < W; x++) {
        const i = wx.idx[x]!;
        let s = 0;
        for (let m = 0; m < 4; m++) s += wx.w[4 * x + m]! * c[base + at(i - 1 + m, nx)]!;
        tx[ob + x] = s;
      }
    }
  }
  // along y: ty[kz][y][x]
  const ty = new Float64Array(nz * H * W);
  for (let kz = 0; kz < nz; kz++) {
    for (let y = 0; y < H; y++) {
      const i = wy.idx[y]!;
      const ob = (kz * H + y) * W;
      for (let m = 0; m < 4; m++) {
        const wm = wy.w[4 * y + m]!;
        const ib = (kz * ny + at(i - 1 + m, ny)) * W;
        for (let x = 0; x < W; x++) ty[ob + x] += wm * tx[ib + x]!;
      }
    }
  }
  const out = new Float32Array(D * H * W);
  for (let z = 0; z < D; z++) {
    const i = wz.idx[z]!;
    const ob = z * H * W;
    for (let m = 0; m < 4; m++) {
      const wm = wz.w[4 * z + m]!;
      const ib = at(i - 1 + m, nz) * H * W;
      for (let k = 0; k < H * W; k++) out[ob + k] = out[ob + k]! + wm * ty[ib + k]!;
    }
  }
  return out;
}

export function matMul(a: Mat3, b: Mat3): Mat3 {
  const r = new Array<number>(9).fill(0);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[3 * i + j]! += a[3 * i + k]! * b[3 * k + j]!;
  return r as Mat3;
}

/** Rotation by `angle` radians in the plane of axes (a, b) (indices into [z, y, x]). */
export function planeRotation(a: number, b: number, angle: number): Mat3 {
  const m: Mat3 = [...IDENTITY3];
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  m[3 * a + a] = c;
  m[3 * a + b] = -s;
  m[3 * b + a] = s;
  m[3 * b + b] = c;
  return m;
}

/** Expresses a physical-space linear map in voxel coordinates: D^-1 A D with D = diag(spacing zyx). */
export function toVoxelSpace(a: Mat3, spacing: Vec3): Mat3 {
  const r: Mat3 = [...a];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) r[3 * i + j] = (a[3 * i + j]! * spacing[j]) / spacing[i];
  return r;
}

/**
 * Renders one training sample: the input tile (trilinear, mirrored at the volume borders), the labels at
 * the output tile (nearest, same transform), then the gray-value changes.
 */
export function renderSample(vol: TrainVolumeData, spec: SampleSpec, rngForElastic?: (seed: number) => Rng): Sample {
  const [D, H, W] = spec.inShape;
  const [oD, oH, oW] = spec.outShape;
  const [Z, Y, X] = vol.shape;
  const C = vol.channels;
  const n = D * H * W;
  const M = spec.matrix;
  let field: [Float32Array, Float32Array, Float32Array] | null = null;
  if (spec.elastic && spec.elastic.sigma > 0) {
    if (!rngForElastic) throw new Error('renderSample: elastic deformation needs an Rng factory');
    field = elasticField(spec.inShape, spec.elastic, rngForElastic(spec.elastic.seed));
  }
  const input = new Float32Array(C * n);
  const labels = new Uint8Array(oD * oH * oW);
  const off: Vec3 = [(D - oD) / 2, (H - oH) / 2, (W - oW) / 2];
  const [pz, py, px] = spec.pivotTile;
  const [vz, vy, vx] = spec.pivotVol;
  const plane = Z * Y * X;
  const img = vol.image;
  const lab = vol.labels;
  for (let z = 0; z < D; z++) {
    const dz = z - pz;
    const inOz = z >= off[0] && z < off[0] + oD;
    for (let y = 0; y < H; y++) {
      const dy = y - py;
      const inOy = inOz && y >= off[1] && y < off[1] + oH;
      const row = (z * H + y) * W;
      for (let x = 0; x < W; x++) {
        const dx = x - px;
        const i = row + x;
        let sz = vz + M[0] * dz + M[1] * dy + M[2] * dx;
        let sy = vy + M[3] * dz + M[4] * dy + M[5] * dx;
        let sx = vx + M[6] * dz + M[7] * dy + M[8] * dx;
        if (field) {
          sz += field[0][i]!;
          sy += field[1][i]!;
          sx += field[2][i]!;
        }
        const z0 = Math.floor(sz);
        const y0 = Math.floor(sy);
        const x0 = Math.floor(sx);
        const fz = sz - z0;
        const fy = sy - y0;
        const fx = sx - x0;
        const iz0 = mirrorIndex(z0, Z) * Y * X;
        const iz1 = mirrorIndex(z0 + 1, Z) * Y * X;
        const iy0 = mirrorIndex(y0, Y) * X;
        const iy1 = mirrorIndex(y0 + 1, Y) * X;
        const ix0 = mirrorIndex(x0, X);
        const ix1 = mirrorIndex(x0 + 1, X);
        for (let c = 0; c < C; c++) {
          const cb = c * plane;
          const v000 = img[cb + iz0 + iy0 + ix0]!;
          const v001 = img[cb + iz0 + iy0 + ix1]!;
          const v010 = img[cb + iz0 + iy1 + ix0]!;
          const v011 = img[cb + iz0 + iy1 + ix1]!;
          const v100 = img[cb + iz1 + iy0 + ix0]!;
          const v101 = img[cb + iz1 + iy0 + ix1]!;
          const v110 = img[cb + iz1 + iy1 + ix0]!;
          const v111 = img[cb + iz1 + iy1 + ix1]!;
          const a0 = v000 + (v001 - v000) * fx;
          const a1 = v010 + (v011 - v010) * fx;
          const a2 = v100 + (v101 - v100) * fx;
          const a3 = v110 + (v111 - v110) * fx;
          const b0 = a0 + (a1 - a0) * fy;
          const b1 = a2 + (a3 - a2) * fy;
          input[c * n + i] = b0 + (b1 - b0) * fz;
        }
        if (inOy && x >= off[2] && x < off[2] + oW) {
          const lz = mirrorIndex(Math.round(sz), Z);
          const ly = mirrorIndex(Math.round(sy), Y);
          const lx = mirrorIndex(Math.round(sx), X);
          labels[((z - off[0]) * oH + (y - off[1])) * oW + (x - off[2])] = lab[(lz * Y + ly) * X + lx]!;
        }
      }
    }
  }
  if (spec.gray) applyGray(input, C, n, spec.gray);
  return { input, labels };
}

/**
 * Gray-value augmentation on a normalised tile (per channel): the values are mapped to [0,1] over the tile's
 * own range, gamma is applied, mapped back, then contrast and brightness: v' = contrast * v + brightness.
 * gamma = 1, contrast = 1, brightness = 0 is the identity.
 */
export function applyGray(input: Float32Array, C: number, n: number, g: GraySpec): void {
  for (let c = 0; c < C; c++) {
    const gamma = g.gamma[c] ?? 1;
    const contrast = g.contrast[c] ?? 1;
    const brightness = g.brightness[c] ?? 0;
    const base = c * n;
    if (gamma !== 1) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < n; i++) {
        const v = input[base + i]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const range = hi - lo;
      if (range > 0) {
        for (let i = 0; i < n; i++) {
          const u = (input[base + i]! - lo) / range;
          input[base + i] = lo + range * Math.pow(u, gamma);
        }
      }
    }
    if (contrast !== 1 || brightness !== 0) {
      for (let i = 0; i < n; i++) input[base + i] = input[base + i]! * contrast + brightness;
    }
  }
}
