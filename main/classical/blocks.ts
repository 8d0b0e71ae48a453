/**
 * Memory-bounded features: the feature stack of a box of the volume, computed on the box grown by a halo so
 * that every voxel of the box gets exactly (bit for bit) the value the whole-volume stack would give it. Lets
 * the classical learner train and predict on stacks whose full stack (20 Float32 per voxel and channel, plus
 * temporaries) would not fit in memory, block by block. Pure.
 *
 * Why the halo is exact: the Gaussian runs z, then y, then x; a voxel at least r = int(truncate·σ + 0.5) voxels
 * from every cut face (or on a face the volume itself ends at, where both use edge repetition) sees only real
 * data in each pass, summed in the same order. Sobel and the Hessian's two np.gradient steps reach 1 and 2
 * voxels further, so the halo is r + 2 per axis (for the largest sigma along that axis).
 */
import { featuresPerChannel, multiscaleFeatures, skimageSigmas, type FeatureDims, type FeatureOptions, type FeatureStack } from './features.js';

/** [start, end) per axis */
export interface Box {
  z: [number, number];
  y: [number, number];
  x: [number, number];
}

const AXES = ['z', 'y', 'x'] as const;

export function boxVoxels(b: Box): number {
  return (b.z[1] - b.z[0]) * (b.y[1] - b.y[0]) * (b.x[1] - b.x[0]);
}

/** The halo per axis (in voxels) that makes box features exact, for these options. */
export function featureHalo(opts: FeatureOptions, dims: FeatureDims): FeatureDims {
  const sigmas = skimageSigmas(opts.sigmaMin ?? 1, opts.sigmaMax ?? 8, opts.numSigma);
  const smax = Math.max(...sigmas);
  const truncate = opts.truncate ?? 4;
  const is2d = dims.z === 1;
  const sp = opts.spacing;
  const fine = sp ? Math.min(...(is2d ? [sp.y, sp.x] : [sp.z, sp.y, sp.x])) : 1;
  const h = (a: 'x' | 'y' | 'z') => {
    if (dims[a] === 1) return 0;
    const s = sp ? (smax * fine) / sp[a] : smax;
    return Math.floor(truncate * s + 0.5) + 2;
  };
  return { x: h('x'), y: h('y'), z: h('z') };
}

/** The box grown by the halo, clipped to the volume. */
export function grownBox(b: Box, halo: FeatureDims, dims: FeatureDims): Box {
  const g = (a: 'x' | 'y' | 'z'): [number, number] => [Math.max(0, b[a][0] - halo[a]), Math.min(dims[a], b[a][1] + halo[a])];
  return { z: g('z'), y: g('y'), x: g('x') };
}

/** Bytes one voxel of a feature computation holds at its peak: the stack plus the per-scale temporaries. */
export function featureBytesPerVoxel(opts: FeatureOptions, channels: number, is2d: boolean): number {
  return 4 * (featuresPerChannel(opts, is2d) * channels + channels + 18);
}

/** Channel-planar Float32 copy of a box of channel-planar data. */
export function cropChannels(data: ArrayLike<number>, dims: FeatureDims, channels: number, b: Box): Float32Array {
  const bx = b.x[1] - b.x[0];
  const by = b.y[1] - b.y[0];
  const bz = b.z[1] - b.z[0];
  const M = bx * by * bz;
  const N = dims.x * dims.y * dims.z;
  const out = new Float32Array(M * channels);
  let o = 0;
  for (let c = 0; c < channels; c++)
    for (let z = b.z[0]; z < b.z[1]; z++)
      for (let y = b.y[0]; y < b.y[1]; y++) {
        const row = c * N + (z * dims.y + y) * dims.x;
        for (let x = b.x[0]; x < b.x[1]; x++) out[o++] = data[row + x]!;
      }
  return out;
}

/** Features of the voxels of `box` only (dims = the box's size), equal bit for bit to the whole stack's there. */
export function boxFeatures(data: ArrayLike<number>, dims: FeatureDims, channels: number, box: Box, opts: FeatureOptions = {}): FeatureStack {
  const halo = featureHalo(opts, dims);
  const g = grownBox(box, halo, dims);
  const gd = { x: g.x[1] - g.x[0], y: g.y[1] - g.y[0], z: g.z[1] - g.z[0] };
  // a 3D volume cut to one plane must stay 3D (skimage's 2D rule is for Z = 1 volumes): never cut z to 1
  if (dims.z > 1 && gd.z === 1) throw new RangeError('internal: a box of a 3D volume grew to a single plane');
  const grown = multiscaleFeatures(cropChannels(data, dims, channels, g), gd, channels, opts);
  const bd = { x: box.x[1] - box.x[0], y: box.y[1] - box.y[0], z: box.z[1] - box.z[0] };
  if (bd.x === gd.x && bd.y === gd.y && bd.z === gd.z) return { ...grown, dims: bd };
  const M = bd.x * bd.y * bd.z;
  const GM = gd.x * gd.y * gd.z;
  const out = new Float32Array(grown.count * M);
  let o = 0;
  for (let f = 0; f < grown.count; f++)
    for (let z = box.z[0]; z < box.z[1]; z++)
      for (let y = box.y[0]; y < box.y[1]; y++) {
        const row = f * GM + ((z - g.z[0]) * gd.y + (y - g.y[0])) * gd.x - g.x[0];
        out.set(grown.data.subarray(row + box.x[0], row + box.x[1]), o);
        o += bd.x;
      }
  return { ...grown, data: out, dims: bd };
}

/**
 * Tiles `region` into boxes whose grown box holds at most `maxVoxels` voxels (when any cut can get there), then
 * tiles with that size. Boxes are ordered z, y, x (row-major like the volume).
 */
export function planBlocks(region: Box, dims: FeatureDims, halo: FeatureDims, maxVoxels: number): Box[] {
  const size = { z: region.z[1] - region.z[0], y: region.y[1] - region.y[0], x: region.x[1] - region.x[0] };
  const grownSize = (s: typeof size) => AXES.reduce((p, a) => p * Math.min(dims[a], s[a] + 2 * halo[a]), 1);
  // halve the side whose halving shrinks the grown block most; stop when no halving helps (the halo already
  // spans the volume along every axis that could be cut): such a region is done in as few blocks as that allows
  while (grownSize(size) > maxVoxels) {
    let best: 'x' | 'y' | 'z' | null = null;
    let bestSize = grownSize(size);
    for (const a of AXES) {
      if (size[a] <= 1) continue;
      const s = grownSize({ ...size, [a]: Math.ceil(size[a] / 2) });
      if (s < bestSize) {
        bestSize = s;
        best = a;
      }
    }
    if (!best) break;
    size[best] = Math.ceil(size[best] / 2);
  }
  const out: Box[] = [];
  for (let z = region.z[0]; z < region.z[1]; z += size.z)
    for (let y = region.y[0]; y < region.y[1]; y += size.y)
      for (let x = region.x[0]; x < region.x[1]; x += size.x)
        out.push({ z: [z, Math.min(region.z[1], z + size.z)], y: [y, Math.min(region.y[1], y + size.y)], x: [x, Math.min(region.x[1], x + size.x)] });
  return out;
}
