/**
 * File-level objects pipeline shared by `sliceform objects`, batch reports and the app service: read and
 * check a label volume against its image, make instances, measure, write CSV / JSON / instance TIFF.
 * Every bad input is a SliceformError 'bad-input' naming the file and the problem (exit 2 in the CLI).
 */
import { writeFile } from 'node:fs/promises';
import { SliceformError } from '../common/errors.js';
import type { Spacing, Volume } from '../common/volume.js';
import { readVolume, writeImageJTiff } from '../io/index.js';
import { computeInstances, objectClasses, type InstanceOptions, type Instances, type SplitMode } from './instances.js';
import { measureObjects, objectsCsv, summarise, type ChannelData, type ObjectRow } from './measure.js';
import type { Microns } from './grid.js';

/** How to read the label volume: classes 1..K (a Sliceform segmentation), label > 0 = one object class, or ready instance ids. */
export type LabelsMode = 'semantic' | 'foreground' | 'instances';

export interface ObjectsOptions {
  labelsMode?: LabelsMode;
  split?: SplitMode;
  classes?: number[];
  minSeparationUm?: number;
  smoothUm?: number;
  minSizeUm3?: number;
  boundaryClass?: number;
  seedDepthUm?: number;
  /** per-class probabilities (densify --probabilities), for split 'probability' */
  probabilities?: Volume;
}

export interface ObjectsResult {
  instances: Instances;
  rows: ObjectRow[];
  channels: string[];
  spacing: Microns;
}

/** Reads a label volume and checks it: integer, one channel, the image's x/y/z. */
export async function readObjectLabels(path: string, image: Volume | null, dataset?: string): Promise<Volume> {
  const v = await readVolume(path, dataset ? { dataset } : {});
  if (!/int/.test(v.dtype)) throw new SliceformError('bad-input', `labels must be integers (classes or instance ids), found ${v.dtype} (a probability map?)`, { file: path });
  if (v.shape.c !== 1) throw new SliceformError('bad-input', `labels must have one channel, found ${v.shape.c}`, { file: path });
  if (image && (image.shape.x !== v.shape.x || image.shape.y !== v.shape.y || image.shape.z !== v.shape.z)) {
    throw new SliceformError('bad-input', `labels are ${v.shape.x}x${v.shape.y}x${v.shape.z} (x*y*z) but the image ${image.source} is ${image.shape.x}x${image.shape.y}x${image.shape.z}`, { file: path });
  }
  for (let i = 0; i < v.data.length; i++) {
    if (v.data[i]! < 0) throw new SliceformError('bad-input', `negative label ${v.data[i]} at voxel ${i}`, { file: path });
  }
  return v;
}

/** µm spacing: the image's when calibrated, else the labels', else 1 per voxel (with a warning). */
export function objectSpacing(labels: Volume, image: Volume | null, warn: (m: string) => void): Microns {
  const cal = (s: Spacing | undefined) => s && s.unit !== 'pixel' && s.x > 0 && s.y > 0 && s.z > 0;
  const s = cal(image?.spacing) ? image!.spacing : cal(labels.spacing) ? labels.spacing : null;
  if (!s) {
    warn(`${labels.source} has no voxel size: measuring in voxels (µm columns = voxels)`);
    return { x: 1, y: 1, z: 1 };
  }
  return { x: s.x, y: s.y, z: s.z };
}

/** The image's channels as measurement inputs (names from the file, else c0, c1, ...). */
export function imageChannels(image: Volume | null): ChannelData[] {
  if (!image) return [];
  const n = image.shape.x * image.shape.y * image.shape.z;
  return Array.from({ length: image.shape.c }, (_, c) => ({
    name: (image.channelNames[c] || `c${c}`).replace(/[^A-Za-z0-9_.-]+/g, '_'),
    data: image.data.subarray(c * n, (c + 1) * n),
  }));
}

/** Instances + measurements of a checked label volume. */
export function objectsOf(labels: Volume, image: Volume | null, spacing: Microns, o: ObjectsOptions = {}): ObjectsResult {
  const d = { x: labels.shape.x, y: labels.shape.y, z: labels.shape.z };
  const mode = o.labelsMode ?? 'semantic';
  const file = labels.source;
  let inst: Instances;
  if (mode === 'instances') {
    // ready instance ids: measured as they are (class 2), ids kept
    let max = 0;
    for (let i = 0; i < labels.data.length; i++) if (labels.data[i]! > max) max = labels.data[i]!;
    if (max === 0) throw new SliceformError('bad-input', 'empty mask: no object (every label is 0)', { file });
    inst = { labels: Uint32Array.from(labels.data as ArrayLike<number>), count: max, classOf: new Uint16Array(max + 1).fill(2), split: 0, removedSmall: 0 };
  } else {
    let values: ArrayLike<number> = labels.data;
    if (mode === 'foreground') {
      const v = new Uint8Array(labels.data.length);
      for (let i = 0; i < v.length; i++) v[i] = labels.data[i]! > 0 ? 2 : 1;
      values = v;
    } else {
      let max = 0;
      for (let i = 0; i < values.length; i++) if (values[i]! > max) max = values[i]!;
      if (max > 255) throw new SliceformError('bad-input', `label value ${max} is not a class (1..K): instance ids? use --labels-mode foreground or instances`, { file });
    }
    const classes = o.classes ?? objectClasses(values);
    if (o.boundaryClass !== undefined) {
      let inside = 0;
      let boundary = 0;
      for (let i = 0; i < values.length; i++) {
        if (values[i] === o.boundaryClass) boundary++;
        else if (values[i]! > 0) inside++;
      }
      if (!boundary) throw new SliceformError('bad-input', `no voxel of the boundary class ${o.boundaryClass}`, { file });
      if (!inside) throw new SliceformError('bad-input', `empty mask: every labelled voxel is boundary class ${o.boundaryClass}`, { file });
    } else {
      const want = new Set(classes);
      let any = false;
      for (let i = 0; i < values.length && !any; i++) if (want.has(values[i]!)) any = true;
      if (!any) throw new SliceformError('bad-input', `empty mask: no voxel of the object classes (${classes.length ? classes.join(', ') : 'values >= 2'})`, { file });
    }
    let probability: Float32Array | undefined;
    if (o.split === 'probability') {
      const p = o.probabilities;
      if (!p) throw new SliceformError('bad-input', "split 'probability' needs --probabilities P.tif (densify --probabilities)");
      const n = d.x * d.y * d.z;
      if (p.shape.x !== d.x || p.shape.y !== d.y || p.shape.z !== d.z || p.shape.c < 2) {
        throw new SliceformError('bad-input', `probabilities must be ${d.x}x${d.y}x${d.z} with one channel per class, found ${p.shape.x}x${p.shape.y}x${p.shape.z}x${p.shape.c}`, { file: p.source });
      }
      probability = new Float32Array(n);
      for (let i = 0; i < n; i++) probability[i] = 1 - p.data[i]!; // 1 - P(background = class 1)
    }
    const io: InstanceOptions = {
      spacing,
      classes,
      split: o.split ?? 'distance',
      probability,
      minSeparationUm: o.minSeparationUm,
      smoothUm: o.smoothUm,
      minSizeUm3: o.minSizeUm3,
      boundaryClass: o.boundaryClass,
      seedDepthUm: o.seedDepthUm,
    };
    inst = computeInstances(values, d, io);
  }
  const channels = imageChannels(image);
  const rows = measureObjects(inst.labels, d, spacing, inst.classOf, channels);
  return { instances: inst, rows, channels: channels.map((c) => c.name), spacing };
}

/** Instance labels as an ImageJ TIFF: uint16 up to 65535 objects, uint32 above (or when asked). */
export async function writeInstanceTiff(path: string, inst: Pick<Instances, 'labels' | 'count'>, d: { x: number; y: number; z: number }, spacing: Microns, dtype?: 'uint16' | 'uint32'): Promise<'uint16' | 'uint32'> {
  const dt = dtype ?? (inst.count > 65535 ? 'uint32' : 'uint16');
  if (dt === 'uint16' && inst.count > 65535) throw new SliceformError('bad-input', `${inst.count} objects do not fit uint16: write uint32`, { file: path });
  const data = dt === 'uint16' ? Uint16Array.from(inst.labels) : inst.labels;
  await writeImageJTiff(path, { data, dtype: dt, shape: { ...d, c: 1, t: 1 }, spacing: { ...spacing, unit: 'µm' } }, { displayRange: [0, Math.max(1, inst.count)] });
  return dt;
}

/** Writes the table as CSV and JSON. */
export async function writeObjectTables(res: ObjectsResult, csvPath: string | undefined, jsonPath: string | undefined, meta: Record<string, unknown>): Promise<void> {
  if (csvPath) await writeFile(csvPath, objectsCsv(res.rows, res.channels));
  if (jsonPath) {
    await writeFile(jsonPath, JSON.stringify({ ...meta, spacing_um: res.spacing, summary: summarise(res.rows), objects: res.rows }, null, 1) + '\n');
  }
}

export interface StackObjectsSummary {
  count: number;
  meanVolume_um3: number;
  medianVolume_um3: number;
  meanEquivalentDiameter_um: number;
}

/**
 * Objects of one segmented stack for batch reports: instances of its label TIFF (default recipe), measured
 * with the image's intensities, written as a per-stack CSV. A stack without any object voxel gets a
 * header-only table and count 0 (that is a result, not a failure of the file).
 */
export async function objectsForStack(labelsPath: string, imagePath: string, csvPath: string, opts: { dataset?: string } = {}): Promise<StackObjectsSummary> {
  const image = await readVolume(imagePath, opts.dataset ? { dataset: opts.dataset } : {});
  const labels = await readObjectLabels(labelsPath, image);
  const spacing = objectSpacing(labels, image, () => undefined);
  let res: ObjectsResult;
  try {
    res = objectsOf(labels, image, spacing);
  } catch (e) {
    if (e instanceof SliceformError && /empty mask/.test(e.message)) {
      await writeFile(csvPath, objectsCsv([], imageChannels(image).map((c) => c.name)));
      return { count: 0, meanVolume_um3: 0, medianVolume_um3: 0, meanEquivalentDiameter_um: 0 };
    }
    throw e;
  }
  await writeFile(csvPath, objectsCsv(res.rows, res.channels));
  const s = summarise(res.rows);
  return { count: s.count, meanVolume_um3: s.meanVolume_um3, medianVolume_um3: s.medianVolume_um3, meanEquivalentDiameter_um: s.meanEquivalentDiameter_um };
}
