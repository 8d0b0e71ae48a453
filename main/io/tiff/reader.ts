/** TIFF-family reader: header → layout → planes decoded one by one into the preallocated volume. */
import { endianness } from 'node:os';
import { DTYPE_BYTES, type Volume } from '../../common/volume.js';
import { EtaEstimator } from '../../common/progress.js';
import type { FileSource } from '../source.js';
import type { ReadOptions, VolumeInfo } from '../types.js';
import { allocVolume, throwIfCancelled } from '../memory.js';
import { TiffFile } from './ifd.js';
import { buildLayout, type TiffLayout, type PlaneSource } from './layout.js';
import { decodePage, readPageInfo, type PageInfo } from './page.js';
import { VolumeReadError } from '../../common/errors.js';

async function open(src: FileSource): Promise<{ tf: TiffFile; layout: TiffLayout }> {
  const tf = await TiffFile.open(src);
  const layout = await buildLayout(tf);
  return { tf, layout };
}

export function timepointOf(file: string, layout: TiffLayout, opts: ReadOptions, warn: (m: string) => void): number {
  const nt = layout.shape.t;
  const t = opts.timepoint ?? 0;
  if (!Number.isInteger(t) || t < 0 || t >= nt) {
    throw new VolumeReadError(file, `time point ${t} out of range (the file has ${nt}: 0..${nt - 1})`);
  }
  if (nt > 1 && opts.timepoint === undefined) {
    warn(
      `${file}: time series with ${nt} time points; loaded time point 0 (use --timepoint to pick another)`,
    );
  }
  return t;
}

export function info(src: FileSource, layout: TiffLayout, t: number, warnings: string[]): VolumeInfo {
  return {
    dtype: layout.dtype,
    shape: layout.shape,
    spacing: layout.spacing,
    channelNames: layout.channelNames,
    format: layout.format,
    source: src.path,
    timepoint: t,
    metadata: { ...layout.metadata, compression: layout.first.compression, warnings },
  };
}

export async function probeTiff(src: FileSource, opts: ReadOptions): Promise<VolumeInfo> {
  const { layout } = await open(src);
  const warnings = [...layout.warnings];
  const t = timepointOf(src.path, layout, opts, (m) => warnings.push(m));
  return info(src, layout, t, warnings);
}

function samePage(a: PageInfo, ref: PageInfo): boolean {
  return a.width === ref.width && a.height === ref.height && a.spp === ref.spp && a.dtype === ref.dtype;
}

export async function readTiff(src: FileSource, opts: ReadOptions): Promise<Volume> {
  const { tf, layout } = await open(src);
  const warnings = [...layout.warnings];
  const t = timepointOf(src.path, layout, opts, (m) => warnings.push(m));
  const { x, y, z, c } = layout.shape;
  const planeLen = x * y;
  const data = allocVolume(src.path, layout.dtype, planeLen * z * c, opts.maxBytes);
  const bytes = DTYPE_BYTES[layout.dtype];
  const out8 = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const planeView = (cc: number, zz: number) =>
    out8.subarray((cc * z + zz) * planeLen * bytes, (cc * z + zz + 1) * planeLen * bytes);

  // group output planes by page so each page is decoded once
  const sources = layout.planes(t);
  const byPage = new Map<
    number,
    { ifdIndex: number; ifd: PlaneSource & { kind: 'page' }; dest: (Uint8Array | null)[] }
  >();
  const raws: (PlaneSource & { kind: 'raw' })[] = [];
  for (const s of sources) {
    if (s.kind === 'raw') {
      raws.push(s);
      continue;
    }
    let g = byPage.get(s.ifd.index);
    if (!g) {
      g = { ifdIndex: s.ifd.index, ifd: s, dest: [] };
      byPage.set(s.ifd.index, g);
    }
    g.dest[s.sample] = planeView(s.c, s.z);
  }
  const jobs = [...byPage.values()].sort((a, b) => a.ifd.ifd.offset - b.ifd.ifd.offset);
  const total = jobs.length + raws.length;
  const eta = new EtaEstimator();
  let done = 0;
  let lastReport = 0;
  const report = (force = false) => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!force && now - lastReport < 100) return;
    lastReport = now;
    const fraction = total ? done / total : 1;
    opts.onProgress({
      fraction,
      etaSeconds: eta.eta(fraction),
      stage: 'reading planes',
      details: { planes: done, of: total },
    });
  };
  report(true);
  const swap = bytes > 1 && tf.le !== (endianness() === 'LE');
  for (const r of raws) {
    throwIfCancelled(opts.signal);
    const target = planeView(r.c, r.z);
    await src.readInto(target, 0, target.length, r.offset);
    if (swap) {
      const b = Buffer.from(target.buffer, target.byteOffset, target.byteLength);
      if (bytes === 2) b.swap16();
      else if (bytes === 4) b.swap32();
      else b.swap64();
    }
    done++;
    report();
  }
  for (const j of jobs) {
    throwIfCancelled(opts.signal);
    const p = j.ifd.ifd === layout.first.ifd ? layout.first : await readPageInfo(tf, j.ifd.ifd);
    if (!samePage(p, layout.first)) {
      src.fail(
        `IFD ${p.ifd.index} is ${p.width}x${p.height}x${p.spp} ${p.dtype}, expected ${layout.first.width}x${layout.first.height}x${layout.first.spp} ${layout.first.dtype} like the first image`,
      );
    }
    await decodePage(tf, p, j.dest);
    done++;
    report();
  }
  report(true);
  return { ...info(src, layout, t, warnings), data };
}
