/**
 * Late-bound access to parts other modules provide (I/O now; training/inference in compute-handlers.ts), so a
 * part that is missing or fails to load gives ApiError('not-available') with a clear message instead of
 * stopping the server from starting.
 */
import { ApiError } from '../common/api.js';
import type { Volume } from '../common/volume.js';
import type { ReadOptions } from '../io/types.js';

export interface IoModule {
  readVolume(path: string, options?: ReadOptions): Promise<Volume>;
  writeImageJTiff(path: string, v: Pick<Volume, 'data' | 'dtype' | 'shape' | 'spacing'> & Partial<Volume>): Promise<void>;
  writeOmeTiff(path: string, v: Pick<Volume, 'data' | 'dtype' | 'shape' | 'spacing'> & Partial<Volume>): Promise<void>;
  writeOmeZarrLabels(path: string, labels: { data: Uint8Array | Uint16Array | Uint32Array; dims: { x: number; y: number; z: number }; spacing: Volume['spacing']; name?: string }): Promise<void>;
}

let ioP: Promise<IoModule> | null = null;

export function loadIo(): Promise<IoModule> {
  ioP ??= import('../io/index.js').then(
    (m) => m as unknown as IoModule,
    (e: Error) => {
      ioP = null;
      throw new ApiError('not-available', `volume I/O (main/io) failed to load: ${e.message}`);
    },
  );
  return ioP;
}

export interface Writers {
  writeLabels(path: string, v: Pick<Volume, 'data' | 'dtype' | 'shape' | 'spacing'> & Partial<Volume>, format: 'tiff' | 'ome-tiff'): Promise<void>;
}

export async function loadWriters(): Promise<Writers> {
  const io = await loadIo();
  return {
    // a path ending in .zarr is an OME-Zarr label store (with a pyramid), whatever the TIFF flavour asked
    writeLabels: (path, v, format) =>
      /\.zarr\/?$/i.test(path)
        ? io.writeOmeZarrLabels(path, { data: v.data as Uint8Array | Uint16Array, dims: v.shape, spacing: v.spacing, name: 'labels' })
        : format === 'ome-tiff'
          ? io.writeOmeTiff(path, v)
          : io.writeImageJTiff(path, v),
  };
}
