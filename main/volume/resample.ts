/**
 * Resolution changes around the network (pure). The desktop preset works at reduced xy resolution when z is
 * much coarser than x/y (typical confocal stacks): 'auto' picks f_xy = round(spacing_z / spacing_xy), at most 2,
 * so voxels become nearly isotropic. That quarters the compute per stack at 2x, widens the network's physical
 * context, and makes rotations in xz/yz honest. Prediction happens at the reduced resolution; the per-class
 * probabilities are interpolated (trilinear) back to the full grid before the argmax. On the plant-nuclei
 * volumes an oracle (ground truth averaged to half xy resolution and interpolated back) keeps 98.7 % IoU.
 */
import type { Spacing, Volume } from '../common/volume.js';

export type Factors = [number, number, number];

export function autoDownsample(spacing: Pick<Spacing, 'x' | 'y' | 'z'>, max = 2): Factors {
  const sxy = Math.min(spacing.x, spacing.y);
  if (!(sxy > 0) || !(spacing.z > 0)) return [1, 1, 1];
  const r = spacing.z / sxy;
  if (r < 1.5) return [1, 1, 1];
  const f = Math.min(max, Math.round(r));
  return [1, f, f];
}

export function isIdentity(f: Factors): boolean {
  return f[0] === 1 && f[1] === 1 && f[2] === 1;
}

export function parseFactors(s: string): Factors | 'auto' | null {
  if (s === 'auto') return 'auto';
  if (s === 'none' || s === '1') return [1, 1, 1];
  const parts = s.split(',').map(Number);
  if (parts.length === 1 && Number.isInteger(parts[0]) && parts[0]! >= 1 && parts[0]! <= 8) return [1, parts[0]!, parts[0]!];
  if (parts.length === 3 && parts.every((p) => Number.isInteger(p) && p >= 1 && p <= 8)) return parts as Factors;
  return null;
}

/** Box-average downsampling of an image volume to float32 (all channels); spacing scales with the factors. */
export function downsampleVolume(v: Volume, f: Factors): Volume {
  if (isIdentity(f)) return v;
  const { x: X, y: Y, z: Z, c: C } = v.shape;
  const [fz, fy, fx] = f;
  const oz = Math.ceil(Z / fz);
  const oy = Math.ceil(Y / fy);
  const ox = Math.ceil(X / fx);
  const out = new Float32Array(C * oz * oy * ox);
  const src = v.data;
  for (let c = 0; c < C; c++)
    for (let z = 0; z < oz; z++) {
      const z1 = Math.min(Z, (z + 1) * fz);
      for (let y = 0; y < oy; y++) {
        const y1 = Math.min(Y, (y + 1) * fy);
        for (let x = 0; x < ox; x++) {
          const x1 = Math.min(X, (x + 1) * fx);
          let s = 0;
          let k = 0;
          for (let zz = z * fz; zz < z1; zz++)
            for (let yy = y * fy; yy < y1; yy++) {
              const row = ((c * Z + zz) * Y + yy) * X;
              for (let xx = x * fx; xx < x1; xx++) {
                s += src[row + xx]!;
                k++;
              }
            }
          out[((c * oz + z) * oy + y) * ox + x] = s / k;
        }
      }
    }
  return {
    ...v,
    data: out,
    dtype: 'float32',
    shape: { ...v.shape, x: ox, y: oy, z: oz },
    spacing: { ...v.spacing, x: v.spacing.x * fx, y: v.spacing.y * fy, z: v.spacing.z * fz },
    metadata: { ...v.metadata, downsampledBy: f },
  };
}

/**
 * Downsamples sparse labels: a block takes its most frequent annotated class (ties broken by a position hash,
 * so neither class grows on average), 0 when nothing in it is annotated, so painted slices survive at any
 * position.
 */
export function downsampleLabelVolume(v: Volume, f: Factors): Volume {
  if (isIdentity(f)) return v;
  const { x: X, y: Y, z: Z } = v.shape;
  const [fz, fy, fx] = f;
  const oz = Math.ceil(Z / fz);
  const oy = Math.ceil(Y / fy);
  const ox = Math.ceil(X / fx);
  const out = new Uint8Array(oz * oy * ox);
  downsampleLabelBlocks(v.data, [Z, Y, X], f, out, [0, 0, 0], [oz, oy, ox]);
  return {
    ...v,
    data: out,
    dtype: 'uint8',
    shape: { ...v.shape, x: ox, y: oy, z: oz },
    spacing: { ...v.spacing, x: v.spacing.x * fx, y: v.spacing.y * fy, z: v.spacing.z * fz },
  };
}

/**
 * The blocks [lo, hi) ([z, y, x], downsampled grid) of downsampleLabelVolume written into `out` (the whole
 * downsampled grid): a live session recomputes only the blocks a label change touches, with the same rule.
 */
export function downsampleLabelBlocks(
  src: ArrayLike<number>,
  full: [number, number, number],
  f: Factors,
  out: Uint8Array | Uint16Array,
  lo: [number, number, number],
  hi: [number, number, number],
): void {
  const [Z, Y, X] = full;
  const [fz, fy, fx] = f;
  const oy = Math.ceil(Y / fy);
  const ox = Math.ceil(X / fx);
  const hist = new Int32Array(256);
  for (let z = lo[0]; z < hi[0]; z++)
    for (let y = lo[1]; y < hi[1]; y++)
      for (let x = lo[2]; x < hi[2]; x++) {
        let best = 0;
        let bestN = 0;
        const seen: number[] = [];
        for (let zz = z * fz; zz < Math.min(Z, (z + 1) * fz); zz++)
          for (let yy = y * fy; yy < Math.min(Y, (y + 1) * fy); yy++)
            for (let xx = x * fx; xx < Math.min(X, (x + 1) * fx); xx++) {
              const l = src[(zz * Y + yy) * X + xx]!;
              if (l === 0) continue;
              if (hist[l] === 0) seen.push(l);
              hist[l]!++;
            }
        // ties (a class boundary through the block centre) are broken by a position hash, not towards one
        // class: always picking the lower class would shrink every foreground object by half a voxel
        let ties = 0;
        for (const l of seen) {
          const n = hist[l]!;
          if (n > bestN) {
            best = l;
            bestN = n;
            ties = 1;
          } else if (n === bestN) {
            ties++;
            if (hash3(z, y, x) % ties === 0) best = l;
          }
          hist[l] = 0;
        }
        out[(z * oy + y) * ox + x] = best;
      }
}

function hash3(z: number, y: number, x: number): number {
  let h = Math.imul(z, 0x9e3779b1) ^ Math.imul(y, 0x85ebca77) ^ Math.imul(x, 0xc2b2ae3d);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  return (h ^ (h >>> 12)) >>> 0;
}

/** Source coordinate and weights for linear interpolation from a grid downsampled by f (pixel centres). */
function axisWeights(
  n: number,
  nLow: number,
  f: number,
): { i0: Int32Array; i1: Int32Array; w: Float32Array } {
  const i0 = new Int32Array(n);
  const i1 = new Int32Array(n);
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = (i + 0.5) / f - 0.5;
    s = Math.max(0, Math.min(nLow - 1, s));
    const a = Math.floor(s);
    i0[i] = a;
    i1[i] = Math.min(nLow - 1, a + 1);
    w[i] = s - a;
  }
  return { i0, i1, w };
}

/**
 * Trilinear upsampling of K-channel probabilities from the low grid to full-resolution z-planes
 * [z0, z0+depth): returns K*depth*Y*X.
 */
export function upsampleSlab(
  low: Float32Array,
  K: number,
  lowShape: Factors,
  full: Factors,
  f: Factors,
  z0: number,
  depth: number,
): Float32Array {
  const [lz, ly, lx] = lowShape;
  const [, Y, X] = full;
  const wz = axisWeights(full[0], lz, f[0]);
  const wy = axisWeights(Y, ly, f[1]);
  const wx = axisWeights(X, lx, f[2]);
  const out = new Float32Array(K * depth * Y * X);
  const lowN = lz * ly * lx;
  for (let k = 0; k < K; k++)
    for (let z = 0; z < depth; z++) {
      const Z = z0 + z;
      const za = wz.i0[Z]!;
      const zb = wz.i1[Z]!;
      const fzw = wz.w[Z]!;
      for (let y = 0; y < Y; y++) {
        const ya = wy.i0[y]!;
        const yb = wy.i1[y]!;
        const fyw = wy.w[y]!;
        const r00 = k * lowN + (za * ly + ya) * lx;
        const r01 = k * lowN + (za * ly + yb) * lx;
        const r10 = k * lowN + (zb * ly + ya) * lx;
        const r11 = k * lowN + (zb * ly + yb) * lx;
        const ob = ((k * depth + z) * Y + y) * X;
        for (let x = 0; x < X; x++) {
          const xa = wx.i0[x]!;
          const xb = wx.i1[x]!;
          const fx = wx.w[x]!;
          const a = low[r00 + xa]! + (low[r00 + xb]! - low[r00 + xa]!) * fx;
          const b = low[r01 + xa]! + (low[r01 + xb]! - low[r01 + xa]!) * fx;
          const c = low[r10 + xa]! + (low[r10 + xb]! - low[r10 + xa]!) * fx;
          const d = low[r11 + xa]! + (low[r11 + xb]! - low[r11 + xa]!) * fx;
          const e = a + (b - a) * fyw;
          const g = c + (d - c) * fyw;
          out[ob + x] = e + (g - e) * fzw;
        }
      }
    }
  return out;
}
