/**
 * Works out how the pages of a TIFF map onto (channel, z, time): plain multi-page stacks,
 * ImageJ hyperstacks, OME-TIFF and Zeiss LSM. Reads headers only.
 */
import { basename } from 'node:path';
import type { DType, Shape, Spacing } from '../../common/volume.js';
import { DTYPE_BYTES } from '../../common/volume.js';
import { VolumeReadError } from '../../common/errors.js';
import { TAG, type Ifd, type TiffFile } from './ifd.js';
import { readPageInfo, pageStoredBytes, type PageInfo } from './page.js';
import { maxRatio } from './codecs.js';
import { parseLsmInfo, readLsmChannelNames, type LsmInfo } from './lsm.js';
import { parseOmeXml, omePlaneIndex, type OmePixels } from './ome.js';

/** Where one output plane (c, z) of one time point comes from. */
export type PlaneSource =
  | { kind: 'page'; ifd: Ifd; sample: number; c: number; z: number }
  | { kind: 'raw'; offset: number; c: number; z: number };

export interface TiffLayout {
  format: 'tiff' | 'imagej' | 'ome-tiff' | 'lsm';
  shape: Shape;
  dtype: DType;
  spacing: Spacing;
  channelNames: string[];
  metadata: Record<string, unknown>;
  warnings: string[];
  /** the first image page: reference for size, dtype and compression of all others */
  first: PageInfo;
  /** output planes of time point t */
  planes(t: number): PlaneSource[];
}

const UNIT_TO_UM: Record<string, number> = {
  micron: 1,
  microns: 1,
  um: 1,
  µm: 1,
  μm: 1,
  '\\u00B5m': 1,
  nm: 1e-3,
  nanometer: 1e-3,
  mm: 1e3,
  millimeter: 1e3,
  cm: 1e4,
  inch: 25400,
  centimeter: 1e4,
  m: 1e6,
  meter: 1e6,
  Å: 1e-4,
  angstrom: 1e-4,
  pm: 1e-6,
};

export function unitToMicrons(unit: string | undefined): number | undefined {
  if (!unit) return undefined;
  return UNIT_TO_UM[unit.trim()] ?? UNIT_TO_UM[unit.trim().toLowerCase()];
}

function defaultNames(c: number): string[] {
  return Array.from({ length: c }, (_, i) => `C${i + 1}`);
}

/** Main-image IFDs: everything not flagged as a reduced-resolution or thumbnail image. */
async function mainIfds(tf: TiffFile): Promise<Ifd[]> {
  const out: Ifd[] = [];
  for (const ifd of tf.ifds) {
    const sft = (await tf.num(ifd, TAG.NewSubfileType)) ?? 0;
    if ((sft & 1) === 0) out.push(ifd);
  }
  return out;
}

async function sameShape(tf: TiffFile, ifd: Ifd, ref: PageInfo): Promise<boolean> {
  const w = await tf.num(ifd, TAG.ImageWidth);
  const h = await tf.num(ifd, TAG.ImageLength);
  const spp = (await tf.num(ifd, TAG.SamplesPerPixel)) ?? 1;
  const bits = (await tf.num(ifd, TAG.BitsPerSample)) ?? 1;
  return w === ref.width && h === ref.height && spp === ref.spp && bits === ref.bits;
}

function parseImageJ(desc: string): Record<string, string> {
  const kv: Record<string, string> = {};
  for (const line of desc.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return kv;
}

function posInt(s: string | undefined, fallback: number): number {
  const n = Number(s);
  return Number.isInteger(n) && n >= 1 ? n : fallback;
}

async function resolutionSpacing(tf: TiffFile, ifd: Ifd): Promise<{ x?: number; y?: number }> {
  const xr = await tf.num(ifd, TAG.XResolution);
  const yr = await tf.num(ifd, TAG.YResolution);
  // 1 / a denormal resolution is Infinity: treat it like a missing one
  const ok = (v: number | undefined) =>
    v !== undefined && Number.isFinite(v) && v > 0 && Number.isFinite(1 / v) ? 1 / v : undefined;
  return { x: ok(xr), y: ok(yr ?? xr) };
}

/** A spacing that reached this point but is not finite and positive (overflow after unit scaling) is refused. */
function checkSpacing(file: string, s: Spacing, what: string): void {
  for (const k of ['x', 'y', 'z'] as const) {
    if (!Number.isFinite(s[k]) || s[k] <= 0) {
      throw new VolumeReadError(
        file,
        `${what}: ${k} spacing ${s[k]} ${s.unit} is not a finite positive number`,
      );
    }
  }
}

function pick(file: string, sources: PlaneSource[][], t: number, nT: number): PlaneSource[] {
  if (!Number.isInteger(t) || t < 0 || t >= nT) {
    throw new VolumeReadError(file, `time point ${t} out of range (the file has ${nT}: 0..${nT - 1})`);
  }
  return sources[t]!;
}

export async function buildLayout(tf: TiffFile): Promise<TiffLayout> {
  const src = tf.src;
  const file = src.path;
  const ifd0 = tf.ifds[0]!;
  const warnings: string[] = [];
  if (tf.truncatedChain)
    warnings.push(`IFD chain broken (${tf.truncatedChain}); using the ${tf.ifds.length} IFDs before it`);
  const metadata: Record<string, unknown> = {
    byteOrder: tf.le ? 'little-endian' : 'big-endian',
    bigTiff: tf.header.bigTiff,
    ifds: tf.ifds.length,
  };

  // ---- Zeiss LSM ----
  const lsmBytes = tf.has(ifd0, TAG.CzLsmInfo) ? await tf.bytes(ifd0, TAG.CzLsmInfo) : undefined;
  if (lsmBytes) {
    const info = parseLsmInfo(lsmBytes, file);
    return lsmLayout(tf, info, warnings, metadata);
  }

  const desc = (await tf.ascii(ifd0, TAG.ImageDescription)) ?? '';
  // ---- OME-TIFF ----
  if (/<OME[\s>]/.test(desc)) {
    const ome = parseOmeXml(desc, file);
    return omeLayout(tf, ome, warnings, metadata);
  }
  const mains = await mainIfds(tf);
  if (mains.length === 0) src.fail('no full-resolution images (every IFD is a thumbnail)');
  const first = await readPageInfo(tf, mains[0]!);
  const bytes = DTYPE_BYTES[first.dtype];
  const planeBytes = first.width * first.height * bytes;

  // ---- ImageJ hyperstack ----
  if (desc.startsWith('ImageJ=')) {
    const kv = parseImageJ(desc);
    metadata.description = desc.length > 4096 ? desc.slice(0, 4096) + '…' : desc;
    const images = posInt(kv.images, mains.length);
    let nc = posInt(kv.channels, 1);
    let nz = posInt(kv.slices, 1);
    let nt = posInt(kv.frames, 1);
    if (nc * nz * nt !== images) {
      warnings.push(
        `ImageJ description: channels*slices*frames = ${nc * nz * nt} but images = ${images}; treating as ${images} slices`,
      );
      nc = 1;
      nz = images;
      nt = 1;
    }
    const spp = first.spp;
    const ppu = await resolutionSpacing(tf, mains[0]!);
    const factor = unitToMicrons(kv.unit);
    const calibrated = factor !== undefined;
    // spacing= given but not a number we can use (1e400 is Infinity; "abc" is NaN): say so instead of
    // carrying Infinity (JSON null) into training, where it surfaces as "NaN pixels" much later
    let zStep = 1;
    if (kv.spacing !== undefined && kv.spacing !== '') {
      zStep = Number(kv.spacing);
      if (!Number.isFinite(zStep) || zStep <= 0) {
        src.fail(`ImageJ description: spacing=${kv.spacing.slice(0, 40)} is not a finite positive number`);
      }
    }
    const spacing: Spacing = calibrated
      ? {
          x: (ppu.x ?? 1) * factor!,
          y: (ppu.y ?? 1) * factor!,
          z: zStep * factor!,
          unit: 'µm',
        }
      : {
          x: ppu.x ?? 1,
          y: ppu.y ?? 1,
          z: zStep,
          unit: kv.unit || 'pixel',
        };
    checkSpacing(src.path, spacing, 'ImageJ calibration');
    let contiguous = false;
    if (mains.length < images) {
      // ImageJ writes only one IFD for stacks > 4 GiB: the planes follow the first one contiguously.
      const offs = await tf.nums(mains[0]!, TAG.StripOffsets, 2);
      if (first.compression === 1 && !first.tiled && offs && offs.length === 1 && mains.length === 1) {
        contiguous = true;
        src.check(offs[0]!, planeBytes * images * spp, `contiguous ImageJ image data (${images} planes)`);
      } else {
        src.fail(`ImageJ description says ${images} images but the file holds ${mains.length}`);
      }
    }
    const offset0 = contiguous ? (await tf.nums(mains[0]!, TAG.StripOffsets, 1))![0]! : 0;
    const sources: PlaneSource[][] = [];
    for (let t = 0; t < nt; t++) {
      const list: PlaneSource[] = [];
      for (let z = 0; z < nz; z++) {
        for (let c = 0; c < nc; c++) {
          const k = (t * nz + z) * nc + c;
          for (let s = 0; s < spp; s++) {
            list.push(
              contiguous
                ? { kind: 'raw', offset: offset0 + (k * spp + s) * planeBytes, c: c * spp + s, z }
                : { kind: 'page', ifd: mains[k]!, sample: s, c: c * spp + s, z },
            );
          }
        }
      }
      sources.push(list);
    }
    if (!contiguous) await checkStoredSize(tf, first, mains.slice(0, images));
    return {
      format: 'imagej',
      shape: { x: first.width, y: first.height, z: nz, c: nc * spp, t: nt },
      dtype: first.dtype,
      spacing,
      channelNames: defaultNames(nc * spp),
      metadata,
      warnings,
      first,
      planes: (t) => pick(file, sources, t, nt),
    };
  }

  // ---- plain multi-page TIFF: every main page of the same size is a z-slice ----
  const pages: Ifd[] = [];
  for (const ifd of mains) {
    if (await sameShape(tf, ifd, first)) pages.push(ifd);
  }
  if (pages.length < mains.length) {
    warnings.push(
      `${mains.length - pages.length} page(s) differ in size or type from the first and were skipped`,
    );
  }
  if (desc) metadata.description = desc.length > 4096 ? desc.slice(0, 4096) + '…' : desc;
  const ru = (await tf.num(ifd0, TAG.ResolutionUnit)) ?? 2;
  const res = await resolutionSpacing(tf, pages[0]!);
  // Only centimetre resolutions are taken as a physical calibration: inch values are nearly always 72 dpi print
  // defaults, not pixel sizes.
  const spacing: Spacing =
    ru === 3 && res.x !== undefined
      ? { x: res.x * 1e4, y: (res.y ?? res.x) * 1e4, z: res.x * 1e4, unit: 'µm' }
      : { x: 1, y: 1, z: 1, unit: 'pixel' };
  checkSpacing(file, spacing, 'TIFF resolution');
  await checkStoredSize(tf, first, pages);
  const list: PlaneSource[] = [];
  pages.forEach((ifd, z) => {
    for (let s = 0; s < first.spp; s++) list.push({ kind: 'page', ifd, sample: s, c: s, z });
  });
  return {
    format: 'tiff',
    shape: { x: first.width, y: first.height, z: pages.length, c: first.spp, t: 1 },
    dtype: first.dtype,
    spacing,
    channelNames: defaultNames(first.spp),
    metadata,
    warnings,
    first,
    planes: (t) => pick(file, [list], t, 1),
  };
}

/**
 * Rejects headers whose declared voxel data cannot come from the bytes in the file (checked on
 * the first page; the others are checked as they are decoded).
 */
async function checkStoredSize(tf: TiffFile, first: PageInfo, pages: Ifd[]): Promise<void> {
  const bytes = DTYPE_BYTES[first.dtype];
  const decoded = first.width * first.height * first.spp * bytes;
  const stored = await pageStoredBytes(tf, first);
  if (decoded > stored * maxRatio(first.compression) + 4096 && first.compression !== 1) {
    tf.src.fail(
      `IFD ${first.ifd.index} declares ${decoded} bytes of pixels but stores only ${stored} compressed bytes`,
    );
  }
  if (first.compression === 1 && pages.length * decoded > tf.src.size * 1.0001 + 1024 && pages.length > 1) {
    tf.src.fail(
      `declares ${pages.length} uncompressed planes of ${decoded} bytes but the file has only ${tf.src.size} bytes (truncated?)`,
    );
  }
}

async function lsmLayout(
  tf: TiffFile,
  info: LsmInfo,
  warnings: string[],
  metadata: Record<string, unknown>,
): Promise<TiffLayout> {
  const src = tf.src;
  const mains = await mainIfds(tf);
  if (mains.length === 0) src.fail('LSM without image planes');
  const first = await readPageInfo(tf, mains[0]!);
  const nz = info.dimZ;
  const nt = info.dimT;
  const nc = first.spp;
  if (info.dimC !== nc) warnings.push(`LSM header says ${info.dimC} channels, the planes hold ${nc} samples`);
  if (nz * nt !== mains.length) {
    if (nz * nt > mains.length) {
      src.fail(
        `LSM header says ${nz} z-planes x ${nt} time points but the file holds ${mains.length} image planes`,
      );
    }
    warnings.push(
      `LSM header says ${nz * nt} planes; the file holds ${mains.length}; using the first ${nz * nt}`,
    );
  }
  if (first.width !== info.dimX || first.height !== info.dimY) {
    warnings.push(
      `LSM header size ${info.dimX}x${info.dimY} differs from the image ${first.width}x${first.height}`,
    );
  }
  const um = (m: number) => m * 1e6;
  const x = info.voxelX > 0 ? um(info.voxelX) : 1;
  const y = info.voxelY > 0 ? um(info.voxelY) : x;
  // A single plane has no meaningful z step (Zen writes 1e-19 m); use the x size there.
  const z = nz > 1 && info.voxelZ > 1e-12 ? um(info.voxelZ) : x;
  const names = await readLsmChannelNames(tf.src, info, nc);
  metadata.lsm = {
    dimensions: { x: info.dimX, y: info.dimY, z: info.dimZ, c: info.dimC, t: info.dimT },
    voxelSizeMetres: { x: info.voxelX, y: info.voxelY, z: info.voxelZ },
    scanType: info.scanType,
  };
  const sources: PlaneSource[][] = [];
  for (let t = 0; t < nt; t++) {
    const list: PlaneSource[] = [];
    for (let zz = 0; zz < nz; zz++) {
      const ifd = mains[t * nz + zz]!;
      for (let s = 0; s < nc; s++) list.push({ kind: 'page', ifd, sample: s, c: s, z: zz });
    }
    sources.push(list);
  }
  await checkStoredSize(tf, first, mains.slice(0, nz * nt));
  checkSpacing(src.path, { x, y, z, unit: 'µm' }, 'LSM voxel size');
  return {
    format: 'lsm',
    shape: { x: first.width, y: first.height, z: nz, c: nc, t: nt },
    dtype: first.dtype,
    spacing: { x, y, z, unit: info.voxelX > 0 ? 'µm' : 'pixel' },
    channelNames: names ?? defaultNames(nc),
    metadata,
    warnings,
    first,
    planes: (t) => pick(tf.src.path, sources, t, nt),
  };
}

async function omeLayout(
  tf: TiffFile,
  ome: OmePixels,
  warnings: string[],
  metadata: Record<string, unknown>,
): Promise<TiffLayout> {
  const src = tf.src;
  const ifdAt = (i: number): Ifd => {
    const ifd = tf.ifds[i];
    if (!ifd) src.fail(`OME-XML refers to IFD ${i} but the file holds ${tf.ifds.length}`);
    return ifd;
  };
  const firstIfd = ifdAt(ome.tiffData.length ? ome.tiffData[0]!.ifd : 0);
  const first = await readPageInfo(tf, firstIfd);
  if (first.width !== ome.sizeX || first.height !== ome.sizeY) {
    src.fail(
      `OME-XML says ${ome.sizeX}x${ome.sizeY} but IFD ${firstIfd.index} is ${first.width}x${first.height}`,
    );
  }
  const spp = first.spp;
  if (ome.sizeC % spp !== 0) src.fail(`OME SizeC ${ome.sizeC} is not a multiple of SamplesPerPixel ${spp}`);
  const effC = ome.sizeC / spp;
  const nPlanes = ome.sizeZ * effC * ome.sizeT;
  const fname = basename(src.path);
  for (const td of ome.tiffData) {
    if (td.uuid && td.uuid !== ome.uuid && td.fileName && td.fileName !== fname) {
      src.fail(
        `OME-TIFF spans several files (planes in "${td.fileName}"); only single-file OME-TIFF is supported`,
      );
    }
  }
  // Never size anything from the XML alone: every plane of a single-file OME-TIFF is an IFD of this file, so
  // SizeZ x SizeC x SizeT beyond the IFD count is a corrupt header (SizeZ=16777216 SizeT=64 would otherwise ask
  // for a billion-entry plane table before any pixel is read).
  if (nPlanes > tf.ifds.length) {
    src.fail(
      `OME-XML describes ${nPlanes} planes (SizeZ ${ome.sizeZ} x SizeC ${ome.sizeC} x SizeT ${ome.sizeT}${spp > 1 ? `, ${spp} samples per IFD` : ''}) but the file holds only ${tf.ifds.length} images`,
    );
  }
  // plane linear index (in DimensionOrder) -> IFD index
  const ifdOf = new Array<number>(nPlanes).fill(-1);
  if (ome.tiffData.length === 0) {
    for (let i = 0; i < nPlanes; i++) ifdOf[i] = i;
  } else {
    // each TiffData fills at most the planes left after its start, and all of them together at most a few
    // times the plane count: 300k overlapping blocks with huge PlaneCounts must not cost 300k x planes
    let budget = 4 * nPlanes + ome.tiffData.length;
    for (const td of ome.tiffData) {
      const start = omePlaneIndex(
        ome.dimensionOrder,
        ome.sizeZ,
        effC,
        ome.sizeT,
        td.firstZ,
        td.firstC,
        td.firstT,
      );
      const count = td.planeCount ?? (ome.tiffData.length === 1 && td.ifdGiven === false ? nPlanes : 1);
      const n = Math.max(0, Math.min(count, nPlanes - start));
      budget -= n;
      if (budget < 0)
        src.fail(`OME-XML TiffData blocks overlap far beyond the ${nPlanes} planes (corrupt metadata)`);
      for (let k = 0; k < n; k++) ifdOf[start + k] = td.ifd + k;
    }
  }
  const sources: PlaneSource[][] = [];
  for (let t = 0; t < ome.sizeT; t++) {
    const list: PlaneSource[] = [];
    for (let c = 0; c < effC; c++) {
      for (let z = 0; z < ome.sizeZ; z++) {
        const lin = omePlaneIndex(ome.dimensionOrder, ome.sizeZ, effC, ome.sizeT, z, c, t);
        const ii = ifdOf[lin]!;
        if (ii < 0) src.fail(`OME-XML gives no IFD for plane z=${z} c=${c} t=${t}`);
        const ifd = ifdAt(ii);
        for (let s = 0; s < spp; s++) list.push({ kind: 'page', ifd, sample: s, c: c * spp + s, z });
      }
    }
    sources.push(list);
  }
  if (
    ome.type &&
    ome.type !== first.dtype &&
    !(ome.type === 'float' && first.dtype === 'float32') &&
    !(ome.type === 'double' && first.dtype === 'float64')
  ) {
    warnings.push(
      `OME-XML pixel type ${ome.type} differs from the TIFF sample type ${first.dtype}; using ${first.dtype}`,
    );
  }
  const conv = (v: number | undefined, unit: string | undefined): number | undefined => {
    if (v === undefined || !(v > 0)) return undefined;
    const f = unitToMicrons(unit ?? 'µm');
    return f === undefined ? undefined : v * f;
  };
  const sx = conv(ome.physX, ome.physXUnit);
  const sy = conv(ome.physY, ome.physYUnit);
  const sz = conv(ome.physZ, ome.physZUnit);
  // sizes in OME's "pixel" unit (what our writer stores for a pixel size without a physical unit)
  const inPixels = (u: string | undefined) => u !== undefined && /^pixels?$/i.test(u.trim());
  const spacing: Spacing =
    sx !== undefined
      ? { x: sx, y: sy ?? sx, z: sz ?? sx, unit: 'µm' }
      : ome.physX !== undefined && inPixels(ome.physXUnit)
        ? {
            x: ome.physX,
            y: ome.physY !== undefined && inPixels(ome.physYUnit) ? ome.physY : ome.physX,
            z: ome.physZ !== undefined && inPixels(ome.physZUnit) ? ome.physZ : ome.physX,
            unit: 'pixel',
          }
        : { x: 1, y: 1, z: 1, unit: 'pixel' };
  checkSpacing(src.path, spacing, 'OME-XML PhysicalSize');
  const names: string[] = [];
  for (let c = 0; c < ome.sizeC; c++) names.push(ome.channelNames[Math.floor(c / spp)] || `C${c + 1}`);
  metadata.ome = {
    dimensionOrder: ome.dimensionOrder,
    size: { x: ome.sizeX, y: ome.sizeY, z: ome.sizeZ, c: ome.sizeC, t: ome.sizeT },
    type: ome.type,
    images: ome.imageCount,
  };
  if (ome.imageCount > 1)
    warnings.push(`OME-TIFF holds ${ome.imageCount} images (series); reading the first`);
  return {
    format: 'ome-tiff',
    shape: { x: first.width, y: first.height, z: ome.sizeZ, c: ome.sizeC, t: ome.sizeT },
    dtype: first.dtype,
    spacing,
    channelNames: names,
    metadata,
    warnings,
    first,
    planes: (t) => pick(src.path, sources, t, ome.sizeT),
  };
}
