/**
 * Project folder (`NAME.sliceform/`):
 *   project.json                 volume refs (path + sha256), classes, settings, metrics, models
 *   annotations/<volumeId>.u8.gz the sparse annotation (uint8, x fastest, gzip)
 *   annotations/<volumeId>.slices.json  the slices painted on per plane ({ paintedSlices: { xy, xz, yz } }); older
 *                                projects lack it and the editor infers it from the labels
 *   predictions/<volumeId>.u8.gz the last densify result
 *   models/<modelId>/            model folders written by training
 * Every file is written atomically (temp + fsync + rename); project.json is written last, so a crash in the
 * middle of a save leaves the previous project.json pointing at complete files.
 */
import { readFile, stat, mkdir } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { gzip, gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { z } from 'zod';
import { ApiError, type ModelInfo, type ProjectMetric, type ProjectSettings, type ProjectVolumeRef } from '../common/api.js';
import { writeFileAtomic } from './atomic.js';
import { SparseLabels } from './sparse-labels.js';

const gz = promisify(gzip);
const gunz = promisify(gunzip);

export const PROJECT_FILE = 'project.json';
export const PROJECT_FORMAT = 'sliceform-project';

const shape = z.object({ x: z.number().int().positive(), y: z.number().int().positive(), z: z.number().int().positive(), c: z.number().int().positive(), t: z.number().int().positive() });
const ProjectFile = z.object({
  format: z.literal(PROJECT_FORMAT),
  version: z.literal(1),
  name: z.string(),
  savedAt: z.string(),
  volumes: z.array(z.object({ id: z.string().regex(/^[A-Za-z0-9_-]+$/), name: z.string(), path: z.string(), sha256: z.string(), shape, dataset: z.string().optional() })),
  models: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      preset: z.string(),
      createdAt: z.string(),
      iterations: z.number(),
      numClasses: z.number(),
      inChannels: z.number(),
      heldOutIoU: z.number().optional(),
      path: z.string(),
    }),
  ),
  settings: z.object({
    classes: z.array(z.object({ id: z.number().int().min(1).max(255), name: z.string(), color: z.string() })),
    training: z.record(z.string(), z.unknown()).optional(),
    autosaveMinutes: z.number().min(0),
    ui: z.record(z.string(), z.unknown()).optional(),
  }),
  metrics: z.array(z.object({ at: z.string(), kind: z.string(), values: z.record(z.string(), z.number()) })),
});
export type ProjectFile = z.infer<typeof ProjectFile>;

export interface ProjectData {
  name: string;
  volumes: ProjectVolumeRef[];
  models: ModelInfo[];
  settings: ProjectSettings;
  metrics: ProjectMetric[];
}

export interface VolumeLayers {
  id: string;
  /** dense, or the painted blocks of an out-of-core volume (annotations/<id>.blocks.gz) */
  annotation: Uint8Array | SparseLabels;
  prediction: Uint8Array | null;
  /** the slices painted on (LabelEditor.paintedSlices()), saved beside the annotation */
  paintedSlices?: PaintedSlices;
}

export type PaintedSlices = Record<'xy' | 'xz' | 'yz', number[]>;

export const annotationFile = (dir: string, id: string) => join(dir, 'annotations', `${id}.u8.gz`);
/** the annotation of an out-of-core volume: its painted 64³ blocks (SparseLabels.serialize, gzip) */
export const sparseAnnotationFile = (dir: string, id: string) => join(dir, 'annotations', `${id}.blocks.gz`);
export const paintedSlicesFile = (dir: string, id: string) => join(dir, 'annotations', `${id}.slices.json`);
export const predictionFile = (dir: string, id: string) => join(dir, 'predictions', `${id}.u8.gz`);

/** Writes the layers that changed, then project.json. Returns the savedAt stamp. */
export async function writeProject(dir: string, data: ProjectData, layers: VolumeLayers[]): Promise<string> {
  dir = resolve(dir);
  await mkdir(dir, { recursive: true });
  for (const l of layers) {
    if (l.annotation instanceof SparseLabels) await writeFileAtomic(sparseAnnotationFile(dir, l.id), await gz(l.annotation.serialize(), { level: 1 }));
    else await writeFileAtomic(annotationFile(dir, l.id), await gz(l.annotation, { level: 1 }));
    if (l.paintedSlices) await writeFileAtomic(paintedSlicesFile(dir, l.id), JSON.stringify({ paintedSlices: l.paintedSlices }) + '\n');
    if (l.prediction) await writeFileAtomic(predictionFile(dir, l.id), await gz(l.prediction, { level: 1 }));
  }
  const savedAt = new Date().toISOString();
  const file: ProjectFile = {
    format: PROJECT_FORMAT,
    version: 1,
    name: data.name,
    savedAt,
    volumes: data.volumes,
    models: data.models.map((m) => ({ ...m })),
    settings: data.settings as ProjectFile['settings'],
    metrics: data.metrics,
  };
  await writeFileAtomic(join(dir, PROJECT_FILE), JSON.stringify(file, null, 2) + '\n');
  return savedAt;
}

export async function readProjectFile(dir: string): Promise<ProjectFile> {
  const p = join(resolve(dir), PROJECT_FILE);
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ApiError('not-found', `${p}: not a Sliceform project (no ${PROJECT_FILE})`, { file: p });
    if (code === 'ENOTDIR') throw new ApiError('bad-input', `${dir}: a project is a folder containing ${PROJECT_FILE}`, { file: dir });
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ApiError('bad-input', `${p}: project file is not valid JSON (${(e as Error).message})`, { file: p });
  }
  const r = ProjectFile.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ApiError('bad-input', `${p}: not a valid Sliceform project: ${i.path.join('.')}: ${i.message}`, { file: p });
  }
  return r.data;
}

/** A gzipped label file's bytes; null when the file does not exist, bad-input naming it when it does not inflate. */
async function readGunzipped(path: string): Promise<Buffer | null> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    return await gunz(buf);
  } catch (e) {
    throw new ApiError('bad-input', `${path}: label file is corrupt (${(e as Error).message})`, { file: path });
  }
}

/** Reads a stored label layer; null when the file does not exist. Checks the voxel count. */
export async function readLayer(path: string, voxels: number): Promise<Uint8Array | null> {
  const raw = await readGunzipped(path);
  if (raw === null) return null;
  if (raw.length !== voxels) throw new ApiError('bad-input', `${path}: label file has ${raw.length} voxels, the volume has ${voxels}`, { file: path });
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
}

/** Reads a stored sparse annotation (out-of-core volumes); null when the file does not exist. */
export async function readSparseLayer(path: string, dims: { x: number; y: number; z: number }): Promise<SparseLabels | null> {
  const raw = await readGunzipped(path);
  if (raw === null) return null;
  return SparseLabels.deserialize(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), dims, path);
}

const SlicesFile = z.object({ paintedSlices: z.object({ xy: z.array(z.number().int().min(0)), xz: z.array(z.number().int().min(0)), yz: z.array(z.number().int().min(0)) }) });

/**
 * Reads the painted-slice record saved beside an annotation; null when there is none (older projects) or it
 * cannot be used (then the editor infers the record from the labels: a cosmetic loss, not worth refusing the
 * project over).
 */
export async function readPaintedSlices(dir: string, id: string): Promise<PaintedSlices | null> {
  try {
    const r = SlicesFile.safeParse(JSON.parse(await readFile(paintedSlicesFile(resolve(dir), id), 'utf8')));
    return r.success ? r.data.paintedSlices : null;
  } catch {
    return null;
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await new Promise<void>((res, rej) => {
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => res())
      .on('error', rej);
  });
  return h.digest('hex');
}

export function sha256Bytes(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
