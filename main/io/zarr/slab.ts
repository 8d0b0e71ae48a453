/**
 * The one OME-Zarr slab writer: z-planes arrive in order (the Zarr twin of main/inference/slab-writer.ts's
 * SlabTiffWriter) and whole chunk rows (all of y and x, cz planes, or the last partial row) go to the store as
 * they fill, so every chunk is written whole, once, by one writer. Used by in-memory segment and densify
 * (main/inference/files.ts) and by streamed and sharded segment (main/inference/stream.ts).
 *
 * A whole volume is built in a temporary folder beside the target; close() adds the pyramid and moves it into
 * place, so a killed run never leaves a half store under the final name, and an existing target is replaced
 * only when it is a store Sliceform wrote (never someone's image). A shard (`shard: [z0, z1)`, whole chunk
 * rows) writes its chunk rows straight into the shared store at the target, whose metadata every shard writes
 * identically and atomically (temp + rename, main/io/zarr/store.ts), as it writes each chunk: no locking, no
 * merge step, start order does not matter, and a resubmitted shard simply rewrites its own chunks. A sharded
 * store has level 0 only (a pyramid needs every shard).
 */
import { randomUUID } from 'node:crypto';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SliceformError } from '../../common/errors.js';
import { DTYPE_BYTES, type Spacing, type TypedArray } from '../../common/volume.js';
import { createOmeZarrImage, pyramidFactors, writePyramid, type NgffVersion, type ZarrArrayWriter, type ZarrCompression } from './writer.js';

export interface SlabZarrOptions {
  width: number;
  height: number;
  depth: number;
  channels: number;
  dtype: 'uint8' | 'uint16' | 'float32';
  spacing: Spacing;
  /** a label image (image-label metadata, pyramid by mode); otherwise an image with one channel per class */
  label: boolean;
  channelNames?: string[];
  chunks?: [number, number, number];
  version?: NgffVersion;
  compression?: ZarrCompression;
  /** multiscales name (default: the store's file name) */
  name?: string;
  /**
   * one shard of a volume: output planes [z0, z1), whole chunk rows (z1 may be the depth), written into the
   * shared store at the path itself (no temporary folder, no pyramid; abort leaves the whole chunks written)
   */
  shard?: [number, number];
}

/** Is this output path an OME-Zarr store (NAME.zarr, NAME.ome.zarr)? */
export function isZarrOutputPath(path: string): boolean {
  return /\.zarr\/?$/i.test(path);
}

/** Moves a finished store to `final`; an existing target must be a Zarr store Sliceform wrote. */
export async function replaceZarrStore(build: string, final: string): Promise<void> {
  const has = await stat(final).then(
    () => true,
    () => false,
  );
  if (!has) return rename(build, final);
  const meta = await readFile(join(final, '.zattrs'), 'utf8')
    .catch(() => readFile(join(final, 'zarr.json'), 'utf8'))
    .catch(() => '');
  if (!meta.includes('"sliceform"')) {
    await rm(build, { recursive: true, force: true });
    throw new SliceformError('bad-input', 'exists and is not a Zarr store written by Sliceform; remove it or choose another output', { file: final });
  }
  const old = `${build}.old`;
  await rename(final, old);
  await rename(build, final);
  await rm(old, { recursive: true, force: true });
}

function defaultChunks(o: Pick<SlabZarrOptions, 'width' | 'height' | 'depth' | 'chunks'>): [number, number, number] {
  return o.chunks ?? [Math.min(o.depth, 64), Math.min(o.height, 256), Math.min(o.width, 256)];
}

/**
 * The most bytes a SlabZarrWriter with these options puts on disk (for the fit check): its chunks uncompressed and
 * whole (edge chunks are stored padded to the chunk shape), a shard's own chunk rows only, a whole volume with the
 * pyramid close() adds (same chunk shape per level, clipped to the level). Compression only lowers it; metadata
 * files (a few KiB) are not counted. With compression 'none' and no chunk of only the fill value, it is exact.
 */
export function slabZarrMaxBytes(o: SlabZarrOptions): number {
  const [cz0, cy0, cx0] = defaultChunks(o);
  const voxel = DTYPE_BYTES[o.dtype] * o.channels;
  const level = (z: number, y: number, x: number, rows?: [number, number]) => {
    const cz = Math.min(cz0, z);
    const cy = Math.min(cy0, y);
    const cx = Math.min(cx0, x);
    const nz = rows ? Math.ceil(rows[1] / cz) - Math.floor(rows[0] / cz) : Math.ceil(z / cz);
    return nz * cz * Math.ceil(y / cy) * cy * Math.ceil(x / cx) * cx * voxel;
  };
  if (o.shard) return o.shard[1] > o.shard[0] ? level(o.depth, o.height, o.width, o.shard) : 0;
  let total = level(o.depth, o.height, o.width);
  let prev = { z: o.depth, y: o.height, x: o.width, f: [1, 1, 1] };
  for (const f of pyramidFactors({ x: o.width, y: o.height, z: o.depth }, o.spacing)) {
    const next = { z: Math.ceil(prev.z / (f[0] / prev.f[0]!)), y: Math.ceil(prev.y / (f[1] / prev.f[1]!)), x: Math.ceil(prev.x / (f[2] / prev.f[2]!)), f };
    total += level(next.z, next.y, next.x);
    prev = next;
  }
  return total;
}

export class SlabZarrWriter {
  private zWritten: number;
  private rowStart: number;
  private filled = 0;
  private readonly buf: TypedArray;
  private readonly cz: number;
  /** planes [z0, z1) this writer writes (the whole depth, or a shard's) */
  readonly zRange: [number, number];

  private constructor(
    readonly path: string,
    private readonly build: string,
    private readonly w: ZarrArrayWriter,
    private readonly o: SlabZarrOptions,
  ) {
    this.cz = w.chunks[w.chunks.length - 3]!;
    this.zRange = o.shard ?? [0, o.depth];
    this.zWritten = this.zRange[0];
    this.rowStart = this.zRange[0];
    const n = o.channels * this.cz * o.width * o.height;
    this.buf = o.dtype === 'float32' ? new Float32Array(n) : o.dtype === 'uint16' ? new Uint16Array(n) : new Uint8Array(n);
  }

  static async create(path: string, o: SlabZarrOptions): Promise<SlabZarrWriter> {
    const full = resolve(path);
    const chunks = defaultChunks(o);
    if (o.shard) {
      const [z0, z1] = o.shard;
      const cz = Math.min(chunks[0], o.depth);
      if (!(Number.isInteger(z0) && Number.isInteger(z1) && z0 >= 0 && z0 <= z1 && z1 <= o.depth && z0 % cz === 0 && (z1 % cz === 0 || z1 === o.depth)))
        throw new SliceformError('internal', `zarr shard: planes ${z0}..${z1} are not whole chunk rows of ${cz} planes in 0..${o.depth}`);
    }
    const build = o.shard ? full : join(dirname(full), `.${basename(full)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
    const w = await createOmeZarrImage(build, '', {
      shape: { x: o.width, y: o.height, z: o.depth, c: o.channels },
      dtype: o.dtype,
      spacing: o.spacing,
      version: o.version,
      compression: o.compression,
      chunks,
      name: o.name ?? basename(path),
      ...(o.label ? { label: { source: null } } : { channelNames: o.channelNames ?? Array.from({ length: o.channels }, (_, k) => `C${k + 1}`) }),
    });
    return new SlabZarrWriter(path, build, w, o);
  }

  /** Appends `depth` z-planes; `data` is channel-planar for the slab (C * depth * H * W), like SlabTiffWriter. */
  async writeSlab(data: Uint8Array | Uint16Array | Float32Array, depth: number): Promise<void> {
    const { width: W, height: H, channels: C } = this.o;
    const plane = W * H;
    const end = this.zRange[1];
    if (data.constructor !== this.buf.constructor) throw new SliceformError('internal', `slab is ${data.constructor.name}, the store is ${this.o.dtype}`);
    if (data.length !== C * depth * plane) throw new SliceformError('internal', `slab has ${data.length} values, expected ${C}x${depth}x${H}x${W}`);
    if (this.zWritten + depth > end) throw new SliceformError('internal', `slab of ${depth} planes at z ${this.zWritten} runs past ${end}`);
    for (let k = 0; k < depth; k++) {
      const z = this.zWritten + k;
      const r = z - this.rowStart;
      for (let c = 0; c < C; c++) this.buf.set(data.subarray((c * depth + k) * plane, (c * depth + k + 1) * plane) as never, (c * this.cz + r) * plane);
      this.filled = r + 1;
      if (this.filled === this.cz || z + 1 === end) await this.flush();
    }
    this.zWritten += depth;
  }

  private async flush(): Promise<void> {
    const { width: W, height: H, channels: C } = this.o;
    const plane = W * H;
    const n = this.filled;
    let data: TypedArray = this.buf.subarray(0, C * n * plane);
    if (C > 1 && n < this.cz) {
      const packed = new (this.buf.constructor as new (n: number) => TypedArray)(C * n * plane);
      for (let c = 0; c < C; c++) packed.set(this.buf.subarray(c * this.cz * plane, (c * this.cz + n) * plane) as never, c * n * plane);
      data = packed;
    }
    await this.w.writeRegion({ x0: 0, y0: 0, z0: this.rowStart, x1: W, y1: H, z1: this.rowStart + n }, data);
    this.rowStart += n;
    this.filled = 0;
  }

  /** A whole volume: adds the pyramid and moves the store into place. A shard: checks that all its planes came. */
  async close(): Promise<void> {
    const [z0, z1] = this.zRange;
    if (this.zWritten !== z1) throw new SliceformError('internal', `only ${this.zWritten - z0} of ${z1 - z0} z-planes were written`);
    if (this.o.shard) return;
    try {
      await writePyramid(this.build, '');
      await replaceZarrStore(this.build, this.path);
    } catch (e) {
      await rm(this.build, { recursive: true, force: true });
      throw e;
    }
  }

  /** A whole volume: drops the temporary store. A shard: keeps the whole chunks written (a rerun rewrites them). */
  async abort(): Promise<void> {
    if (!this.o.shard) await rm(this.build, { recursive: true, force: true });
  }
}
