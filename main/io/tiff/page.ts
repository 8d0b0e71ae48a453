/**
 * One TIFF image (IFD) as the readers see it, and the decoder that writes it plane by plane
 * straight into the caller's output volume.
 */
import { endianness } from 'node:os';
import type { DType } from '../../common/volume.js';
import { DTYPE_BYTES } from '../../common/volume.js';
import { TAG, type Ifd, type TiffFile } from './ifd.js';
import {
  CodecError,
  COMPRESSION_NAMES,
  decompress,
  isSupportedCompression,
  maxRatio,
  undoPredictor2,
  undoPredictor3,
} from './codecs.js';

const HOST_LE = endianness() === 'LE';

export interface PageInfo {
  ifd: Ifd;
  width: number;
  height: number;
  spp: number;
  bits: number;
  sampleFormat: number;
  dtype: DType;
  compression: number;
  predictor: number;
  planar: 1 | 2;
  photometric: number;
  subfileType: number;
  tiled: boolean;
  /** strip: width x rowsPerStrip; tile: tileWidth x tileLength */
  chunkW: number;
  chunkH: number;
}

export function dtypeFor(bits: number, sampleFormat: number): DType | null {
  if (sampleFormat === 3) return bits === 32 ? 'float32' : bits === 64 ? 'float64' : null;
  const signed = sampleFormat === 2;
  if (sampleFormat !== 1 && sampleFormat !== 2 && sampleFormat !== 4) return null;
  switch (bits) {
    case 8:
      return signed ? 'int8' : 'uint8';
    case 16:
      return signed ? 'int16' : 'uint16';
    case 32:
      return signed ? 'int32' : 'uint32';
    default:
      return null;
  }
}

/** Reads the tags that define the pixel layout of one IFD; throws via tf.src.fail when unusable. */
export async function readPageInfo(tf: TiffFile, ifd: Ifd): Promise<PageInfo> {
  const fail = (m: string): never => tf.src.fail(`IFD ${ifd.index}: ${m}`);
  const width = await tf.int(ifd, TAG.ImageWidth, 'ImageWidth');
  const height = await tf.int(ifd, TAG.ImageLength, 'ImageLength');
  if (width === undefined || height === undefined) fail('missing ImageWidth/ImageLength');
  if (width! <= 0 || height! <= 0) fail(`zero-sized image (${width} x ${height})`);
  if (width! > 1 << 24 || height! > 1 << 24) fail(`absurd image size ${width} x ${height}`);
  const spp = (await tf.int(ifd, TAG.SamplesPerPixel, 'SamplesPerPixel')) ?? 1;
  if (spp < 1 || spp > 64) fail(`unsupported SamplesPerPixel ${spp}`);
  for (const [tag, name] of [
    [TAG.BitsPerSample, 'BitsPerSample'],
    [TAG.SampleFormat, 'SampleFormat'],
    [TAG.StripOffsets, 'StripOffsets'],
    [TAG.StripByteCounts, 'StripByteCounts'],
    [TAG.TileOffsets, 'TileOffsets'],
    [TAG.TileByteCounts, 'TileByteCounts'],
  ] as const) {
    const e = tf.entry(ifd, tag);
    if (e) tf.checkIntType(ifd, e, name);
  }
  const bitsArr = (await tf.nums(ifd, TAG.BitsPerSample, 64)) ?? [1];
  if (bitsArr.length === 0) fail('BitsPerSample has no values');
  const bits = bitsArr[0]!;
  if (bitsArr.some((b) => b !== bits)) fail(`mixed BitsPerSample ${bitsArr.join(',')} are not supported`);
  const sfNums = await tf.nums(ifd, TAG.SampleFormat, 64);
  const sfArr = sfNums && sfNums.length > 0 ? sfNums : [1];
  const sampleFormat = sfArr[0]!;
  const dtype = dtypeFor(bits, sampleFormat);
  if (!dtype) {
    const kind = sampleFormat === 3 ? 'float' : sampleFormat === 2 ? 'signed integer' : 'unsigned integer';
    fail(`unsupported sample type: ${bits}-bit ${kind} (SampleFormat ${sampleFormat})`);
  }
  const compression = (await tf.int(ifd, TAG.Compression, 'Compression')) ?? 1;
  if (!isSupportedCompression(compression)) {
    fail(`unsupported compression ${COMPRESSION_NAMES[compression] ?? 'code ' + compression}`);
  }
  const predictor = (await tf.int(ifd, TAG.Predictor, 'Predictor')) ?? 1;
  if (predictor !== 1 && predictor !== 2 && predictor !== 3) fail(`unsupported Predictor ${predictor}`);
  if (predictor === 3 && sampleFormat !== 3) fail('floating-point predictor on integer samples');
  const planarRaw = (await tf.int(ifd, TAG.PlanarConfiguration, 'PlanarConfiguration')) ?? 1;
  const planar: 1 | 2 = spp === 1 ? 1 : planarRaw === 2 ? 2 : 1;
  const photometric = (await tf.num(ifd, TAG.Photometric)) ?? 1;
  if (photometric === 6 || photometric === 32844 || photometric === 32845) {
    fail(`unsupported PhotometricInterpretation ${photometric} (YCbCr/LogLuv)`);
  }
  const subfileType = (await tf.num(ifd, TAG.NewSubfileType)) ?? 0;
  const tiled = tf.has(ifd, TAG.TileOffsets);
  let chunkW: number;
  let chunkH: number;
  if (tiled) {
    chunkW = (await tf.int(ifd, TAG.TileWidth, 'TileWidth')) ?? 0;
    chunkH = (await tf.int(ifd, TAG.TileLength, 'TileLength')) ?? 0;
    if (chunkW <= 0 || chunkH <= 0 || chunkW > 1 << 16 || chunkH > 1 << 16)
      fail(`bad tile size ${chunkW} x ${chunkH}`);
    // a tile far larger than the image would make us allocate for nothing (and is a corruption sign)
    if (chunkW * chunkH > 4 * width! * height! + (1 << 20)) {
      fail(`tile size ${chunkW} x ${chunkH} is far larger than the ${width} x ${height} image`);
    }
  } else {
    if (!tf.has(ifd, TAG.StripOffsets)) fail('no StripOffsets or TileOffsets');
    const rps = (await tf.int(ifd, TAG.RowsPerStrip, 'RowsPerStrip')) ?? height!;
    if (rps <= 0) fail(`bad RowsPerStrip ${rps}`);
    chunkW = width!;
    chunkH = Math.min(rps, height!);
  }
  return {
    ifd,
    width: width!,
    height: height!,
    spp,
    bits,
    sampleFormat,
    dtype: dtype!,
    compression,
    predictor,
    planar,
    photometric,
    subfileType,
    tiled,
    chunkW,
    chunkH,
  };
}

/** Sum of the chunk byte counts, or an estimate when StripByteCounts is missing. */
export async function pageStoredBytes(tf: TiffFile, p: PageInfo): Promise<number> {
  const needed =
    Math.ceil(p.width / p.chunkW) * Math.ceil(p.height / p.chunkH) * (p.planar === 2 ? p.spp : 1);
  const counts = await tf.nums(p.ifd, p.tiled ? TAG.TileByteCounts : TAG.StripByteCounts, needed);
  if (!counts) return p.width * p.height * p.spp * DTYPE_BYTES[p.dtype];
  let s = 0;
  for (const c of counts) s += c;
  return s;
}

function swapInPlace(buf: Uint8Array, bytes: number): void {
  if (bytes === 1) return;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes === 2) b.swap16();
  else if (bytes === 4) b.swap32();
  else b.swap64();
}

/**
 * Decodes one page. `dest[s]` is the byte view (native order) of the output plane that receives
 * sample s, each width*height*bytes long; a null entry skips that sample.
 */
export async function decodePage(tf: TiffFile, p: PageInfo, dest: (Uint8Array | null)[]): Promise<void> {
  const src = tf.src;
  const ifd = p.ifd;
  const bytes = DTYPE_BYTES[p.dtype];
  const where = `IFD ${ifd.index}`;
  const across = Math.ceil(p.width / p.chunkW);
  const down = Math.ceil(p.height / p.chunkH);
  const perPlane = across * down;
  const planes = p.planar === 2 ? p.spp : 1;
  const needed = perPlane * planes;
  const offsets = await tf.nums(ifd, p.tiled ? TAG.TileOffsets : TAG.StripOffsets, needed);
  let counts = await tf.nums(ifd, p.tiled ? TAG.TileByteCounts : TAG.StripByteCounts, needed);
  const kind = p.tiled ? 'tile' : 'strip';
  if (!offsets || offsets.length < needed) {
    src.fail(`${where}: ${offsets?.length ?? 0} ${kind} offsets, expected ${needed}`);
  }
  const sppChunk = p.planar === 2 ? 1 : p.spp;
  const swap = bytes > 1 && tf.le !== HOST_LE && p.predictor !== 3;
  if (!counts) {
    if (p.compression !== 1 || needed !== 1) src.fail(`${where}: missing ${kind} byte counts`);
    counts = [p.width * p.height * p.spp * bytes];
  }
  if (counts.length < needed) src.fail(`${where}: ${counts.length} ${kind} byte counts, expected ${needed}`);
  const rowBytesOut = p.width * bytes;
  let run: { d: Uint8Array; at: number; off: number; len: number } | null = null;
  const flush = async () => {
    if (!run) return;
    const { d, at, off, len } = run;
    run = null;
    const target = d.subarray(at, at + len);
    await src.readInto(target, 0, len, off);
    if (swap) swapInPlace(target, bytes);
  };
  for (let i = 0; i < needed; i++) {
    const plane = Math.floor(i / perPlane);
    const j = i % perPlane;
    const ty = Math.floor(j / across);
    const tx = j % across;
    const y0 = ty * p.chunkH;
    const x0 = tx * p.chunkW;
    const rows = p.tiled ? p.chunkH : Math.min(p.chunkH, p.height - y0);
    const visRows = Math.min(rows, p.height - y0);
    const visCols = Math.min(p.chunkW, p.width - x0);
    const chunkRowSamples = p.chunkW * sppChunk;
    const expected = rows * chunkRowSamples * bytes;
    const off = offsets![i]!;
    const cnt = counts[i]!;
    const firstSample = p.planar === 2 ? plane : 0;
    const what = `${kind} ${i} of ${where}`;
    // Fast path: uncompressed full-width strip of one sample: read straight into the output.
    if (p.compression === 1 && !p.tiled && sppChunk === 1 && p.predictor === 1) {
      const d = dest[firstSample];
      if (!d) continue;
      if (cnt < expected && off + expected > src.size) {
        src.fail(
          `truncated ${kind} at offset ${off} (${what}: needs ${expected} bytes, file ends after ${Math.max(0, src.size - off)})`,
        );
      }
      if (cnt < expected) src.fail(`${what} at offset ${off} holds ${cnt} bytes, expected ${expected}`);
      if (off + expected > src.size) {
        src.fail(
          `truncated ${kind} at offset ${off} (${what}: needs ${expected} bytes, file ends after ${Math.max(0, src.size - off)})`,
        );
      }
      // strips that follow each other in the file and in the plane are read in one call (a 1-row-per-strip
      // OME-TIFF otherwise costs one read per row)
      const at = y0 * rowBytesOut;
      if (run && run.d === d && run.at + run.len === at && run.off + run.len === off) run.len += expected;
      else {
        await flush();
        run = { d, at, off, len: expected };
      }
      continue;
    }
    if (dest.slice(firstSample, firstSample + sppChunk).every((d) => !d)) continue;
    if (off + cnt > src.size) {
      src.fail(
        `truncated ${kind} at offset ${off} (${what}: needs ${cnt} bytes, file ends after ${Math.max(0, src.size - off)})`,
      );
    }
    if (expected > cnt * maxRatio(p.compression) + 1024) {
      src.fail(
        `${what} at offset ${off}: ${cnt} ${COMPRESSION_NAMES[p.compression]} bytes cannot hold ${expected} bytes of pixels`,
      );
    }
    const raw = await src.readFresh(off, Math.min(cnt, p.compression === 1 ? expected : cnt), what);
    let data: Uint8Array;
    try {
      data = decompress(p.compression, raw, expected);
    } catch (e) {
      if (e instanceof CodecError) src.fail(`${what} at offset ${off}: ${e.message}`);
      throw e;
    }
    if (data.byteOffset % bytes !== 0 || data.length !== expected)
      data = new Uint8Array(data.subarray(0, expected));
    if (swap) swapInPlace(data, bytes);
    try {
      if (p.predictor === 2) undoPredictor2(data, bytes, chunkRowSamples, sppChunk, rows);
      else if (p.predictor === 3) undoPredictor3(data, bytes, chunkRowSamples, sppChunk, rows);
    } catch (e) {
      if (e instanceof CodecError) src.fail(`${what}: ${e.message}`);
      throw e;
    }
    // copy visible region into the output planes
    const chunkRowBytes = chunkRowSamples * bytes;
    if (sppChunk === 1) {
      const d = dest[firstSample]!;
      const w = visCols * bytes;
      for (let r = 0; r < visRows; r++) {
        const so = r * chunkRowBytes;
        const doff = (y0 + r) * rowBytesOut + x0 * bytes;
        d.set(data.subarray(so, so + w), doff);
      }
    } else {
      for (let s = 0; s < sppChunk; s++) {
        const d = dest[s];
        if (!d) continue;
        for (let r = 0; r < visRows; r++) {
          const so = r * chunkRowBytes + s * bytes;
          let doff = (y0 + r) * rowBytesOut + x0 * bytes;
          for (let c = 0; c < visCols; c++) {
            const sp = so + c * sppChunk * bytes;
            for (let k = 0; k < bytes; k++) d[doff + k] = data[sp + k]!;
            doff += bytes;
          }
        }
      }
    }
  }
  await flush();
}
