/**
 * RegionSources by path (TIFF family, HDF5, OME-Zarr) and over a volume already in memory. See ./region.ts for
 * the contract.
 *
 *   const src = await openRegionSource('big.tif');
 *   const block = await src.read({ x0: 0, y0: 0, z0: 100, x1: 512, y1: 512, z1: 164 });
 *   await src.close();
 */
import { SliceformError } from '../common/errors.js';
import { allocTyped, type TypedArray, type Volume } from '../common/volume.js';
import { readerFor } from './index.js';
import { openHdf5Region } from './hdf5.js';
import { openTiffRegion } from './tiff/region.js';
import { isZarrPath, openZarrSource } from './zarr/reader.js';
import { assertBoxInside, type OpenRegionOptions, type RegionBox, type RegionReadOptions, type RegionSource } from './region.js';

/** A Volume in memory as a RegionSource (the in-memory path and tests use the streamed code through it). */
export function volumeRegionSource(v: Volume): RegionSource {
  const { x: X, y: Y, z: Z, c: C } = v.shape;
  const { data, ...info } = v;
  let closed = false;
  return {
    info,
    levels: [{ factors: [1, 1, 1], shape: { x: X, y: Y, z: Z } }],
    chunk: [Z, Y, X],
    async read(box: RegionBox, o: RegionReadOptions = {}): Promise<TypedArray> {
      if (closed) throw new SliceformError('internal', `${v.source}: region read after close`);
      if ((o.level ?? 0) !== 0) throw new RangeError(`${v.source}: level ${o.level} does not exist (in memory: level 0 only)`);
      assertBoxInside(box, { x: X, y: Y, z: Z }, v.source);
      const channels = o.channels ?? Array.from({ length: C }, (_, i) => i);
      const nx = box.x1 - box.x0;
      const ny = box.y1 - box.y0;
      const nz = box.z1 - box.z0;
      const out = allocTyped(v.dtype, channels.length * nz * ny * nx);
      channels.forEach((c, ci) => {
        if (!(Number.isInteger(c) && c >= 0 && c < C)) throw new RangeError(`${v.source}: channel ${c} not in 0..${C - 1}`);
        for (let z = 0; z < nz; z++)
          for (let y = 0; y < ny; y++) {
            // float64 index arithmetic: exact past 2^31
            const s = ((c * Z + box.z0 + z) * Y + box.y0 + y) * X + box.x0;
            out.set(data.subarray(s, s + nx) as never, ((ci * nz + z) * ny + y) * nx);
          }
      });
      return out;
    },
    async close() {
      closed = true;
    },
  };
}

/** A RegionSource for a file (TIFF family, HDF5) or an OME-Zarr store (a folder, usually *.zarr). */
export async function openRegionSource(path: string, opts: OpenRegionOptions = {}): Promise<RegionSource> {
  if (await isZarrPath(path)) return openZarrSource(path, opts);
  const r = await readerFor(path);
  return r.id === 'tiff'
    ? openTiffRegion(path, opts)
    : openHdf5Region(path, { dataset: opts.dataset, timepoint: opts.timepoint });
}

/**
 * A box of another source as a source of its own (a block of a huge volume segmented by itself; its reads are
 * offset by the box origin, in float64, so boxes past 2^31 voxels work). Closing it leaves `src` open.
 */
export function cropRegionSource(src: RegionSource, box: RegionBox): RegionSource {
  const { x: X, y: Y, z: Z } = src.info.shape;
  assertBoxInside(box, { x: X, y: Y, z: Z }, src.info.source);
  const shape = { x: box.x1 - box.x0, y: box.y1 - box.y0, z: box.z1 - box.z0 };
  return {
    info: { ...src.info, shape: { ...src.info.shape, ...shape }, metadata: { ...src.info.metadata, crop: box } },
    levels: [{ factors: [1, 1, 1], shape }],
    chunk: src.chunk,
    async read(b: RegionBox, o: RegionReadOptions = {}): Promise<TypedArray> {
      if ((o.level ?? 0) !== 0) throw new RangeError(`${src.info.source}: a crop has level 0 only`);
      assertBoxInside(b, shape, `${src.info.source} (crop)`);
      return src.read({ x0: b.x0 + box.x0, x1: b.x1 + box.x0, y0: b.y0 + box.y0, y1: b.y1 + box.y0, z0: b.z0 + box.z0, z1: b.z1 + box.z0 }, o);
    },
    async close() {},
  };
}
