/**
 * A small TIFF / BigTIFF IFD parser. It checks every offset against the file size, detects IFD
 * cycles, and reads tag values lazily, so a header-only probe never touches voxel data.
 */
import type { FileSource } from '../source.js';

/** Byte size of each TIFF field type. */
const TYPE_SIZE: Record<number, number> = {
  1: 1,
  2: 1,
  3: 2,
  4: 4,
  5: 8,
  6: 1,
  7: 1,
  8: 2,
  9: 4,
  10: 8,
  11: 4,
  12: 8,
  13: 4,
  16: 8,
  17: 8,
  18: 8,
};

/** TIFF field types that hold integers (BYTE, SBYTE, SHORT, SSHORT, LONG, SLONG, IFD, LONG8, SLONG8, IFD8). */
const INTEGER_TYPES = new Set([1, 3, 4, 6, 8, 9, 13, 16, 17, 18]);
const TYPE_NAMES: Record<number, string> = {
  2: 'ASCII',
  5: 'RATIONAL',
  7: 'UNDEFINED',
  10: 'SRATIONAL',
  11: 'FLOAT',
  12: 'DOUBLE',
};

export const TAG = {
  NewSubfileType: 254,
  ImageWidth: 256,
  ImageLength: 257,
  BitsPerSample: 258,
  Compression: 259,
  Photometric: 262,
  FillOrder: 266,
  ImageDescription: 270,
  StripOffsets: 273,
  SamplesPerPixel: 277,
  RowsPerStrip: 278,
  StripByteCounts: 279,
  XResolution: 282,
  YResolution: 283,
  PlanarConfiguration: 284,
  ResolutionUnit: 296,
  Software: 305,
  Predictor: 317,
  ColorMap: 320,
  TileWidth: 322,
  TileLength: 323,
  TileOffsets: 324,
  TileByteCounts: 325,
  SampleFormat: 339,
  CzLsmInfo: 34412,
} as const;

export interface IfdEntry {
  tag: number;
  type: number;
  count: number;
  /** file offset of the value, or -1 when the value sits inline in `inline` */
  valueOffset: number;
  inline: Buffer | null;
}

export interface Ifd {
  index: number;
  offset: number;
  entries: Map<number, IfdEntry>;
}

export interface TiffHeader {
  littleEndian: boolean;
  bigTiff: boolean;
  firstIfd: number;
}

/** Max entries in one IFD we accept (real files have < 100). */
const MAX_ENTRIES = 4096;
/**
 * Max entries over all IFDs: each one is kept in memory (~200 bytes), so a chain of many fat IFDs must not
 * take gigabytes before a single pixel is read. 200,000 pages of 20 tags is 4 M.
 */
export const MAX_TOTAL_ENTRIES = 4_000_000;

export function readUint(b: Buffer, off: number, size: number, le: boolean): number {
  switch (size) {
    case 1:
      return b[off]!;
    case 2:
      return le ? b.readUInt16LE(off) : b.readUInt16BE(off);
    case 4:
      return le ? b.readUInt32LE(off) : b.readUInt32BE(off);
    default: {
      const v = le ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off);
      return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
    }
  }
}

export class TiffFile {
  readonly ifds: Ifd[] = [];
  private constructor(
    readonly src: FileSource,
    readonly header: TiffHeader,
  ) {}

  get le(): boolean {
    return this.header.littleEndian;
  }

  /** Parses the header and walks the whole IFD chain (entries only, no tag values beyond inline ones). */
  static async open(
    src: FileSource,
    options: { maxIfds?: number; maxEntries?: number } = {},
  ): Promise<TiffFile> {
    if (src.size < 8)
      src.fail(src.size === 0 ? 'empty file' : 'not a TIFF (file shorter than a TIFF header)');
    const h = await src.read(0, Math.min(16, src.size), 'TIFF header');
    const bo = h.toString('latin1', 0, 2);
    if (bo !== 'II' && bo !== 'MM') src.fail('not a TIFF (no II/MM byte-order mark)');
    const le = bo === 'II';
    const magic = le ? h.readUInt16LE(2) : h.readUInt16BE(2);
    let header: TiffHeader;
    if (magic === 42) {
      header = { littleEndian: le, bigTiff: false, firstIfd: readUint(h, 4, 4, le) };
    } else if (magic === 43) {
      if (h.length < 16) src.fail('truncated BigTIFF header');
      const offSize = readUint(h, 4, 2, le);
      if (offSize !== 8) src.fail(`not a valid BigTIFF (offset size ${offSize}, expected 8)`);
      header = { littleEndian: le, bigTiff: true, firstIfd: readUint(h, 8, 8, le) };
    } else {
      src.fail(`not a TIFF (magic number ${magic}, expected 42 or 43)`);
    }
    const tf = new TiffFile(src, header);
    await tf.walk(options.maxIfds ?? 1_000_000, options.maxEntries ?? MAX_TOTAL_ENTRIES);
    return tf;
  }

  private async walk(maxIfds: number, maxEntries: number): Promise<void> {
    const { bigTiff, littleEndian: le } = this.header;
    const seen = new Set<number>();
    let totalEntries = 0;
    let offset = this.header.firstIfd;
    if (offset === 0) this.src.fail('no images (first IFD offset is 0)');
    const countSize = bigTiff ? 8 : 2;
    const entrySize = bigTiff ? 20 : 12;
    const offSize = bigTiff ? 8 : 4;
    while (offset !== 0) {
      if (seen.has(offset))
        this.src.fail(`IFD chain loops (IFD ${this.ifds.length} points back to offset ${offset})`);
      if (this.ifds.length >= maxIfds) this.src.fail(`more than ${maxIfds} IFDs`);
      seen.add(offset);
      const what = `IFD ${this.ifds.length}`;
      if (offset < 8 || offset + countSize > this.src.size) {
        // A broken link after at least one good IFD: keep what we have (as libtiff does) but say so.
        if (this.ifds.length > 0) {
          this.truncatedChain = `IFD ${this.ifds.length} offset ${offset} points past the end of the file`;
          break;
        }
        this.src.fail(`${what} offset ${offset} points past the end of the file (${this.src.size} bytes)`);
      }
      const cb = await this.src.read(offset, countSize, what);
      const n = readUint(cb, 0, countSize, le);
      if (n === 0) this.src.fail(`${what} at offset ${offset} has no entries`);
      if (n > MAX_ENTRIES) this.src.fail(`${what} at offset ${offset} claims ${n} entries (corrupt)`);
      totalEntries += n;
      if (totalEntries > maxEntries) {
        this.src.fail(
          `more than ${maxEntries.toLocaleString('en-US')} IFD entries in the first ${this.ifds.length} IFDs (corrupt?)`,
        );
      }
      const blockLen = n * entrySize + offSize;
      if (offset + countSize + blockLen > this.src.size) {
        if (this.ifds.length > 0) {
          this.truncatedChain = `truncated IFD ${this.ifds.length} at offset ${offset}`;
          break;
        }
      }
      const b = await this.src.read(offset + countSize, blockLen, what);
      const entries = new Map<number, IfdEntry>();
      for (let i = 0; i < n; i++) {
        const p = i * entrySize;
        const tag = readUint(b, p, 2, le);
        const type = readUint(b, p + 2, 2, le);
        const count = readUint(b, p + 4, bigTiff ? 8 : 4, le);
        const size = TYPE_SIZE[type];
        if (size === undefined) continue; // unknown type: ignore the tag, as libtiff does
        const valPos = p + (bigTiff ? 12 : 8);
        const bytes = size * count;
        if (bytes <= offSize) {
          entries.set(tag, {
            tag,
            type,
            count,
            valueOffset: -1,
            inline: Buffer.from(b.subarray(valPos, valPos + offSize)),
          });
        } else {
          entries.set(tag, { tag, type, count, valueOffset: readUint(b, valPos, offSize, le), inline: null });
        }
      }
      this.ifds.push({ index: this.ifds.length, offset, entries });
      offset = readUint(b, n * entrySize, offSize, le);
    }
  }

  /** Set when the chain ended at a bad link after at least one good IFD. */
  truncatedChain: string | null = null;

  has(ifd: Ifd, tag: number): boolean {
    return ifd.entries.has(tag);
  }

  private async raw(ifd: Ifd, e: IfdEntry, count = e.count): Promise<Buffer> {
    const size = TYPE_SIZE[e.type]!;
    const len = size * count;
    if (e.inline) return e.inline.subarray(0, len);
    return this.src.read(e.valueOffset, len, `value of tag ${e.tag} in IFD ${ifd.index}`);
  }

  /**
   * Numeric values of a tag (rationals as num/den), or undefined when absent. At most `limit` values
   * are read, so a corrupt count cannot make us read (and box) the whole file.
   */
  async nums(ifd: Ifd, tag: number, limit = 1 << 20): Promise<number[] | undefined> {
    const e = ifd.entries.get(tag);
    if (!e) return undefined;
    const count = Math.min(e.count, limit);
    const b = await this.raw(ifd, e, count);
    const le = this.le;
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      switch (e.type) {
        case 1:
        case 2:
        case 7:
          out[i] = b[i]!;
          break;
        case 6:
          out[i] = b.readInt8(i);
          break;
        case 3:
          out[i] = readUint(b, i * 2, 2, le);
          break;
        case 8:
          out[i] = le ? b.readInt16LE(i * 2) : b.readInt16BE(i * 2);
          break;
        case 4:
        case 13:
          out[i] = readUint(b, i * 4, 4, le);
          break;
        case 9:
          out[i] = le ? b.readInt32LE(i * 4) : b.readInt32BE(i * 4);
          break;
        case 5:
        case 10: {
          const signed = e.type === 10;
          const num = signed ? (le ? b.readInt32LE(i * 8) : b.readInt32BE(i * 8)) : readUint(b, i * 8, 4, le);
          const den = signed
            ? le
              ? b.readInt32LE(i * 8 + 4)
              : b.readInt32BE(i * 8 + 4)
            : readUint(b, i * 8 + 4, 4, le);
          out[i] = den === 0 ? NaN : num / den;
          break;
        }
        case 11:
          out[i] = le ? b.readFloatLE(i * 4) : b.readFloatBE(i * 4);
          break;
        case 12:
          out[i] = le ? b.readDoubleLE(i * 8) : b.readDoubleBE(i * 8);
          break;
        default:
          out[i] = readUint(b, i * 8, 8, le);
      }
    }
    return out;
  }

  async num(ifd: Ifd, tag: number): Promise<number | undefined> {
    const e = ifd.entries.get(tag);
    if (!e || e.count < 1) return undefined;
    if (e.count === 1) return (await this.nums(ifd, tag))![0];
    // read only the first value of a long array
    const one: IfdEntry = { ...e, count: 1 };
    const b = e.inline
      ? e.inline
      : await this.src.read(e.valueOffset, TYPE_SIZE[e.type]!, `value of tag ${tag}`);
    const tmp: Ifd = {
      index: ifd.index,
      offset: ifd.offset,
      entries: new Map([[tag, { ...one, inline: b, valueOffset: -1 }]]),
    };
    return (await this.nums(tmp, tag))![0];
  }

  /**
   * A structural integer tag (sizes, counts, codes, offsets): undefined when absent, an error naming the
   * tag when it is stored as a FLOAT, RATIONAL, ASCII or UNDEFINED value (an ImageWidth stored as FLOAT
   * would otherwise read as 1.86e-43 pixels).
   */
  async int(ifd: Ifd, tag: number, name: string): Promise<number | undefined> {
    const e = ifd.entries.get(tag);
    if (!e) return undefined;
    this.checkIntType(ifd, e, name);
    return this.num(ifd, tag);
  }

  /** Fails when an entry that must hold integers is stored with another TIFF type. */
  checkIntType(ifd: Ifd, e: IfdEntry, name: string): void {
    if (!INTEGER_TYPES.has(e.type)) {
      this.src.fail(
        `IFD ${ifd.index}: ${name} is stored as ${TYPE_NAMES[e.type] ?? `type ${e.type}`} (TIFF type ${e.type}); it must be an integer (SHORT or LONG)`,
      );
    }
  }

  /** ASCII value, up to the first NUL. Limited to 16 MiB. */
  async ascii(ifd: Ifd, tag: number): Promise<string | undefined> {
    const e = ifd.entries.get(tag);
    if (!e) return undefined;
    if (e.count > 16 << 20) return undefined;
    const b = await this.raw(ifd, e);
    const end = b.indexOf(0);
    return b.toString('utf8', 0, end < 0 ? b.length : end);
  }

  /** Raw bytes of a tag value (for private tags such as CZ_LSMINFO). */
  async bytes(ifd: Ifd, tag: number, limit = 1 << 20): Promise<Buffer | undefined> {
    const e = ifd.entries.get(tag);
    if (!e) return undefined;
    return this.raw(ifd, e, Math.min(e.count, Math.floor(limit / TYPE_SIZE[e.type]!)));
  }

  entry(ifd: Ifd, tag: number): IfdEntry | undefined {
    return ifd.entries.get(tag);
  }
}
