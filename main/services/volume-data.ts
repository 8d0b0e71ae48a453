/** Slices, bricks and channel statistics of an in-memory Volume (channel-planar, x fastest). */
import { allocTyped, type TypedArray, type Volume } from '../common/volume.js';
import { ApiError, planeDims, type BrickData, type ChannelStats, type Plane, type SliceData } from '../common/api.js';

export function volumeSlice(v: Volume, plane: Plane, index: number, channel?: number): SliceData {
  const { x: X, y: Y, z: Z, c: C } = v.shape;
  const { width, height, depth } = planeDims(v.shape, plane);
  if (index >= depth) throw new ApiError('bad-request', `slice ${index} is outside the ${plane} range 0..${depth - 1}`);
  if (channel !== undefined && channel >= C) throw new ApiError('bad-request', `channel ${channel} does not exist (volume has ${C})`);
  const chans = channel === undefined ? [...Array(C).keys()] : [channel];
  const out = allocTyped(v.dtype, chans.length * width * height);
  const XY = X * Y;
  chans.forEach((c, k) => {
    const base = c * Z * XY;
    const o = k * width * height;
    if (plane === 'xy') out.set(v.data.subarray(base + index * XY, base + (index + 1) * XY) as never, o);
    else if (plane === 'xz')
      for (let z = 0; z < Z; z++) out.set(v.data.subarray(base + z * XY + index * X, base + z * XY + index * X + X) as never, o + z * width);
    else for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) out[o + z * width + y] = v.data[base + z * XY + y * X + index]!;
  });
  return { plane, index, width, height, channels: chans.length, dtype: v.dtype, data: out };
}

export function volumeBrick(v: Volume, origin?: [number, number, number], size?: [number, number, number], step = 1, channel?: number): BrickData {
  const { x: X, y: Y, z: Z, c: C } = v.shape;
  const o = origin ?? [0, 0, 0];
  const s = size ?? [X - o[0], Y - o[1], Z - o[2]];
  const dims = [X, Y, Z];
  for (let a = 0; a < 3; a++)
    if (o[a]! < 0 || s[a]! < 1 || o[a]! + s[a]! > dims[a]!)
      throw new ApiError('bad-request', `brick ${'xyz'[a]} range ${o[a]}..${o[a]! + s[a]! - 1} is outside the volume (0..${dims[a]! - 1})`);
  if (channel !== undefined && channel >= C) throw new ApiError('bad-request', `channel ${channel} does not exist (volume has ${C})`);
  const chans = channel === undefined ? [...Array(C).keys()] : [channel];
  const n: [number, number, number] = [Math.ceil(s[0] / step), Math.ceil(s[1] / step), Math.ceil(s[2] / step)];
  const out = allocTyped(v.dtype, chans.length * n[0] * n[1] * n[2]);
  let i = 0;
  for (const c of chans)
    for (let z = 0; z < n[2]; z++)
      for (let y = 0; y < n[1]; y++) {
        const row = ((c * Z + o[2] + z * step) * Y + o[1] + y * step) * X + o[0];
        if (step === 1) {
          out.set(v.data.subarray(row, row + n[0]) as never, i);
          i += n[0];
        } else for (let x = 0; x < n[0]; x++) out[i++] = v.data[row + x * step]!;
      }
  return { origin: [o[0], o[1], o[2]], size: n, step, channels: chans.length, dtype: v.dtype, data: out };
}

/** Exact min/max/mean; 1st/99th percentiles from a strided sample of at most ~256k voxels. */
export function channelStats(v: Volume): ChannelStats[] {
  const n = v.shape.x * v.shape.y * v.shape.z;
  const out: ChannelStats[] = [];
  for (let c = 0; c < v.shape.c; c++) {
    const d: TypedArray = v.data.subarray(c * n, (c + 1) * n);
    let min = Infinity,
      max = -Infinity,
      sum = 0;
    for (let i = 0; i < d.length; i++) {
      const x = d[i]!;
      if (x < min) min = x;
      if (x > max) max = x;
      sum += x;
    }
    const stride = Math.max(1, Math.floor(d.length / 262144));
    const sample = new Float64Array(Math.ceil(d.length / stride));
    for (let i = 0, k = 0; i < d.length; i += stride) sample[k++] = d[i]!;
    sample.sort();
    const q = (p: number) => sample[Math.min(sample.length - 1, Math.max(0, Math.round(p * (sample.length - 1))))] ?? 0;
    out.push({ min: d.length ? min : 0, max: d.length ? max : 0, p1: q(0.01), p99: q(0.99), mean: d.length ? sum / d.length : 0 });
  }
  return out;
}
