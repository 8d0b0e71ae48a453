/**
 * OME-Zarr (NGFF 0.4) writer for an image with an instance label layer, the layout napari (ome-zarr plugin)
 * and Fiji (MoBIE / n5-zarr readers) open as an image with labels:
 *
 *   OUT.zarr/.zgroup, .zattrs               multiscales: axes c?,z,y,x (µm), one level "0", scale = spacing
 *   OUT.zarr/0/.zarray, 0/<c>/<z>/<y>/<x>   the image (its dtype), chunks (1,)16x256x256, uncompressed
 *   OUT.zarr/labels/.zgroup, .zattrs        {"labels": ["<name>"]}
 *   OUT.zarr/labels/<name>/...              multiscales z,y,x + "image-label": {version, source}; uint16/uint32 ids
 *
 * Zarr v2 arrays, "dimension_separator": "/", compressor null (every reader supports raw chunks), C order,
 * little-endian. Written into a temporary folder and renamed, so a crash never leaves a half-written store.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { SliceformError } from '../common/errors.js';
import type { DType, TypedArray } from '../common/volume.js';
import type { Dims, Microns } from './grid.js';

const ZDTYPE: Record<DType, string> = { uint8: '|u1', int8: '|i1', uint16: '<u2', int16: '<i2', uint32: '<u4', int32: '<i4', float32: '<f4', float64: '<f8' };

interface ArraySpec {
  shape: number[];
  chunks: number[];
  dtype: DType;
  /** value at a C-order index of `shape` */
  data: TypedArray;
}

async function writeArray(dir: string, a: ArraySpec): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, '.zarray'),
    JSON.stringify({ zarr_format: 2, shape: a.shape, chunks: a.chunks, dtype: ZDTYPE[a.dtype], compressor: null, fill_value: 0, order: 'C', filters: null, dimension_separator: '/' }, null, 1),
  );
  const nd = a.shape.length;
  const grid = a.shape.map((s, i) => Math.ceil(s / a.chunks[i]!));
  const strides = new Array<number>(nd);
  strides[nd - 1] = 1;
  for (let i = nd - 2; i >= 0; i--) strides[i] = strides[i + 1]! * a.shape[i + 1]!;
  const chunkLen = a.chunks.reduce((p, c) => p * c, 1);
  const Ctor = a.data.constructor as new (n: number) => TypedArray;
  const idx = new Array<number>(nd).fill(0);
  for (;;) {
    // one chunk, full chunk size (edge chunks padded with fill_value, as Zarr v2 requires)
    const buf = new Ctor(chunkLen);
    const origin = idx.map((c, i) => c * a.chunks[i]!);
    const inner = a.chunks[nd - 1]!;
    const rowCount = chunkLen / inner;
    const sub = new Array<number>(nd - 1).fill(0);
    for (let r = 0; r < rowCount; r++) {
      let src = 0;
      let inside = true;
      for (let i = 0; i < nd - 1; i++) {
        const g = origin[i]! + sub[i]!;
        if (g >= a.shape[i]!) inside = false;
        src += g * strides[i]!;
      }
      if (inside) {
        const x0 = origin[nd - 1]!;
        const n = Math.min(inner, a.shape[nd - 1]! - x0);
        if (n > 0) buf.set(a.data.subarray(src + x0, src + x0 + n), r * inner);
      }
      for (let i = nd - 2; i >= 0; i--) {
        if (++sub[i]! < a.chunks[i]!) break;
        sub[i] = 0;
      }
    }
    const path = join(dir, ...idx.map(String));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    let k = nd - 1;
    while (k >= 0 && ++idx[k]! >= grid[k]!) idx[k--] = 0;
    if (k < 0) break;
  }
}

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
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await rm(tmp, { recursive: true, force: true });
  const space = (name: string) => ({ name, type: 'space', unit: 'micrometer' });
  const scale = [spacing.z, spacing.y, spacing.x];
  const multi = image.channels > 1;
  const chunk3 = [Math.min(z, 16), Math.min(y, 256), Math.min(x, 256)];
  try {
    await mkdir(tmp, { recursive: true });
    await writeFile(join(tmp, '.zgroup'), JSON.stringify({ zarr_format: 2 }));
    await writeFile(
      join(tmp, '.zattrs'),
      JSON.stringify(
        {
          multiscales: [
            {
              version: '0.4',
              name: basename(path),
              axes: multi ? [{ name: 'c', type: 'channel' }, space('z'), space('y'), space('x')] : [space('z'), space('y'), space('x')],
              datasets: [{ path: '0', coordinateTransformations: [{ type: 'scale', scale: multi ? [1, ...scale] : scale }] }],
            },
          ],
          ...(image.channelNames ? { omero: { channels: image.channelNames.map((label) => ({ label, active: true })) } } : {}),
        },
        null,
        1,
      ),
    );
    await writeArray(join(tmp, '0'), { shape: multi ? [image.channels, z, y, x] : [z, y, x], chunks: multi ? [1, ...chunk3] : chunk3, dtype: image.dtype, data: image.data });
    const lab = join(tmp, 'labels');
    await mkdir(lab, { recursive: true });
    await writeFile(join(lab, '.zgroup'), JSON.stringify({ zarr_format: 2 }));
    await writeFile(join(lab, '.zattrs'), JSON.stringify({ labels: [labels.name] }));
    const ld = join(lab, labels.name);
    await mkdir(ld, { recursive: true });
    await writeFile(join(ld, '.zgroup'), JSON.stringify({ zarr_format: 2 }));
    await writeFile(
      join(ld, '.zattrs'),
      JSON.stringify(
        {
          multiscales: [{ version: '0.4', name: labels.name, axes: [space('z'), space('y'), space('x')], datasets: [{ path: '0', coordinateTransformations: [{ type: 'scale', scale }] }] }],
          'image-label': { version: '0.4', source: { image: '../../' } },
        },
        null,
        1,
      ),
    );
    await writeArray(join(ld, '0'), { shape: [z, y, x], chunks: chunk3, dtype: labels.data instanceof Uint16Array ? 'uint16' : 'uint32', data: labels.data });
    await rm(path, { recursive: true, force: true });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
