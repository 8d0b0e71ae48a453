/**
 * Out-of-core access to a volume: regions read on demand instead of the whole stack in memory.
 *
 * The contract every on-disk format implements (TIFF pages/strips/tiles, HDF5 chunks, OME-Zarr chunks) and
 * that streamed segment/densify, sharded segment and the app's big-volume view consume. A region's voxels
 * use the Volume layout of main/common/volume.ts restricted to the box: channel-planar, x fastest,
 * index = ((c * nz + z) * ny + y) * nx + x with nx = x1 - x0 etc. Boxes are half-open [x0, x1) and must lie
 * inside the volume (callers mirror-pad themselves; a box outside is a RangeError naming the box).
 * Indices into the whole volume can exceed 2^31 (and 2^32): sources compute offsets in float64 (exact
 * below 2^53) or BigInt, never with `| 0` or 32-bit typed arrays.
 */
import type { CancelSignal } from '../common/progress.js';
import type { TypedArray } from '../common/volume.js';
import type { VolumeInfo } from './types.js';

/** A voxel box, half-open on every axis. */
export interface RegionBox {
  x0: number;
  y0: number;
  z0: number;
  x1: number;
  y1: number;
  z1: number;
}

export interface RegionReadOptions {
  /** channel indices to read (default: all, in order) */
  channels?: number[];
  /** pyramid level (0 = full resolution; see RegionSource.levels); the box is in that level's voxels */
  level?: number;
  signal?: CancelSignal;
}

/** A downsampled level of the source (OME-Zarr multiscales, or one the source computes and caches). */
export interface RegionLevel {
  /** integer factors relative to level 0, [z, y, x] like main/volume/resample.ts Factors */
  factors: [number, number, number];
  shape: { x: number; y: number; z: number };
}

export interface RegionSource {
  /** shape, dtype, spacing, channel names, format, source path, metadata: what probeVolume returns */
  readonly info: VolumeInfo;
  /** level 0 first; at least [level 0] */
  readonly levels: RegionLevel[];
  /** the natural read unit of the file ([z, y, x] voxels: a TIFF strip/page, an HDF5 or Zarr chunk) */
  readonly chunk: [number, number, number];
  /** voxels of `box` (all or the chosen channels) in the layout above; a fresh array the caller owns */
  read(box: RegionBox, opts?: RegionReadOptions): Promise<TypedArray>;
  /** releases file handles and the cache; reads after close reject */
  close(): Promise<void>;
}

export interface OpenRegionOptions {
  /** HDF5 dataset / OME-Zarr image path inside the store */
  dataset?: string;
  timepoint?: number;
  /** upper bound of the source's chunk cache in bytes (default 256 MiB) */
  cacheBytes?: number;
  signal?: CancelSignal;
}

export function boxVoxels(b: RegionBox): number {
  return (b.x1 - b.x0) * (b.y1 - b.y0) * (b.z1 - b.z0);
}

export function assertBoxInside(b: RegionBox, shape: { x: number; y: number; z: number }, what: string): void {
  const ok =
    Number.isInteger(b.x0) && Number.isInteger(b.x1) && Number.isInteger(b.y0) && Number.isInteger(b.y1) &&
    Number.isInteger(b.z0) && Number.isInteger(b.z1) &&
    b.x0 >= 0 && b.y0 >= 0 && b.z0 >= 0 && b.x1 <= shape.x && b.y1 <= shape.y && b.z1 <= shape.z &&
    b.x0 < b.x1 && b.y0 < b.y1 && b.z0 < b.z1;
  if (!ok)
    throw new RangeError(
      `${what}: region x ${b.x0}..${b.x1}, y ${b.y0}..${b.y1}, z ${b.z0}..${b.z1} is not inside ${shape.x}×${shape.y}×${shape.z}`,
    );
}
