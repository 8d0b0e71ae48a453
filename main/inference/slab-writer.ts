/**
 * Streaming ImageJ TIFF writer: z-slabs are appended as they are predicted, so a segmentation of any size is
 * written with one slab in memory. Uncompressed classic TIFF (< 4 GiB), little-endian, one strip per page,
 * pages in ImageJ hyperstack order (channel fastest, then z); the IFDs go after the pixel data. Written to a
 * temporary name and renamed on close(), so a killed run never leaves a half file under the final name.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { SliceformError } from '../common/errors.js';
import type { Spacing } from '../common/volume.js';
import { imagejCalibration } from '../io/writer.js';

export interface SlabWriterOptions {
  width: number;
  height: number;
  depth: number;
  channels: number;
  /** labels: uint8, or uint16 when there are more than 255 classes (labelDType in main/io/writer.ts) */
  dtype: 'uint8' | 'uint16' | 'float32';
  spacing: Spacing;
  /** ImageJ display range */
  displayRange: [number, number];
}

const BYTES = { uint8: 1, uint16: 2, float32: 4 } as const;
const ARRAY = { uint8: Uint8Array, uint16: Uint16Array, float32: Float32Array } as const;

export class SlabTiffWriter {
  private fh: FileHandle | null = null;
  private readonly tmp: string;
  private offset = 8;
  private zWritten = 0;
  private readonly pageOffsets: number[] = [];

  private constructor(
    readonly path: string,
    private readonly o: SlabWriterOptions,
  ) {
    this.tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  }

  static async create(path: string, o: SlabWriterOptions): Promise<SlabTiffWriter> {
    const bytes = o.width * o.height * o.depth * o.channels * BYTES[o.dtype];
    if (bytes + 4096 + o.depth * o.channels * 200 > 0xffffffff) {
      throw new SliceformError('too-large', `cannot write ${path}: ${bytes} bytes exceed the classic TIFF limit (4 GiB)`);
    }
    const w = new SlabTiffWriter(path, o);
    try {
      w.fh = await open(w.tmp, 'w');
    } catch (e) {
      throw new SliceformError('bad-input', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
    }
    const header = Buffer.alloc(8);
    header.write('II', 0, 'latin1');
    header.writeUInt16LE(42, 2);
    await w.fh.write(header, 0, 8, 0);
    return w;
  }

  /**
   * Appends `depth` z-planes. `data` is channel-planar for the slab: C * depth * H * W (labels: C = 1).
   */
  async writeSlab(data: Uint8Array | Uint16Array | Float32Array, depth: number): Promise<void> {
    const { width: W, height: H, channels: C } = this.o;
    // a slab of another width would be written as the wrong bytes (uint16 classes into uint8 wrap)
    if (!(data instanceof ARRAY[this.o.dtype])) throw new SliceformError('internal', `slab is ${data.constructor.name}, the file is ${this.o.dtype}`);
    const plane = W * H;
    if (data.length !== C * depth * plane) throw new SliceformError('internal', `slab has ${data.length} values, expected ${C}x${depth}x${H}x${W}`);
    if (this.zWritten + depth > this.o.depth) throw new SliceformError('internal', `slab past the last z (${this.o.depth})`);
    const bpp = BYTES[this.o.dtype];
    const buf = Buffer.allocUnsafe(C * depth * plane * bpp);
    let p = 0;
    for (let z = 0; z < depth; z++) {
      for (let c = 0; c < C; c++) {
        const src = data.subarray((c * depth + z) * plane, (c * depth + z + 1) * plane);
        const bytes = Buffer.from(src.buffer, src.byteOffset, src.byteLength);
        bytes.copy(buf, p);
        this.pageOffsets.push(this.offset + p);
        p += bytes.length;
      }
    }
    await this.fh!.write(buf, 0, buf.length, this.offset);
    this.offset += buf.length;
    this.zWritten += depth;
  }

  /** Writes the IFDs, syncs and renames to the final path. */
  async close(): Promise<void> {
    const o = this.o;
    if (this.zWritten !== o.depth) throw new SliceformError('internal', `only ${this.zWritten} of ${o.depth} z-planes were written`);
    const pages = this.pageOffsets.length;
    const bpp = BYTES[o.dtype];
    // one calibration recipe with the ImageJ writer: µm, other units, or a pixel size without a unit
    const cal = imagejCalibration(o.spacing, o.depth);
    const desc = [
      'ImageJ=1.11a',
      `images=${pages}`,
      ...(o.channels > 1 ? [`channels=${o.channels}`] : []),
      ...(o.depth > 1 ? [`slices=${o.depth}`] : []),
      ...(o.channels > 1 ? ['hyperstack=true', 'mode=grayscale'] : []),
      ...cal.lines,
      'loop=false',
      `min=${o.displayRange[0]}`,
      `max=${o.displayRange[1]}`,
    ].join('\n') + '\n\0';
    // extra data block: description, resolution rationals
    let pos = this.offset + (this.offset % 2);
    const descOff = pos;
    pos += desc.length + (desc.length % 2);
    const resOff = pos;
    pos += 16;
    const res = Buffer.alloc(16);
    const rat = (v: number): [number, number] => {
      if (!(v > 0) || !Number.isFinite(v)) return [1, 1];
      let den = 1_000_000;
      while (den > 1 && v * den > 0xffffffff) den = Math.floor(den / 10);
      return [Math.max(1, Math.round(v * den)), den];
    };
    const [xn, xd] = rat(cal.resolution?.x ?? 1);
    const [yn, yd] = rat(cal.resolution?.y ?? 1);
    res.writeUInt32LE(xn, 0);
    res.writeUInt32LE(xd, 4);
    res.writeUInt32LE(yn, 8);
    res.writeUInt32LE(yd, 12);
    const ifdStart = pos;
    const tagsFirst = 15;
    const tagsOther = 14;
    const ifdSize = (n: number) => 2 + n * 12 + 4;
    const ifds = Buffer.alloc(ifdSize(tagsFirst) + (pages - 1) * ifdSize(tagsOther));
    let ip = 0;
    for (let k = 0; k < pages; k++) {
      const first = k === 0;
      const n = first ? tagsFirst : tagsOther;
      const start = ip;
      ifds.writeUInt16LE(n, ip);
      ip += 2;
      const tag = (id: number, type: number, count: number, value: number) => {
        ifds.writeUInt16LE(id, ip);
        ifds.writeUInt16LE(type, ip + 2);
        ifds.writeUInt32LE(count, ip + 4);
        if (type === 3 && count === 1) ifds.writeUInt16LE(value, ip + 8);
        else ifds.writeUInt32LE(value, ip + 8);
        ip += 12;
      };
      tag(254, 4, 1, 0);
      tag(256, 4, 1, o.width);
      tag(257, 4, 1, o.height);
      tag(258, 3, 1, bpp * 8);
      tag(259, 3, 1, 1);
      tag(262, 3, 1, 1);
      if (first) tag(270, 2, desc.length, descOff);
      tag(273, 4, 1, this.pageOffsets[k]!);
      tag(277, 3, 1, 1);
      tag(278, 4, 1, o.height);
      tag(279, 4, 1, o.width * o.height * bpp);
      tag(282, 5, 1, resOff);
      tag(283, 5, 1, resOff + 8);
      tag(296, 3, 1, 1);
      tag(339, 3, 1, o.dtype === 'float32' ? 3 : 1);
      const next = k + 1 < pages ? ifdStart + ip + 4 : 0;
      ifds.writeUInt32LE(next, ip);
      ip += 4;
      void start;
    }
    const fh = this.fh!;
    await fh.write(Buffer.from(desc, 'latin1'), 0, desc.length, descOff);
    await fh.write(res, 0, 16, resOff);
    await fh.write(ifds, 0, ifds.length, ifdStart);
    const h = Buffer.alloc(4);
    h.writeUInt32LE(ifdStart, 0);
    await fh.write(h, 0, 4, 4);
    await fh.sync();
    await fh.close();
    this.fh = null;
    await rename(this.tmp, this.path);
  }

  /** Drops the temporary file (after an error or cancel). */
  async abort(): Promise<void> {
    if (this.fh) {
      await this.fh.close().catch(() => undefined);
      this.fh = null;
    }
    await unlink(this.tmp).catch(() => undefined);
  }
}
