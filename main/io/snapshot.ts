/**
 * PNG snapshots of one slice of a volume: xy (at z), xz (at y) or yz (at x); channels composited
 * with per-channel colours and percentile auto-contrast; optional label overlay with alpha.
 * Image axes: xy → columns x, rows y; xz → columns x, rows z; yz → columns y, rows z.
 */
import { rename, unlink, writeFile, open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { SliceformError } from '../common/errors.js';
import type { Shape, TypedArray, Volume } from '../common/volume.js';

export type Plane = 'xy' | 'xz' | 'yz';
type RGB = [number, number, number];

export interface SnapshotOptions {
  plane: Plane;
  /** z for xy, y for xz, x for yz (default: the middle) */
  index?: number;
  /** output PNG path */
  out: string;
  /** label volume (same x, y, z; c = 1); 0 is transparent */
  labels?: Pick<Volume, 'data' | 'shape'>;
  /** overlay opacity 0..1 (default 0.4) */
  alpha?: number;
  /** channels to show (default all, at most 6) */
  channels?: number[];
  /** per-channel colour, 0..255 RGB (default: grey for 1 channel, else green, magenta, cyan, red, yellow, blue) */
  colors?: RGB[];
  /** auto-contrast percentiles (default [0.5, 99.5]) */
  percentiles?: [number, number];
  /** colour per label value (default: a fixed pseudo-random palette) */
  labelColors?: Record<number, RGB>;
}

const DEFAULT_COLORS: RGB[] = [
  [0, 255, 0],
  [255, 0, 255],
  [0, 255, 255],
  [255, 0, 0],
  [255, 255, 0],
  [0, 0, 255],
];

/** Deterministic distinct-ish colour for label k (golden-ratio hue walk). */
export function labelColor(k: number): RGB {
  const h = (k * 0.618033988749895) % 1;
  const s = 0.75;
  const l = 0.55;
  const f = (n: number) => {
    const kk = (n + h * 12) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(kk - 3, 9 - kk, 1))));
  };
  return [f(0), f(8), f(4)];
}

function sliceDims(shape: Shape, plane: Plane): { w: number; h: number; n: number } {
  if (plane === 'xy') return { w: shape.x, h: shape.y, n: shape.z };
  if (plane === 'xz') return { w: shape.x, h: shape.z, n: shape.y };
  return { w: shape.y, h: shape.z, n: shape.x };
}

/** Values of one channel on the slice, row-major (w x h). */
function extract(data: TypedArray, shape: Shape, c: number, plane: Plane, index: number): Float32Array {
  const { w, h } = sliceDims(shape, plane);
  const out = new Float32Array(w * h);
  const { x: X, y: Y, z: Z } = shape;
  const base = c * Z * Y * X;
  for (let r = 0; r < h; r++) {
    for (let col = 0; col < w; col++) {
      let i: number;
      if (plane === 'xy') i = base + (index * Y + r) * X + col;
      else if (plane === 'xz') i = base + (r * Y + index) * X + col;
      else i = base + (r * Y + col) * X + index;
      out[r * w + col] = data[i]!;
    }
  }
  return out;
}

function percentileRange(v: Float32Array, lo: number, hi: number): [number, number] {
  const s = Float32Array.from(v).sort();
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.round((p / 100) * (s.length - 1))))]!;
  let a = at(lo);
  let b = at(hi);
  if (!(b > a)) {
    a = s[0]!;
    b = s[s.length - 1]!;
  }
  return [a, b > a ? b : a + 1];
}

/** Renders the slice to packed RGB (w*h*3). */
export function renderSlice(
  volume: Pick<Volume, 'data' | 'shape'>,
  opts: Omit<SnapshotOptions, 'out'>,
): { rgb: Uint8Array; width: number; height: number } {
  const { shape } = volume;
  const { w, h, n } = sliceDims(shape, opts.plane);
  if (!['xy', 'xz', 'yz'].includes(opts.plane))
    throw new SliceformError('bad-input', `plane must be xy, xz or yz, got "${opts.plane}"`);
  const index = opts.index ?? Math.floor(n / 2);
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new SliceformError('bad-input', `${opts.plane} slice index ${index} out of range 0..${n - 1}`);
  }
  const channels = opts.channels ?? Array.from({ length: Math.min(shape.c, 6) }, (_, i) => i);
  for (const c of channels) {
    if (!Number.isInteger(c) || c < 0 || c >= shape.c)
      throw new SliceformError('bad-input', `channel ${c} out of range 0..${shape.c - 1}`);
  }
  const colors = opts.colors ?? (channels.length === 1 ? [[255, 255, 255] as RGB] : DEFAULT_COLORS);
  const [plo, phi] = opts.percentiles ?? [0.5, 99.5];
  const acc = new Float32Array(w * h * 3);
  channels.forEach((c, k) => {
    const v = extract(volume.data, shape, c, opts.plane, index);
    const [a, b] = percentileRange(v, plo, phi);
    const col = colors[k % colors.length]!;
    for (let i = 0; i < v.length; i++) {
      const t = Math.min(1, Math.max(0, (v[i]! - a) / (b - a)));
      acc[i * 3] += t * col[0];
      acc[i * 3 + 1] += t * col[1];
      acc[i * 3 + 2] += t * col[2];
    }
  });
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < acc.length; i++) rgb[i] = Math.min(255, Math.round(acc[i]!));
  if (opts.labels) {
    const ls = opts.labels.shape;
    if (ls.x !== shape.x || ls.y !== shape.y || ls.z !== shape.z) {
      throw new SliceformError(
        'bad-input',
        `label volume ${ls.x}x${ls.y}x${ls.z} does not match image ${shape.x}x${shape.y}x${shape.z}`,
      );
    }
    const alpha = opts.alpha ?? 0.4;
    const lab = extract(opts.labels.data, { ...ls, c: 1 }, 0, opts.plane, index);
    for (let i = 0; i < lab.length; i++) {
      const k = lab[i]!;
      if (k === 0) continue;
      const col = opts.labelColors?.[k] ?? labelColor(k);
      for (let ch = 0; ch < 3; ch++)
        rgb[i * 3 + ch] = Math.round((1 - alpha) * rgb[i * 3 + ch]! + alpha * col[ch]!);
    }
  }
  return { rgb, width: w, height: h };
}

/** Writes a PNG of one slice (atomically); returns its size in pixels. */
export async function writeSnapshot(
  volume: Pick<Volume, 'data' | 'shape'>,
  opts: SnapshotOptions,
): Promise<{ path: string; width: number; height: number }> {
  const { rgb, width, height } = renderSlice(volume, opts);
  const sharp = (await import('sharp')).default;
  const png = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), {
    raw: { width, height, channels: 3 },
  })
    .png()
    .toBuffer();
  const tmp = join(
    dirname(opts.out),
    `.${basename(opts.out)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`,
  );
  try {
    await writeFile(tmp, png);
    const fh = await open(tmp, 'r+');
    await fh.sync();
    await fh.close();
    await rename(tmp, opts.out);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new SliceformError('bad-input', `cannot write snapshot ${opts.out}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return { path: opts.out, width, height };
}
