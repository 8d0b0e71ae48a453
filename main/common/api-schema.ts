/**
 * zod schemas for every request payload of SliceformApi. The receiving side (web-shell server, Electron main)
 * validates each incoming call with `validateRequest`; a payload that fails gets an ApiError('bad-request')
 * reply naming the field, never an exception in the server.
 * Pure (zod only): no Node, no DOM.
 */
import { z } from 'zod';
import { API_METHODS, ApiError, type ApiMethod, type ApiRequest } from './api.js';
import { PRESETS } from './engine.js';

const id = z.string().min(1).max(200);
const idx = z.number().int().min(0).max(1 << 20);
const plane = z.enum(['xy', 'xz', 'yz']);
const layer = z.enum(['annotation', 'prediction']);
const classId = z.number().int().min(0).max(255);
const path = z.string().min(1).max(4096);
const vec3 = z.tuple([idx, idx, idx]);
const size3 = z.tuple([z.number().int().min(1).max(1 << 16), z.number().int().min(1).max(1 << 16), z.number().int().min(1).max(1 << 16)]);
const u8 = z.instanceof(Uint8Array);
const presetName = z.enum(Object.keys(PRESETS) as [keyof typeof PRESETS, ...Array<keyof typeof PRESETS>]);
const none = z.undefined().or(z.null()).or(z.object({}).strict());
const volumeOnly = z.object({ volumeId: id }).strict();
const jobRef = z.object({ jobId: id }).strict();
const labelClass = z
  .object({ id: z.number().int().min(1).max(255), name: z.string().min(1).max(100), color: z.string().regex(/^#[0-9a-fA-F]{6}$/) })
  .strict();

const trainSettings = z
  .object({
    volumeIds: z.array(id).max(1000).optional(),
    preset: presetName,
    minutes: z.number().positive().max(7 * 24 * 60).optional(),
    iterations: z.number().int().positive().max(10_000_000).optional(),
    resumeModelId: id.optional(),
    learningRate: z.number().positive().max(10).optional(),
    heldOutFraction: z.number().min(0).max(0.9).optional(),
    seed: z.number().int().optional(),
    device: z.enum(['cpu', 'cuda']).optional(),
    engine: z.enum(['auto', 'native', 'tfjs']).optional(),
    live: z.boolean().optional(),
    fresh: z.boolean().optional(),
  })
  .strict()
  .refine((s) => s.live === true || s.minutes !== undefined || s.iterations !== undefined, { message: 'give minutes or iterations (or both), or live: true' });

const settingsPatch = z
  .object({
    classes: z.array(labelClass).max(255).optional(),
    training: trainSettings.optional(),
    autosaveMinutes: z.number().min(0).max(24 * 60).optional(),
    ui: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export const REQUEST_SCHEMAS = {
  openVolume: z.object({ path, timepoint: idx.optional(), dataset: z.string().min(1).max(1024).optional() }).strict(),
  openVolumeBytes: z
    .object({ name: z.string().min(1).max(1024), bytes: u8, timepoint: idx.optional() })
    .strict(),
  listVolumes: none,
  closeVolume: volumeOnly,
  getSlice: z.object({ volumeId: id, plane, index: idx, channel: idx.optional() }).strict(),
  getBrick: z
    .object({ volumeId: id, origin: vec3.optional(), size: size3.optional(), step: z.number().int().min(1).max(64).optional(), channel: idx.optional() })
    .strict(),
  getClasses: none,
  setClasses: z.object({ classes: z.array(labelClass).min(1).max(255) }).strict(),
  paintStroke: z
    .object({
      volumeId: id,
      plane,
      index: idx,
      classId,
      radius: z.number().min(0).max(512),
      brush: z.enum(['disc', 'sphere']).optional(),
      points: z.array(z.tuple([z.number().finite(), z.number().finite()])).min(1).max(100_000),
    })
    .strict(),
  paintRegion: z
    .object({
      volumeId: id,
      plane,
      index: idx,
      classId,
      origin: z.tuple([z.number().int(), z.number().int()]),
      width: z.number().int().min(1).max(1 << 16),
      height: z.number().int().min(1).max(1 << 16),
      mask: u8,
    })
    .strict()
    .refine((r) => r.mask.length === r.width * r.height, { message: 'mask length must equal width*height', path: ['mask'] }),
  undo: volumeOnly,
  redo: volumeOnly,
  clearAnnotation: volumeOnly,
  getAnnotationSummary: volumeOnly,
  getLabelSlice: z.object({ volumeId: id, layer, plane, index: idx }).strict(),
  getLabelVolume: z.object({ volumeId: id, layer }).strict(),
  startTraining: trainSettings,
  stopTraining: jobRef,
  densify: z.object({ volumeId: id, modelId: id.optional(), keepAnnotation: z.boolean().optional() }).strict(),
  evaluate: z
    .object({ volumeId: id, layer: layer.optional(), truthPath: path.optional(), truthDataset: z.string().min(1).max(1024).optional(), binarizeTruth: z.boolean().optional() })
    .strict(),
  startBatch: z.object({ modelId: id, inputDir: path, outputDir: path, format: z.enum(['tiff', 'ome-tiff']).optional() }).strict(),
  cancelJob: jobRef,
  getJob: jobRef,
  listJobs: none,
  waitJob: z.object({ jobId: id, timeoutMs: z.number().int().min(0).max(24 * 3600 * 1000).optional() }).strict(),
  listModels: none,
  setVisiblePlanes: z.object({ volumeId: id, planes: z.array(z.object({ plane, index: idx }).strict()).max(6) }).strict(),
  getPreview: z.object({ volumeId: id, plane, index: idx }).strict(),
  getPreviewVolume: volumeOnly,
  getSuggestions: volumeOnly,
  exportLabels: z
    .object({ volumeId: id, layer: z.enum(['annotation', 'prediction', 'merged']), path, format: z.enum(['tiff', 'ome-tiff', 'ome-zarr']) })
    .strict(),
  saveSnapshot: z.object({ path, png: u8 }).strict(),
  computeObjects: z
    .object({
      volumeId: id,
      split: z.enum(['distance', 'none']).optional(),
      minSeparationUm: z.number().min(0).max(1e4).optional(),
      minSizeUm3: z.number().min(0).max(1e12).optional(),
      boundaryClass: z.number().int().min(1).max(255).optional(),
    })
    .strict(),
  getObjects: volumeOnly,
  getObjectSlice: z.object({ volumeId: id, plane, index: idx }).strict(),
  getObjectVolume: volumeOnly,
  mergeObjects: z.object({ volumeId: id, ids: z.array(z.number().int().min(1)).min(2).max(10_000) }).strict(),
  splitObject: z
    .object({ volumeId: id, plane, index: idx, line: z.tuple([z.tuple([z.number().finite(), z.number().finite()]), z.tuple([z.number().finite(), z.number().finite()])]) })
    .strict(),
  undoObjects: volumeOnly,
  exportObjects: z.object({ volumeId: id, path, dtype: z.enum(['uint16', 'uint32']).optional(), csvPath: path.optional() }).strict(),
  newProject: z.object({ name: z.string().min(1).max(200).optional() }).strict().or(z.undefined()),
  openProject: z.object({ path }).strict(),
  saveProject: z.object({ path: path.optional() }).strict().or(z.undefined()),
  getProject: none,
  relocateVolume: z.object({ volumeRef: id, newPath: path }).strict(),
  updateSettings: z.object({ settings: settingsPatch }).strict(),
  listDirectory: z.object({ path: path.optional() }).strict().or(z.undefined()),
  showDialog: z
    .object({
      kind: z.enum(['open-volume', 'open-project', 'save-project', 'export-labels', 'save-snapshot', 'pick-folder']),
      title: z.string().max(200).optional(),
      defaultPath: path.optional(),
    })
    .strict(),
  systemInfo: none,
} satisfies Record<ApiMethod, z.ZodType>;

export function isApiMethod(m: unknown): m is ApiMethod {
  return typeof m === 'string' && (API_METHODS as readonly string[]).includes(m);
}

/** Validates a call; returns the parsed payload or throws ApiError('bad-request') naming the problem. */
export function validateRequest<M extends ApiMethod>(method: unknown, payload: unknown): { method: M; payload: ApiRequest<M> } {
  if (!isApiMethod(method)) throw new ApiError('bad-request', `unknown method ${JSON.stringify(method)}`);
  const schema = REQUEST_SCHEMAS[method] as z.ZodType;
  const r = schema.safeParse(payload);
  if (!r.success) {
    const issues = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(payload)'}: ${i.message}`)
      .join('; ');
    throw new ApiError('bad-request', `${method}: invalid request: ${issues}`);
  }
  return { method: method as M, payload: r.data as ApiRequest<M> };
}
