/**
 * HDF5 reader (h5wasm, Node build). Datasets are 3D (ZYX) or 4D (CZYX, or ZYXC when the last axis
 * is small); `element_size_um` (z, y, x) gives the spacing. Reads a few z-planes at a time into the
 * preallocated volume so the wasm heap never holds the whole dataset.
 */
import { VolumeReadError } from '../common/errors.js';
import { EtaEstimator } from '../common/progress.js';
import { DTYPE_BYTES, allocTyped, type DType, type Volume } from '../common/volume.js';
import { allocVolume, throwIfCancelled } from './memory.js';
import { assertRegularFile } from './source.js';
import type { ReadOptions, VolumeInfo } from './types.js';
import { assertBoxInside, type RegionSource } from './region.js';

type H5 = typeof import('h5wasm');
type H5File = InstanceType<H5['File']>;
type H5Dataset = InstanceType<H5['Dataset']>;

let h5p: Promise<H5> | null = null;
async function h5(): Promise<H5> {
  h5p ??= (async () => {
    const mod = (await import('h5wasm/node')) as unknown as { default: H5 } & H5;
    const lib = mod.default ?? mod;
    const M = (await lib.ready) as unknown as { activate_throwing_error_handler?: () => number };
    // turn HDF5 errors into exceptions instead of stderr dumps and invalid handles
    M.activate_throwing_error_handler?.();
    return lib;
  })();
  return h5p;
}

/** Short reason from an HDF5 error stack ("Not an HDF5 file", "Read failed", ...). */
function reason(e: unknown): string {
  // a JS error from our side of the binding (a huge shape, a missing field) is not an HDF5 message
  if (e instanceof RangeError)
    return 'unreadable: the dataset describes sizes that cannot be right (corrupt file?)';
  if (e instanceof TypeError) return 'unreadable: corrupt or unsupported HDF5 structure';
  const s = String((e as Error)?.message ?? e);
  const minors = [...s.matchAll(/minor: ([^\n]+)/g)].map((m) => m[1]!.trim());
  const last = minors.at(-1);
  return last ? `HDF5 error: ${last}` : `HDF5 error: ${s.split('\n')[0]!.slice(0, 200)}`;
}

const LABELISH = /(^|\/)(label|labels|seg|segmentation|mask|gt|ground_?truth|pred|prediction)[^/]*$/i;
const PREFERRED = ['raw', 'data', 'image', 'volume', 'img'];

/** Limits of the group walk: objects visited, and datasets listed. */
const MAX_OBJECTS = 100_000;
const MAX_DEPTH = 64;
/** Datasets whose shape the default choice reads before giving up. */
const MAX_SHAPES = 2000;

/** A stable key for an HDF5 object: its object reference (the object header address), or null. */
function objectKey(o: { create_reference?: () => { ref_data: ArrayLike<number> } }): string | null {
  try {
    const r = o.create_reference?.();
    return r ? Array.from(r.ref_data).join(',') : null;
  } catch {
    return null;
  }
}

/** H5G_obj_t codes that h5wasm's get_type returns. */
const H5G_GROUP = 0;
const H5G_DATASET = 1;

/**
 * Every dataset reachable from the root, each group entered once: groups are keyed by their object
 * address (an HDF5 object reference), so hard links back to an ancestor (a root that links to itself ten
 * times) cost one visit each instead of 10^depth. Links are typed with one cheap get_type call each;
 * shapes are read later, only for the datasets that need them. Paths are the first one found.
 */
function listDatasets(f: H5File, lib: H5): { path: string; ds: H5Dataset }[] {
  const out: { path: string; ds: H5Dataset }[] = [];
  const seen = new Set<string>();
  let visited = 0;
  const walk = (g: InstanceType<H5['Group']>, prefix: string, depth: number) => {
    if (depth > MAX_DEPTH) return;
    let names: string[];
    try {
      names = g.keys();
    } catch {
      return;
    }
    for (const k of names) {
      if (++visited > MAX_OBJECTS) return;
      const p = `${prefix}/${k}`;
      let type: number;
      try {
        type = g.get_type(p);
      } catch {
        continue;
      }
      if (type === H5G_DATASET) out.push({ path: p, ds: new lib.Dataset(f.file_id, p) });
      else if (type === H5G_GROUP) {
        const sub = new lib.Group(f.file_id, p);
        const key = objectKey(sub as never);
        if (key !== null) {
          if (seen.has(key)) continue;
          seen.add(key);
        } else if (depth >= 16) continue; // no address: bound the depth instead
        walk(sub, p, depth + 1);
      }
    }
  };
  const rootKey = objectKey(f as never);
  if (rootKey !== null) seen.add(rootKey);
  walk(f, '', 0);
  return out;
}

/** "a, b, c, … and 19,997 more": an error message lists a few datasets, not all 20,000. */
function someDatasets(names: string[], n = 8): string {
  if (names.length === 0) return 'none';
  const head = names.slice(0, n).join(', ');
  return names.length > n ? `${head} and ${(names.length - n).toLocaleString('en-US')} more` : head;
}

function dtypeOfDataset(file: string, path: string, ds: H5Dataset): DType {
  const m = ds.metadata as { type: number; size: number; signed: boolean };
  // H5T_INTEGER = 0, H5T_FLOAT = 1
  if (m.type === 1) {
    if (m.size === 4) return 'float32';
    if (m.size === 8) return 'float64';
  } else if (m.type === 0) {
    const map: Record<number, [DType, DType]> = {
      1: ['int8', 'uint8'],
      2: ['int16', 'uint16'],
      4: ['int32', 'uint32'],
    };
    const pair = map[m.size];
    if (pair) return m.signed ? pair[0] : pair[1];
  }
  throw new VolumeReadError(
    file,
    `dataset ${path}: unsupported HDF5 type (class ${m.type}, ${m.size * 8}-bit)`,
    {
      kind: 'unsupported',
    },
  );
}

interface Picked {
  path: string;
  ds: H5Dataset;
  dtype: DType;
  shape: number[];
  /** 'zyx' | 'czyx' | 'zyxc' */
  axes: string;
}

function pickDataset(file: string, f: H5File, lib: H5, wanted: string | undefined): Picked {
  const all = listDatasets(f, lib);
  let chosen: { path: string; ds: H5Dataset } | undefined;
  if (wanted !== undefined) {
    const norm = wanted.startsWith('/') ? wanted : `/${wanted}`;
    chosen = all.find((d) => d.path === norm);
    if (!chosen) {
      throw new VolumeReadError(
        file,
        `no dataset "${wanted}" (datasets: ${someDatasets(all.map((d) => d.path.slice(1)))})`,
      );
    }
  } else {
    // shapes cost a metadata read each (~1 ms): look at the preferred names first, then in file order,
    // and give up after MAX_SHAPES of them rather than spend 20 s on a file of 20,000 tiny datasets
    let looked = 0;
    const shapeOf = (d: { ds: H5Dataset }): unknown => {
      looked++;
      try {
        return d.ds.shape;
      } catch {
        return null;
      }
    };
    const isImage = (d: { ds: H5Dataset }) => {
      const s = shapeOf(d);
      return Array.isArray(s) && (s.length === 3 || s.length === 4);
    };
    for (const n of PREFERRED) {
      chosen = all.find((d) => d.path.split('/').pop()!.toLowerCase() === n && isImage(d));
      if (chosen) break;
    }
    let firstImage: { path: string; ds: H5Dataset } | undefined;
    for (const d of chosen ? [] : all) {
      if (looked >= MAX_SHAPES) break;
      if (!isImage(d)) continue;
      firstImage ??= d;
      if (!LABELISH.test(d.path)) {
        chosen = d;
        break;
      }
    }
    chosen ??= firstImage;
    if (!chosen) {
      const listed = all.slice(0, 8).map((d) => `${d.path.slice(1)} ${JSON.stringify(shapeOf(d))}`);
      const more = all.length > 8 ? ` and ${(all.length - 8).toLocaleString('en-US')} more` : '';
      const scope =
        looked >= MAX_SHAPES && all.length > MAX_SHAPES
          ? ` among the first ${MAX_SHAPES.toLocaleString('en-US')} of ${all.length.toLocaleString('en-US')} datasets`
          : '';
      throw new VolumeReadError(
        file,
        `no 3D or 4D dataset${scope} (datasets: ${listed.join(', ') || 'none'}${more}); pick one with --dataset`,
      );
    }
  }
  const shape = (chosen.ds.shape ?? []) as number[];
  if (shape.length !== 3 && shape.length !== 4) {
    throw new VolumeReadError(
      file,
      `dataset ${chosen.path.slice(1)} has shape ${JSON.stringify(shape)}; need 3D (z,y,x) or 4D (c,z,y,x)`,
    );
  }
  if (shape.some((n) => !(n >= 1)))
    throw new VolumeReadError(
      file,
      `dataset ${chosen.path.slice(1)} is empty (shape ${JSON.stringify(shape)})`,
    );
  let axes = shape.length === 3 ? 'zyx' : 'czyx';
  if (shape.length === 4 && shape[3]! <= 8 && shape[0]! > 8) axes = 'zyxc';
  return {
    path: chosen.path,
    ds: chosen.ds,
    dtype: dtypeOfDataset(file, chosen.path, chosen.ds),
    shape,
    axes,
  };
}

function spacingOf(ds: H5Dataset, warnings: string[]): { x: number; y: number; z: number; unit: string } {
  const pixel = { x: 1, y: 1, z: 1, unit: 'pixel' };
  let v: unknown;
  try {
    const a = ds.attrs['element_size_um'];
    if (!a) return pixel;
    v = a.value as unknown;
  } catch {
    warnings.push('element_size_um is unreadable; spacing in pixels');
    return pixel;
  }
  const arr =
    v && typeof v === 'object' && 'length' in v ? Array.from(v as ArrayLike<number>, Number) : [Number(v)];
  const zyx = arr.slice(-3);
  if (zyx.length === 3 && zyx.every((n) => Number.isFinite(n) && n > 0))
    return { x: zyx[2]!, y: zyx[1]!, z: zyx[0]!, unit: 'µm' };
  // say so rather than calibrate silently with 1 pixel (or carry Infinity on)
  const shown =
    arr
      .slice(0, 4)
      .map((n) => String(n))
      .join(', ') + (arr.length > 4 ? ', …' : '');
  warnings.push(`element_size_um (${shown}) is not three finite positive sizes (z, y, x); spacing in pixels`);
  return pixel;
}

function attrsOf(ds: H5Dataset): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  try {
    for (const [k, a] of Object.entries(ds.attrs)) {
      const v = a.value as unknown;
      // a megabyte attribute must not become a megabyte of JSON in `info` and in every project file
      if (ArrayBuffer.isView(v) && (v as unknown as ArrayLike<number>).length > 64) {
        out[k] = `(${(v as unknown as ArrayLike<number>).length} values)`;
        continue;
      }
      if (typeof v === 'string' && v.length > 1024) {
        out[k] = `${v.slice(0, 1024)}…`;
        continue;
      }
      out[k] = ArrayBuffer.isView(v)
        ? Array.from(v as unknown as ArrayLike<number>)
        : typeof v === 'bigint'
          ? Number(v)
          : v;
    }
  } catch {
    /* ignore */
  }
  return out;
}

async function withFile<T>(path: string, fn: (f: H5File, lib: H5) => Promise<T> | T): Promise<T> {
  // h5wasm opens the path synchronously: a FIFO there would block the whole process
  await assertRegularFile(path);
  const lib = await h5();
  let f: H5File;
  try {
    f = new lib.File(path, 'r');
  } catch (e) {
    throw new VolumeReadError(path, reason(e), { cause: e });
  }
  try {
    return await fn(f, lib);
  } catch (e) {
    if (e instanceof VolumeReadError) throw e;
    if (e instanceof Error && e.name === 'CancelledError') throw e;
    throw new VolumeReadError(path, reason(e), { cause: e });
  } finally {
    try {
      f.close();
    } catch {
      /* already broken */
    }
  }
}

function infoOf(path: string, p: Picked, opts: ReadOptions): VolumeInfo {
  const [z, y, x, c] =
    p.axes === 'zyx'
      ? [p.shape[0]!, p.shape[1]!, p.shape[2]!, 1]
      : p.axes === 'czyx'
        ? [p.shape[1]!, p.shape[2]!, p.shape[3]!, p.shape[0]!]
        : [p.shape[0]!, p.shape[1]!, p.shape[2]!, p.shape[3]!];
  if (opts.timepoint !== undefined && opts.timepoint !== 0) {
    throw new VolumeReadError(path, `time point ${opts.timepoint} out of range (the dataset has 1: 0..0)`);
  }
  const warnings: string[] = [];
  const spacing = spacingOf(p.ds, warnings);
  return {
    dtype: p.dtype,
    shape: { x, y, z, c, t: 1 },
    spacing,
    channelNames: Array.from({ length: c }, (_, i) => `C${i + 1}`),
    format: 'hdf5',
    source: path,
    timepoint: 0,
    metadata: { dataset: p.path.slice(1), axes: p.axes, attributes: attrsOf(p.ds), warnings },
  };
}

export async function probeHdf5(path: string, opts: ReadOptions): Promise<VolumeInfo> {
  return withFile(path, (f, lib) => infoOf(path, pickDataset(path, f, lib, opts.dataset), opts));
}

export async function readHdf5(path: string, opts: ReadOptions): Promise<Volume> {
  return withFile(path, async (f, lib) => {
    const p = pickDataset(path, f, lib, opts.dataset);
    const info = infoOf(path, p, opts);
    const { x, y, z, c } = info.shape;
    const data = allocVolume(path, p.dtype, x * y * z * c, opts.maxBytes);
    const bytes = DTYPE_BYTES[p.dtype];
    const planeBytes = x * y * bytes * (p.axes === 'zyxc' ? c : 1);
    // ~32 MiB per slab
    const zStep = Math.max(1, Math.floor((32 << 20) / planeBytes));
    const outer = p.axes === 'czyx' ? c : 1;
    const total = outer * Math.ceil(z / zStep);
    const eta = new EtaEstimator();
    let done = 0;
    for (let cc = 0; cc < outer; cc++) {
      for (let z0 = 0; z0 < z; z0 += zStep) {
        throwIfCancelled(opts.signal);
        const z1 = Math.min(z, z0 + zStep);
        const ranges: [number, number][] =
          p.axes === 'czyx'
            ? [
                [cc, cc + 1],
                [z0, z1],
              ]
            : [[z0, z1]];
        const slab = p.ds.slice(ranges) as unknown as ArrayLike<number> & { length: number };
        if (!slab || slab.length !== (z1 - z0) * x * y * (p.axes === 'zyxc' ? c : 1)) {
          throw new VolumeReadError(path, `dataset ${p.path.slice(1)}: short read at z ${z0}`);
        }
        if (p.axes === 'zyxc') {
          const n = (z1 - z0) * x * y;
          for (let i = 0; i < n; i++) {
            for (let k = 0; k < c; k++) data[k * z * x * y + z0 * x * y + i] = slab[i * c + k]!;
          }
        } else {
          (data as unknown as { set(a: ArrayLike<number>, o: number): void }).set(
            slab,
            (cc * z + z0) * x * y,
          );
        }
        done++;
        const fraction = done / total;
        opts.onProgress?.({
          fraction,
          etaSeconds: eta.eta(fraction),
          stage: 'reading planes',
          details: { planes: z1, of: z },
        });
      }
    }
    return { ...info, data };
  });
}

/**
 * HDF5 RegionSource: the file stays open and each region is one hyperslab read (h5wasm's slice), so only the
 * chunks the box touches are decompressed (HDF5's own chunk cache). ZYXC datasets are de-interleaved per region.
 */
export async function openHdf5Region(
  path: string,
  opts: { dataset?: string; timepoint?: number } = {},
): Promise<RegionSource> {
  await assertRegularFile(path);
  const lib = await h5();
  let f: H5File;
  try {
    f = new lib.File(path, 'r');
  } catch (e) {
    throw new VolumeReadError(path, reason(e), { cause: e });
  }
  let p: Picked;
  let info: VolumeInfo;
  try {
    p = pickDataset(path, f, lib, opts.dataset);
    info = infoOf(path, p, { timepoint: opts.timepoint });
  } catch (e) {
    f.close();
    if (e instanceof VolumeReadError) throw e;
    throw new VolumeReadError(path, reason(e), { cause: e });
  }
  const { x: X, y: Y, z: Z, c: C } = info.shape;
  const chunks = (p.ds.metadata as { chunks?: number[] | null }).chunks;
  const zyx = chunks ? (p.axes === 'czyx' ? chunks.slice(1, 4) : chunks.slice(0, 3)) : [1, Y, X];
  let closed = false;
  return {
    info,
    levels: [{ factors: [1, 1, 1], shape: { x: X, y: Y, z: Z } }],
    chunk: [zyx[0]!, zyx[1]!, zyx[2]!],
    async read(box, ro = {}) {
      if (closed) throw new VolumeReadError(path, 'region read after close');
      if ((ro.level ?? 0) !== 0) throw new RangeError(`${path}: level ${ro.level} does not exist (HDF5 has level 0 only)`);
      assertBoxInside(box, { x: X, y: Y, z: Z }, path);
      throwIfCancelled(ro.signal);
      const channels = ro.channels ?? Array.from({ length: C }, (_, i) => i);
      for (const c of channels) if (!(Number.isInteger(c) && c >= 0 && c < C)) throw new RangeError(`${path}: channel ${c} not in 0..${C - 1}`);
      const n = (box.z1 - box.z0) * (box.y1 - box.y0) * (box.x1 - box.x0);
      const out = allocTyped(p.dtype, channels.length * n);
      const zyxR: [number, number][] = [
        [box.z0, box.z1],
        [box.y0, box.y1],
        [box.x0, box.x1],
      ];
      const slice = (ranges: [number, number][], len: number) => {
        let s: ArrayLike<number> & { length: number };
        try {
          s = p.ds.slice(ranges) as unknown as ArrayLike<number> & { length: number };
        } catch (e) {
          throw new VolumeReadError(path, reason(e), { cause: e });
        }
        if (!s || s.length !== len) throw new VolumeReadError(path, `dataset ${p.path.slice(1)}: short read of region z ${box.z0}..${box.z1}`);
        return s;
      };
      if (p.axes === 'zyxc') {
        const s = slice([...zyxR, [0, C]], n * C);
        channels.forEach((c, ci) => {
          for (let i = 0; i < n; i++) out[ci * n + i] = s[i * C + c]!;
        });
      } else if (p.axes === 'czyx') {
        channels.forEach((c, ci) => (out as unknown as { set(a: ArrayLike<number>, o: number): void }).set(slice([[c, c + 1], ...zyxR], n), ci * n));
      } else {
        (out as unknown as { set(a: ArrayLike<number>, o: number): void }).set(slice(zyxR, n), 0);
      }
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        f.close();
      } catch {
        /* already broken */
      }
    },
  };
}
