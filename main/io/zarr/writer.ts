/**
 * Zarr / OME-Zarr writer: arrays chunk by chunk (Zarr v2 for NGFF 0.4, v3 for NGFF 0.5), OME-Zarr image and
 * label groups with their multiscales metadata, a downsampled pyramid built from the stored level 0 (mean
 * for images, mode for labels), and a whole-volume convenience that writes image + labels at once.
 *
 *   const w = await createOmeZarrImage('seg.ome.zarr', '', { shape, dtype: 'uint8', spacing, label: {} });
 *   await w.writeRegion({ x0: 0, y0: 0, z0: 0, x1: 256, y1: 256, z1: 32 }, block); // chunk-aligned box
 *   await writePyramid('seg.ome.zarr', '');                                          // levels 1..n
 *
 * Concurrency: every chunk file is written to a temporary name and renamed (store.ts), and metadata is
 * written once by whoever creates the array, so separate processes (sharded segment) can each write whole
 * chunks of one array without locks or a merge step: `ZarrArrayWriter.open(store, '0')` in each of them.
 * A chunk that holds only the fill value is not stored (its file is removed), as readers fill it back.
 * Edge chunks are stored at full chunk size, padded with the fill value, as Zarr v2 and v3 both require.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Blosc, GZip, Zstd, type Codec } from 'numcodecs';
import { SliceformError } from '../../common/errors.js';
import type { ProgressCallback } from '../../common/progress.js';
import { allocTyped, DTYPE_BYTES, type DType, type Spacing, type TypedArray } from '../../common/volume.js';
import type { RegionBox, RegionLevel } from '../region.js';
import { ZarrSource } from './reader.js';
import { FsStore, type StoreKey } from './store.js';

export type ZarrCompression = 'blosc' | 'zstd' | 'gzip' | 'none';
export type NgffVersion = '0.4' | '0.5';

/** Default compression: Blosc/LZ4 is zarr-python's own default, read by napari, neuroglancer and Fiji's n5-zarr. */
export const DEFAULT_COMPRESSION: ZarrCompression = 'blosc';

const V2_DTYPE: Record<DType, string> = { uint8: '|u1', int8: '|i1', uint16: '<u2', int16: '<i2', uint32: '<u4', int32: '<i4', float32: '<f4', float64: '<f8' };
const FROM_V2: Record<string, DType> = Object.fromEntries(Object.entries(V2_DTYPE).map(([k, v]) => [v, k as DType]));

export interface ZarrArraySpec {
  /** array shape in axis order, x last */
  shape: number[];
  chunks: number[];
  dtype: DType;
  /** one role letter per axis, e.g. "czyx" or "zyx" (x last) */
  axes: string;
  zarrFormat?: 2 | 3;
  compression?: ZarrCompression;
  fillValue?: number;
}

function v2Compressor(c: ZarrCompression): Record<string, unknown> | null {
  switch (c) {
    case 'blosc':
      return { id: 'blosc', cname: 'lz4', clevel: 5, shuffle: 1, blocksize: 0 };
    case 'zstd':
      return { id: 'zstd', level: 3 };
    case 'gzip':
      return { id: 'gzip', level: 5 };
    case 'none':
      return null;
  }
}

function v3Codecs(c: ZarrCompression, dtype: DType): Record<string, unknown>[] {
  const bytes = { name: 'bytes', configuration: { endian: 'little' } };
  switch (c) {
    case 'blosc':
      return [bytes, { name: 'blosc', configuration: { cname: 'lz4', clevel: 5, shuffle: 'shuffle', typesize: DTYPE_BYTES[dtype], blocksize: 0 } }];
    case 'zstd':
      return [bytes, { name: 'zstd', configuration: { level: 3, checksum: false } }];
    case 'gzip':
      return [bytes, { name: 'gzip', configuration: { level: 5 } }];
    case 'none':
      return [bytes];
  }
}

function codecFor(c: ZarrCompression): Codec | undefined {
  switch (c) {
    case 'blosc':
      return Blosc.fromConfig({ id: 'blosc', cname: 'lz4', clevel: 5, shuffle: 1, blocksize: 0 });
    case 'zstd':
      return Zstd.fromConfig({ id: 'zstd', level: 3 });
    case 'gzip':
      return GZip.fromConfig({ id: 'gzip', level: 5 } as never);
    case 'none':
      return undefined;
  }
}

function compressionOfV2(c: unknown): ZarrCompression | undefined {
  if (c === null) return 'none';
  const id = (c as { id?: string } | undefined)?.id;
  return id === 'blosc' || id === 'zstd' || id === 'gzip' ? id : undefined;
}

function compressionOfV3(codecs: unknown): ZarrCompression | undefined {
  if (!Array.isArray(codecs)) return undefined;
  const names = codecs.map((c) => (c as { name?: string }).name);
  if (names[0] !== 'bytes' || names.length > 2) return undefined;
  const n = names[1];
  if (n === undefined) return 'none';
  return n === 'blosc' || n === 'zstd' || n === 'gzip' ? n : undefined;
}

/** JSON with every non-ASCII character escaped: zarr-python 2 decodes metadata as ASCII ("µm" would break it) */
export function asciiJson(o: unknown): Uint8Array {
  const text = JSON.stringify(o, null, 1).replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return new TextEncoder().encode(text);
}

function bad(file: string, message: string): SliceformError {
  return new SliceformError('bad-input', message, { file });
}

/** One Zarr array, written chunk by chunk. */
export class ZarrArrayWriter {
  readonly shape: number[];
  readonly chunks: number[];
  readonly dtype: DType;
  readonly axes: string;
  readonly zarrFormat: 2 | 3;
  readonly compression: ZarrCompression;
  readonly fillValue: number;
  /** number of chunks per axis */
  readonly grid: number[];
  private readonly codec: Codec | undefined;
  private readonly store: FsStore;

  private constructor(
    readonly root: string,
    readonly path: string,
    spec: Required<ZarrArraySpec>,
  ) {
    this.shape = spec.shape;
    this.chunks = spec.chunks;
    this.dtype = spec.dtype;
    this.axes = spec.axes;
    this.zarrFormat = spec.zarrFormat;
    this.compression = spec.compression;
    this.fillValue = spec.fillValue;
    this.grid = spec.shape.map((s, i) => Math.ceil(s / spec.chunks[i]!));
    this.codec = codecFor(spec.compression);
    this.store = new FsStore(root);
  }

  private static check(root: string, s: Required<ZarrArraySpec>): void {
    const nd = s.shape.length;
    if (s.axes.length !== nd || s.chunks.length !== nd) throw bad(root, `zarr array: axes "${s.axes}", shape [${s.shape}] and chunks [${s.chunks}] differ in length`);
    if (!s.axes.endsWith('x') || new Set(s.axes).size !== nd || [...s.axes].some((a) => !'tczyx'.includes(a)))
      throw bad(root, `zarr array: axes "${s.axes}" must be distinct letters of t, c, z, y, x with x last`);
    if (s.shape.some((n) => !Number.isSafeInteger(n) || n < 1) || s.chunks.some((n) => !Number.isSafeInteger(n) || n < 1))
      throw bad(root, `zarr array: shape [${s.shape}] and chunks [${s.chunks}] must be positive integers`);
    const t = s.axes.indexOf('t');
    if (t >= 0 && s.chunks[t] !== 1) throw bad(root, 'zarr array: the time axis must be chunked by 1');
    const bytes = s.chunks.reduce((a, b) => a * b, DTYPE_BYTES[s.dtype]);
    if (bytes > 2 ** 31) throw bad(root, `zarr array: one chunk of [${s.chunks}] ${s.dtype} is ${bytes} bytes (at most 2 GiB)`);
  }

  /** Creates the array (its .zarray or zarr.json) and returns its writer. */
  static async create(root: string, path: string, spec: ZarrArraySpec, attributes?: Record<string, unknown>): Promise<ZarrArrayWriter> {
    const s: Required<ZarrArraySpec> = { zarrFormat: 2, compression: DEFAULT_COMPRESSION, fillValue: 0, ...spec, shape: [...spec.shape], chunks: spec.chunks.map((c, i) => Math.min(c, spec.shape[i]!)) };
    ZarrArrayWriter.check(root, s);
    const w = new ZarrArrayWriter(root, path.replace(/^\/+|\/+$/g, ''), s);
    const key = (k: string) => `/${[w.path, k].filter((p) => p).join('/')}` as StoreKey;
    const json = asciiJson;
    if (s.zarrFormat === 2) {
      await w.store.set(key('.zarray'), json({ zarr_format: 2, shape: s.shape, chunks: s.chunks, dtype: V2_DTYPE[s.dtype], compressor: v2Compressor(s.compression), fill_value: s.fillValue, order: 'C', filters: null, dimension_separator: '/' }));
      if (attributes) await w.store.set(key('.zattrs'), json(attributes));
    } else {
      await w.store.set(
        key('zarr.json'),
        json({
          zarr_format: 3,
          node_type: 'array',
          shape: s.shape,
          data_type: s.dtype,
          chunk_grid: { name: 'regular', configuration: { chunk_shape: s.chunks } },
          chunk_key_encoding: { name: 'default', configuration: { separator: '/' } },
          fill_value: s.fillValue,
          codecs: v3Codecs(s.compression, s.dtype),
          dimension_names: [...s.axes],
          attributes: attributes ?? {},
        }),
      );
    }
    return w;
  }

  /** The writer of an array another process created (axes from its v3 dimension names, else from its rank). */
  static async open(root: string, path: string): Promise<ZarrArrayWriter> {
    const p = path.replace(/^\/+|\/+$/g, '');
    const store = new FsStore(root);
    const where = `${root}${p ? `/${p}` : ''}`;
    const v2 = await store.get(`/${[p, '.zarray'].filter((s) => s).join('/')}` as StoreKey);
    const v3 = v2 ? undefined : await store.get(`/${[p, 'zarr.json'].filter((s) => s).join('/')}` as StoreKey);
    if (!v2 && !v3) throw bad(root, `${where}: no Zarr array here (no .zarray or zarr.json)`);
    const m = JSON.parse(new TextDecoder().decode(v2 ?? v3)) as Record<string, unknown>;
    const rank = (m.shape as number[]).length;
    const byRank = ['yx', 'zyx', 'czyx', 'tczyx'][rank - 2] ?? '';
    let spec: Required<ZarrArraySpec>;
    if (v2) {
      const dtype = FROM_V2[m.dtype as string];
      const compression = compressionOfV2(m.compressor);
      if (!dtype || !compression || m.order !== 'C' || (m.filters !== null && m.filters !== undefined) || m.dimension_separator !== '/')
        throw bad(root, `${where}: an array Sliceform cannot append to (dtype ${String(m.dtype)}, compressor ${JSON.stringify(m.compressor)}, order ${String(m.order)}, separator ${String(m.dimension_separator)})`);
      spec = { shape: m.shape as number[], chunks: m.chunks as number[], dtype, axes: byRank, zarrFormat: 2, compression, fillValue: Number(m.fill_value ?? 0) };
    } else {
      const dtype = m.data_type as DType;
      const compression = compressionOfV3(m.codecs);
      const grid = m.chunk_grid as { configuration?: { chunk_shape?: number[] } };
      const names = m.dimension_names as string[] | undefined;
      const enc = m.chunk_key_encoding as { name?: string; configuration?: { separator?: string } };
      if (!(dtype in DTYPE_BYTES) || !compression || enc?.name !== 'default' || (enc.configuration?.separator ?? '/') !== '/')
        throw bad(root, `${where}: an array Sliceform cannot append to (data type ${String(m.data_type)}, codecs ${JSON.stringify(m.codecs)})`);
      spec = { shape: m.shape as number[], chunks: grid.configuration!.chunk_shape!, dtype, axes: names?.every((n) => n && n.length === 1) ? names.join('') : byRank, zarrFormat: 3, compression, fillValue: Number(m.fill_value ?? 0) };
    }
    ZarrArrayWriter.check(root, spec);
    return new ZarrArrayWriter(root, p, spec);
  }

  private chunkKey(coords: number[]): StoreKey {
    const c = coords.join('/');
    const k = this.zarrFormat === 2 ? c : `c/${c}`;
    return `/${[this.path, k].filter((s) => s).join('/')}` as StoreKey;
  }

  private chunkLength(): number {
    return this.chunks.reduce((a, b) => a * b, 1);
  }

  /** the clipped extent of a chunk (edge chunks are smaller than the chunk shape) */
  chunkExtent(coords: number[]): number[] {
    return coords.map((g, i) => Math.min(this.chunks[i]!, this.shape[i]! - g * this.chunks[i]!));
  }

  /**
   * Writes one chunk. `data` is C-order over the chunk (the array's axis order), either the full chunk shape
   * or the clipped extent of an edge chunk (padded here with the fill value).
   */
  async writeChunk(coords: number[], data: TypedArray): Promise<void> {
    const nd = this.shape.length;
    if (coords.length !== nd || coords.some((g, i) => !Number.isInteger(g) || g < 0 || g >= this.grid[i]!))
      throw new RangeError(`${this.root}/${this.path}: chunk [${coords}] outside the chunk grid [${this.grid}]`);
    const full = this.chunkLength();
    const ext = this.chunkExtent(coords);
    const extLen = ext.reduce((a, b) => a * b, 1);
    let buf: TypedArray;
    if (data.length === full) buf = data;
    else if (data.length === extLen) {
      buf = allocTyped(this.dtype, full);
      if (this.fillValue !== 0) buf.fill(this.fillValue);
      const rows = extLen / ext[nd - 1]!;
      const idx = new Array<number>(nd - 1).fill(0);
      for (let r = 0; r < rows; r++) {
        let d = 0;
        let stride = this.chunks[nd - 1]!;
        for (let i = nd - 2; i >= 0; i--) {
          d += idx[i]! * stride;
          stride *= this.chunks[i]!;
        }
        buf.set(data.subarray(r * ext[nd - 1]!, (r + 1) * ext[nd - 1]!) as never, d);
        for (let i = nd - 2; i >= 0; i--) {
          if (++idx[i]! < ext[i]!) break;
          idx[i] = 0;
        }
      }
    } else throw new RangeError(`${this.root}/${this.path}: chunk [${coords}] data has ${data.length} values, not ${full} (chunk) or ${extLen} (clipped edge chunk)`);
    if (buf.constructor.name !== allocTyped(this.dtype, 0).constructor.name)
      throw new TypeError(`${this.root}/${this.path}: ${buf.constructor.name} written to a ${this.dtype} array`);
    const key = this.chunkKey(coords);
    if (buf.every((v) => v === this.fillValue)) {
      await rm(this.store.file(key), { force: true });
      return;
    }
    // typed arrays are little-endian on every platform Node runs on (x86, ARM)
    let bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    if (this.codec) bytes = await this.codec.encode(bytes);
    await this.store.set(key, bytes);
  }

  /**
   * Writes a box of the array: `data` in the Volume layout over the box (all channels, x fastest), one time
   * point `t`. The box must be chunk-aligned: starts on chunk boundaries, ends on one or at the array's edge,
   * so each chunk is written whole by one writer.
   */
  async writeRegion(box: RegionBox, data: TypedArray, opts: { t?: number } = {}): Promise<void> {
    const a = this.axes;
    const at = (r: string) => a.indexOf(r);
    const [ix, iy, iz, ic, it] = [at('x'), at('y'), at('z'), at('c'), at('t')];
    const size = (i: number) => (i >= 0 ? this.shape[i]! : 1);
    const csz = (i: number) => (i >= 0 ? this.chunks[i]! : 1);
    const nc = size(ic);
    const where = `${this.root}/${this.path}`;
    for (const [lo, hi, i, r] of [[box.x0, box.x1, ix, 'x'], [box.y0, box.y1, iy, 'y'], [box.z0, box.z1, iz, 'z']] as const) {
      if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > size(i) || lo >= hi)
        throw new RangeError(`${where}: region ${r} ${lo}..${hi} is not inside 0..${size(i)}`);
      if (lo % csz(i) !== 0 || (hi % csz(i) !== 0 && hi !== size(i)))
        throw new RangeError(`${where}: region ${r} ${lo}..${hi} is not aligned to the chunks (${csz(i)} voxels)`);
    }
    const t = opts.t ?? 0;
    if (t < 0 || t >= size(it)) throw new RangeError(`${where}: time point ${t} outside 0..${size(it) - 1}`);
    const bnx = box.x1 - box.x0;
    const bny = box.y1 - box.y0;
    const bnz = box.z1 - box.z0;
    if (data.length !== bnx * bny * bnz * nc)
      throw new RangeError(`${where}: region data has ${data.length} values, not ${bnx}×${bny}×${bnz}×${nc} channels`);
    const nd = this.shape.length;
    const strides = new Array<number>(nd);
    strides[nd - 1] = 1;
    for (let i = nd - 2; i >= 0; i--) strides[i] = strides[i + 1]! * this.chunks[i + 1]!;
    const st = (i: number) => (i >= 0 ? strides[i]! : 0);
    const cc = csz(ic);
    for (let gc = 0; gc * cc < nc; gc++)
      for (let gz = box.z0 / csz(iz); gz * csz(iz) < box.z1; gz++)
        for (let gy = box.y0 / csz(iy); gy * csz(iy) < box.y1; gy++)
          for (let gx = box.x0 / csz(ix); gx * csz(ix) < box.x1; gx++) {
            const coords = new Array<number>(nd).fill(0);
            if (it >= 0) coords[it] = t;
            if (ic >= 0) coords[ic] = gc;
            if (iz >= 0) coords[iz] = gz;
            coords[iy] = gy;
            coords[ix] = gx;
            const buf = allocTyped(this.dtype, this.chunkLength());
            if (this.fillValue !== 0) buf.fill(this.fillValue);
            const ox = gx * csz(ix);
            const oy = gy * csz(iy);
            const oz = gz * csz(iz);
            const n = Math.min(ox + csz(ix), box.x1) - ox;
            for (let lc = 0; lc < cc && gc * cc + lc < nc; lc++) {
              const c = gc * cc + lc;
              for (let z = oz; z < Math.min(oz + csz(iz), box.z1); z++)
                for (let y = oy; y < Math.min(oy + csz(iy), box.y1); y++) {
                  const s = ((c * bnz + (z - box.z0)) * bny + (y - box.y0)) * bnx + (ox - box.x0);
                  const d = lc * st(ic) + (z - oz) * st(iz) + (y - oy) * st(iy);
                  buf.set(data.subarray(s, s + n) as never, d);
                }
            }
            await this.writeChunk(coords, buf);
          }
  }
}

export interface OmeZarrImageSpec {
  shape: { x: number; y: number; z: number; c: number };
  dtype: DType;
  spacing: Spacing;
  channelNames?: string[];
  /** NGFF 0.4 (Zarr v2, the default: read by zarr-python 2, napari, Fiji) or 0.5 (Zarr v3) */
  version?: NgffVersion;
  compression?: ZarrCompression;
  /** chunk shape [z, y, x] (default [min(z, 64), min(y, 256), min(x, 256)], one channel per chunk) */
  chunks?: [number, number, number];
  name?: string;
  /** a label image: "image-label" metadata, pyramid by mode; `source` is the image it labels (default '../../', null: none) */
  label?: { source?: string | null; colors?: { 'label-value': number; rgba: number[] }[] };
}

function spaceUnit(s: Spacing): string | undefined {
  return s.unit === 'µm' || s.unit === 'um' || s.unit === 'micron' ? 'micrometer' : s.unit === 'nm' ? 'nanometer' : undefined;
}

function axesOf(spec: OmeZarrImageSpec): { letters: string; ngff: Record<string, string>[] } {
  const unit = spaceUnit(spec.spacing);
  const sp = (name: string) => ({ name, type: 'space', ...(unit ? { unit } : {}) });
  const multi = spec.shape.c > 1;
  return { letters: multi ? 'czyx' : 'zyx', ngff: [...(multi ? [{ name: 'c', type: 'channel' }] : []), sp('z'), sp('y'), sp('x')] };
}

function groupKey(group: string, k: string): StoreKey {
  return `/${[group.replace(/^\/+|\/+$/g, ''), k].filter((s) => s).join('/')}` as StoreKey;
}

/** reads the attributes of a group (v2 .zattrs or v3 zarr.json) */
async function readAttrs(store: FsStore, group: string): Promise<{ version: 2 | 3; attrs: Record<string, unknown> }> {
  const v3 = await store.get(groupKey(group, 'zarr.json'));
  if (v3) return { version: 3, attrs: (JSON.parse(new TextDecoder().decode(v3)) as { attributes?: Record<string, unknown> }).attributes ?? {} };
  const v2 = await store.get(groupKey(group, '.zattrs'));
  const g2 = await store.get(groupKey(group, '.zgroup'));
  if (!v2 && !g2) throw bad(store.root, `${store.root}${group ? `/${group}` : ''}: no Zarr group here`);
  return { version: 2, attrs: v2 ? (JSON.parse(new TextDecoder().decode(v2)) as Record<string, unknown>) : {} };
}

async function writeGroup(store: FsStore, group: string, version: 2 | 3, attrs: Record<string, unknown>): Promise<void> {
  const enc = asciiJson;
  if (version === 2) {
    await store.set(groupKey(group, '.zgroup'), enc({ zarr_format: 2 }));
    await store.set(groupKey(group, '.zattrs'), enc(attrs));
  } else await store.set(groupKey(group, 'zarr.json'), enc({ zarr_format: 3, node_type: 'group', attributes: attrs }));
}

/** the NGFF attributes of an image group with the given levels */
function imageAttrs(spec: OmeZarrImageSpec, version: NgffVersion, levels: { path: string; factors: [number, number, number] }[]): Record<string, unknown> {
  const { ngff } = axesOf(spec);
  const multi = spec.shape.c > 1;
  const s = spec.spacing;
  const ms: Record<string, unknown> = {
    ...(version === '0.4' ? { version: '0.4' } : {}),
    name: spec.name ?? 'image',
    axes: ngff,
    datasets: levels.map((l) => ({
      path: l.path,
      coordinateTransformations: [{ type: 'scale', scale: [...(multi ? [1] : []), s.z * l.factors[0], s.y * l.factors[1], s.x * l.factors[2]] }],
    })),
    type: spec.label ? 'mode' : 'mean',
  };
  const body: Record<string, unknown> = { multiscales: [ms] };
  const top = { uint8: 255, int8: 127, uint16: 65535, int16: 32767, uint32: 4294967295, int32: 2147483647, float32: 1, float64: 1 }[spec.dtype];
  if (spec.channelNames && !spec.label)
    body.omero = { version, channels: spec.channelNames.map((label) => ({ label, active: true, color: 'FFFFFF', window: { start: 0, end: top, min: 0, max: top } })) };
  if (spec.label)
    body['image-label'] = {
      ...(version === '0.4' ? { version: '0.4' } : {}),
      ...(spec.label.colors ? { colors: spec.label.colors } : {}),
      ...(spec.label.source === null ? {} : { source: { image: spec.label.source ?? '../../' } }),
    };
  return version === '0.4' ? body : { ome: { version: '0.5', ...body } };
}

/** Sliceform's own record of an image (the spec), kept beside the NGFF metadata so writePyramid can extend it. */
const SPEC_KEY = 'sliceform';

/**
 * Creates an OME-Zarr image (or label image) group at `group` inside the store `root` (created if need be)
 * with its level "0" array, and returns the level-0 writer. The multiscales metadata lists level 0 only until
 * writePyramid adds the others.
 */
export async function createOmeZarrImage(root: string, group: string, spec: OmeZarrImageSpec): Promise<ZarrArrayWriter> {
  const version = spec.version ?? '0.4';
  const zf = version === '0.4' ? 2 : 3;
  const { x, y, z, c } = spec.shape;
  if (spec.label && c !== 1) throw bad(root, `a label image has one channel, not ${c}`);
  const store = new FsStore(root);
  await mkdir(root, { recursive: true });
  // parent groups (a labels/ group, the root of a store that holds only labels)
  const parts = group.replace(/^\/+|\/+$/g, '').split('/').filter((p) => p);
  for (let i = 0; i < parts.length; i++) {
    const g = parts.slice(0, i).join('/');
    const has = (await store.get(groupKey(g, zf === 2 ? '.zgroup' : 'zarr.json'))) !== undefined;
    if (!has) await writeGroup(store, g, zf, {});
  }
  const attrs = imageAttrs(spec, version, [{ path: '0', factors: [1, 1, 1] }]);
  attrs[SPEC_KEY] = { spec: { ...spec, version } };
  await writeGroup(store, group, zf, attrs);
  const { letters } = axesOf(spec);
  const ch = spec.chunks ?? [Math.min(z, 64), Math.min(y, 256), Math.min(x, 256)];
  return ZarrArrayWriter.create(root, [group, '0'].filter((p) => p).join('/'), {
    shape: c > 1 ? [c, z, y, x] : [z, y, x],
    chunks: c > 1 ? [1, ...ch] : [...ch],
    dtype: spec.dtype,
    axes: letters,
    zarrFormat: zf,
    compression: spec.compression ?? DEFAULT_COMPRESSION,
  });
}

/** Adds `name` to the labels/ group of the image at `imageGroup` (created if need be). */
export async function addLabelName(root: string, imageGroup: string, name: string): Promise<void> {
  const store = new FsStore(root);
  const { version } = await readAttrs(store, imageGroup);
  const lg = [imageGroup, 'labels'].filter((p) => p).join('/');
  const old = await readAttrs(store, lg).catch(() => ({ version, attrs: {} as Record<string, unknown> }));
  const holder = (version === 3 ? ((old.attrs.ome as Record<string, unknown>) ?? {}) : old.attrs) as Record<string, unknown>;
  const names = Array.isArray(holder.labels) ? (holder.labels as string[]) : [];
  const labels = names.includes(name) ? names : [...names, name];
  await writeGroup(store, lg, version, version === 3 ? { ome: { version: '0.5', labels } } : { labels });
}

export interface PyramidOptions {
  /** most levels in all, level 0 included (default 6) */
  maxLevels?: number;
  /** stop once the largest of x and y would fall below this many voxels (default 32) */
  minSize?: number;
  onProgress?: ProgressCallback;
}

/** the factors of each next level: 2 in x and y, 2 in z while z voxels stay no coarser than twice x/y */
export function pyramidFactors(shape: { x: number; y: number; z: number }, spacing: Spacing, opts: PyramidOptions = {}): [number, number, number][] {
  const out: [number, number, number][] = [];
  let f: [number, number, number] = [1, 1, 1];
  const max = opts.maxLevels ?? 6;
  const min = opts.minSize ?? 32;
  for (let l = 1; l < max; l++) {
    const nx = Math.ceil(shape.x / (f[2] * 2));
    const ny = Math.ceil(shape.y / (f[1] * 2));
    if (Math.max(nx, ny) < min) break;
    const zNext = f[0] * 2;
    const dz = Math.ceil(shape.z / zNext) >= 1 && shape.z / f[0] >= 2 && spacing.z * zNext <= 2 * spacing.x * f[2] * 2;
    f = [dz ? zNext : f[0], f[1] * 2, f[2] * 2];
    out.push(f);
  }
  return out;
}

/** mean (rounded for integers) or mode of each block of `src` (Volume layout, nc channels) */
function downsample(src: TypedArray, sn: [number, number, number], nc: number, k: [number, number, number], mode: boolean, out: TypedArray, on: [number, number, number]): void {
  const [snz, sny, snx] = sn;
  const [onz, ony, onx] = on;
  const isInt = !(out instanceof Float32Array || out instanceof Float64Array);
  const vals = new Float64Array(k[0] * k[1] * k[2]);
  for (let c = 0; c < nc; c++)
    for (let z = 0; z < onz; z++) {
      const za = z * k[0];
      const zb = Math.min(snz, za + k[0]);
      for (let y = 0; y < ony; y++) {
        const ya = y * k[1];
        const yb = Math.min(sny, ya + k[1]);
        const o = ((c * onz + z) * ony + y) * onx;
        for (let x = 0; x < onx; x++) {
          const xa = x * k[2];
          const xb = Math.min(snx, xa + k[2]);
          if (!mode) {
            let sum = 0;
            for (let zz = za; zz < zb; zz++)
              for (let yy = ya; yy < yb; yy++) {
                const row = ((c * snz + zz) * sny + yy) * snx;
                for (let xx = xa; xx < xb; xx++) sum += src[row + xx]!;
              }
            const m = sum / ((zb - za) * (yb - ya) * (xb - xa));
            out[o + x] = isInt ? Math.round(m) : m;
            continue;
          }
          let n = 0;
          for (let zz = za; zz < zb; zz++)
            for (let yy = ya; yy < yb; yy++) {
              const row = ((c * snz + zz) * sny + yy) * snx;
              for (let xx = xa; xx < xb; xx++) vals[n++] = src[row + xx]!;
            }
          // most frequent value of the block; ties go to the smaller value (deterministic)
          let best = vals[0]!;
          let bestN = 0;
          for (let i = 0; i < n; i++) {
            const v = vals[i]!;
            if (v === best && bestN > 0) continue;
            let m = 0;
            for (let j = 0; j < n; j++) if (vals[j] === v) m++;
            if (m > bestN || (m === bestN && v < best)) {
              best = v;
              bestN = m;
            }
          }
          out[o + x] = best;
        }
      }
    }
}

/**
 * Builds levels 1.. of an image written by createOmeZarrImage, each from the one before it as stored (so a
 * volume bigger than memory is downsampled chunk by chunk), and lists them in the multiscales metadata.
 * Labels by mode, images by mean. Returns all levels, level 0 first.
 */
export async function writePyramid(root: string, group: string, opts: PyramidOptions = {}): Promise<RegionLevel[]> {
  const store = new FsStore(root);
  const { attrs } = await readAttrs(store, group);
  const own = (attrs[SPEC_KEY] as { spec?: OmeZarrImageSpec } | undefined)?.spec;
  if (!own) throw bad(root, `${root}${group ? `/${group}` : ''}: not an image written by Sliceform (no "${SPEC_KEY}" attributes); cannot add a pyramid`);
  const spec = own;
  const version = spec.version ?? '0.4';
  const zf = version === '0.4' ? 2 : 3;
  const w0 = await ZarrArrayWriter.open(root, [group, '0'].filter((p) => p).join('/'));
  const plan = pyramidFactors(spec.shape, spec.spacing, opts);
  const levels: { path: string; factors: [number, number, number] }[] = [{ path: '0', factors: [1, 1, 1] }];
  const out: RegionLevel[] = [{ factors: [1, 1, 1], shape: { x: spec.shape.x, y: spec.shape.y, z: spec.shape.z } }];
  const nc = spec.shape.c;
  const ch = w0.chunks.slice(-3) as [number, number, number];
  let prev = out[0]!;
  let total = 0;
  const counts = plan.map((f) => Math.ceil(Math.ceil(spec.shape.z / f[0]) / ch[0]) * Math.ceil(Math.ceil(spec.shape.y / f[1]) / ch[1]) * Math.ceil(Math.ceil(spec.shape.x / f[2]) / ch[2]));
  const all = counts.reduce((a, b) => a + b, 0);
  for (let l = 0; l < plan.length; l++) {
    const f = plan[l]!;
    const k: [number, number, number] = [f[0] / prev.factors[0], f[1] / prev.factors[1], f[2] / prev.factors[2]];
    const shape = { z: Math.ceil(prev.shape.z / k[0]), y: Math.ceil(prev.shape.y / k[1]), x: Math.ceil(prev.shape.x / k[2]) };
    const path = String(l + 1);
    const w = await ZarrArrayWriter.create(root, [group, path].filter((p) => p).join('/'), {
      shape: nc > 1 ? [nc, shape.z, shape.y, shape.x] : [shape.z, shape.y, shape.x],
      chunks: nc > 1 ? [1, ...ch] : [...ch],
      dtype: spec.dtype,
      axes: w0.axes,
      zarrFormat: zf,
      compression: w0.compression,
      fillValue: w0.fillValue,
    });
    const src = await ZarrSource.open(root, { dataset: [group, levels[l]!.path].filter((p) => p).join('/'), cacheBytes: 64 * 2 ** 20 });
    try {
      const wc = w.chunks.slice(-3) as [number, number, number];
      for (let z0 = 0; z0 < shape.z; z0 += wc[0])
        for (let y0 = 0; y0 < shape.y; y0 += wc[1])
          for (let x0 = 0; x0 < shape.x; x0 += wc[2]) {
            const ob = { x0, y0, z0, x1: Math.min(shape.x, x0 + wc[2]), y1: Math.min(shape.y, y0 + wc[1]), z1: Math.min(shape.z, z0 + wc[0]) };
            const ib = { x0: x0 * k[2], y0: y0 * k[1], z0: z0 * k[0], x1: Math.min(prev.shape.x, ob.x1 * k[2]), y1: Math.min(prev.shape.y, ob.y1 * k[1]), z1: Math.min(prev.shape.z, ob.z1 * k[0]) };
            const data = await src.read(ib);
            const on: [number, number, number] = [ob.z1 - ob.z0, ob.y1 - ob.y0, ob.x1 - ob.x0];
            const o = allocTyped(spec.dtype, on[0] * on[1] * on[2] * nc);
            downsample(data, [ib.z1 - ib.z0, ib.y1 - ib.y0, ib.x1 - ib.x0], nc, k, !!spec.label, o, on);
            await w.writeRegion(ob, o);
            total++;
            opts.onProgress?.({ fraction: total / all, stage: 'writing pyramid', details: { level: l + 1, of: plan.length } });
          }
    } finally {
      await src.close();
    }
    levels.push({ path, factors: f });
    prev = { factors: f, shape };
    out.push(prev);
  }
  const next = imageAttrs(spec, version, levels);
  next[SPEC_KEY] = attrs[SPEC_KEY];
  await writeGroup(store, group, zf, next);
  return out;
}

export interface OmeZarrVolume {
  /** Volume layout (channel-planar, x fastest) */
  data: TypedArray;
  dtype: DType;
  shape: { x: number; y: number; z: number; c: number };
  spacing: Spacing;
  channelNames?: string[];
}

export interface OmeZarrWriteOptions {
  version?: NgffVersion;
  compression?: ZarrCompression;
  chunks?: [number, number, number];
  /** downsampled levels for viewers (default true) */
  pyramid?: boolean | PyramidOptions;
  name?: string;
}

export interface OmeZarrLabels {
  name: string;
  data: Uint8Array | Uint16Array | Uint32Array;
}

async function writeWhole(root: string, group: string, v: OmeZarrVolume, spec: OmeZarrImageSpec, opts: OmeZarrWriteOptions): Promise<void> {
  const w = await createOmeZarrImage(root, group, spec);
  const { x, y, z } = v.shape;
  await w.writeRegion({ x0: 0, y0: 0, z0: 0, x1: x, y1: y, z1: z }, v.data);
  if (opts.pyramid !== false) await writePyramid(root, group, typeof opts.pyramid === 'object' ? opts.pyramid : {});
}

/**
 * Writes an in-memory image and/or labels as one OME-Zarr store: the image at the root with `labels/<name>`
 * label images, or (no image) a standalone label store, its one label image at the root. Written into a
 * temporary folder beside `path` and renamed, so a crash never leaves a half-written store.
 */
export async function writeOmeZarr(
  path: string,
  content: { image?: OmeZarrVolume; labels?: OmeZarrLabels[]; dims?: { x: number; y: number; z: number }; spacing?: Spacing },
  opts: OmeZarrWriteOptions = {},
): Promise<void> {
  const { image } = content;
  const labels = content.labels ?? [];
  if (!image && labels.length !== 1) throw bad(path, 'a standalone label store holds one label image');
  const spacing = image?.spacing ?? content.spacing;
  const dims = image?.shape ?? content.dims;
  if (!spacing || !dims) throw bad(path, 'OME-Zarr labels need the dims and voxel size of their image');
  if (image && image.data.length !== image.shape.x * image.shape.y * image.shape.z * image.shape.c)
    throw bad(path, `image data (${image.data.length} values) do not fit ${image.shape.x}×${image.shape.y}×${image.shape.z}×${image.shape.c}`);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await rm(tmp, { recursive: true, force: true });
  const common = { version: opts.version, compression: opts.compression, chunks: opts.chunks };
  try {
    if (image) await writeWhole(tmp, '', image, { ...common, shape: image.shape, dtype: image.dtype, spacing, channelNames: image.channelNames, name: opts.name ?? basename(path) }, opts);
    for (const l of labels) {
      const lshape = { x: dims.x, y: dims.y, z: dims.z, c: 1 };
      if (l.data.length !== lshape.x * lshape.y * lshape.z) throw bad(path, `labels "${l.name}" do not fit the image ${lshape.x}x${lshape.y}x${lshape.z}`);
      const dtype = l.data instanceof Uint8Array ? 'uint8' : l.data instanceof Uint16Array ? 'uint16' : 'uint32';
      const group = image ? `labels/${l.name}` : '';
      await writeWhole(tmp, group, { data: l.data, dtype, shape: lshape, spacing }, { ...common, shape: lshape, dtype, spacing, name: l.name, label: image ? {} : { source: null } }, opts);
      if (image) await addLabelName(tmp, '', l.name);
    }
    await rm(path, { recursive: true, force: true });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** A standalone OME-Zarr label store (image-label metadata at its root): segment/densify output. */
export async function writeOmeZarrLabels(
  path: string,
  labels: { data: Uint8Array | Uint16Array | Uint32Array; dims: { x: number; y: number; z: number }; spacing: Spacing; name?: string },
  opts: OmeZarrWriteOptions = {},
): Promise<void> {
  await writeOmeZarr(path, { labels: [{ name: labels.name ?? 'labels', data: labels.data }], dims: labels.dims, spacing: labels.spacing }, opts);
}
