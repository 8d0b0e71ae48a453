/**
 * Volume I/O entry point: a reader registry (by extension, then magic bytes) over the TIFF family
 * (plain, ImageJ, OME-TIFF, LSM), HDF5 and OME-Zarr / Zarr (a folder, v2 or v3), plus writers and snapshots.
 *
 *   const vol = await readVolume('stack.tif', { onProgress, signal });
 *   const info = await probeVolume('stack.lsm'); // header only
 */
import { extname } from 'node:path';
import { SliceformError, VolumeReadError } from '../common/errors.js';
import type { Volume } from '../common/volume.js';
import { FileSource, openRegular } from './source.js';
import { probeTiff, readTiff } from './tiff/reader.js';
import { probeHdf5, readHdf5 } from './hdf5.js';
import { isZarrPath, probeZarr, readZarr } from './zarr/reader.js';
import type { ReadOptions, VolumeInfo } from './types.js';

export type { ReadOptions, VolumeInfo } from './types.js';
export { writeImageJTiff, writeOmeTiff, type TiffWriteOptions } from './writer.js';
export { writeSnapshot, renderSlice, type SnapshotOptions } from './snapshot.js';
export { openZarrSource, ZarrSource, isZarrPath, type ZarrSourceOptions } from './zarr/reader.js';
export {
  ZarrArrayWriter,
  createOmeZarrImage,
  writePyramid,
  addLabelName,
  writeOmeZarr,
  writeOmeZarrLabels,
  DEFAULT_COMPRESSION,
  type ZarrCompression,
  type NgffVersion,
  type OmeZarrImageSpec,
  type OmeZarrWriteOptions,
} from './zarr/writer.js';

export interface VolumeReader {
  id: 'tiff' | 'hdf5' | 'zarr';
  /** lower-case, with dot */
  extensions: string[];
  magic(head: Buffer): boolean;
  probe(path: string, opts: ReadOptions): Promise<VolumeInfo>;
  read(path: string, opts: ReadOptions): Promise<Volume>;
}

async function withSource<T>(path: string, fn: (s: FileSource) => Promise<T>): Promise<T> {
  const src = await FileSource.open(path);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}

const HDF5_MAGIC = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

export const READERS: VolumeReader[] = [
  {
    id: 'tiff',
    extensions: ['.tif', '.tiff', '.lsm', '.btf', '.tf2', '.tf8', '.ome.tif', '.ome.tiff'],
    magic: (h) =>
      h.length >= 4 &&
      ((h[0] === 0x49 && h[1] === 0x49 && (h[2] === 42 || h[2] === 43) && h[3] === 0) ||
        (h[0] === 0x4d && h[1] === 0x4d && h[2] === 0 && (h[3] === 42 || h[3] === 43))),
    probe: (p, o) => withSource(p, (s) => probeTiff(s, o)),
    read: (p, o) => withSource(p, (s) => readTiff(s, o)),
  },
  {
    id: 'hdf5',
    extensions: ['.h5', '.hdf5', '.hdf', '.he5'],
    // the superblock may follow a user block of 512, 1024, 2048... bytes; we check offset 0 and 512
    magic: (h) =>
      h.subarray(0, 8).equals(HDF5_MAGIC) || (h.length >= 520 && h.subarray(512, 520).equals(HDF5_MAGIC)),
    probe: probeHdf5,
    read: readHdf5,
  },
];

/** OME-Zarr and Zarr stores are folders: found by isZarrPath before any file head is read. */
export const ZARR_READER: VolumeReader = {
  id: 'zarr',
  extensions: ['.zarr', '.ome.zarr'],
  magic: () => false,
  probe: probeZarr,
  read: readZarr,
};

async function head(path: string): Promise<Buffer> {
  // regular files only, refused before any open that could block (FIFOs, devices, sockets)
  const { fh, size } = await openRegular(path);
  try {
    if (size === 0) throw new VolumeReadError(path, 'empty file');
    const b = Buffer.alloc(Math.min(1024, size));
    await fh.read(b, 0, b.length, 0);
    return b;
  } finally {
    await fh.close();
  }
}

/** The reader for a file: by extension when its magic agrees, otherwise by magic alone. */
export async function readerFor(path: string): Promise<VolumeReader> {
  if (await isZarrPath(path)) return ZARR_READER;
  const h = await head(path);
  const lower = path.toLowerCase();
  const byExt = READERS.find((r) => r.extensions.some((e) => lower.endsWith(e)));
  if (byExt && byExt.magic(h)) return byExt;
  const byMagic = READERS.find((r) => r.magic(h));
  if (byMagic) return byMagic;
  if (byExt?.id === 'tiff') return byExt; // its parser says precisely why it is not a TIFF
  if (byExt?.id === 'hdf5') throw new VolumeReadError(path, 'not an HDF5 file (no HDF5 signature)');
  throw new VolumeReadError(
    path,
    `unsupported file type${extname(path) ? ` "${extname(path)}"` : ''} (not a TIFF, OME-TIFF, LSM or HDF5 file)`,
    { kind: 'unsupported' },
  );
}

/** Any failure that is not already a typed error becomes a VolumeReadError naming the file. */
async function guarded<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof SliceformError) throw e;
    // JS engine internals ("Invalid array length", "Cannot read properties of undefined") mean nothing to a
    // user: say what it means for the file, keep the original as the cause
    const code = (e as NodeJS.ErrnoException)?.code;
    const why =
      typeof code === 'string' && /^E[A-Z]+$/.test(code)
        ? `read error (${code})`
        : e instanceof RangeError
          ? 'unreadable: its header describes sizes that cannot be right (corrupt file?)'
          : 'unreadable: corrupt or unsupported structure';
    throw new VolumeReadError(path, why, { cause: e });
  }
}

function emitWarnings(v: VolumeInfo, opts: ReadOptions): void {
  const w = v.metadata.warnings;
  if (opts.onWarning && Array.isArray(w)) for (const m of w) opts.onWarning(String(m));
}

/** Header-only look at a volume file (format, shape, dtype, spacing, channels). */
export async function probeVolume(path: string, opts: ReadOptions = {}): Promise<VolumeInfo> {
  const info = await guarded(path, async () => (await readerFor(path)).probe(path, opts));
  emitWarnings(info, opts);
  return info;
}

/** Reads one time point of a volume into memory (CZYX, x fastest, dtype as stored). */
export async function readVolume(path: string, opts: ReadOptions = {}): Promise<Volume> {
  const vol = await guarded(path, async () => (await readerFor(path)).read(path, opts));
  emitWarnings(vol, opts);
  return vol;
}
