/**
 * Streamed (out-of-core) segment: a model applied to a RegionSource (main/io/region.ts) without the stack in
 * memory. Tiles are read with their halo window by window (main/volume/stream.ts), decided as they finish and
 * handed on in z-slabs; the forest member gets z-slabs with its feature halo; the downsampled path builds the
 * low-resolution image region by region. Labels equal segmentVolume's voxel for voxel (same plan, tiles and
 * float operations; tested). `zRange` makes one shard of a volume. Before any work, fitCheck says whether the
 * outputs fit on disk and the working set in memory, with the numbers.
 */
import { readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { freemem } from 'node:os';
import type { Model, NetConfig } from '../common/engine.js';
import { DTYPE_BYTES, type TypedArray, type Volume } from '../common/volume.js';
import { SliceformError } from '../common/errors.js';
import type { RegionSource } from '../io/region.js';
import { labelDType } from '../io/writer.js';
import { isZarrOutputPath, SlabZarrWriter, slabZarrMaxBytes, type SlabZarrOptions } from '../io/zarr/slab.js';
import { SlabTiffWriter } from './slab-writer.js';
import { normAffine } from '../volume/predict.js';
import { downsampleVolume, isIdentity, type Factors } from '../volume/resample.js';
import { maxWindowVoxels, predictStreamed, streamPlan, type WindowBox } from '../volume/stream.js';
import type { TilePlan } from '../volume/tiling.js';
import { predictDownsampled, reweight, type SegmentOptions, type SegmentResult } from './segment.js';

export interface StreamSegmentOptions extends SegmentOptions {
  /** output planes [z0, z1) (one shard of the volume; default all). onSlab gets only these planes. */
  zRange?: [number, number];
}

/** The chunk cache of a TIFF or OME-Zarr RegionSource opened with default options. */
const DEFAULT_SOURCE_CACHE_BYTES = 256 * 2 ** 20;

/** z-planes of the forest member's feature halo when the mixer does not say (ENSEMBLE_FEATURES: 34). */
const DEFAULT_MIX_HALO = 40;

function gib(n: number): string {
  if (n < 2 ** 20) return `${(n / 2 ** 10).toFixed(0)} KiB`;
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}

/** Float images must be finite; checked per window, since the stack is never whole in memory. */
function assertFinite(data: TypedArray, file: string, box: WindowBox): void {
  if (!(data instanceof Float32Array || data instanceof Float64Array)) return;
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x !== x) nan++;
    else if (x === Infinity || x === -Infinity) inf++;
  }
  if (nan || inf) {
    const parts = [nan ? `${nan} NaN` : '', inf ? `${inf} infinite` : ''].filter(Boolean).join(' and ');
    throw new SliceformError(
      'bad-input',
      `the image has ${parts} voxel values in the region z ${box.z0}..${box.z1 - 1}, y ${box.y0}..${box.y1 - 1}, x ${box.x0}..${box.x1 - 1}; replace them (e.g. with 0) before segmenting`,
      { file },
    );
  }
}

export async function segmentSource(model: Model, source: RegionSource, opts: StreamSegmentOptions): Promise<SegmentResult> {
  const net = model.config;
  const info = source.info;
  const file = info.source;
  const { x: X, y: Y, z: Z, c: C } = info.shape;
  if (C !== net.inChannels || opts.normalisation.channels.length !== C)
    throw new SliceformError('bad-input', `the model expects ${net.inChannels} channel(s), the stack has ${C}`, { file });
  const K = net.numClasses;
  const collect = opts.collect ?? !opts.onSlab;
  if (collect && K > 255)
    throw new SliceformError('unsupported', `the model has ${K} classes; labels held in memory support at most 255 (write them to a file instead)`);
  const labels = collect ? new Uint8Array(X * Y * Z) : undefined;
  const [zr0, zr1] = opts.zRange ?? [0, Z];
  const read = async (box: WindowBox): Promise<TypedArray> => {
    const d = await source.read(box, { signal: opts.signal });
    assertFinite(d, file, box);
    return d;
  };
  const f = opts.downsample ?? [1, 1, 1];
  if (!isIdentity(f)) {
    const low = await downsampleSource(source, f, read);
    // a full-resolution forest member reads z-slabs of the stack with its feature halo (segment.ts fullMixSource)
    const planes = async (a: number, b: number): Promise<Volume> => ({
      ...info,
      shape: { ...info.shape, z: b - a },
      data: await read({ z0: a, z1: b, y0: 0, y1: Y, x0: 0, x1: X }),
    });
    return predictDownsampled(model, low, planes, [Z, Y, X], f, opts, labels, [zr0, zr1]);
  }
  const mixer = opts.mixer && opts.mixer.weight > 0 ? opts.mixer : undefined;
  const plane = X * Y;
  const res = await predictStreamed(
    model,
    read,
    [Z, Y, X],
    C,
    normAffine(opts.normalisation),
    {
      numClasses: K,
      levels: net.levels,
      padding: net.padding,
      maxTileInputVoxels: opts.maxTileInputVoxels,
      testTimeFlips: opts.testTimeFlips,
      probabilities: opts.probabilities,
      decisionWeights: opts.decisionWeights,
      zRange: [zr0, zr1],
      ...(mixer
        ? {
            mix: {
              weight: mixer.weight,
              // the slab with the features' halo: inner voxels see exactly what they see in the whole stack
              async slab(z0: number, depth: number): Promise<Float32Array> {
                const h = mixer.halo ?? DEFAULT_MIX_HALO;
                const a = Math.max(0, z0 - h);
                const b = Math.min(Z, z0 + depth + h);
                const data = await read({ z0: a, z1: b, y0: 0, y1: Y, x0: 0, x1: X });
                const vol: Volume = { ...info, shape: { ...info.shape, z: b - a }, data };
                const p = mixer.probabilities(vol, vol);
                const n = (b - a) * plane;
                const m = depth * plane;
                const out = new Float32Array(K * m);
                for (let k = 0; k < K; k++) out.set(p.subarray(k * n + (z0 - a) * plane, k * n + (z0 - a) * plane + m), k * m);
                return out;
              },
            },
          }
        : {}),
      signal: opts.signal,
      onProgress: opts.onProgress,
    },
    async (slab) => {
      labels?.set(slab.labels, slab.z0 * plane);
      if (slab.probabilities && opts.decisionWeights) reweight(slab.probabilities, K, opts.decisionWeights);
      await opts.onSlab?.(slab);
    },
  );
  return { ...res, ...(labels ? { labels } : {}) };
}

/** The low-resolution image, built from z-slabs whose depth is a multiple of the z factor (box average is local). */
async function downsampleSource(source: RegionSource, f: Factors, read: (b: WindowBox) => Promise<TypedArray>): Promise<Volume> {
  const info = source.info;
  const { x: X, y: Y, z: Z, c: C } = info.shape;
  const [fz, fy, fx] = f;
  const oz = Math.ceil(Z / fz);
  const oy = Math.ceil(Y / fy);
  const ox = Math.ceil(X / fx);
  const lowPlane = oy * ox;
  const data = new Float32Array(C * oz * lowPlane);
  const per = Math.max(1, Math.floor(32_000_000 / (C * X * Y * fz))) * fz;
  for (let z0 = 0; z0 < Z; z0 += per) {
    const z1 = Math.min(Z, z0 + per);
    const slab = await read({ z0, z1, y0: 0, y1: Y, x0: 0, x1: X });
    const low = downsampleVolume({ ...info, shape: { ...info.shape, z: z1 - z0 }, data: slab }, f);
    const lz = low.shape.z;
    for (let c = 0; c < C; c++)
      data.set((low.data as Float32Array).subarray(c * lz * lowPlane, (c + 1) * lz * lowPlane), (c * oz + z0 / fz) * lowPlane);
  }
  return {
    ...info,
    dtype: 'float32',
    shape: { ...info.shape, x: ox, y: oy, z: oz },
    spacing: { ...info.spacing, x: info.spacing.x * fx, y: info.spacing.y * fy, z: info.spacing.z * fz },
    data,
  };
}

// ------------------------------------------------------------------------------------------------ fit check
/**
 * Bytes libtorch holds per input voxel of a tile during a CPU forward pass: ~160 per first-level filter
 * (measured: the tiny net, 4 filters, peaked at 2.2 GB RSS for a 3 M-voxel tile).
 */
export function netBytesPerInputVoxel(net: Pick<NetConfig, 'baseFilters'>): number {
  return 160 * net.baseFilters;
}

export interface FitEstimate {
  plan: TilePlan;
  /** working set of the streamed segment, bytes (excluding the runtime's own ~0.3 GiB) */
  memoryBytes: number;
  /** what it is made of, for the message */
  parts: Record<string, number>;
}

/** The streamed segment's working set for a source and model (pure arithmetic over the plan). */
export function estimateStreamMemory(
  net: NetConfig,
  info: RegionSource['info'],
  o: Pick<StreamSegmentOptions, 'downsample' | 'maxTileInputVoxels' | 'probabilities' | 'mixer' | 'collect'> & {
    /** the source's cache of decoded chunks (default: none for HDF5, whose library caches little; else 256 MiB) */
    sourceCacheBytes?: number;
  },
): FitEstimate {
  const { x: X, y: Y, z: Z, c: C } = info.shape;
  const K = net.numClasses;
  const f = o.downsample ?? [1, 1, 1];
  const shape: [number, number, number] = [Math.ceil(Z / f[0]), Math.ceil(Y / f[1]), Math.ceil(X / f[2])];
  const plan = streamPlan(shape, { levels: net.levels, padding: net.padding, maxTileInputVoxels: o.maxTileInputVoxels });
  const inVox = plan.in[0] * plan.in[1] * plan.in[2];
  const outVox = plan.out[0] * plan.out[1] * plan.out[2];
  const slabPlanes = Math.min(Z, plan.out[0]);
  const labelBytes = K > 255 ? 2 : 1;
  const parts: Record<string, number> = {
    network: netBytesPerInputVoxel(net) * inVox,
    tiles: C * inVox * 4 + 3 * K * outVox * 4,
  };
  if (isIdentity(f)) {
    parts['input windows'] = 2 * C * maxWindowVoxels(plan, shape) * DTYPE_BYTES[info.dtype];
    parts['label slab'] = 2 * slabPlanes * X * Y * labelBytes;
    if (o.probabilities) parts['probability slab'] = 2 * K * slabPlanes * X * Y * 4;
    if (o.mixer && o.mixer.weight > 0) {
      const h = o.mixer.halo ?? DEFAULT_MIX_HALO;
      const planes = Math.min(Z, slabPlanes + 2 * h);
      // image + normalised copy + its probabilities, plus ~20 float features per channel over a 4 M-voxel slab
      parts['forest member'] = planes * X * Y * (C * (DTYPE_BYTES[info.dtype] + 4) + 2 * K * 4) + 20 * C * 4 * Math.min(planes * X * Y, 4_000_000);
    }
  } else {
    const lowN = shape[0] * shape[1] * shape[2];
    parts['low-resolution image'] = C * lowN * 4;
    parts['low-resolution probabilities'] = 2 * K * lowN * 4;
    parts['upsampled slab'] = 2 * 4_000_000 * 4 + 4_000_000;
    if (o.mixer && o.mixer.weight > 0 && o.mixer.resolution === 'full') {
      // full-resolution member: a slab of planes with its halo (image, normalised copy), its probabilities and
      // the chunk kept for the upsampled slabs, plus ~20 float features per channel over a 4 M-voxel slab
      const h = o.mixer.halo ?? DEFAULT_MIX_HALO;
      const planes = Math.min(Z, (o.mixer.slabPlanes ?? Math.max(2 * h, Math.floor(32_000_000 / (X * Y)))) + 2 * h);
      parts['forest member'] = planes * X * Y * (C * (DTYPE_BYTES[info.dtype] + 4) + 2 * K * 4) + 20 * C * 4 * Math.min(planes * X * Y, 4_000_000);
    } else if (o.mixer && o.mixer.weight > 0) parts['forest member'] = K * lowN * 4 + C * lowN * 4 + 20 * C * 4 * Math.min(lowN, 4_000_000);
  }
  if (o.collect) parts['collected labels'] = X * Y * Z;
  // TIFF and OME-Zarr sources keep up to 256 MiB of decoded planes/chunks (main/io/tiff/region.ts, zarr/reader.ts)
  const cache = o.sourceCacheBytes ?? (info.format === 'hdf5' ? 0 : DEFAULT_SOURCE_CACHE_BYTES);
  parts['input cache'] = Math.min(cache, X * Y * Z * C * DTYPE_BYTES[info.dtype]);
  const memoryBytes = Object.values(parts).reduce((a, b) => a + b, 0);
  return { plan, memoryBytes, parts };
}

/** Memory the kernel says is available (MemAvailable; freemem() elsewhere). */
export function availableMemory(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'latin1'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    /* not Linux */
  }
  return freemem();
}

/**
 * Free bytes for an unprivileged writer on the file system holding `path` (its folder, or the nearest folder
 * above it that exists: OME-Zarr stores create their parent folders).
 */
export async function freeDiskBytes(path: string): Promise<number> {
  let dir = dirname(resolve(path));
  for (;;) {
    try {
      const s = await statfs(dir);
      return Number(s.bavail) * Number(s.bsize);
    } catch (e) {
      const up = dirname(dir);
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || up === dir) throw e;
      dir = up;
    }
  }
}

export interface FitInput {
  /** files or stores to be written, with their size in bytes; `upTo`: the size is a bound, and why (for the message) */
  outputs: { path: string; bytes: number; upTo?: string }[];
  /** the working set (none: disk only, e.g. the in-memory path, whose stack is already read) */
  memory?: FitEstimate;
  /** what to measure against (tests inject these) */
  env?: { freeDisk?(path: string): Promise<number>; freeMemory?(): number };
}

/**
 * Throws a 'too-large' SliceformError naming the numbers when the outputs do not fit on their disks or the
 * working set does not fit in the available memory. Called before the model runs.
 */
export async function fitCheck(i: FitInput): Promise<void> {
  const freeDisk = i.env?.freeDisk ?? freeDiskBytes;
  const byDir = new Map<string, { bytes: number; paths: string[]; upTo: Set<string> }>();
  for (const o of i.outputs) {
    const d = dirname(resolve(o.path));
    const e = byDir.get(d) ?? { bytes: 0, paths: [], upTo: new Set<string>() };
    e.bytes += o.bytes;
    e.paths.push(o.path);
    if (o.upTo) e.upTo.add(o.upTo);
    byDir.set(d, e);
  }
  for (const [dir, e] of byDir) {
    const free = await freeDisk(e.paths[0]!);
    if (e.bytes > free)
      throw new SliceformError(
        'too-large',
        `not enough disk space: ${e.paths.length > 1 ? `the ${e.paths.length} outputs need` : 'the output needs'} ${e.upTo.size ? 'up to ' : ''}${gib(e.bytes)}${e.upTo.size ? ` (${[...e.upTo].join('; ')})` : ''}, ${dir} has ${gib(free)} free`,
        { file: e.paths.join(', ') },
      );
  }
  const m = i.memory;
  if (!m) return;
  const avail = (i.env?.freeMemory ?? availableMemory)();
  if (m.memoryBytes > avail) {
    const parts = Object.entries(m.parts)
      .filter(([, b]) => b > 0)
      .map(([k, b]) => `${k} ${gib(b)}`)
      .join(', ');
    throw new SliceformError(
      'too-large',
      `not enough memory: the tile plan (input tile ${m.plan.in.join('x')}, output ${m.plan.out.join('x')}) needs ${gib(m.memoryBytes)} (${parts}), ${gib(avail)} is available; lower the tile size (maxTileInputVoxels) or free memory`,
    );
  }
}

// ------------------------------------------------------------------------------------------- to files / stores
/** A shard spec "I of N" (1-based, as `--shard I/N`). */
export interface ShardSpec {
  index: number;
  count: number;
}

/**
 * The planes [z0, z1) of shard I of N: disjoint runs of whole chunk rows (chunk depth cz), the same for every
 * shard process given (Z, cz, N), together exactly 0..Z. A shard may be empty when N exceeds the chunk rows.
 */
export function shardRange(Z: number, cz: number, s: ShardSpec): [number, number] {
  const rows = Math.ceil(Z / cz);
  const a = Math.floor(((s.index - 1) * rows) / s.count);
  const b = Math.floor((s.index * rows) / s.count);
  return [Math.min(Z, a * cz), Math.min(Z, b * cz)];
}

export interface StreamToFilesOptions extends Omit<StreamSegmentOptions, 'onSlab' | 'zRange' | 'collect'> {
  /** labels: an ImageJ TIFF (.tif) or an OME-Zarr label image store (.zarr, standalone "image-label") */
  out: string;
  /** per-class probabilities (float32): TIFF, or OME-Zarr with one channel per class */
  probabilitiesOut?: string;
  /** shard I of N of one volume: needs OME-Zarr outputs, writes only its chunk rows, no pyramid */
  shard?: ShardSpec;
  /** OME-Zarr chunk shape [z, y, x] (default [min(Z, 64), min(Y, 256), min(X, 256)]) */
  chunks?: [number, number, number];
  /** OME-Zarr: NGFF version (default 0.4) */
  ngff?: '0.4' | '0.5';
  /** what the fit check measures against (tests) */
  fitEnv?: FitInput['env'];
}

export interface StreamToFilesResult extends SegmentResult {
  zRange: [number, number];
  fit: FitEstimate;
}

/**
 * Checks the fit, then segments `source` slab by slab into the outputs. A TIFF is written under a temporary
 * name and renamed when complete; an OME-Zarr store of a single run is built beside the target and renamed
 * into place (replacing an earlier Sliceform label store there); shards write their chunk rows straight into
 * the shared store, whose metadata every shard writes identically and atomically (temp + rename), so start
 * order does not matter and no merge step follows.
 */
export async function segmentSourceToFiles(model: Model, source: RegionSource, o: StreamToFilesOptions): Promise<StreamToFilesResult> {
  const info = source.info;
  const { x: X, y: Y, z: Z } = info.shape;
  const K = model.config.numClasses;
  const ldt = labelDType(K);
  const zarrOut = isZarrOutputPath(o.out);
  if (o.probabilitiesOut && isZarrOutputPath(o.probabilitiesOut) !== zarrOut)
    throw new SliceformError('bad-input', `--out and --probabilities must both be TIFF or both be OME-Zarr (${o.out}, ${o.probabilitiesOut})`);
  if (o.shard && o.shard.count > 1 && !zarrOut)
    throw new SliceformError('bad-input', `--shard I/N on one volume needs an OME-Zarr output (--out NAME.ome.zarr), not ${o.out}: shards write disjoint chunks of one store`);
  const chunks: [number, number, number] = o.chunks ?? [Math.min(Z, 64), Math.min(Y, 256), Math.min(X, 256)];
  const zRange: [number, number] = o.shard && o.shard.count > 1 ? shardRange(Z, chunks[0], o.shard) : [0, Z];
  const N = X * Y * (zRange[1] - zRange[0]);
  const sharded = Boolean(o.shard && o.shard.count > 1);
  const zarrOptions = (channels: number, dtype: 'uint8' | 'uint16' | 'float32', label: boolean): SlabZarrOptions => ({
    width: X,
    height: Y,
    depth: Z,
    channels,
    dtype,
    spacing: info.spacing,
    version: o.ngff,
    chunks,
    label,
    name: label ? 'labels' : 'probabilities',
    ...(label ? {} : { channelNames: Array.from({ length: K }, (_, k) => `class${k + 1}`) }),
    ...(sharded ? { shard: zRange } : {}),
  });
  const fit = estimateStreamMemory(model.config, info, o);
  if (zarrOut) fit.parts['chunk-row buffers'] = chunks[0] * X * Y * (DTYPE_BYTES[ldt] + (o.probabilitiesOut ? 4 * K : 0));
  fit.memoryBytes = Object.values(fit.parts).reduce((a, b) => a + b, 0);
  // disk: a TIFF's voxels; an OME-Zarr store's most (its or the shard's whole chunks uncompressed, the pyramid)
  const need = (path: string, channels: number, dtype: 'uint8' | 'uint16' | 'float32', label: boolean) =>
    zarrOut
      ? { path, bytes: slabZarrMaxBytes(zarrOptions(channels, dtype, label)), upTo: sharded ? `OME-Zarr: this shard's chunk rows, uncompressed` : 'OME-Zarr: whole chunks uncompressed, pyramid included' }
      : { path, bytes: N * channels * DTYPE_BYTES[dtype] };
  await fitCheck({
    outputs: [need(o.out, 1, ldt, true), ...(o.probabilitiesOut ? [need(o.probabilitiesOut, K, 'float32', false)] : [])],
    memory: fit,
    env: o.fitEnv,
  });
  const sinks: (SlabTiffWriter | SlabZarrWriter)[] = [];
  // one slab writer per output: TIFF (temporary name, renamed), or OME-Zarr (built beside and renamed in with its
  // pyramid; a shard writes its chunk rows into the shared store)
  const open = (path: string, channels: number, dtype: 'uint8' | 'uint16' | 'float32', label: boolean) =>
    zarrOut
      ? SlabZarrWriter.create(path, zarrOptions(channels, dtype, label))
      : SlabTiffWriter.create(path, { width: X, height: Y, depth: Z, channels, dtype, spacing: info.spacing, displayRange: label ? [0, K] : [0, 1] });
  try {
    sinks.push(await open(o.out, 1, ldt, true));
    if (o.probabilitiesOut) sinks.push(await open(o.probabilitiesOut, K, 'float32', false));
    const res =
      zRange[1] > zRange[0]
        ? await segmentSource(model, source, {
            ...o,
            probabilities: Boolean(o.probabilitiesOut),
            collect: false,
            zRange,
            onSlab: async (slab) => {
              await sinks[0]!.writeSlab(slab.labels as Uint8Array | Uint16Array, slab.depth);
              if (sinks[1] && slab.probabilities) await sinks[1].writeSlab(slab.probabilities, slab.depth);
            },
          })
        : { plan: fit.plan, classCounts: new Array<number>(K + 1).fill(0), seconds: 0, tilesPredicted: 0 };
    for (const s of sinks) await s.close();
    return { ...res, zRange, fit };
  } catch (e) {
    for (const s of sinks) await s.abort();
    throw e;
  }
}
