/**
 * Out-of-core volumes in the compute process: a volume above the in-memory limit is held as a RegionSource
 * (main/io/region.ts: TIFF pages/strips, HDF5 chunks, OME-Zarr chunks read on demand through the source's
 * bounded chunk cache) plus one downsampled copy for the 3D view (the "3D level").
 *
 * - Slices for the slice views and painting are read at full resolution on demand (one plane's box).
 * - The 3D level is the source's pyramid level when it has one with equal factors on x, y and z within the
 *   voxel budget, otherwise computed once by streaming: nearest-voxel sampling every `step`-th voxel, read
 *   band by band (chunk-aligned, at most ~32 MiB per read), so only the sampled planes of a TIFF are read.
 * - Bricks at the 3D level's step (or a multiple) come from that copy; other bricks are read from the source
 *   when small, refused with the numbers otherwise. Nothing ever reads the whole volume into one array.
 * - Channel statistics are those of the 3D level (a sample of every step-th voxel).
 *
 * The annotation of such a volume is stored sparsely (sparse-labels.ts).
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { ApiError, planeDims, type Box, type BrickData, type ChannelStats, type Plane, type SliceData } from '../common/api.js';
import { BLOCK, SparseLabels, type LabelStore } from './sparse-labels.js';
import { allocTyped, type TypedArray, type Volume } from '../common/volume.js';
import type { CancelSignal, ProgressCallback } from '../common/progress.js';
import { CancelledError } from '../common/errors.js';
import type { OpenRegionOptions, RegionBox, RegionSource } from '../io/region.js';
import { channelStats, volumeBrick } from './volume-data.js';

/** voxels per channel of the 3D level at most (256×256×128) */
export const PREVIEW_VOXELS = 2 ** 23;
/** a brick read from the source at full resolution holds at most this many voxels (all channels) */
export const MAX_BRICK_READ = 2 ** 26;
/** bytes per streamed read while computing the 3D level */
const BAND_BYTES = 32 * 2 ** 20;
/** chunk cache of the source (the slice views revisit the chunks around the cursor) */
export const SOURCE_CACHE_BYTES = 192 * 2 ** 20;
/**
 * A full-resolution slice is read as part of a band: up to this many bytes of consecutive slices inside the
 * chunk that holds it along the slice axis, so a chunk is decoded once per band instead of once per slice
 * (a 64-deep chunk made every xy slice decode 192 chunks, 384 MiB, for 6 MiB of slice).
 */
export const SLICE_BAND_BYTES = 96 * 2 ** 20;
/** full-resolution slices kept from the bands read (bytes): the views scroll back and forth around the cursor */
export const SLICE_CACHE_BYTES = 192 * 2 ** 20;

/**
 * Volumes whose voxels exceed this many bytes open out of core: SLICEFORM_OUT_OF_CORE_BYTES, default 1 GiB
 * (the in-memory path costs several times the stack in a job, see docs/app.md).
 */
export function outOfCoreBytes(): number {
  const env = Number(process.env.SLICEFORM_OUT_OF_CORE_BYTES);
  return Number.isFinite(env) && env > 0 ? env : 2 ** 30;
}

export interface Level3D {
  /** source level read (0 = full resolution, sampled) */
  level: number;
  /** full-resolution voxels per 3D-level voxel on every axis: getBrick({ step }) serves it */
  step: number;
  /** its size [x, y, z] */
  size: [number, number, number];
}

const BYTES: Record<string, number> = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, float64: 8 };

/** The smallest step s >= 1 with ceil(X/s)·ceil(Y/s)·ceil(Z/s) <= budget. */
export function previewStep(shape: { x: number; y: number; z: number }, budget = PREVIEW_VOXELS): number {
  let s = Math.max(1, Math.floor(Math.cbrt((shape.x * shape.y * shape.z) / budget)));
  while (Math.ceil(shape.x / s) * Math.ceil(shape.y / s) * Math.ceil(shape.z / s) > budget) s++;
  return s;
}

export interface BigVolumeOptions {
  previewVoxels?: number;
  /** a fixed 3D-level step (the image's, for a label layer of it) instead of the one from previewVoxels */
  step?: number;
  onProgress?: ProgressCallback;
  signal?: CancelSignal;
}

export class BigVolume {
  private closed = false;

  private constructor(
    readonly source: RegionSource,
    /** the 3D level as a Volume (its shape is the level's; spacing scaled by the step) */
    readonly preview: Volume,
    readonly level3d: Level3D,
    readonly stats: ChannelStats[],
  ) {}

  get shape() {
    return this.source.info.shape;
  }

  /** Opens the 3D level (the source's pyramid level, or computed by streaming); the source is the caller's until then. */
  static async open(source: RegionSource, opts: BigVolumeOptions = {}): Promise<BigVolume> {
    const info = source.info;
    const need = opts.step ?? previewStep(info.shape, opts.previewVoxels);
    // the coarsest pyramid level with equal factors that is not coarser than needed: the least to read
    let level = 0,
      f = 1;
    source.levels.forEach((l, i) => {
      const [fz, fy, fx] = l.factors;
      if (i > 0 && fz === fy && fy === fx && fx <= need && fx > f && (opts.step === undefined || opts.step % fx === 0)) {
        level = i;
        f = fx;
      }
    });
    const lshape = source.levels[level]!.shape;
    const t = Math.max(1, Math.ceil(need / f));
    const step = f * t;
    let data = await sampleLevel(source, level, lshape, t, opts);
    const got: [number, number, number] = [Math.ceil(lshape.x / t), Math.ceil(lshape.y / t), Math.ceil(lshape.z / t)];
    // the 3D level is ceil(shape / step) voxels on every axis, like the sampled annotation (SparseLabels.sample);
    // a pyramid level that rounded down gets its last voxel repeated
    const size: [number, number, number] = [Math.ceil(info.shape.x / step), Math.ceil(info.shape.y / step), Math.ceil(info.shape.z / step)];
    if (got.some((g, a) => g !== size[a])) data = padTo(data, info.shape.c, got, size);
    const preview: Volume = {
      ...info,
      data,
      shape: { ...info.shape, x: size[0], y: size[1], z: size[2] },
      spacing: { ...info.spacing, x: info.spacing.x * step, y: info.spacing.y * step, z: info.spacing.z * step },
    };
    return new BigVolume(source, preview, { level, step, size }, channelStats(preview));
  }

  private check(channel: number | undefined): number[] | undefined {
    const C = this.shape.c;
    if (channel !== undefined && (channel >= C || channel < 0)) throw new ApiError('bad-request', `channel ${channel} does not exist (volume has ${C})`);
    return channel === undefined ? undefined : [channel];
  }

  /** full-resolution slices of the bands read, oldest first (Map order), SLICE_CACHE_BYTES at most */
  private readonly slices = new Map<string, SliceData>();
  private sliceBytes = 0;
  /** bands being read: a slice asked for while its band is in flight waits for it (one decode) */
  private readonly bands = new Map<string, Promise<SliceData[]>>();
  private bandQueue: Promise<unknown> = Promise.resolve();
  /** band reads from the source (for tests and benchmarks) */
  bandReads = 0;

  /**
   * A full-resolution slice (what volumeSlice gives for an in-memory volume). It is read with its band: the
   * consecutive slices that share its chunk along the slice axis, as many as SLICE_BAND_BYTES hold (aligned
   * inside the chunk), so scrolling decodes each chunk once per band; the band's slices are kept in an LRU.
   */
  async slice(plane: Plane, index: number, channel?: number): Promise<SliceData> {
    const { depth } = planeDims(this.shape, plane);
    if (!Number.isInteger(index) || index < 0 || index >= depth) throw new ApiError('bad-request', `slice ${index} is outside the ${plane} range 0..${depth - 1}`);
    const channels = this.check(channel);
    const key = `${plane}|${channel ?? '*'}|${index}`;
    const hit = this.slices.get(key);
    if (hit) {
      this.slices.delete(key); // most recent last
      this.slices.set(key, hit);
      return hit;
    }
    const [b0, b1] = this.band(plane, index, channels ? 1 : this.shape.c);
    const bkey = `${plane}|${channel ?? '*'}|${b0}`;
    let p = this.bands.get(bkey);
    if (!p) {
      // one band at a time: decoding is synchronous on this process's one thread anyway, and each band holds
      // its region and its split slices at once (2 × SLICE_BAND_BYTES), so concurrent bands only add memory
      const read = this.bandQueue.then(() => this.readBand(plane, b0, b1, channels));
      this.bandQueue = read.catch(() => undefined);
      p = read;
      this.bands.set(bkey, read);
      void read.then(
        (list) => {
          this.bands.delete(bkey);
          for (const s of list) this.keep(`${plane}|${channel ?? '*'}|${s.index}`, s);
        },
        () => this.bands.delete(bkey),
      );
    }
    return (await p)[index - b0]!;
  }

  /** The band [b0, b1) holding slice `index`: inside its chunk along the plane's axis, aligned, SLICE_BAND_BYTES at most. */
  band(plane: Plane, index: number, channels: number): [number, number] {
    const { width, height, depth } = planeDims(this.shape, plane);
    const [cz, cy, cx] = this.source.chunk;
    const along = plane === 'xy' ? cz : plane === 'xz' ? cy : cx;
    const bytes = width * height * channels * (BYTES[this.source.info.dtype] ?? 8);
    const n = Math.max(1, Math.min(along, Math.floor(SLICE_BAND_BYTES / bytes)));
    const c0 = Math.floor(index / along) * along;
    const b0 = c0 + Math.floor((index - c0) / n) * n;
    return [b0, Math.min(depth, b0 + n, c0 + along)];
  }

  private keep(key: string, s: SliceData): void {
    const prev = this.slices.get(key);
    if (prev) {
      this.slices.delete(key);
      this.sliceBytes -= prev.data.byteLength;
    }
    if (s.data.byteLength > SLICE_CACHE_BYTES) return;
    this.slices.set(key, s);
    this.sliceBytes += s.data.byteLength;
    for (const [k, old] of this.slices) {
      if (this.sliceBytes <= SLICE_CACHE_BYTES) break;
      this.slices.delete(k);
      this.sliceBytes -= old.data.byteLength;
    }
  }

  /** Reads slices b0..b1-1 of a plane in one region read and splits them (channel-planar, u fastest each). */
  private async readBand(plane: Plane, b0: number, b1: number, channels: number[] | undefined): Promise<SliceData[]> {
    const { x: X, y: Y, z: Z, c: C } = this.shape;
    const { width, height } = planeDims(this.shape, plane);
    const box: RegionBox =
      plane === 'xy'
        ? { x0: 0, x1: X, y0: 0, y1: Y, z0: b0, z1: b1 }
        : plane === 'xz'
          ? { x0: 0, x1: X, y0: b0, y1: b1, z0: 0, z1: Z }
          : { x0: b0, x1: b1, y0: 0, y1: Y, z0: 0, z1: Z };
    this.bandReads++;
    const d = await this.read(box, channels);
    const nc = channels ? 1 : C;
    const n = b1 - b0;
    const dtype = this.source.info.dtype;
    const out: SliceData[] = [];
    for (let k = 0; k < n; k++) {
      // with one slice the box's layout (c, z, y, x; one axis of extent 1) is the slice's already
      if (n === 1) {
        out.push({ plane, index: b0, width, height, channels: nc, dtype, data: d });
        break;
      }
      const s = allocTyped(dtype, nc * width * height);
      if (plane === 'xy') for (let c = 0; c < nc; c++) s.set(d.subarray((c * n + k) * Y * X, (c * n + k + 1) * Y * X) as never, c * Y * X);
      else if (plane === 'xz')
        for (let c = 0; c < nc; c++)
          for (let z = 0; z < Z; z++) {
            const src = ((c * Z + z) * n + k) * X;
            s.set(d.subarray(src, src + X) as never, (c * Z + z) * X);
          }
      else
        for (let c = 0, o = 0; c < nc; c++)
          for (let z = 0; z < Z; z++)
            for (let y = 0, src = ((c * Z + z) * Y) * n + k; y < Y; y++, src += n) s[o++] = d[src]!;
      out.push({ plane, index: b0 + k, width, height, channels: nc, dtype, data: s });
    }
    return out;
  }

  /**
   * A brick: from the 3D level when the step is a multiple of its step and the origin lies on its grid,
   * otherwise read from the source when at most MAX_BRICK_READ voxels, refused (naming the numbers) beyond.
   */
  async brick(origin?: [number, number, number], size?: [number, number, number], step = 1, channel?: number): Promise<BrickData> {
    const { x: X, y: Y, z: Z, c: C } = this.shape;
    const o = origin ?? [0, 0, 0];
    const s = size ?? [X - o[0], Y - o[1], Z - o[2]];
    const dims = [X, Y, Z];
    for (let a = 0; a < 3; a++)
      if (o[a]! < 0 || s[a]! < 1 || o[a]! + s[a]! > dims[a]!)
        throw new ApiError('bad-request', `brick ${'xyz'[a]} range ${o[a]}..${o[a]! + s[a]! - 1} is outside the volume (0..${dims[a]! - 1})`);
    if (!Number.isInteger(step) || step < 1) throw new ApiError('bad-request', `brick step ${step} is not a positive integer`);
    const channels = this.check(channel);
    const ls = this.level3d.step;
    if (step % ls === 0 && o.every((v) => v % ls === 0)) {
      const p = this.preview.shape;
      const po: [number, number, number] = [o[0] / ls, o[1] / ls, o[2] / ls];
      const ps: [number, number, number] = [
        Math.min(p.x - po[0], Math.ceil(s[0] / ls)),
        Math.min(p.y - po[1], Math.ceil(s[1] / ls)),
        Math.min(p.z - po[2], Math.ceil(s[2] / ls)),
      ];
      if (ps.every((v) => v >= 1)) {
        const b = volumeBrick(this.preview, po, ps, step / ls, channel);
        return { ...b, origin: [o[0], o[1], o[2]], step };
      }
    }
    const voxels = s[0] * s[1] * s[2] * (channels ? 1 : C);
    if (voxels > MAX_BRICK_READ)
      throw new ApiError(
        'bad-request',
        `this ${X}×${Y}×${Z} volume is out of core: a brick of ${s.join('×')} voxels at step ${step} would read ${voxels} voxels (at most ${MAX_BRICK_READ}); ask for step ${ls} (its 3D level) or a smaller box`,
      );
    const data = await this.read({ x0: o[0], x1: o[0] + s[0], y0: o[1], y1: o[1] + s[1], z0: o[2], z1: o[2] + s[2] }, channels);
    const n: [number, number, number] = [Math.ceil(s[0] / step), Math.ceil(s[1] / step), Math.ceil(s[2] / step)];
    const nc = channels ? 1 : C;
    if (step === 1) return { origin: [o[0], o[1], o[2]], size: n, step, channels: nc, dtype: this.source.info.dtype, data };
    const out = allocTyped(this.source.info.dtype, nc * n[0] * n[1] * n[2]);
    let i = 0;
    for (let c = 0; c < nc; c++)
      for (let z = 0; z < n[2]; z++)
        for (let y = 0; y < n[1]; y++) {
          const row = ((c * s[2] + z * step) * s[1] + y * step) * s[0];
          for (let x = 0; x < n[0]; x++) out[i++] = data[row + x * step]!;
        }
    return { origin: [o[0], o[1], o[2]], size: n, step, channels: nc, dtype: this.source.info.dtype, data: out };
  }

  private async read(box: RegionBox, channels?: number[]): Promise<TypedArray> {
    if (this.closed) throw new ApiError('not-found', `${this.source.info.source}: the out-of-core volume was closed`);
    try {
      return await this.source.read(box, channels ? { channels } : {});
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError('bad-input', `${this.source.info.source}: reading x ${box.x0}..${box.x1}, y ${box.y0}..${box.y1}, z ${box.z0}..${box.z1} failed: ${(e as Error).message}`, {
        file: this.source.info.source,
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.slices.clear();
    this.sliceBytes = 0;
    await this.source.close();
  }
}

/** Copies a channel-planar array of size `from` into one of size `to`, clamping coordinates (edge repeat). */
function padTo(d: TypedArray, C: number, from: [number, number, number], to: [number, number, number]): TypedArray {
  const out = d.constructor === Float64Array ? new Float64Array(C * to[0] * to[1] * to[2]) : new (d.constructor as new (n: number) => TypedArray)(C * to[0] * to[1] * to[2]);
  let i = 0;
  for (let c = 0; c < C; c++)
    for (let z = 0; z < to[2]; z++)
      for (let y = 0; y < to[1]; y++) {
        const row = ((c * from[2] + Math.min(z, from[2] - 1)) * from[1] + Math.min(y, from[1] - 1)) * from[0];
        for (let x = 0; x < to[0]; x++) out[i++] = d[row + Math.min(x, from[0] - 1)]!;
      }
  return out;
}

/** Every t-th voxel of a source level (nearest), streamed in chunk-aligned bands; channel-planar. */
async function sampleLevel(source: RegionSource, level: number, shape: { x: number; y: number; z: number }, t: number, opts: BigVolumeOptions): Promise<TypedArray> {
  const { dtype, shape: full } = source.info;
  const C = full.c;
  const { x: X, y: Y, z: Z } = shape;
  const px = Math.ceil(X / t),
    py = Math.ceil(Y / t),
    pz = Math.ceil(Z / t);
  const out = allocTyped(dtype, C * px * py * pz);
  // a pyramid level's chunks are taken to be level 0's shape (OME-Zarr writers keep one chunk shape)
  const [cz, cy] = source.chunk;
  // chunks deeper than the step: read whole chunk slabs (every chunk holds sampled planes); otherwise only the
  // sampled planes, one at a time (a TIFF page or strip is its own chunk)
  const slab = cz > 1 && cz >= t ? cz : 1;
  const bpe = BYTES[dtype] ?? 8;
  const rowBytes = X * C * bpe * slab;
  const band = Math.min(Y, Math.max(cy, Math.floor(BAND_BYTES / rowBytes / cy) * cy));
  const zStarts: number[] = [];
  if (slab > 1) for (let z = 0; z < Z; z += slab) zStarts.push(z);
  else for (let z = 0; z < Z; z += t) zStarts.push(z);
  let done = 0;
  for (const z0 of zStarts) {
    const zs: number[] = [];
    for (let z = Math.ceil(z0 / t) * t; z < Math.min(Z, z0 + slab); z += t) zs.push(z);
    if (!zs.length) continue;
    for (let y0 = 0; y0 < Y; y0 += band) {
      if (opts.signal?.aborted) throw new CancelledError('opening the volume was cancelled');
      const y1 = Math.min(Y, y0 + band);
      const za = zs[0]!,
        zb = zs[zs.length - 1]! + 1;
      const d = await source.read({ x0: 0, x1: X, y0, y1, z0: za, z1: zb }, { level, signal: opts.signal });
      const bh = y1 - y0,
        bd = zb - za;
      for (let c = 0; c < C; c++)
        for (const z of zs)
          for (let y = Math.ceil(y0 / t) * t; y < y1; y += t) {
            const src = ((c * bd + z - za) * bh + y - y0) * X;
            const dst = ((c * pz + z / t) * py + y / t) * px;
            for (let x = 0, k = 0; x < X; x += t, k++) out[dst + k] = d[src + x]!;
          }
      done += zs.length * (y1 - y0);
      opts.onProgress?.({ fraction: Math.min(1, done / (Math.ceil(Z / t) * Y)), stage: '3D level' });
    }
  }
  return out;
}

/**
 * A checksum for an out-of-core volume or a Zarr store: hashing tens of GB before the first slice is not an
 * option, so it is the sha256 of the file's identity (size, mtime, dataset, time point), not of its bytes. A
 * project still finds the file by it when it is unchanged or moved (mv keeps both); a copy is another volume.
 */
export async function identityHash(path: string, parts: Array<string | number>): Promise<string> {
  const st = await stat(path);
  return createHash('sha256')
    .update(['out-of-core', st.size, st.mtimeMs, ...parts].join('|'))
    .digest('hex');
}

/**
 * The checksum the compute process records for `path` (what a project compares when a volume is relocated):
 * the identity hash for a Zarr store or a volume above the in-memory limit, the sha256 of the bytes otherwise.
 */
export async function volumeChecksum(path: string, o: { dataset?: string; timepoint?: number } = {}): Promise<string> {
  const parts = [o.dataset ?? '', o.timepoint ?? 0];
  if ((await stat(path)).isDirectory()) return identityHash(path, parts);
  const io = await regionIo();
  const probe = await io.probeVolume(path, o).catch(() => null);
  if (probe && volumeBytes(probe) > outOfCoreBytes()) return identityHash(path, parts);
  const { sha256File } = await import('./project.js');
  return sha256File(path);
}

/** What the io module offers for out-of-core reads (late-bound: the region sources land separately). */
interface RegionIo {
  probeVolume(path: string, opts?: { dataset?: string; timepoint?: number }): Promise<Omit<Volume, 'data'>>;
  openRegionSource?: (path: string, opts?: OpenRegionOptions) => Promise<RegionSource>;
  isZarrPath?: (path: string) => Promise<boolean>;
  openZarrSource?: (path: string, opts?: OpenRegionOptions) => Promise<RegionSource>;
}

export async function regionIo(): Promise<RegionIo> {
  const io = (await import('../io/index.js')) as unknown as RegionIo;
  // openRegionSource (TIFF, HDF5 and OME-Zarr sources) lives in main/io/regions.ts
  const regions = (await import('../io/regions.js').catch(() => ({}))) as Partial<RegionIo>;
  return { ...io, openRegionSource: io.openRegionSource ?? regions.openRegionSource };
}

/** Bytes of the voxels of a volume (all channels of one time point). */
export function volumeBytes(v: Pick<Volume, 'shape' | 'dtype'>): number {
  return v.shape.x * v.shape.y * v.shape.z * v.shape.c * (BYTES[v.dtype] ?? 8);
}

const gib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(0)} MiB`);

/** What the compute process reports of an out-of-core image (ResidentVolumeInfo less volumeId/reused). */
export interface BigImageInfo {
  format: string;
  dtype: Volume['dtype'];
  shape: Volume['shape'];
  spacing: Volume['spacing'];
  channelNames: string[];
  channelStats: ChannelStats[];
  sha256: string;
  timepoint: number;
  metadata: Record<string, unknown>;
  outOfCore: Level3D;
}

/**
 * Opens `path` out of core when its voxels exceed `limit` bytes (or it is a Zarr store too big for memory);
 * null when it should be read into memory as before. Only the header is probed before deciding.
 */
export async function openBigImage(
  path: string,
  req: { dataset?: string; timepoint?: number },
  limit: number,
  onProgress?: ProgressCallback,
  metadata: (m: Record<string, unknown>) => Record<string, unknown> = (m) => m,
): Promise<{ volume: BigVolume; info: BigImageInfo } | null> {
  const io = await regionIo();
  const probe = await io.probeVolume(path, { dataset: req.dataset, timepoint: req.timepoint });
  const bytes = volumeBytes(probe);
  if (bytes <= limit) return null;
  const open = io.openRegionSource ?? ((await io.isZarrPath?.(path)) ? io.openZarrSource : undefined);
  if (!open)
    throw new ApiError(
      'not-available',
      `${path}: ${probe.shape.x}×${probe.shape.y}×${probe.shape.z}×${probe.shape.c} ${probe.dtype} (${gib(bytes)}) is above the in-memory limit of ${gib(limit)} and out-of-core reading of ${probe.format} files is not available yet (main/io openRegionSource); raise SLICEFORM_OUT_OF_CORE_BYTES to read it into memory`,
      { file: path },
    );
  onProgress?.({ fraction: 0, stage: 'opening out of core' });
  const source = await open(path, { dataset: req.dataset, timepoint: req.timepoint, cacheBytes: SOURCE_CACHE_BYTES });
  let volume: BigVolume;
  try {
    volume = await BigVolume.open(source, { onProgress });
  } catch (e) {
    await source.close().catch(() => {});
    throw e;
  }
  const i = source.info;
  const sha256 = await identityHash(path, [req.dataset ?? '', req.timepoint ?? 0]);
  onProgress?.({ fraction: 1, stage: 'opened out of core' });
  return {
    volume,
    info: {
      format: i.format,
      dtype: i.dtype,
      shape: i.shape,
      spacing: i.spacing,
      channelNames: i.channelNames,
      channelStats: volume.stats,
      sha256,
      timepoint: i.timepoint,
      metadata: metadata({ ...i.metadata, outOfCore: { bytes, level3d: volume.level3d, checksum: 'of the file identity (size, mtime, dataset, time point), not of its bytes' } }),
      outOfCore: volume.level3d,
    },
  };
}

/** The refusal of a job or call that needs the whole image (or a dense layer) of an out-of-core volume. */
export function refuseOutOfCore(v: BigVolume, what: string): ApiError {
  const { x, y, z, c } = v.shape;
  return new ApiError(
    'not-available',
    `${v.source.info.source} (${x}×${y}×${z}×${c} ${v.source.info.dtype}, ${gib(volumeBytes(v.source.info))}) is open out of core: ${what} needs the whole image in memory, and streaming it from the painted blocks is not built yet. Crop the painted region into a smaller stack, or raise SLICEFORM_OUT_OF_CORE_BYTES above the stack's size to open it in memory`,
    { file: v.source.info.source },
  );
}

/** A folder that is a Zarr store (opened like a file: OME-Zarr images are folders). */
export async function isZarrStore(path: string): Promise<boolean> {
  const io = await regionIo();
  return (await io.isZarrPath?.(path)) ?? false;
}

/**
 * Writes a label layer as an OME-Zarr label image (NGFF 0.4, 64³ chunks, "image-label" metadata): for a sparse
 * layer only the painted blocks become chunk files (the rest reads as 0, the fill value), so exporting the
 * annotation of a 20 GB stack writes what was painted, not 20 GB. No pyramid (it would read every chunk).
 */
export async function writeLabelsZarr(path: string, store: LabelStore, spacing: Volume['spacing'], classNames: string[]): Promise<void> {
  const io = (await import('../io/index.js')) as unknown as {
    createOmeZarrImage(root: string, group: string, spec: Record<string, unknown>): Promise<{ writeRegion(box: RegionBox, data: TypedArray): Promise<void> }>;
  };
  const { x, y, z } = store.dims;
  const w = await io.createOmeZarrImage(path, '', {
    shape: { x, y, z, c: 1 },
    dtype: 'uint8',
    spacing,
    channelNames: ['labels'],
    chunks: [BLOCK, BLOCK, BLOCK],
    name: classNames.length ? `labels (${classNames.join(', ')})` : 'labels',
    label: { source: null },
  });
  const boxes: Box[] = [];
  if (store instanceof SparseLabels) boxes.push(...store.paintedBlocks());
  else
    for (let z0 = 0; z0 < z; z0 += BLOCK)
      for (let y0 = 0; y0 < y; y0 += BLOCK)
        for (let x0 = 0; x0 < x; x0 += BLOCK) boxes.push({ min: [x0, y0, z0], max: [Math.min(x, x0 + BLOCK), Math.min(y, y0 + BLOCK), Math.min(z, z0 + BLOCK)] });
  for (const b of boxes) await w.writeRegion({ x0: b.min[0], y0: b.min[1], z0: b.min[2], x1: b.max[0], y1: b.max[1], z1: b.max[2] }, store.box(b));
}

/** Bytes of the files under a folder (the size of an exported store). */
export async function folderBytes(dir: string): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  const { join } = await import('node:path');
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += await folderBytes(p);
    else if (e.isFile()) n += (await stat(p)).size;
  }
  return n;
}
