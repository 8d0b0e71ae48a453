/**
 * TIFF writers for label and probability volumes: ImageJ hyperstacks (Fiji opens them calibrated)
 * and OME-TIFF. One uncompressed strip per plane, little-endian; BigTIFF above 4 GiB. Files are
 * written to a temporary name, fsynced and renamed, so a crash never leaves a half-written file.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { endianness } from 'node:os';
import { SliceformError } from '../common/errors.js';
import { EtaEstimator, type CancelSignal, type ProgressCallback } from '../common/progress.js';
import { DTYPE_BYTES, dtypeOf, type DType, type Volume } from '../common/volume.js';
import { throwIfCancelled } from './memory.js';

export interface TiffWriteOptions {
  onProgress?: ProgressCallback;
  signal?: CancelSignal;
  /** ImageJ display range; default the data's min and max */
  displayRange?: [number, number];
  /** write BigTIFF even when the file would fit in 4 GiB */
  forceBigTiff?: boolean;
}

type WritableVolume = Pick<Volume, 'data' | 'dtype' | 'shape' | 'spacing'> &
  Partial<Pick<Volume, 'channelNames' | 'source'>>;

const SAMPLE_FORMAT: Record<DType, number> = {
  uint8: 1,
  uint16: 1,
  uint32: 1,
  int8: 2,
  int16: 2,
  int32: 2,
  float32: 3,
  float64: 3,
};

interface PageSpec {
  width: number;
  height: number;
  dtype: DType;
  pages: number;
  /** page k -> index of the plane (c*Z + z) in the CZYX data */
  planeOf(k: number): number;
  description: string;
  /** pixels per unit, or null for none */
  resolution: { x: number; y: number } | null;
  resolutionUnit: number;
}

/** A rational close to v with a uint32 numerator and denominator. */
function rational(v: number): [number, number] {
  if (!(v > 0) || !Number.isFinite(v)) return [1, 1];
  let den = 1_000_000;
  while (den > 1 && v * den > 0xffffffff) den = Math.floor(den / 10);
  return [Math.max(1, Math.round(v * den)), den];
}

function checkVolume(path: string, v: WritableVolume): void {
  const { x, y, z, c } = v.shape;
  if (!(x >= 1 && y >= 1 && z >= 1 && c >= 1))
    throw new SliceformError('bad-input', `cannot write ${path}: empty volume`);
  if (v.data.length !== x * y * z * c) {
    throw new SliceformError(
      'bad-input',
      `cannot write ${path}: data length ${v.data.length} != ${x}x${y}x${z}x${c}`,
    );
  }
  if (endianness() !== 'LE') throw new SliceformError('internal', 'TIFF writer needs a little-endian host');
  // the array must hold what the dtype says: uint8 "labels" in a Uint16Array (or the reverse) would be
  // written as bytes of the wrong width, and classes above 255 squeezed into uint8 wrap (281 -> 25)
  const actual = v.data instanceof Float64Array || dtypeOf(v.data) !== 'float64' ? dtypeOf(v.data) : null;
  if (actual !== v.dtype) {
    throw new SliceformError(
      'internal',
      `cannot write ${path}: dtype says ${v.dtype} but the data is ${actual ?? 'an untyped array'}`,
    );
  }
}

/**
 * The label dtype for classes 0..maxClass: uint8 up to 255, uint16 up to 65535 (Fiji reads both). More
 * classes than that are refused rather than wrapped.
 */
export function labelDType(maxClass: number): 'uint8' | 'uint16' {
  if (!(maxClass >= 0) || !Number.isFinite(maxClass))
    throw new SliceformError('internal', `bad class count ${maxClass}`);
  if (maxClass <= 255) return 'uint8';
  if (maxClass <= 65535) return 'uint16';
  throw new SliceformError(
    'bad-input',
    `${maxClass} classes do not fit a uint16 label volume (at most 65,535)`,
  );
}

/** A units string we may copy into an ImageJ description line (no line breaks, no '=', short). */
function safeUnit(unit: string): string | null {
  const u = unit.trim();
  return u && u.length <= 32 && !/[\n\r=\0]/.test(u) && !/^pixels?$/i.test(u) ? u : null;
}

/**
 * ImageJ calibration lines and X/YResolution for a spacing. In µm (or nm, mm) as before; a spacing in some
 * other unit, or with no unit ("pixel") but sizes other than 1, is kept too: pixels per unit in X/YResolution
 * (ResolutionUnit none), `spacing=` for z, and `unit=` when there is a unit to name (item 10 of issue 14:
 * a label TIFF written for such an input used to drop the pixel size).
 */
export function imagejCalibration(
  spacing: Volume['spacing'],
  depth: number,
): { lines: string[]; resolution: { x: number; y: number } | null } {
  const finite = [spacing.x, spacing.y, spacing.z].every((v) => Number.isFinite(v) && v > 0);
  const scale = micronScale(spacing.unit);
  if (scale !== null && finite) {
    return {
      lines: ['unit=micron', ...(depth > 1 ? [`spacing=${spacing.z * scale}`] : [])],
      resolution: { x: 1 / (spacing.x * scale), y: 1 / (spacing.y * scale) },
    };
  }
  const unit = safeUnit(spacing.unit);
  if (!finite || (unit === null && spacing.x === 1 && spacing.y === 1 && spacing.z === 1)) {
    return { lines: [], resolution: null };
  }
  return {
    lines: [...(unit ? [`unit=${unit}`] : []), ...(depth > 1 ? [`spacing=${spacing.z}`] : [])],
    resolution: { x: 1 / spacing.x, y: 1 / spacing.y },
  };
}

async function writeTiffPages(
  path: string,
  v: WritableVolume,
  spec: PageSpec,
  opts: TiffWriteOptions,
): Promise<void> {
  const bytes = DTYPE_BYTES[spec.dtype];
  const planeBytes = spec.width * spec.height * bytes;
  const desc = Buffer.from(spec.description + '\0', 'latin1');
  const tagsPerPage = 15;
  const roughSize = 16 + spec.pages * (planeBytes + 512) + desc.length;
  const big = opts.forceBigTiff || roughSize > 0xffff_ff00;
  const entrySize = big ? 20 : 12;
  const offSize = big ? 8 : 4;
  const countSize = big ? 8 : 2;
  const headerSize = big ? 16 : 8;
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  const fh = await open(tmp, 'w').catch((e: Error) => {
    throw new SliceformError('bad-input', `cannot write ${path}: ${e.message}`, {
      file: undefined,
      cause: e,
    });
  });
  const eta = new EtaEstimator();
  let ok = false;
  try {
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) {
        const { bytesWritten } = await fh.write(b, done, b.length - done, pos + done);
        done += bytesWritten;
      }
      pos += b.length;
    };
    const h = Buffer.alloc(headerSize);
    h.write('II', 0, 'latin1');
    if (big) {
      h.writeUInt16LE(43, 2);
      h.writeUInt16LE(8, 4);
      h.writeBigUInt64LE(BigInt(headerSize), 8);
    } else {
      h.writeUInt16LE(42, 2);
      h.writeUInt32LE(headerSize, 4);
    }
    await write(h);
    const out8 = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
    for (let k = 0; k < spec.pages; k++) {
      throwIfCancelled(opts.signal);
      const ifdStart = pos;
      const withDesc = k === 0 && spec.description.length > 0;
      const nTags = tagsPerPage - (withDesc ? 0 : 1) - (spec.resolution ? 0 : 3);
      const ifdLen = countSize + nTags * entrySize + offSize;
      // extras: description, two rationals
      const extraStart = ifdStart + ifdLen;
      const descOff = extraStart;
      const descLen = withDesc && desc.length > offSize ? desc.length : 0;
      const xresOff = descOff + descLen;
      const yresOff = xresOff + 8;
      const dataOff = yresOff + 8;
      const nextIfd = k + 1 < spec.pages ? dataOff + planeBytes : 0;
      const b = Buffer.alloc(dataOff - ifdStart);
      let p = 0;
      if (big) b.writeBigUInt64LE(BigInt(nTags), 0);
      else b.writeUInt16LE(nTags, 0);
      p = countSize;
      const entry = (tag: number, type: number, count: number, value: number | Buffer) => {
        b.writeUInt16LE(tag, p);
        b.writeUInt16LE(type, p + 2);
        if (big) b.writeBigUInt64LE(BigInt(count), p + 4);
        else b.writeUInt32LE(count, p + 4);
        const vp = p + (big ? 12 : 8);
        if (typeof value === 'number') {
          if (type === 3) b.writeUInt16LE(value, vp);
          else if (big) b.writeBigUInt64LE(BigInt(value), vp);
          else b.writeUInt32LE(value, vp);
        } else value.copy(b, vp, 0, Math.min(value.length, offSize));
        p += entrySize;
      };
      const LONG = big ? 16 : 4;
      entry(254, 4, 1, 0);
      entry(256, 4, 1, spec.width);
      entry(257, 4, 1, spec.height);
      entry(258, 3, 1, bytes * 8);
      entry(259, 3, 1, 1);
      entry(262, 3, 1, 1);
      if (withDesc) entry(270, 2, desc.length, descLen ? descOff : desc);
      entry(273, LONG, 1, dataOff);
      entry(277, 3, 1, 1);
      entry(278, 4, 1, spec.height);
      entry(279, LONG, 1, planeBytes);
      if (spec.resolution) {
        entry(282, 5, 1, xresOff);
        entry(283, 5, 1, yresOff);
        entry(296, 3, 1, spec.resolutionUnit);
      }
      entry(339, 3, 1, SAMPLE_FORMAT[spec.dtype]);
      if (big) b.writeBigUInt64LE(BigInt(nextIfd), p);
      else b.writeUInt32LE(nextIfd, p);
      if (descLen) desc.copy(b, descOff - ifdStart);
      const [xn, xd] = rational(spec.resolution?.x ?? 1);
      const [yn, yd] = rational(spec.resolution?.y ?? 1);
      b.writeUInt32LE(xn, xresOff - ifdStart);
      b.writeUInt32LE(xd, xresOff - ifdStart + 4);
      b.writeUInt32LE(yn, yresOff - ifdStart);
      b.writeUInt32LE(yd, yresOff - ifdStart + 4);
      await write(b);
      const plane = spec.planeOf(k);
      await write(out8.subarray(plane * planeBytes, (plane + 1) * planeBytes));
      if (opts.onProgress && (k % 16 === 15 || k === spec.pages - 1)) {
        const fraction = (k + 1) / spec.pages;
        opts.onProgress({ fraction, etaSeconds: eta.eta(fraction), stage: 'writing planes' });
      }
    }
    await fh.sync();
    ok = true;
  } finally {
    await fh.close().catch(() => undefined);
    if (!ok) await unlink(tmp).catch(() => undefined);
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new SliceformError('bad-input', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function minMax(a: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

function fmt(n: number): string {
  return Number.isInteger(n) ? n.toFixed(1) : String(n);
}

function micronScale(unit: string): number | null {
  const u = unit.trim().toLowerCase();
  if (u === 'µm' || u === 'μm' || u === 'um' || u === 'micron' || u === 'microns') return 1;
  if (u === 'nm') return 1e-3;
  if (u === 'mm') return 1e3;
  return null;
}

/**
 * ImageJ hyperstack: pages in c → z order, `ImageJ=1.11a images= channels= slices= hyperstack=
 * spacing= unit=micron` and X/YResolution in pixels per micron. uint8, uint16, uint32 (instance labels) or float32.
 */
export async function writeImageJTiff(
  path: string,
  v: WritableVolume,
  opts: TiffWriteOptions = {},
): Promise<void> {
  checkVolume(path, v);
  // uint32: instance labels with more than 65535 objects (Fiji reads them as 32-bit; MorphoLibJ as labels)
  if (v.dtype !== 'uint8' && v.dtype !== 'uint16' && v.dtype !== 'uint32' && v.dtype !== 'float32') {
    throw new SliceformError(
      'bad-input',
      `cannot write ${path}: ImageJ TIFF holds uint8, uint16, uint32 or float32, not ${v.dtype}`,
    );
  }
  const { x, y, z, c } = v.shape;
  const cal = imagejCalibration(v.spacing, z);
  const [lo, hi] = opts.displayRange ?? minMax(v.data);
  const lines = ['ImageJ=1.11a', `images=${c * z}`];
  if (c > 1) lines.push(`channels=${c}`);
  if (z > 1) lines.push(`slices=${z}`);
  if (c > 1) lines.push('hyperstack=true', 'mode=grayscale');
  lines.push(...cal.lines);
  lines.push('loop=false', `min=${fmt(lo)}`, `max=${fmt(hi)}`);
  const desc = lines.join('\n') + '\n';
  await writeTiffPages(
    path,
    v,
    {
      width: x,
      height: y,
      dtype: v.dtype,
      pages: c * z,
      planeOf: (k) => (k % c) * z + Math.floor(k / c),
      description: desc,
      resolution: cal.resolution,
      resolutionUnit: 1,
    },
    opts,
  );
}

function xmlEscape(s: string): string {
  return s
    .replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
    .replace(/[^\x20-\x7e]/g, (ch) => `&#${ch.codePointAt(0)};`);
}

const OME_TYPE: Record<DType, string> = {
  uint8: 'uint8',
  int8: 'int8',
  uint16: 'uint16',
  int16: 'int16',
  uint32: 'uint32',
  int32: 'int32',
  float32: 'float',
  float64: 'double',
};

/** OME-TIFF, DimensionOrder XYZCT (pages z fastest, then c), PhysicalSize in µm, channel names. */
export async function writeOmeTiff(
  path: string,
  v: WritableVolume,
  opts: TiffWriteOptions = {},
): Promise<void> {
  checkVolume(path, v);
  const { x, y, z, c } = v.shape;
  const scale = micronScale(v.spacing.unit);
  const finite = [v.spacing.x, v.spacing.y, v.spacing.z].every((n) => Number.isFinite(n) && n > 0);
  // OME's length units include "pixel": a pixel size without a physical unit is kept in it
  const pixelSized =
    scale === null &&
    finite &&
    /^(pixels?|)$/i.test(v.spacing.unit.trim()) &&
    !(v.spacing.x === 1 && v.spacing.y === 1 && v.spacing.z === 1);
  const phys =
    scale !== null && finite
      ? ` PhysicalSizeX="${v.spacing.x * scale}" PhysicalSizeXUnit="&#181;m" PhysicalSizeY="${v.spacing.y * scale}" PhysicalSizeYUnit="&#181;m" PhysicalSizeZ="${v.spacing.z * scale}" PhysicalSizeZUnit="&#181;m"`
      : pixelSized
        ? ` PhysicalSizeX="${v.spacing.x}" PhysicalSizeXUnit="pixel" PhysicalSizeY="${v.spacing.y}" PhysicalSizeYUnit="pixel" PhysicalSizeZ="${v.spacing.z}" PhysicalSizeZUnit="pixel"`
        : '';
  const uuid = `urn:uuid:${randomUUID()}`;
  const channels = Array.from({ length: c }, (_, i) => {
    const name = v.channelNames?.[i];
    return `<Channel ID="Channel:0:${i}"${name ? ` Name="${xmlEscape(name)}"` : ''} SamplesPerPixel="1"><LightPath/></Channel>`;
  }).join('');
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06 http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd" UUID="${uuid}" Creator="Sliceform">` +
    `<Image ID="Image:0" Name="${xmlEscape(basename(path))}">` +
    `<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="${OME_TYPE[v.dtype]}" SizeX="${x}" SizeY="${y}" SizeZ="${z}" SizeC="${c}" SizeT="1"${phys} BigEndian="false">` +
    channels +
    `<TiffData IFD="0" PlaneCount="${z * c}"/>` +
    '</Pixels></Image></OME>';
  await writeTiffPages(
    path,
    v,
    {
      width: x,
      height: y,
      dtype: v.dtype,
      pages: c * z,
      planeOf: (k) => k,
      description: xml,
      resolution:
        scale !== null && finite
          ? { x: 1e4 / (v.spacing.x * scale), y: 1e4 / (v.spacing.y * scale) }
          : pixelSized
            ? { x: 1 / v.spacing.x, y: 1 / v.spacing.y }
            : null,
      resolutionUnit: scale !== null && finite ? 3 : 1,
    },
    opts,
  );
}
