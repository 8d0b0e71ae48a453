/**
 * OME-Zarr export of an image with an instance label layer (objects --zarr): a thin caller of the one Zarr
 * writer in main/io/zarr/writer.ts, which writes the layout napari (ome-zarr plugin) and Fiji (MoBIE /
 * n5-zarr readers) open as an image with labels:
 *
 *   OUT.zarr/.zgroup, .zattrs               multiscales: axes c?,z,y,x (µm), levels 0.. (mean), scale = spacing
 *   OUT.zarr/labels/.zattrs                 {"labels": ["<name>"]}
 *   OUT.zarr/labels/<name>/...              multiscales z,y,x (mode) + "image-label": {version, source}
 *
 * Zarr v2 (NGFF 0.4), Blosc/LZ4 chunks, written into a temporary folder and renamed.
 */
import { SliceformError } from '../common/errors.js';
import type { DType, TypedArray } from '../common/volume.js';
import { writeOmeZarr } from '../io/zarr/writer.js';
import type { Dims, Microns } from './grid.js';

export interface ZarrImage {
  data: TypedArray;
  dtype: DType;
  dims: Dims;
  channels: number;
  channelNames?: string[];
}

/** Writes OUT.zarr with the image (CZYX, or ZYX for one channel) and the ids as labels/<name>. */
export async function writeOmeZarrWithLabels(path: string, image: ZarrImage, labels: { data: Uint16Array | Uint32Array; name: string }, spacing: Microns): Promise<void> {
  const { x, y, z } = image.dims;
  if (labels.data.length !== x * y * z) throw new SliceformError('bad-input', `labels do not fit the image ${x}x${y}x${z}`, { file: path });
  await writeOmeZarr(path, {
    image: { data: image.data, dtype: image.dtype, shape: { x, y, z, c: image.channels }, spacing: { x: spacing.x, y: spacing.y, z: spacing.z, unit: 'µm' }, channelNames: image.channelNames },
    labels: [{ name: labels.name, data: labels.data }],
  });
}
