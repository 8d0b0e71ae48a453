/**
 * TIFF-family RegionSource (plain, ImageJ, OME-TIFF, LSM, BigTIFF): regions are read plane by plane without the
 * whole stack in memory. Uncompressed strips (and ImageJ's contiguous raw planes) are read row range by row
 * range straight from the file, so a region costs the bytes of its rows only; compressed or tiled pages are
 * decoded whole by the volume reader's page decoder and kept in a bounded LRU cache of decoded planes.
 * File offsets are float64 (exact below 2^53: BigTIFF offsets past 4 GiB are fine).
 */
import { endianness } from 'node:os';
import { DTYPE_BYTES, allocTyped, type TypedArray } from '../../common/volume.js';
import { SliceformError } from '../../common/errors.js';
import { FileSource } from '../source.js';
import { throwIfCancelled } from '../memory.js';
import { assertBoxInside, type OpenRegionOptions, type RegionBox, type RegionReadOptions, type RegionSource } from '../region.js';
import { TAG, TiffFile } from './ifd.js';
import { buildLayout, type PlaneSource } from './layout.js';
import { decodePage, readPageInfo, type PageInfo } from './page.js';
import { info as infoOf, timepointOf } from './reader.js';

const HOST_LE = endianness() === 'LE';

/** How the rows of one plane are found: direct row reads, or a page decode. */
type RowPlan =
  | { kind: 'direct'; rowStarts: (y: number) => number }
  | { kind: 'decode'; page: PageInfo; sample: number };

export async function openTiffRegion(path: string, opts: OpenRegionOptions = {}): Promise<RegionSource> {
  const src = await FileSource.open(path);
  try {
    const tf = await TiffFile.open(src);
    const layout = await buildLayout(tf);
    const warnings = [...layout.warnings];
    const t = timepointOf(path, layout, { timepoint: opts.timepoint }, (m) => warnings.push(m));
    const info = infoOf(src, layout, t, warnings);
    return new TiffRegionSource(src, tf, layout.planes(t), info, opts.cacheBytes ?? 256 * 2 ** 20, layout.first);
  } catch (e) {
    await src.close();
    throw e;
  }
}

class TiffRegionSource implements RegionSource {
  readonly levels;
  readonly chunk: [number, number, number];
  private closed = false;
  private readonly byPlane: PlaneSource[];
  private readonly plans = new Map<number, Promise<RowPlan>>();
  private readonly pages = new Map<number, Promise<PageInfo>>();
  /** decoded planes of compressed/tiled pages, LRU by insertion order (Map order) */
  private readonly decoded = new Map<number, Promise<Uint8Array[]>>();
  private decodedBytes = 0;
  private readonly bytes: number;
  private readonly swap: boolean;

  constructor(
    private readonly src: FileSource,
    private readonly tf: TiffFile,
    planes: PlaneSource[],
    readonly info: RegionSource['info'],
    private readonly cacheBytes: number,
    first: PageInfo,
  ) {
    const { x, y, z, c } = info.shape;
    this.levels = [{ factors: [1, 1, 1] as [number, number, number], shape: { x, y, z } }];
    this.chunk = [1, first.tiled ? first.chunkH : Math.min(y, first.chunkH), first.tiled ? first.chunkW : x];
    this.bytes = DTYPE_BYTES[info.dtype];
    this.swap = this.bytes > 1 && tf.le !== HOST_LE;
    this.byPlane = new Array<PlaneSource>(c * z);
    for (const p of planes) this.byPlane[p.c * z + p.z] = p;
    for (let i = 0; i < c * z; i++)
      if (!this.byPlane[i]) src.fail(`no image page for channel ${Math.floor(i / z)}, z ${i % z}`);
  }

  private pageInfo(p: PlaneSource & { kind: 'page' }): Promise<PageInfo> {
    let r = this.pages.get(p.ifd.index);
    if (!r) {
      r = readPageInfo(this.tf, p.ifd);
      this.pages.set(p.ifd.index, r);
    }
    return r;
  }

  private rowPlan(i: number): Promise<RowPlan> {
    let r = this.plans.get(i);
    if (r) return r;
    r = (async (): Promise<RowPlan> => {
      const p = this.byPlane[i]!;
      const rowBytes = this.info.shape.x * this.bytes;
      if (p.kind === 'raw') return { kind: 'direct', rowStarts: (y) => p.offset + y * rowBytes };
      const pi = await this.pageInfo(p);
      const { x, y } = this.info.shape;
      if (pi.width !== x || pi.height !== y || pi.dtype !== this.info.dtype)
        this.src.fail(`IFD ${pi.ifd.index} is ${pi.width}x${pi.height} ${pi.dtype}, expected ${x}x${y} ${this.info.dtype} like the first image`);
      const sppChunk = pi.planar === 2 ? 1 : pi.spp;
      if (pi.compression === 1 && !pi.tiled && sppChunk === 1 && pi.predictor === 1) {
        const perPlane = Math.ceil(pi.height / pi.chunkH);
        const planes = pi.planar === 2 ? pi.spp : 1;
        const offsets = await this.tf.nums(pi.ifd, TAG.StripOffsets, perPlane * planes);
        if (!offsets || offsets.length < perPlane * planes)
          this.src.fail(`IFD ${pi.ifd.index}: ${offsets?.length ?? 0} strip offsets, expected ${perPlane * planes}`);
        const base = (pi.planar === 2 ? p.sample : 0) * perPlane;
        return {
          kind: 'direct',
          rowStarts: (yy) => offsets![base + Math.floor(yy / pi.chunkH)]! + (yy % pi.chunkH) * rowBytes,
        };
      }
      return { kind: 'decode', page: pi, sample: p.sample };
    })();
    this.plans.set(i, r);
    return r;
  }

  private decodedPlanes(page: PageInfo): Promise<Uint8Array[]> {
    const key = page.ifd.index;
    const hit = this.decoded.get(key);
    if (hit) {
      this.decoded.delete(key);
      this.decoded.set(key, hit);
      return hit;
    }
    const planeBytes = page.width * page.height * this.bytes;
    const dest = Array.from({ length: page.spp }, () => new Uint8Array(planeBytes));
    const r = decodePage(this.tf, page, dest).then(() => dest);
    this.decoded.set(key, r);
    this.decodedBytes += planeBytes * page.spp;
    while (this.decodedBytes > this.cacheBytes && this.decoded.size > 1) {
      const oldest = this.decoded.keys().next().value!;
      this.decoded.delete(oldest);
      this.decodedBytes -= planeBytes * page.spp;
    }
    return r;
  }

  async read(box: RegionBox, opts: RegionReadOptions = {}): Promise<TypedArray> {
    if (this.closed) throw new SliceformError('internal', `${this.info.source}: region read after close`);
    if ((opts.level ?? 0) !== 0) throw new RangeError(`${this.info.source}: level ${opts.level} does not exist (TIFF has level 0 only)`);
    const { x: X, y: Y, z: Z, c: C } = this.info.shape;
    assertBoxInside(box, { x: X, y: Y, z: Z }, this.info.source);
    const channels = opts.channels ?? Array.from({ length: C }, (_, i) => i);
    for (const c of channels) if (!(Number.isInteger(c) && c >= 0 && c < C)) throw new RangeError(`${this.info.source}: channel ${c} not in 0..${C - 1}`);
    const nx = box.x1 - box.x0;
    const ny = box.y1 - box.y0;
    const nz = box.z1 - box.z0;
    const out = allocTyped(this.info.dtype, channels.length * nz * ny * nx);
    const out8 = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const b = this.bytes;
    const rowBytes = X * b;
    const jobs: (() => Promise<void>)[] = [];
    channels.forEach((c, ci) => {
      for (let z = box.z0; z < box.z1; z++) {
        const dst = ((ci * nz + (z - box.z0)) * ny) * nx * b;
        jobs.push(async () => {
          throwIfCancelled(opts.signal);
          const plan = await this.rowPlan(c * Z + z);
          if (plan.kind === 'decode') {
            const plane = (await this.decodedPlanes(plan.page))[plan.sample]!;
            for (let y = 0; y < ny; y++) {
              const so = (box.y0 + y) * rowBytes + box.x0 * b;
              out8.set(plane.subarray(so, so + nx * b), dst + y * nx * b);
            }
            return;
          }
          // runs of rows that follow each other in the file are read in one call
          let y = box.y0;
          while (y < box.y1) {
            const start = plan.rowStarts(y);
            let n = 1;
            while (y + n < box.y1 && plan.rowStarts(y + n) === start + n * rowBytes) n++;
            const full = nx === X;
            const buf = full
              ? out8.subarray(dst + (y - box.y0) * rowBytes, dst + (y - box.y0 + n) * rowBytes)
              : new Uint8Array(n * rowBytes);
            this.src.check(start, n * rowBytes, `rows ${y}..${y + n - 1} of channel ${c}, z ${z}`);
            await this.src.readInto(buf, 0, n * rowBytes, start);
            if (this.swap) swapBytes(buf, b);
            if (!full)
              for (let r = 0; r < n; r++)
                out8.set(buf.subarray(r * rowBytes + box.x0 * b, r * rowBytes + (box.x0 + nx) * b), dst + (y - box.y0 + r) * nx * b);
            y += n;
          }
        });
      }
    });
    // a few reads in flight (libuv's file threads), not thousands
    let k = 0;
    const worker = async () => {
      while (k < jobs.length) await jobs[k++]!();
    };
    await Promise.all(Array.from({ length: Math.min(4, jobs.length) }, worker));
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.decoded.clear();
    await this.src.close();
  }
}

function swapBytes(buf: Uint8Array, bytes: number): void {
  const v = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes === 2) v.swap16();
  else if (bytes === 4) v.swap32();
  else if (bytes === 8) v.swap64();
}
