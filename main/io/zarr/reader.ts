/**
 * OME-Zarr / Zarr reader: a RegionSource over a Zarr v2 or v3 store on disk (NGFF 0.4 and 0.5 images,
 * their multiscales levels, label images, raw arrays without NGFF metadata), plus probe/read of a whole
 * volume for the reader registry.
 *
 *   const src = await openZarrSource('cells.ome.zarr', { cacheBytes: 64 << 20 });
 *   const block = await src.read({ x0: 0, y0: 0, z0: 0, x1: 256, y1: 256, z1: 32 }, { level: 1 });
 *   await src.close();
 *
 * zarrita decodes the chunks (its codecs: blosc, zstd, gzip, zlib, lz4, sharding, transpose, either byte
 * order); this file maps the array axes onto t, c, z, y, x, keeps decoded chunks in a bounded LRU cache and
 * assembles regions in the Volume layout. A missing chunk reads as the array's fill_value (sparse stores).
 * Whole-volume offsets never pass through 32-bit arithmetic: chunk origins are float64 products of chunk
 * indices, exact far beyond 2^31 voxels.
 */
import { stat } from 'node:fs/promises';
import * as zarr from 'zarrita';
import { CancelledError, SliceformError, VolumeReadError } from '../../common/errors.js';
import { EtaEstimator } from '../../common/progress.js';
import { allocTyped, type DType, type Spacing, type TypedArray, type Volume } from '../../common/volume.js';
import { allocVolume } from '../memory.js';
import { assertBoxInside, type OpenRegionOptions, type RegionBox, type RegionLevel, type RegionReadOptions, type RegionSource } from '../region.js';
import type { ReadOptions, VolumeInfo } from '../types.js';
import { labelNames, mapAxes, parseNgff, rawAxes, unitToMicrons, type AxisMap, type NgffAxis, type NgffImage } from './ngff.js';
import { FsStore } from './store.js';

type ZArray = zarr.Array<zarr.DataType, FsStore>;

const DTYPES: Record<string, DType> = {
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  uint32: 'uint32',
  float32: 'float32',
  float64: 'float64',
  // label images written by numpy default to int64; they are read as uint32 and refused per chunk when a
  // value does not fit
  int64: 'uint32',
  uint64: 'uint32',
  bool: 'uint8',
};

export interface ZarrSourceOptions extends OpenRegionOptions {
  onWarning?: (message: string) => void;
}

interface CachedChunk {
  data: TypedArray;
  stride: number[];
  bytes: number;
}

/** Is this path a Zarr store (a folder with Zarr metadata, or named *.zarr)? */
export async function isZarrPath(path: string): Promise<boolean> {
  if (/\.zarr\/?$/i.test(path)) return true;
  try {
    if (!(await stat(path)).isDirectory()) return false;
  } catch {
    return false;
  }
  const s = new FsStore(path);
  for (const k of ['/.zgroup', '/.zarray', '/zarr.json', '/.zattrs'] as const) if (await s.get(k)) return true;
  return false;
}

function why(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function openNode(store: FsStore, path: string, where: string): Promise<ZArray | zarr.Group<FsStore>> {
  try {
    return (await zarr.open(zarr.root(store).resolve(path))) as ZArray | zarr.Group<FsStore>;
  } catch (e) {
    if (!(e instanceof zarr.NotFoundError)) throw new VolumeReadError(store.root, `${where}: unreadable Zarr metadata (${why(e)})`, { cause: e });
    // open() tries v3 after a v2 failure and reports the last "not found": when v2 metadata is there, say why
    // it did not open (an unknown data type, bad JSON)
    const base = zarr.root(store).resolve(path);
    const has = async (k: string) => (await store.get(base.resolve(k).path as `/${string}`)) !== undefined;
    if ((await has('.zarray')) || (await has('.zgroup'))) {
      const kind = (await has('.zarray')) ? 'array' : 'group';
      const e2 = await zarr.open.v2(base, { kind }).then(() => undefined, (x: unknown) => x);
      throw new VolumeReadError(store.root, `${where}: unreadable Zarr v2 metadata (${why(e2 ?? e)})`, { cause: e2 ?? e });
    }
    throw new VolumeReadError(store.root, `not a Zarr store: no .zarray/.zgroup (v2) or zarr.json (v3)${path ? ` at "${path}"` : ''}`);
  }
}

async function openArray(store: FsStore, path: string, where: string): Promise<ZArray> {
  const n = await openNode(store, path, where);
  if (n.kind !== 'array') throw new VolumeReadError(store.root, `${where} is a group, not an array`);
  return n;
}

function spacingOf(img: NgffImage, map: AxisMap, warnings: string[], where: string): Spacing {
  const s = img.datasets[0]!.scale;
  const out: Spacing = { x: 1, y: 1, z: 1, unit: 'pixel' };
  if (img.version === null) return out;
  const units = (['z', 'y', 'x'] as const).filter((r) => map[r] >= 0).map((r) => img.axes[map[r]]!.unit);
  const factors = units.map(unitToMicrons);
  const known = factors.every((f) => f !== undefined);
  const unknown = units.filter((u, i) => u !== undefined && factors[i] === undefined);
  if (unknown.length) warnings.push(`${where}: space unit "${unknown[0]}" is not a length NGFF knows; spacing in pixels`);
  for (const r of ['z', 'y', 'x'] as const) {
    if (map[r] < 0) continue;
    const v = s[map[r]]!;
    if (!(v > 0)) {
      warnings.push(`${where}: scale of axis ${r} is ${v}, not a positive size; spacing in pixels`);
      return { x: 1, y: 1, z: 1, unit: 'pixel' };
    }
    out[r] = known ? v * unitToMicrons(img.axes[map[r]]!.unit)! : v;
  }
  if (known) out.unit = 'µm';
  else if (unknown.length === 0 && units.some((u) => u === undefined) && (out.x !== 1 || out.y !== 1 || out.z !== 1))
    warnings.push(`${where}: no space unit in the NGFF axes; spacing ${out.z}, ${out.y}, ${out.x} (z, y, x) kept as pixels`);
  return out;
}

/** A RegionSource over one NGFF image (or raw array) of a Zarr store. */
export class ZarrSource implements RegionSource {
  readonly levels: RegionLevel[];
  readonly chunk: [number, number, number];
  /** NGFF description (version null for a raw array) */
  readonly ngff: NgffImage;
  /** label names found in the image's labels/ group */
  readonly labels: string[];
  private readonly cache = new Map<string, CachedChunk>();
  private readonly pending = new Map<string, Promise<CachedChunk>>();
  private cached = 0;
  private closed = false;
  /** chunk reads from the store (cache misses), for tests and benchmarks */
  chunkReads = 0;

  private constructor(
    readonly info: VolumeInfo,
    private readonly store: FsStore,
    private readonly arrays: ZArray[],
    private readonly map: AxisMap,
    ngff: NgffImage,
    labels: string[],
    private readonly cacheBytes: number,
    readonly where: string,
  ) {
    this.ngff = ngff;
    this.labels = labels;
    const shape0 = arrays[0]!.shape;
    const dim = (a: number[], r: 'z' | 'y' | 'x') => (map[r] >= 0 ? a[map[r]]! : 1);
    this.levels = arrays.map((a, i) => {
      const sc = ngff.datasets[i]!.scale;
      const sc0 = ngff.datasets[0]!.scale;
      const f = (r: 'z' | 'y' | 'x') => {
        if (map[r] < 0) return 1;
        const byScale = Math.round(sc[map[r]]! / sc0[map[r]]!);
        return byScale >= 1 && ngff.version !== null ? byScale : Math.max(1, Math.round(shape0[map[r]]! / a.shape[map[r]]!));
      };
      return { factors: [f('z'), f('y'), f('x')], shape: { x: dim(a.shape, 'x'), y: dim(a.shape, 'y'), z: dim(a.shape, 'z') } };
    });
    const ch = arrays[0]!.chunks;
    this.chunk = [dim(ch, 'z'), dim(ch, 'y'), dim(ch, 'x')];
  }

  static async open(path: string, opts: ZarrSourceOptions = {}): Promise<ZarrSource> {
    let st;
    try {
      st = await stat(path);
    } catch (e) {
      throw new VolumeReadError(path, `cannot open the Zarr store (${(e as NodeJS.ErrnoException).code ?? why(e)})`, { cause: e });
    }
    if (!st.isDirectory()) throw new VolumeReadError(path, 'not a Zarr store: a file, not a folder');
    const store = new FsStore(path);
    const inner = (opts.dataset ?? '').replace(/^\/+|\/+$/g, '');
    // messages of VolumeReadError start with the store's path already
    const where = inner ? `"${inner}"` : 'the store';
    const full = inner ? `${path}/${inner}` : path;
    const warnings: string[] = [];
    const node = await openNode(store, inner, where);
    let ngff: NgffImage;
    let arrays: ZArray[];
    let labels: string[] = [];
    if (node.kind === 'group') {
      let parsed: NgffImage | undefined;
      try {
        parsed = parseNgff(node.attrs, where);
      } catch (e) {
        throw new VolumeReadError(path, `bad NGFF metadata: ${why(e)}`, { cause: e });
      }
      if (!parsed) {
        const names = labelNames(node.attrs);
        throw new VolumeReadError(
          path,
          names
            ? `${where} is an OME-Zarr labels group (${names.join(', ')}); open one of them (dataset "${inner ? `${inner}/` : ''}${names[0]}")`
            : `${where} is a Zarr group without OME-NGFF "multiscales" metadata; name an image or array inside it (--dataset)`,
        );
      }
      ngff = parsed;
      if (Number(ngff.version) > 0.5) warnings.push(`${full}: NGFF version ${ngff.version} is newer than 0.5; read as 0.5`);
      arrays = [];
      for (const d of ngff.datasets) {
        const p = [inner, d.path].filter((s) => s).join('/');
        arrays.push(await openArray(store, p, `level "${d.path}" of ${where}`));
      }
      const lg = await zarr.open(zarr.root(store).resolve([inner, 'labels'].filter((s) => s).join('/')), { kind: 'group' }).catch(() => undefined);
      if (lg) labels = labelNames(lg.attrs) ?? [];
    } else {
      arrays = [node];
      let axes: NgffAxis[];
      try {
        axes = rawAxes(node.shape.length, node.dimensionNames, where);
      } catch (e) {
        throw new VolumeReadError(path, why(e));
      }
      ngff = { version: null, axes, datasets: [{ path: inner, scale: axes.map(() => 1) }] };
      warnings.push(`${full}: a Zarr array without OME-NGFF metadata: axes ${axes.map((a) => a.name).join('')} by its ${node.dimensionNames ? 'dimension names' : 'rank'}, spacing in pixels`);
    }
    const a0 = arrays[0]!;
    const nd = a0.shape.length;
    if (ngff.axes.length !== nd)
      throw new VolumeReadError(path, `${where}: the NGFF axes (${ngff.axes.map((a) => a.name).join(', ')}) do not match the ${nd} dimensions of level "${ngff.datasets[0]!.path}"`);
    for (let i = 1; i < arrays.length; i++)
      if (arrays[i]!.shape.length !== nd || arrays[i]!.dtype !== a0.dtype)
        throw new VolumeReadError(path, `${where}: level "${ngff.datasets[i]!.path}" (${arrays[i]!.dtype}, ${arrays[i]!.shape.length}D) does not match level 0 (${a0.dtype}, ${nd}D)`);
    let map: AxisMap;
    try {
      map = mapAxes(ngff.axes, a0.shape, where);
    } catch (e) {
      throw new VolumeReadError(path, `bad axes: ${why(e)}`);
    }
    const dtype = DTYPES[a0.dtype];
    if (!dtype) throw new VolumeReadError(path, `${where}: data type ${a0.dtype} is not supported (integers up to 32 bits, float32, float64)`, { kind: 'unsupported' });
    if (a0.dtype === 'int64' || a0.dtype === 'uint64') warnings.push(`${full}: ${a0.dtype} voxels read as uint32 (a value outside 0..2^32-1 is refused)`);
    const at = (r: keyof AxisMap) => (map[r] >= 0 ? a0.shape[map[r]]! : 1);
    const nt = at('t');
    const t = opts.timepoint ?? 0;
    if (!Number.isInteger(t) || t < 0 || t >= nt) throw new VolumeReadError(path, `time point ${t} out of range (the store has ${nt}: 0..${nt - 1})`);
    if (nt > 1 && opts.timepoint === undefined) warnings.push(`${path}: time series with ${nt} time points; loaded time point 0 (use --timepoint to pick another)`);
    const spacing = spacingOf(ngff, map, warnings, full);
    const nc = at('c');
    const names = ngff.channelLabels?.length === nc ? ngff.channelLabels : Array.from({ length: nc }, (_, i) => `C${i + 1}`);
    const info: VolumeInfo = {
      dtype,
      shape: { x: at('x'), y: at('y'), z: at('z'), c: nc, t: nt },
      spacing,
      channelNames: names,
      format: ngff.version === null ? 'zarr' : 'ome-zarr',
      source: path,
      timepoint: t,
      metadata: {
        zarrFormat: (await store.get(`/${[inner, ngff.datasets[0]!.path].filter((s) => s).join('/')}/zarr.json` as `/${string}`)) ? 3 : 2,
        ngffVersion: ngff.version,
        dataset: inner,
        axes: ngff.axes.map((a) => a.name).join(''),
        levels: ngff.datasets.map((d, i) => ({ path: d.path, shape: arrays[i]!.shape })),
        chunks: a0.chunks,
        zarrDtype: a0.dtype,
        ...(ngff.imageLabel ? { imageLabel: ngff.imageLabel } : {}),
        ...(labels.length ? { labels } : {}),
        warnings,
      },
    };
    for (const w of warnings) opts.onWarning?.(w);
    return new ZarrSource(info, store, arrays, map, ngff, labels, opts.cacheBytes ?? 256 * 2 ** 20, full);
  }

  /** bytes of decoded chunks held now (at most cacheBytes, plus the chunks of one read in flight) */
  get cachedBytes(): number {
    return this.cached;
  }

  private async chunkAt(level: number, coords: number[], signal?: AbortSignal): Promise<CachedChunk> {
    const key = `${level}:${coords.join(',')}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key); // LRU: move to the newest end
      this.cache.set(key, hit);
      return hit;
    }
    const p = this.pending.get(key);
    if (p) return p;
    const load = (async () => {
      this.chunkReads++;
      let c;
      try {
        c = await this.arrays[level]!.getChunk(coords, signal ? { signal } : undefined);
      } catch (e) {
        throw new VolumeReadError(this.where, `chunk ${coords.join('/')} of level "${this.ngff.datasets[level]!.path}" is unreadable (${why(e)})`, { cause: e });
      }
      const data = this.convert(c.data, coords);
      const entry = { data, stride: c.stride, bytes: data.byteLength };
      if (!this.closed && entry.bytes <= this.cacheBytes) {
        this.cache.set(key, entry);
        this.cached += entry.bytes;
        for (const [k, v] of this.cache) {
          if (this.cached <= this.cacheBytes) break;
          this.cache.delete(k);
          this.cached -= v.bytes;
        }
      }
      return entry;
    })();
    this.pending.set(key, load);
    try {
      return await load;
    } finally {
      this.pending.delete(key);
    }
  }

  private convert(data: unknown, coords: number[]): TypedArray {
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      const out = new Uint32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v < 0n || v > 0xffffffffn)
          throw new VolumeReadError(this.where, `chunk ${coords.join('/')} holds ${v}, outside the uint32 range Sliceform reads ${this.arrays[0]!.dtype} labels into`);
        out[i] = Number(v);
      }
      return out;
    }
    if (data instanceof zarr.BoolArray) {
      const out = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = data.get(i) ? 1 : 0;
      return out;
    }
    return data as TypedArray;
  }

  async read(box: RegionBox, opts: RegionReadOptions = {}): Promise<TypedArray> {
    const level = opts.level ?? 0;
    const channels = opts.channels ?? Array.from({ length: this.info.shape.c }, (_, i) => i);
    const out = allocTyped(this.info.dtype, (box.x1 - box.x0) * (box.y1 - box.y0) * (box.z1 - box.z0) * channels.length);
    await this.readInto(box, { level, channels, signal: opts.signal }, out, { nx: box.x1 - box.x0, ny: box.y1 - box.y0, nz: box.z1 - box.z0, z0: 0 });
    return out;
  }

  /**
   * Copies `box` into `out`, whose volume is nx × ny × nz per channel with the box's y0/x0 at its origin and
   * the box's z0 at plane `dst.z0` (whole-volume reads fill one big array slab by slab).
   */
  async readInto(
    box: RegionBox,
    opts: { level: number; channels: number[]; signal?: RegionReadOptions['signal'] },
    out: TypedArray,
    dst: { nx: number; ny: number; nz: number; z0: number },
  ): Promise<void> {
    if (this.closed) throw new SliceformError('internal', `${this.where}: read after close`);
    const { level, channels } = opts;
    if (!Number.isInteger(level) || level < 0 || level >= this.levels.length)
      throw new RangeError(`${this.where}: level ${level} out of range (the store has ${this.levels.length}: 0..${this.levels.length - 1})`);
    assertBoxInside(box, this.levels[level]!.shape, this.where);
    for (const c of channels)
      if (!Number.isInteger(c) || c < 0 || c >= this.info.shape.c) throw new RangeError(`${this.where}: channel ${c} out of range (0..${this.info.shape.c - 1})`);
    const arr = this.arrays[level]!;
    const ch = arr.chunks;
    const m = this.map;
    const nd = arr.shape.length;
    const cz = m.z >= 0 ? ch[m.z]! : 1;
    const cy = ch[m.y]!;
    const cx = ch[m.x]!;
    const cc = m.c >= 0 ? ch[m.c]! : 1;
    const t = this.info.timepoint;
    const dnx = dst.nx;
    const dny = dst.ny;
    const dnz = dst.nz;
    // zarrita hands the signal to the store; only a real AbortSignal goes there (a CancelSignal is just { aborted })
    const signal = opts.signal instanceof AbortSignal ? opts.signal : undefined;
    // the chunks of this region: grouped by chunk so each is fetched once for all its channels
    const jobs: { coords: number[]; chans: number[]; gz: number; gy: number; gx: number }[] = [];
    const byChunkC = new Map<number, number[]>();
    channels.forEach((c, i) => {
      const k = Math.floor(c / cc);
      byChunkC.set(k, [...(byChunkC.get(k) ?? []), i]);
    });
    for (let gz = Math.floor(box.z0 / cz); gz * cz < box.z1; gz++)
      for (let gy = Math.floor(box.y0 / cy); gy * cy < box.y1; gy++)
        for (let gx = Math.floor(box.x0 / cx); gx * cx < box.x1; gx++)
          for (const [gc, chans] of byChunkC) {
            const coords = new Array<number>(nd).fill(0);
            if (m.t >= 0) coords[m.t] = Math.floor(t / ch[m.t]!);
            if (m.c >= 0) coords[m.c] = gc;
            if (m.z >= 0) coords[m.z] = gz;
            coords[m.y] = gy;
            coords[m.x] = gx;
            jobs.push({ coords, chans, gz, gy, gx });
          }
    const copy = (j: (typeof jobs)[number], c: CachedChunk) => {
      const st = c.stride;
      const sx = st[m.x]!;
      const sy = st[m.y]!;
      const sz = m.z >= 0 ? st[m.z]! : 0;
      const sc = m.c >= 0 ? st[m.c]! : 0;
      const base = m.t >= 0 ? (t - Math.floor(t / ch[m.t]!) * ch[m.t]!) * st[m.t]! : 0;
      const oz = j.gz * cz;
      const oy = j.gy * cy;
      const ox = j.gx * cx;
      const z0 = Math.max(box.z0, oz);
      const z1 = Math.min(box.z1, oz + cz);
      const y0 = Math.max(box.y0, oy);
      const y1 = Math.min(box.y1, oy + cy);
      const x0 = Math.max(box.x0, ox);
      const x1 = Math.min(box.x1, ox + cx);
      const n = x1 - x0;
      const src = c.data;
      for (const i of j.chans) {
        const cin = channels[i]! - Math.floor(channels[i]! / cc) * cc;
        for (let z = z0; z < z1; z++) {
          for (let y = y0; y < y1; y++) {
            let s = base + cin * sc + (z - oz) * sz + (y - oy) * sy + (x0 - ox) * sx;
            const d = ((i * dnz + (z - box.z0 + dst.z0)) * dny + (y - box.y0)) * dnx + (x0 - box.x0);
            if (sx === 1) out.set(src.subarray(s, s + n) as never, d);
            else for (let k = 0; k < n; k++, s += sx) out[d + k] = src[s]!;
          }
        }
      }
    };
    // a few chunks in flight at once: decoding is synchronous WASM/JS, file reads overlap it
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const j = jobs[next++]!;
        if (opts.signal?.aborted) throw new CancelledError();
        copy(j, await this.chunkAt(level, j.coords, signal));
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, jobs.length) }, worker));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
    this.cached = 0;
  }
}

/** A RegionSource over an OME-Zarr image (or a raw Zarr array) on disk. */
export function openZarrSource(path: string, opts: ZarrSourceOptions = {}): Promise<ZarrSource> {
  return ZarrSource.open(path, opts);
}

export async function probeZarr(path: string, opts: ReadOptions): Promise<VolumeInfo> {
  const s = await ZarrSource.open(path, { dataset: opts.dataset, timepoint: opts.timepoint, cacheBytes: 0 });
  await s.close();
  return s.info;
}

/** The whole of level 0 (one time point) in memory, read slab by slab of chunk rows. */
export async function readZarr(path: string, opts: ReadOptions): Promise<Volume> {
  const s = await ZarrSource.open(path, { dataset: opts.dataset, timepoint: opts.timepoint, cacheBytes: 0 });
  try {
    const { x, y, z, c } = s.info.shape;
    const data = allocVolume(path, s.info.dtype, x * y * z * c, opts.maxBytes);
    const step = s.chunk[0];
    const eta = new EtaEstimator();
    const channels = Array.from({ length: c }, (_, i) => i);
    for (let z0 = 0; z0 < z; z0 += step) {
      if (opts.signal?.aborted) throw new CancelledError();
      const z1 = Math.min(z, z0 + step);
      await s.readInto({ x0: 0, y0: 0, z0, x1: x, y1: y, z1 }, { level: 0, channels, signal: opts.signal }, data, { nx: x, ny: y, nz: z, z0 });
      const fraction = z1 / z;
      opts.onProgress?.({ fraction, etaSeconds: eta.eta(fraction), stage: 'reading chunks', details: { planes: z1, of: z } });
    }
    return { ...s.info, data };
  } finally {
    await s.close();
  }
}

