/**
 * TIFF decompression: none, LZW, Deflate (zlib) and PackBits, plus the horizontal (2) and
 * floating-point (3) predictors. Every decoder writes into a buffer of the expected size and
 * throws CodecError on corrupt input instead of reading or writing out of bounds.
 */
import { inflateSync } from 'node:zlib';

export class CodecError extends Error {}

export const COMPRESSION_NAMES: Record<number, string> = {
  1: 'none',
  2: 'CCITT RLE',
  3: 'CCITT Group 3',
  4: 'CCITT Group 4',
  5: 'LZW',
  6: 'old-style JPEG',
  7: 'JPEG',
  8: 'Deflate',
  32773: 'PackBits',
  32946: 'Deflate',
  34712: 'JPEG 2000',
  34887: 'LERC',
  34925: 'LZMA',
  50000: 'Zstandard',
  50001: 'WebP',
  50002: 'JPEG XL',
};

export function isSupportedCompression(c: number): boolean {
  return c === 1 || c === 5 || c === 8 || c === 32946 || c === 32773;
}

/** Upper bound of decoded/encoded size ratio, used to reject absurd headers before allocating. */
export function maxRatio(c: number): number {
  switch (c) {
    case 1:
      return 1;
    case 32773:
      return 64;
    case 5:
      return 4096;
    default:
      return 1100; // Deflate cannot exceed ~1032:1
  }
}

/** TIFF LZW (MSB-first codes, 9..12 bits, "early change"). */
export function lzwDecode(src: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  const prefix = new Int32Array(4096);
  const suffix = new Uint8Array(4096);
  const first = new Uint8Array(4096);
  const len = new Uint16Array(4096);
  for (let i = 0; i < 256; i++) {
    prefix[i] = -1;
    suffix[i] = i;
    first[i] = i;
    len[i] = 1;
  }
  if (src.length >= 2 && src[0] === 0 && (src[1]! & 0x01) === 1) {
    throw new CodecError('old-style (LSB-first) LZW is not supported');
  }
  const totalBits = src.length * 8;
  let next = 258;
  let width = 9;
  let bitPos = 0;
  let o = 0;
  let old = -1;
  const emit = (code: number): void => {
    const l = len[code]!;
    let end = o + l;
    let c = code;
    // write backwards along the prefix chain; clip to the output size
    while (end > expected) {
      c = prefix[c]!;
      end--;
    }
    for (let p = end - 1; p >= o; p--) {
      out[p] = suffix[c]!;
      c = prefix[c]!;
    }
    o = o + l;
  };
  while (o < expected) {
    if (bitPos + width > totalBits) break;
    const b = bitPos >>> 3;
    const v = ((src[b]! << 16) | ((src[b + 1] ?? 0) << 8) | (src[b + 2] ?? 0)) >>> 0;
    const code = (v >>> (24 - (bitPos & 7) - width)) & ((1 << width) - 1);
    bitPos += width;
    if (code === 257) break;
    if (code === 256) {
      next = 258;
      width = 9;
      old = -1;
      continue;
    }
    if (old === -1) {
      if (code > 255) throw new CodecError(`corrupt LZW data (code ${code} after a clear code)`);
      emit(code);
      old = code;
      continue;
    }
    let f: number;
    if (code < next) {
      f = first[code]!;
      emit(code);
    } else if (code === next) {
      f = first[old]!;
      // old string + its first byte
      if (next < 4096) {
        prefix[next] = old;
        suffix[next] = f;
        first[next] = first[old]!;
        len[next] = len[old]! + 1;
      }
      emit(code);
      old = code;
      next++;
      if (next + 1 >= 1 << width && width < 12) width++;
      continue;
    } else {
      throw new CodecError(`corrupt LZW data (code ${code} > next free code ${next})`);
    }
    if (next < 4096) {
      prefix[next] = old;
      suffix[next] = f;
      first[next] = first[old]!;
      len[next] = len[old]! + 1;
      next++;
      if (next + 1 >= 1 << width && width < 12) width++;
    }
    old = code;
  }
  if (o < expected) throw new CodecError(`LZW data ends after ${o} of ${expected} bytes`);
  return out;
}

export function packBitsDecode(src: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  let i = 0;
  let o = 0;
  while (o < expected && i < src.length) {
    const n = src[i++]!;
    if (n < 128) {
      const cnt = n + 1;
      if (i + cnt > src.length) throw new CodecError('PackBits literal run past the end of the data');
      const take = Math.min(cnt, expected - o);
      out.set(src.subarray(i, i + take), o);
      o += take;
      i += cnt;
    } else if (n > 128) {
      if (i >= src.length) throw new CodecError('PackBits repeat run past the end of the data');
      const cnt = 257 - n;
      const take = Math.min(cnt, expected - o);
      out.fill(src[i]!, o, o + take);
      o += take;
      i++;
    }
  }
  if (o < expected) throw new CodecError(`PackBits data ends after ${o} of ${expected} bytes`);
  return out;
}

export function inflate(src: Uint8Array, expected: number): Uint8Array {
  let out: Buffer;
  try {
    out = inflateSync(src, { maxOutputLength: Math.max(expected, 1) });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE')
      throw new CodecError(`Deflate data decodes to more than ${expected} bytes`);
    throw new CodecError(`corrupt Deflate data (${(e as Error).message})`);
  }
  if (out.length < expected)
    throw new CodecError(`Deflate data decodes to ${out.length} of ${expected} bytes`);
  return out;
}

export function decompress(compression: number, src: Uint8Array, expected: number): Uint8Array {
  switch (compression) {
    case 1:
      if (src.length < expected) throw new CodecError(`holds ${src.length} of ${expected} bytes`);
      return src;
    case 5:
      return lzwDecode(src, expected);
    case 8:
    case 32946:
      return inflate(src, expected);
    case 32773:
      return packBitsDecode(src, expected);
    default:
      throw new CodecError(`unsupported compression ${COMPRESSION_NAMES[compression] ?? compression}`);
  }
}

/** Undo horizontal differencing in place; data already in native byte order. */
export function undoPredictor2(
  buf: Uint8Array,
  bytes: number,
  rowSamples: number,
  spp: number,
  rows: number,
): void {
  const n = rowSamples * rows;
  let a: Uint8Array | Uint16Array | Uint32Array;
  if (bytes === 1) a = buf;
  else if (bytes === 2) a = new Uint16Array(buf.buffer, buf.byteOffset, n);
  else if (bytes === 4) a = new Uint32Array(buf.buffer, buf.byteOffset, n);
  else throw new CodecError(`horizontal predictor with ${bytes * 8}-bit samples is not supported`);
  for (let r = 0; r < rows; r++) {
    const base = r * rowSamples;
    for (let i = spp; i < rowSamples; i++) a[base + i] = a[base + i]! + a[base + i - spp]!;
  }
}

/** Undo the floating-point predictor (3): byte-wise differencing of byte-planes, big-endian byte order. */
export function undoPredictor3(
  buf: Uint8Array,
  bytes: number,
  rowSamples: number,
  spp: number,
  rows: number,
): void {
  const rowBytes = rowSamples * bytes;
  const tmp = new Uint8Array(rowBytes);
  for (let r = 0; r < rows; r++) {
    const row = buf.subarray(r * rowBytes, (r + 1) * rowBytes);
    for (let i = spp; i < rowBytes; i++) row[i] = (row[i]! + row[i - spp]!) & 0xff;
    tmp.set(row);
    for (let i = 0; i < rowSamples; i++) {
      for (let b = 0; b < bytes; b++) row[i * bytes + (bytes - 1 - b)] = tmp[b * rowSamples + i]!;
    }
  }
}
