/**
 * Pure pixel work for the slice views: percentile windows, per-channel lookup tables and the additive
 * multi-channel composite of one plane. No DOM, no vtk.js, so it is unit-tested in Node.
 *
 * Volume layout is the project's (main/common/volume.ts): one typed array per channel, x fastest,
 * index = (z * Y + y) * X + x.
 */
import type { TypedArray } from '../../../main/common/volume.js';

export type Plane = 'xy' | 'xz' | 'yz';
export const PLANES: readonly Plane[] = ['xy', 'xz', 'yz'];
/** The volume axis (0 = x, 1 = y, 2 = z) a plane is perpendicular to. */
export const PLANE_AXIS: Record<Plane, 0 | 1 | 2> = { xy: 2, xz: 1, yz: 0 };

export interface Dims {
  x: number;
  y: number;
  z: number;
}

export type RGB = [number, number, number];

export interface ChannelDisplay {
  name: string;
  /** 0..1 per component */
  color: RGB;
  visible: boolean;
  /** window in data units: values <= min are black, >= max are full colour */
  min: number;
  max: number;
  /** data range, for the sliders */
  rangeMin: number;
  rangeMax: number;
}

/** Default channel colours, in the order a biologist expects from Fiji: green, magenta, cyan, yellow, ... */
export const CHANNEL_COLORS: RGB[] = [
  [0.1, 1, 0.1],
  [1, 0.1, 1],
  [0.1, 0.9, 1],
  [1, 0.9, 0.1],
  [1, 0.3, 0.2],
  [0.3, 0.5, 1],
  [1, 1, 1],
];

/** Width x height of a plane's image and its pixel index for a voxel. */
export function planeSize(plane: Plane, d: Dims): [number, number] {
  if (plane === 'xy') return [d.x, d.y];
  if (plane === 'xz') return [d.x, d.z];
  return [d.y, d.z];
}

export function planeDepth(plane: Plane, d: Dims): number {
  return plane === 'xy' ? d.z : plane === 'xz' ? d.y : d.x;
}

/**
 * Low and high percentiles of a channel (e.g. 0.5 % and 99.8 %), from a histogram for integer data and a
 * strided sample otherwise, so it costs one pass over at most a few million voxels.
 */
export function percentiles(data: TypedArray, lowPct: number, highPct: number): [number, number] {
  const n = data.length;
  if (n === 0) return [0, 1];
  let lo = Infinity;
  let hi = -Infinity;
  const stride = Math.max(1, Math.floor(n / 2_000_000));
  for (let i = 0; i < n; i += stride) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) return [lo, lo + 1];
  const isInt = !(data instanceof Float32Array || data instanceof Float64Array);
  const bins = isInt && hi - lo < 65536 ? hi - lo + 1 : 4096;
  const scale = isInt && bins === hi - lo + 1 ? 1 : (bins - 1) / (hi - lo);
  const hist = new Uint32Array(bins);
  let count = 0;
  for (let i = 0; i < n; i += stride) {
    hist[Math.floor((data[i] - lo) * scale)]++;
    count++;
  }
  const want = (p: number) => Math.min(count - 1, Math.max(0, Math.floor((p / 100) * count)));
  const lowRank = want(lowPct);
  const highRank = want(highPct);
  let acc = 0;
  let a = lo;
  let b = hi;
  let gotLow = false;
  for (let k = 0; k < bins; k++) {
    acc += hist[k];
    if (!gotLow && acc > lowRank) {
      a = lo + k / scale;
      gotLow = true;
    }
    if (acc > highRank) {
      b = lo + k / scale;
      break;
    }
  }
  if (!(b > a)) b = a + 1;
  return [a, b];
}

/**
 * The display window a channel starts with and the one "auto" restores: robust percentiles (0.5 % and 99.8 %)
 * of that channel's voxels. The 1 %/99 % window the server's statistics give saturates small bright objects
 * (the nuclei of the NEUBIAS hyperstack fill far less than 1 % of it); 99.8 % leaves them their texture.
 */
export const AUTO_WINDOW_PERCENTILES: readonly [number, number] = [0.5, 99.8];

export function autoWindow(data: TypedArray): [number, number] {
  return percentiles(data, AUTO_WINDOW_PERCENTILES[0], AUTO_WINDOW_PERCENTILES[1]);
}

export function dataRange(data: TypedArray): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return data.length ? [lo, hi] : [0, 0];
}

/**
 * 8-bit intensity lookup for integer data of at most 16 bits (index = value - offset), or null for data that
 * needs the arithmetic path (float, 32-bit).
 */
export function intensityLut(data: TypedArray, min: number, max: number): { lut: Uint8Array; offset: number } | null {
  let offset: number;
  let size: number;
  if (data instanceof Uint8Array) [offset, size] = [0, 256];
  else if (data instanceof Int8Array) [offset, size] = [-128, 256];
  else if (data instanceof Uint16Array) [offset, size] = [0, 65536];
  else if (data instanceof Int16Array) [offset, size] = [-32768, 65536];
  else return null;
  const lut = new Uint8Array(size);
  const span = max - min || 1;
  for (let i = 0; i < size; i++) {
    const t = (i + offset - min) / span;
    lut[i] = t <= 0 ? 0 : t >= 1 ? 255 : Math.round(t * 255);
  }
  return { lut, offset };
}

export interface CompositeChannel {
  data: TypedArray;
  display: ChannelDisplay;
  /** cached lookup from intensityLut (null: arithmetic path) */
  lut: { lut: Uint8Array; offset: number } | null;
}

/**
 * Additive composite of the visible channels on one plane into RGB bytes (3 per pixel, row-major in the
 * plane's own width x height, see planeSize). Values add and saturate like Fiji's composite mode.
 */
export function compositePlane(
  out: Uint8Array,
  channels: CompositeChannel[],
  d: Dims,
  plane: Plane,
  index: number,
): void {
  const [w, h] = planeSize(plane, d);
  const n = w * h;
  if (out.length < n * 3) throw new Error(`composite buffer too small: ${out.length} < ${n * 3}`);
  const acc = new Float32Array(n * 3);
  const plain = new Float32Array(n);
  for (const ch of channels) {
    if (!ch.display.visible) continue;
    extractPlaneIntensity(plain, ch, d, plane, index);
    const [r, g, b] = ch.display.color;
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      const v = plain[i];
      if (v === 0) continue;
      acc[j] += v * r;
      acc[j + 1] += v * g;
      acc[j + 2] += v * b;
    }
  }
  for (let j = 0; j < n * 3; j++) {
    const v = acc[j];
    out[j] = v >= 255 ? 255 : v;
  }
}

/** 0..255 intensities of one channel on one plane. */
export function extractPlaneIntensity(
  out: Float32Array,
  ch: CompositeChannel,
  d: Dims,
  plane: Plane,
  index: number,
): void {
  const { data } = ch;
  const X = d.x;
  const XY = d.x * d.y;
  const lut = ch.lut;
  const min = ch.display.min;
  const span = ch.display.max - ch.display.min || 1;
  const map = lut
    ? (v: number) => lut.lut[v - lut.offset]
    : (v: number) => {
        const t = (v - min) / span;
        return t <= 0 ? 0 : t >= 1 ? 255 : t * 255;
      };
  if (plane === 'xy') {
    const base = index * XY;
    if (lut && lut.offset === 0) {
      const l = lut.lut;
      for (let i = 0; i < XY; i++) out[i] = l[data[base + i]];
    } else for (let i = 0; i < XY; i++) out[i] = map(data[base + i]);
  } else if (plane === 'xz') {
    let o = 0;
    for (let z = 0; z < d.z; z++) {
      const base = z * XY + index * X;
      for (let x = 0; x < X; x++) out[o++] = map(data[base + x]);
    }
  } else {
    let o = 0;
    for (let z = 0; z < d.z; z++) {
      const base = z * XY + index;
      for (let y = 0; y < d.y; y++) out[o++] = map(data[base + y * X]);
    }
  }
}

/** Copies one plane of a label volume (x fastest) into a plane mask: 1 where label != 0. */
export function planeOfVolume(vol: ArrayLike<number>, d: Dims, plane: Plane, index: number): Uint8Array {
  const [w, h] = planeSize(plane, d);
  const out = new Uint8Array(w * h);
  const X = d.x;
  const XY = d.x * d.y;
  let o = 0;
  if (plane === 'xy') for (let i = 0; i < XY; i++) out[o++] = vol[index * XY + i];
  else if (plane === 'xz') {
    for (let z = 0; z < d.z; z++) for (let x = 0; x < X; x++) out[o++] = vol[z * XY + index * X + x];
  } else for (let z = 0; z < d.z; z++) for (let y = 0; y < d.y; y++) out[o++] = vol[z * XY + y * X + index];
  return out;
}

/** Voxel index of plane pixel (u, v) at slice `index`. */
export function planeToVoxel(plane: Plane, u: number, v: number, index: number): [number, number, number] {
  if (plane === 'xy') return [u, v, index];
  if (plane === 'xz') return [u, index, v];
  return [index, u, v];
}

/** Crop a full-volume stroke mask to the bounding box of its nonzero pixels on one plane. */
export function cropPlaneMask(
  mask: Uint8Array,
  dims: { x: number; y: number; z: number },
  plane: Plane,
  index: number,
): { origin: [number, number]; width: number; height: number; mask: Uint8Array } | null {
  const [w, h] = planeSize(plane, dims);
  let u0 = w;
  let v0 = h;
  let u1 = -1;
  let v1 = -1;
  const at = (u: number, v: number) => {
    const [x, y, z] = planeToVoxel(plane, u, v, index);
    return mask[(z * dims.y + y) * dims.x + x];
  };
  for (let v = 0; v < h; v++)
    for (let u = 0; u < w; u++)
      if (at(u, v)) {
        if (u < u0) u0 = u;
        if (u > u1) u1 = u;
        if (v < v0) v0 = v;
        if (v > v1) v1 = v;
      }
  if (u1 < 0) return null;
  const cw = u1 - u0 + 1;
  const ch = v1 - v0 + 1;
  const out = new Uint8Array(cw * ch);
  for (let v = 0; v < ch; v++) for (let u = 0; u < cw; u++) out[v * cw + u] = at(u0 + u, v0 + v) ? 1 : 0;
  return { origin: [u0, v0], width: cw, height: ch, mask: out };
}

/** Slices of a plane that hold at least one nonzero voxel of `vol`. */
export function nonEmptySlices(vol: ArrayLike<number>, d: Dims, plane: Plane): number[] {
  const out: number[] = [];
  const depth = planeDepth(plane, d);
  for (let s = 0; s < depth; s++) {
    const m = planeOfVolume(vol, d, plane, s);
    if (m.some((v) => v !== 0)) out.push(s);
  }
  return out;
}

/** '#rrggbb' for an RGB triple in 0..1 */
export function rgbToHex(c: RGB): string {
  return '#' + c.map((v) => Math.round(Math.max(0, Math.min(1, v)) * 255).toString(16).padStart(2, '0')).join('');
}

export function hexToRgb(hex: string): RGB {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex.trim());
  if (!m) throw new Error(`not a colour: ${hex}`);
  return [parseInt(m[1], 16) / 255, parseInt(m[2], 16) / 255, parseInt(m[3], 16) / 255];
}
