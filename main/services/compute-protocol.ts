/**
 * The compute link: what the app process (web-shell server / Electron main) and the compute process (node
 * child_process.fork, or Electron utilityProcess) say to each other. Typed by an interface in the style of
 * VS Code's ProxyChannel, not by channel strings and casts:
 * - COMPUTE_CALLS: the resident-volume service (open a file into the compute process, slices/bricks for the
 *   views, label deltas), answered at once, also while a job runs;
 * - COMPUTE_JOBS: one entry per job kind (train, densify, evaluate, batch, selftest), run one at a time.
 * Each entry has a request and a result schema; request schemas reuse the API's (main/common/api-schema.ts).
 * The child checks every request (`parseToCompute`), the parent checks every result and reply
 * (`parseJobResult`, `parseCallResult`). Jobs name volumes by id: the image lives in the compute process,
 * only label deltas travel. Typed arrays travel by structured clone ('advanced' serialization / utilityProcess).
 */
import { z } from 'zod';
import { REQUEST_SCHEMAS } from '../common/api-schema.js';
import type { NetConfig } from '../common/engine.js';
import type { TypedArray } from '../common/volume.js';

const id = z.string().min(1).max(200);
const path = z.string().min(1).max(4096);
const num = z.number().or(z.nan());
const typed = z.custom<TypedArray>((v) => ArrayBuffer.isView(v) && !(v instanceof DataView), 'expected a typed array');
const u8 = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected a Uint8Array');
const dtype = z.enum(['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64']);
const plane = z.enum(['xy', 'xz', 'yz']);
const layer = z.enum(['annotation', 'prediction']);
const shape = z.object({ x: z.number().int().positive(), y: z.number().int().positive(), z: z.number().int().positive(), c: z.number().int().positive(), t: z.number().int().positive() });
const spacing = z.object({ x: z.number(), y: z.number(), z: z.number(), unit: z.string() });
const vec3 = z.tuple([z.number().int().min(0), z.number().int().min(0), z.number().int().min(0)]);
export const BoxSchema = z.object({ min: vec3, max: vec3 });
const engineChoice = z.enum(['auto', 'native', 'tfjs']);
const device = z.enum(['cpu', 'cuda']);

const apiErrorInfo = z.object({
  code: z.string(),
  message: z.string(),
  file: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
const progress = z.object({
  fraction: z.number(),
  etaSeconds: z.number().optional(),
  stage: z.string().optional(),
  message: z.string().optional(),
  details: z.record(z.string(), z.union([z.number(), z.string(), z.undefined()])).optional(),
});

export const NetConfigSchema = z.object({
  dims: z.union([z.literal(2), z.literal(3)]),
  inChannels: z.number().int().min(1).max(64),
  numClasses: z.number().int().min(2).max(255),
  levels: z.number().int().min(1).max(8),
  baseFilters: z.number().int().min(1).max(1024),
  padding: z.enum(['valid', 'same']),
  batchNorm: z.boolean(),
  bnAtTest: z.enum(['running', 'batch']),
}) satisfies z.ZodType<NetConfig>;

// ------------------------------------------------------------------------------------------------ calls
const channelStats = z.object({ min: num, max: num, p1: num, p99: num, mean: num });

/** What the compute process knows of a file it holds (the shell builds the public VolumeInfo from it). */
export const ResidentVolumeInfo = z.object({
  volumeId: id,
  format: z.string(),
  dtype,
  shape,
  spacing,
  channelNames: z.array(z.string()),
  channelStats: z.array(channelStats),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  timepoint: z.number().int().min(0),
  metadata: z.record(z.string(), z.unknown()),
  /** an out-of-core image (big-volume.ts): the 3D level served by getBrick({ step }) */
  outOfCore: z.object({ level: z.number().int().min(0), step: z.number().int().min(1), size: vec3 }).optional(),
  /** true when the image was already resident (no file read) */
  reused: z.boolean(),
});
export type ResidentVolumeInfo = z.infer<typeof ResidentVolumeInfo>;

/** Mean voxel uncertainty (0..1) per slice of each plane (xy[z], xz[y], yz[x]) of one prediction. */
export const UncertaintyRecord = z.object({
  from: z.enum(['prediction', 'preview']),
  /** training iteration of the model that predicted it */
  iteration: z.number().int().min(0).optional(),
  /** when it was computed (ms since the epoch): the newer of prediction and preview wins */
  at: z.number(),
  perAxis: z.object({ xy: z.array(z.number()), xz: z.array(z.number()), yz: z.array(z.number()) }),
});
export type UncertaintyRecord = z.infer<typeof UncertaintyRecord>;

/** A live preview of one plane (main/common/api.ts PreviewSliceData). */
export const PreviewSlice = z.object({
  volumeId: id,
  plane,
  index: z.number().int().min(0),
  width: z.number().int().min(1),
  height: z.number().int().min(1),
  labels: u8,
  probabilities: z.custom<Float32Array>((v) => v instanceof Float32Array, 'expected a Float32Array').optional(),
  iteration: z.number().int().min(0),
  revision: z.number().int().min(0),
  modelTime: z.string(),
});
export const PreviewVolume = z.object({
  volumeId: id,
  dims: z.object({ x: z.number().int().min(1), y: z.number().int().min(1), z: z.number().int().min(1) }),
  step: z.number().int().min(1),
  labels: u8,
  iteration: z.number().int().min(0),
});
export const PreviewEventSchema = z.object({
  volumeId: id,
  plane,
  index: z.number().int().min(0),
  iteration: z.number().int().min(0),
  revision: z.number().int().min(0),
  latencyMs: z.number().min(0).optional(),
});

const sliceData = z.object({ plane, index: z.number().int(), width: z.number().int(), height: z.number().int(), channels: z.number().int(), dtype, data: typed });
const brickData = z.object({ origin: vec3, size: vec3, step: z.number().int(), channels: z.number().int(), dtype, data: typed });

export const COMPUTE_CALLS = {
  /**
   * Makes a file resident under `volumeId`. The same file (path, size, mtime, dataset, time point) or the same
   * content (`sha256`, e.g. a project's dropped file copied into its folder) already resident is reused without
   * reading it again; an image no volume refers to any more is dropped before another file is read.
   */
  openVolume: {
    request: z.object({ volumeId: id, path, timepoint: z.number().int().min(0).optional(), dataset: z.string().min(1).max(1024).optional(), sha256: z.string().optional() }).strict(),
    result: ResidentVolumeInfo,
  },
  /** Forgets the volume's layers; its image stays cached until another file is read (reopening is free). */
  closeVolume: { request: z.object({ volumeId: id }).strict(), result: z.object({ released: z.boolean() }) },
  getSlice: { request: REQUEST_SCHEMAS.getSlice, result: sliceData },
  getBrick: { request: REQUEST_SCHEMAS.getBrick, result: brickData },
  /** A label delta: the contents of `box` (x fastest; null = the whole volume) of the volume's layer. */
  setLabels: {
    request: z
      .object({
        volumeId: id,
        layer,
        box: BoxSchema.nullable(),
        data: u8,
        /** the annotation's revision after this delta (the app's editor) */
        revision: z.number().int().min(0).optional(),
        /** when the stroke that made it was painted (ms since the epoch): the live preview's latency */
        strokeAt: z.number().optional(),
      })
      .strict(),
    result: z.object({ voxels: z.number().int().min(0) }),
  },
  /**
   * The newest per-slice uncertainty of a volume's prediction (densify) or live preview, for "annotate here
   * next" (main/pipeline/suggest.ts); null when neither exists yet. A few numbers per slice, not a volume.
   */
  getUncertainty: { request: z.object({ volumeId: id }).strict(), result: UncertaintyRecord.nullable() },
  /**
   * A full-resolution slice of an out-of-core volume's prediction, read from the label store its densify wrote
   * (`path`, from the densify result: a restarted compute process opens it again).
   */
  getPredictionSlice: { request: z.object({ volumeId: id, plane, index: z.number().int().min(0), path }).strict(), result: sliceData },
  /** The planes the app's slice views show (a live session predicts them after each stroke and every few seconds). */
  setVisiblePlanes: { request: REQUEST_SCHEMAS.setVisiblePlanes, result: z.object({ planes: z.number().int().min(0) }) },
  /** The newest live preview of a plane. */
  getPreview: { request: REQUEST_SCHEMAS.getPreview, result: PreviewSlice },
  /** The coarse 3D live preview. */
  getPreviewVolume: { request: REQUEST_SCHEMAS.getPreviewVolume, result: PreviewVolume },
  /** What is resident, and how many files the process has read (tests, diagnostics). */
  resident: {
    request: z.undefined().or(z.object({}).strict()),
    result: z.object({
      reads: z.number().int(),
      images: z.array(z.object({ key: z.string(), sha256: z.string(), bytes: z.number(), volumeIds: z.array(z.string()) })),
      volumes: z.array(z.object({ volumeId: id, annotation: z.boolean(), prediction: z.boolean() })),
    }),
  },
} as const;
export type ComputeCallName = keyof typeof COMPUTE_CALLS;
export type CallRequest<M extends ComputeCallName> = z.input<(typeof COMPUTE_CALLS)[M]['request']>;
export type CallResult<M extends ComputeCallName> = z.output<(typeof COMPUTE_CALLS)[M]['result']>;
/** The resident-volume service as both sides see it: one method per call. */
export type ComputeCalls = { [M in ComputeCallName]: (req: CallRequest<M>) => Promise<CallResult<M>> };
export const COMPUTE_CALL_NAMES = Object.keys(COMPUTE_CALLS) as ComputeCallName[];

// ------------------------------------------------------------------------------------------------ jobs
const Selftest = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('sleep'), ms: z.number().int().min(0).max(600_000), steps: z.number().int().min(1).max(1000).default(10) }),
  z.object({ mode: z.literal('crash'), code: z.number().int().default(70) }),
  z.object({ mode: z.literal('echo'), data: z.unknown() }),
  z.object({ mode: z.literal('hang') }),
]);

const batchFile = z.object({ input: z.string(), output: z.string().optional(), ok: z.boolean(), error: z.string().optional(), seconds: z.number() });

export const COMPUTE_JOBS = {
  train: {
    request: z
      .object({
        modelId: id,
        modelDir: path,
        settings: REQUEST_SCHEMAS.startTraining,
        net: NetConfigSchema,
        classNames: z.array(z.string()).min(1),
        /** warm start: the model folder to continue from (and its id, for the progress) */
        resumeModelDir: path.optional(),
        resumeModelId: id.optional(),
        /** why a fresh model was started although warm starts are the default */
        freshReason: z.string().max(1000).optional(),
        /** resident volumes (with their annotation) to train on */
        volumeIds: z.array(id).min(1),
      })
      .strict(),
    result: z.object({
      iterations: z.number().int().min(0),
      finalLoss: num,
      seconds: z.number(),
      heldOutIoU: num.optional(),
      heldOutIteration: z.number().int().min(0).optional(),
      heldOutNote: z.string().max(1000).optional(),
      stopped: z.boolean(),
      startIteration: z.number().int().min(0).optional(),
      warmStartFrom: id.optional(),
      freshReason: z.string().optional(),
      /** per volume id, the annotation revision the last step trained on */
      seenRevision: z.record(z.string(), z.number().int()).optional(),
    }),
  },
  densify: {
    request: z
      .object({ volumeId: id, modelDir: path, modelId: id, keepAnnotation: z.boolean(), engine: engineChoice.optional(), device: device.optional() })
      .strict(),
    /** the prediction stays resident too (evaluate reads it there) */
    result: z.object({
      /** the dense prediction; for an out-of-core volume the prediction at its 3D level (every step-th voxel) */
      labels: u8,
      seconds: z.number(),
      /** an out-of-core volume: where the full-resolution prediction was written (an OME-Zarr label image) */
      outOfCore: z
        .object({
          path: z.string(),
          step: z.number().int().min(1),
          size: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
          /** voxels per class (index = class, 0 unused) of the whole volume */
          classVoxels: z.array(z.number().int().min(0)),
        })
        .optional(),
    }),
  },
  evaluate: {
    request: z
      .object({ volumeId: id, layer, truthPath: path.optional(), truthDataset: z.string().optional(), binarizeTruth: z.boolean().optional() })
      .strict(),
    result: z.object({ volumeId: id, iou: z.array(num), meanIoU: num, voxels: z.number().int().min(0) }),
  },
  batch: {
    request: REQUEST_SCHEMAS.startBatch.omit({ modelId: true, format: true }).extend({ modelDir: path, modelId: id, format: z.enum(['tiff', 'ome-tiff']), device: device.optional() }).strict(),
    result: z.object({ files: z.array(batchFile), report: z.string() }),
  },
  selftest: { request: Selftest, result: z.unknown() },
} as const;
export type ComputeJobKind = keyof typeof COMPUTE_JOBS;
export const ComputeJobKind = z.enum(Object.keys(COMPUTE_JOBS) as [ComputeJobKind, ...ComputeJobKind[]]);
export type JobRequest<K extends ComputeJobKind> = z.input<(typeof COMPUTE_JOBS)[K]['request']>;
export type ParsedJobRequest<K extends ComputeJobKind> = z.output<(typeof COMPUTE_JOBS)[K]['request']>;
export type JobResult<K extends ComputeJobKind> = z.output<(typeof COMPUTE_JOBS)[K]['result']>;

// ------------------------------------------------------------------------------------------------ messages
const Envelope = z.discriminatedUnion('type', [
  z.object({ type: z.literal('start'), jobId: id, kind: ComputeJobKind, payload: z.unknown() }),
  z.object({ type: z.literal('call'), callId: z.number().int(), method: z.enum(Object.keys(COMPUTE_CALLS) as [ComputeCallName, ...ComputeCallName[]]), payload: z.unknown() }),
  z.object({ type: z.literal('cancel'), jobId: id }),
  /** graceful stop: finish the current iteration and return what was trained so far */
  z.object({ type: z.literal('stop'), jobId: id }),
  z.object({ type: z.literal('info') }),
]);

/** A start message of one job kind, its payload checked against that kind's request schema. */
export type StartMessage = { [K in ComputeJobKind]: { type: 'start'; jobId: string; kind: K; payload: ParsedJobRequest<K> } }[ComputeJobKind];
/** A call message, its payload checked against that call's request schema. */
export type CallMessage = { [M in ComputeCallName]: { type: 'call'; callId: number; method: M; payload: z.output<(typeof COMPUTE_CALLS)[M]['request']> } }[ComputeCallName];
export type ToCompute = StartMessage | CallMessage | { type: 'cancel'; jobId: string } | { type: 'stop'; jobId: string } | { type: 'info' };

/** What the parent sends (typed by kind / method at compile time). */
export type ToComputeOut =
  | { [K in ComputeJobKind]: { type: 'start'; jobId: string; kind: K; payload: JobRequest<K> } }[ComputeJobKind]
  | { [M in ComputeCallName]: { type: 'call'; callId: number; method: M; payload: CallRequest<M> } }[ComputeCallName]
  | { type: 'cancel'; jobId: string }
  | { type: 'stop'; jobId: string }
  | { type: 'info' };

const issues = (e: z.ZodError) =>
  e.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(payload)'}: ${i.message}`)
    .join('; ');

/**
 * The child's check of an incoming message: the envelope, then the payload against its kind's or method's
 * schema. Returns the typed message or a description of what is wrong (with the job/call it belongs to).
 */
export function parseToCompute(raw: unknown): { ok: true; msg: ToCompute } | { ok: false; message: string; jobId?: string; callId?: number } {
  const env = Envelope.safeParse(raw);
  if (!env.success) return { ok: false, message: issues(env.error) };
  const m = env.data;
  if (m.type === 'start') {
    const p = COMPUTE_JOBS[m.kind].request.safeParse(m.payload);
    if (!p.success) return { ok: false, jobId: m.jobId, message: `${m.kind} job: invalid request: ${issues(p.error)}` };
    return { ok: true, msg: { type: 'start', jobId: m.jobId, kind: m.kind, payload: p.data } as StartMessage };
  }
  if (m.type === 'call') {
    const p = COMPUTE_CALLS[m.method].request.safeParse(m.payload);
    if (!p.success) return { ok: false, callId: m.callId, message: `${m.method}: invalid request: ${issues(p.error)}` };
    return { ok: true, msg: { type: 'call', callId: m.callId, method: m.method, payload: p.data } as CallMessage };
  }
  return { ok: true, msg: m };
}

/** The parent's check of a job's result against its kind's result schema. */
type Checker<T> = (raw: unknown) => z.ZodSafeParseResult<T>;
const JOB_RESULTS: { [K in ComputeJobKind]: Checker<JobResult<K>> } = {
  train: (raw) => COMPUTE_JOBS.train.result.safeParse(raw),
  densify: (raw) => COMPUTE_JOBS.densify.result.safeParse(raw),
  evaluate: (raw) => COMPUTE_JOBS.evaluate.result.safeParse(raw),
  batch: (raw) => COMPUTE_JOBS.batch.result.safeParse(raw),
  selftest: (raw) => COMPUTE_JOBS.selftest.result.safeParse(raw),
};
const CALL_RESULTS: { [M in ComputeCallName]: Checker<CallResult<M>> } = {
  openVolume: (raw) => COMPUTE_CALLS.openVolume.result.safeParse(raw),
  closeVolume: (raw) => COMPUTE_CALLS.closeVolume.result.safeParse(raw),
  getSlice: (raw) => COMPUTE_CALLS.getSlice.result.safeParse(raw),
  getBrick: (raw) => COMPUTE_CALLS.getBrick.result.safeParse(raw),
  setLabels: (raw) => COMPUTE_CALLS.setLabels.result.safeParse(raw),
  getUncertainty: (raw) => COMPUTE_CALLS.getUncertainty.result.safeParse(raw),
  getPredictionSlice: (raw) => COMPUTE_CALLS.getPredictionSlice.result.safeParse(raw),
  resident: (raw) => COMPUTE_CALLS.resident.result.safeParse(raw),
  setVisiblePlanes: (raw) => COMPUTE_CALLS.setVisiblePlanes.result.safeParse(raw),
  getPreview: (raw) => COMPUTE_CALLS.getPreview.result.safeParse(raw),
  getPreviewVolume: (raw) => COMPUTE_CALLS.getPreviewVolume.result.safeParse(raw),
};

export function parseJobResult<K extends ComputeJobKind>(kind: K, raw: unknown): { ok: true; value: JobResult<K> } | { ok: false; message: string } {
  const r = JOB_RESULTS[kind](raw);
  return r.success ? { ok: true, value: r.data } : { ok: false, message: `the compute process answered a ${kind} job with an invalid result: ${issues(r.error)}` };
}

/** The parent's check of a call's reply against its method's result schema. */
export function parseCallResult<M extends ComputeCallName>(method: M, raw: unknown): { ok: true; value: CallResult<M> } | { ok: false; message: string } {
  const r = CALL_RESULTS[method](raw);
  return r.success ? { ok: true, value: r.data } : { ok: false, message: `the compute process answered ${method} with an invalid result: ${issues(r.error)}` };
}

export const ComputeInfo = z.object({
  engine: z
    .object({ name: z.enum(['native', 'tfjs']), version: z.string(), devices: z.array(z.enum(['cpu', 'cuda'])), backend: z.string().optional(), threads: z.number().optional() })
    .nullable(),
  engineError: z.string().optional(),
  features: z.record(z.string(), z.boolean()),
  pid: z.number(),
});
export type ComputeInfo = z.infer<typeof ComputeInfo>;

export const FromCompute = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), pid: z.number() }),
  z.object({ type: z.literal('info'), info: ComputeInfo }),
  z.object({ type: z.literal('progress'), jobId: z.string(), progress }),
  /** checked against the job kind's result schema by the parent (parseJobResult) */
  z.object({ type: z.literal('done'), jobId: z.string(), result: z.unknown() }),
  z.object({ type: z.literal('failed'), jobId: z.string(), error: apiErrorInfo }),
  /** progress of a call (reading a file) */
  z.object({ type: z.literal('call-progress'), callId: z.number().int(), progress }),
  /** checked against the method's result schema by the parent (parseCallResult) */
  z.object({ type: z.literal('reply'), callId: z.number().int(), ok: z.boolean(), value: z.unknown().optional(), error: apiErrorInfo.optional() }),
  /** a live session predicted a visible plane (main/common/api.ts PreviewEvent) */
  z.object({ type: z.literal('preview'), event: PreviewEventSchema }),
  /** the child could not parse a message it was sent */
  z.object({ type: z.literal('protocol-error'), message: z.string() }),
]);
export type FromCompute = z.infer<typeof FromCompute>;
