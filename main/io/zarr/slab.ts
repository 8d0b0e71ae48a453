/**
 * An OME-Zarr store written slab by slab (z-planes in order), the Zarr twin of main/inference/slab-writer.ts's
 * SlabTiffWriter, for outputs of in-memory segment and densify: whole chunk rows go to the store as they
 * fill; close() adds the pyramid and moves the store into place. Built in a temporary folder beside the
 * target, so a killed run never leaves a half store under the final name; an existing target is replaced
 * only when it is a store Sliceform wrote (never someone's image).
 */
import { randomUUID } from 'node:crypto';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SliceformError } from '../../common/errors.js';
import type { Spacing, TypedArray } from '../../common/volume.js';
import { createOmeZarrImage, writePyramid, type NgffVersion, type ZarrArrayWriter, type ZarrCompression } from './writer.js';

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

export class SlabZarrWriter {
  private zWritten = 0;
  private rowStart = 0;
  private filled = 0;
  private readonly buf: TypedArray;
  private readonly cz: number;

  private constructor(
    readonly path: string,
    private readonly build: string,
    private readonly w: ZarrArrayWriter,
    private readonly o: SlabZarrOptions,
  ) {
    this.cz = w.chunks[w.chunks.length - 3]!;
    const n = o.channels * this.cz * o.width * o.height;
    this.buf = o.dtype === 'float32' ? new Float32Array(n) : o.dtype === 'uint16' ? new Uint16Array(n) : new Uint8Array(n);
  }

  static async create(path: string, o: SlabZarrOptions): Promise<SlabZarrWriter> {
    const full = resolve(path);
    const build = join(dirname(full), `.${basename(full)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
    const w = await createOmeZarrImage(build, '', {
      shape: { x: o.width, y: o.height, z: o.depth, c: o.channels },
      dtype: o.dtype,
      spacing: o.spacing,
      version: o.version,
      compression: o.compression,
      chunks: o.chunks ?? [Math.min(o.depth, 64), Math.min(o.height, 256), Math.min(o.width, 256)],
      name: basename(path),
      ...(o.label ? { label: { source: null } } : { channelNames: o.channelNames ?? Array.from({ length: o.channels }, (_, k) => `C${k + 1}`) }),
    });
    return new SlabZarrWriter(path, build, w, o);
  }

  /** Appends `depth` z-planes; `data` is channel-planar for the slab (C * depth * H * W), like SlabTiffWriter. */
  async writeSlab(data: Uint8Array | Uint16Array | Float32Array, depth: number): Promise<void> {
    const { width: W, height: H, channels: C, depth: D } = this.o;
    const plane = W * H;
    if (data.constructor !== this.buf.constructor) throw new SliceformError('internal', `slab is ${data.constructor.name}, the store is ${this.o.dtype}`);
    if (data.length !== C * depth * plane) throw new SliceformError('internal', `slab has ${data.length} values, expected ${C}x${depth}x${H}x${W}`);
    if (this.zWritten + depth > D) throw new SliceformError('internal', `slab of ${depth} planes at z ${this.zWritten} runs past ${D}`);
    for (let k = 0; k < depth; k++) {
      const z = this.zWritten + k;
      const r = z - this.rowStart;
      for (let c = 0; c < C; c++) this.buf.set(data.subarray((c * depth + k) * plane, (c * depth + k + 1) * plane) as never, (c * this.cz + r) * plane);
      this.filled = r + 1;
      if (this.filled === this.cz || z + 1 === D) await this.flush();
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

  /** Adds the pyramid and moves the store into place. */
  async close(): Promise<void> {
    if (this.zWritten !== this.o.depth) throw new SliceformError('internal', `only ${this.zWritten} of ${this.o.depth} z-planes were written`);
    try {
      await writePyramid(this.build, '');
      await replaceZarrStore(this.build, this.path);
    } catch (e) {
      await rm(this.build, { recursive: true, force: true });
      throw e;
    }
  }

  async abort(): Promise<void> {
    await rm(this.build, { recursive: true, force: true });
  }
}
