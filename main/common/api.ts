/**
 * The API contract between the UI (renderer) and the app (Electron main / web shell server).
 *
 * Everything the UI may ask is a method of `SliceformApi` (returns a Promise) or an `onX(cb)` event
 * subscription (returns an unsubscribe function). The renderer finds it as `window.sliceform`:
 * installed by the Electron preload (IPC) or by renderer/src/api-client.ts (WebSocket, web shell).
 * Pure types + a few pure helpers: no Node, no DOM, no Electron.
 *
 * Bulk data (slices, bricks, label volumes, PNG/file bytes) always travels as typed arrays: binary frames
 * over the WebSocket, structured clone over Electron IPC — never JSON number arrays.
 *
 * Coordinates: voxel indices, x fastest (see volume.ts). Slice planes and their 2D layout:
 *   plane 'xy' at z = index: width = X (u = x), height = Y (v = y)
 *   plane 'xz' at y = index: width = X (u = x), height = Z (v = z)
 *   plane 'yz' at x = index: width = Y (u = y), height = Z (v = z)
 * 2D arrays are row-major with u fastest: i = v * width + u.
 *
 * Labels: 0 = unannotated, 1..K = classes (class 1 conventionally background). Two layers per volume:
 * 'annotation' (what the user painted, sparse) and 'prediction' (the last densify result, dense).
 */
import type { DType, Shape, Spacing, TypedArray } from './volume.js';
import type { EngineInfo, Device, PresetName } from './engine.js';
import type { Progress } from './progress.js';

export type Plane = 'xy' | 'xz' | 'yz';
export type LabelLayer = 'annotation' | 'prediction';

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * Error codes a call may reject with (`ApiError.code`). The UI branches on `code`, shows `message`.
 * - bad-request: the payload failed schema validation (names the field)
 * - bad-input / unsupported / too-large: the file is unreadable / not supported / too big (names the file)
 * - not-found: unknown volume / job / model id or missing file
 * - not-available: the feature needs a part that is not installed or built yet (message says which)
 * - volume-moved: a project's volume is not at its recorded path; `details` = VolumeMovedDetails;
 *   answer with `relocateVolume`
 * - cancelled, engine, internal: as in errors.ts
 * - compute-crashed: the compute process died during the job; it has been restarted
 * - unauthorized: missing or wrong session token (web shell)
 * - busy: a conflicting job is running (e.g. a second training on the same volume)
 */
export type ApiErrorCode =
  | 'bad-request'
  | 'bad-input'
  | 'unsupported'
  | 'too-large'
  | 'not-found'
  | 'not-available'
  | 'volume-moved'
  | 'cancelled'
  | 'engine'
  | 'internal'
  | 'compute-crashed'
  | 'unauthorized'
  | 'busy';

/** Serialisable form of an error (what crosses a process boundary). */
export interface ApiErrorInfo {
  code: ApiErrorCode;
  message: string;
  file?: string;
  details?: Record<string, unknown>;
}

export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly file?: string;
  readonly details?: Record<string, unknown>;
  constructor(code: ApiErrorCode, message: string, options?: { file?: string; details?: Record<string, unknown> }) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.file = options?.file;
    this.details = options?.details;
  }
  toInfo(): ApiErrorInfo {
    return { code: this.code, message: this.message, file: this.file, details: this.details };
  }
  static from(info: ApiErrorInfo): ApiError {
    return new ApiError(info.code, info.message, { file: info.file, details: info.details });
  }
}

export interface VolumeMovedDetails {
  volumeRef: string;
  expectedPath: string;
  sha256: string;
  name: string;
}

// ---------------------------------------------------------------------------------------------
// Volumes and data
// ---------------------------------------------------------------------------------------------

export interface ChannelStats {
  min: number;
  max: number;
  /** 1st / 99th percentile (for automatic window/level) */
  p1: number;
  p99: number;
  mean: number;
}

export interface VolumeInfo {
  /** session id of the open volume (also its key in the project) */
  id: string;
  name: string;
  /** file path, or the dropped file's name */
  source: string;
  format: string;
  dtype: DType;
  shape: Shape;
  spacing: Spacing;
  channelNames: string[];
  channelStats: ChannelStats[];
  /** sha256 of the source file bytes */
  sha256: string;
  timepoint: number;
  metadata: Record<string, unknown>;
  /**
   * Set when the volume is open out of core (its voxels exceed the in-memory limit, docs/app.md): slices are
   * read from the file on demand at full resolution, the 3D view uses the downsampled level (getBrick with
   * `step`, `size` voxels [x, y, z]), the annotation is stored sparsely. Training and densify refuse it.
   */
  outOfCore?: { level: number; step: number; size: [number, number, number] };
}

export interface OpenVolumeRequest {
  path: string;
  /** time point for 5D files (default 0) */
  timepoint?: number;
  /** HDF5: dataset path (default: the first 3D/4D image dataset, preferring `raw`) */
  dataset?: string;
}

export interface OpenVolumeBytesRequest {
  /** file name incl. extension (picks the reader) */
  name: string;
  bytes: Uint8Array;
  timepoint?: number;
}

export interface SliceRequest {
  volumeId: string;
  plane: Plane;
  index: number;
  /** one channel; omitted = all channels, channel-planar */
  channel?: number;
}

export interface SliceData {
  plane: Plane;
  index: number;
  width: number;
  height: number;
  /** number of channels in `data` */
  channels: number;
  dtype: DType;
  /** channels * height * width values, channel-planar, u fastest */
  data: TypedArray;
}

export interface BrickRequest {
  volumeId: string;
  /** voxel origin (inclusive) and size; omitted = whole volume */
  origin?: [number, number, number];
  size?: [number, number, number];
  /** take every step-th voxel along each axis (downsampled preview for 3D), default 1 */
  step?: number;
  channel?: number;
}

export interface BrickData {
  origin: [number, number, number];
  /** [x, y, z] size of the returned data (after step) */
  size: [number, number, number];
  step: number;
  channels: number;
  dtype: DType;
  /** channel-planar, x fastest */
  data: TypedArray;
}

// ---------------------------------------------------------------------------------------------
// Annotation
// ---------------------------------------------------------------------------------------------

export interface LabelClass {
  /** 1..255 */
  id: number;
  name: string;
  /** CSS colour '#rrggbb' */
  color: string;
}

/** A brush stroke rasterised by the server along a polyline on one slice. */
export interface StrokeEdit {
  volumeId: string;
  plane: Plane;
  /** slice index along the plane's normal */
  index: number;
  /** 0 = erase (back to unannotated) */
  classId: number;
  /** brush radius in voxels (in-plane); 0 paints single voxels */
  radius: number;
  /** 'disc' paints this slice only (default); 'sphere' paints a ball across neighbouring slices */
  brush?: 'disc' | 'sphere';
  /** [u, v] points in plane coordinates (see header); consecutive points are joined */
  points: Array<[number, number]>;
}

/** A region painted by the UI itself (e.g. vtk.js paint filter output): a 2D mask on one slice. */
export interface RegionEdit {
  volumeId: string;
  plane: Plane;
  index: number;
  classId: number;
  /** top-left [u, v] of the mask in plane coordinates */
  origin: [number, number];
  width: number;
  height: number;
  /** width*height, non-zero = set to classId */
  mask: Uint8Array;
}

/** Where an edit changed voxels: [x0, y0, z0] inclusive to [x1, y1, z1] exclusive. */
export interface Box {
  min: [number, number, number];
  max: [number, number, number];
}

export interface EditResult {
  volumeId: string;
  /** voxels whose label changed (0 when the edit was a no-op) */
  changed: number;
  box: Box | null;
  canUndo: boolean;
  canRedo: boolean;
  /** the volume's annotation revision after the edit (bumps with every change; compare TrainProgress.seenRevision) */
  revision: number;
}

export interface AnnotationSummary {
  volumeId: string;
  /** slice indices that carry any annotation, per plane (sorted) */
  paintedSlices: Record<Plane, number[]>;
  /** annotated voxels per class id (index = class id; [0] = unannotated voxels) */
  classVoxels: number[];
  canUndo: boolean;
  canRedo: boolean;
  /** the volume's current annotation revision (see EditResult.revision) */
  revision: number;
}

export interface LabelSliceRequest {
  volumeId: string;
  layer: LabelLayer;
  plane: Plane;
  index: number;
}

export interface LabelSliceData {
  plane: Plane;
  index: number;
  width: number;
  height: number;
  data: Uint8Array;
}

export interface LabelVolumeData {
  volumeId: string;
  layer: LabelLayer;
  /** [x, y, z] */
  size: [number, number, number];
  /** x fastest; empty layer (never densified) -> all zeros */
  data: Uint8Array;
  /** out-of-core volumes: the layer at the 3D level, every `step`-th voxel (size is that level's) */
  step?: number;
}

// ---------------------------------------------------------------------------------------------
// Jobs: training, densify, evaluate, batch
// ---------------------------------------------------------------------------------------------

export type JobKind = 'train' | 'densify' | 'evaluate' | 'batch';
export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface JobInfo {
  id: string;
  kind: JobKind;
  state: JobState;
  /** volume the job works on (train/densify/evaluate) */
  volumeId?: string;
  progress: Progress;
  startedAt: string;
  finishedAt?: string;
  /** set when state = 'done': TrainResult | DensifyResult | EvaluateResult | BatchResult */
  result?: unknown;
  error?: ApiErrorInfo;
}

export interface JobRef {
  jobId: string;
}

export interface TrainSettings {
  /** volumes whose annotations are used (default: all open volumes with annotations) */
  volumeIds?: string[];
  preset: PresetName;
  /** stop after this wall time ... */
  minutes?: number;
  /** ... or this many iterations, whichever comes first (at least one of the two is required unless `live`) */
  iterations?: number;
  /**
   * a live session: trains until stopped (minutes/iterations, when given, still end it), picks up annotation
   * deltas within one step and predicts the visible planes (setVisiblePlanes) after each stroke and every few steps
   */
  live?: boolean;
  /**
   * start a new model; default: continue (warm start) from the newest compatible model of the project (same
   * classes, channels and preset), falling back to a fresh one with a reason (TrainProgress/TrainResult.freshReason)
   */
  fresh?: boolean;
  /** continue from this model instead of a fresh one */
  resumeModelId?: string;
  learningRate?: number;
  /** fraction of annotated slices held out for validation IoU (default 0.1; 0 disables) */
  heldOutFraction?: number;
  seed?: number;
  device?: Device;
  engine?: 'auto' | 'native' | 'tfjs';
}

export interface TrainProgress {
  jobId: string;
  iteration: number;
  totalIterations?: number;
  loss: number;
  voxelsPerSecond: number;
  etaSeconds?: number;
  elapsedSeconds: number;
  /** 0..1 */
  fraction: number;
  /** latest held-out IoU (mean over foreground classes), when measured */
  heldOutIoU?: number;
  /**
   * the iteration whose model the held-out IoU was measured on: the recipe's estimate scores held-out paint at
   * half the budget, then trains on it too, so the final model is usually better (a conservative estimate)
   */
  heldOutIteration?: number;
  /** why there is no held-out estimate (e.g. paint on fewer than 3 planes), once that is known */
  heldOutNote?: string;
  /** per volumeId, the annotation revision the sampler has used (live sessions; compare EditResult.revision) */
  seenRevision?: Record<string, number>;
  /** iteration count the session continued from (0 for a fresh model) */
  startIteration?: number;
  /** the model id the session was warm-started from */
  warmStartFrom?: string;
  /** why a fresh model was started although a warm start was the default */
  freshReason?: string;
}

export interface ModelInfo {
  id: string;
  name: string;
  preset: PresetName | 'custom';
  createdAt: string;
  iterations: number;
  numClasses: number;
  inChannels: number;
  heldOutIoU?: number;
  /** where the model folder lives (project models/ or a user folder) */
  path: string;
}

export interface TrainResult {
  model: ModelInfo;
  /** total iterations of the model (including those it was warm-started from) */
  iterations: number;
  finalLoss: number;
  seconds: number;
  heldOutIoU?: number;
  /** see TrainProgress.heldOutIteration / heldOutNote */
  heldOutIteration?: number;
  heldOutNote?: string;
  /** iteration count it continued from (0 for a fresh model) */
  startIteration?: number;
  warmStartFrom?: string;
  freshReason?: string;
  /** per volumeId, the annotation revision the last training step used */
  seenRevision?: Record<string, number>;
}

// ---------------------------------------------------------------------------------------------
// Live preview (live training sessions) and suggestions
// ---------------------------------------------------------------------------------------------

export interface VisiblePlanesRequest {
  volumeId: string;
  /** what the slice views show (at most one entry per plane is useful; up to 6 are accepted) */
  planes: { plane: Plane; index: number }[];
}

export interface PreviewRequest {
  volumeId: string;
  plane: Plane;
  index: number;
}

/** The live session's prediction of one visible plane with the newest weights (not the densified result). */
export interface PreviewSliceData {
  volumeId: string;
  plane: Plane;
  index: number;
  width: number;
  height: number;
  /** class id per pixel (1..K; 0 = none), u fastest */
  labels: Uint8Array;
  /** K x pixels, class-planar (optional) */
  probabilities?: Float32Array;
  /** training iteration of the weights that predicted it */
  iteration: number;
  /** annotation revision the weights had seen when it was predicted */
  revision: number;
  /** ISO time of the prediction */
  modelTime: string;
}

/** Coarse 3D preview: labels of every step-th voxel along each axis. */
export interface PreviewVolumeData {
  volumeId: string;
  /** size of `labels` (after step) */
  dims: { x: number; y: number; z: number };
  step: number;
  labels: Uint8Array;
  iteration: number;
}

export interface PreviewEvent {
  volumeId: string;
  plane: Plane;
  index: number;
  iteration: number;
  revision: number;
  /** stroke -> preview (ms) when the preview was triggered by a stroke */
  latencyMs?: number;
}

/** "Annotate here next": per-slice uncertainty and the best slices to paint. */
export interface SliceSuggestions {
  volumeId: string;
  from: 'prediction' | 'preview';
  iteration?: number;
  /** uncertainty score per slice index, 0..1 normalised */
  perAxis: { xy: number[]; xz: number[]; yz: number[] };
  /** best first, already-painted slices excluded, at most 10 */
  ranked: { plane: Plane; index: number; score: number }[];
}

export interface DensifyRequest {
  volumeId: string;
  /** default: the most recent model */
  modelId?: string;
  /**
   * write the user's annotation over the network output in the stored prediction layer (default false: the layer
   * holds the network output, so `evaluate` measures the network; 'merged' exports combine both anyway)
   */
  keepAnnotation?: boolean;
}

export interface DensifyResult {
  volumeId: string;
  modelId: string;
  /** the model it used (name, iterations, when it was trained): a densify during a training uses an older one */
  model?: ModelInfo;
  /** predicted voxels per class id (index = class id) */
  classVoxels: number[];
  seconds: number;
  /** an out-of-core volume: the OME-Zarr label image the full-resolution prediction was written to */
  out?: string;
}

export interface EvaluateRequest {
  volumeId: string;
  /** compare this layer ... */
  layer?: LabelLayer;
  /** ... against a ground-truth label file (default: against the annotation, on annotated voxels only) */
  truthPath?: string;
  /** HDF5 dataset of the ground truth (e.g. 'label') */
  truthDataset?: string;
  /** ground truth values > 0 -> this class, 0 -> background class 1 (binary truth), default off */
  binarizeTruth?: boolean;
}

export interface EvaluateResult {
  volumeId: string;
  /** IoU per class id (index = class id, [0] unused = NaN) */
  iou: number[];
  meanIoU: number;
  voxels: number;
}

export interface BatchRequest {
  modelId: string;
  inputDir: string;
  outputDir: string;
  format?: 'tiff' | 'ome-tiff';
}

export interface BatchFileResult {
  input: string;
  output?: string;
  ok: boolean;
  error?: string;
  seconds: number;
}

export interface BatchResult {
  files: BatchFileResult[];
  /** path of the JSON report written into outputDir */
  report: string;
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

export interface ExportLabelsRequest {
  volumeId: string;
  /** 'merged' = prediction with the annotation painted over it */
  layer: LabelLayer | 'merged';
  path: string;
  /** 'ome-zarr': an OME-Zarr label image (a folder); for an out-of-core volume only its painted chunks are written */
  format: 'tiff' | 'ome-tiff' | 'ome-zarr';
}

export interface ExportResult {
  path: string;
  bytes: number;
}

export interface SaveSnapshotRequest {
  path: string;
  /** PNG bytes (e.g. from canvas.toBlob) */
  png: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------------------------

export interface ProjectVolumeRef {
  /** id inside the project (= VolumeInfo.id when open) */
  id: string;
  name: string;
  path: string;
  sha256: string;
  shape: Shape;
  /** HDF5 dataset, when not the default */
  dataset?: string;
}

export interface ProjectSettings {
  classes: LabelClass[];
  /** last training settings, for the panel's defaults */
  training?: TrainSettings;
  /** autosave interval in minutes (0 = off), default 2 */
  autosaveMinutes: number;
  /** free-form UI state the renderer wants to keep (layout, window/level, ...) */
  ui?: Record<string, unknown>;
}

export interface ProjectMetric {
  at: string;
  kind: string;
  values: Record<string, number>;
}

export interface ProjectInfo {
  /** project folder, null for an unsaved project */
  path: string | null;
  name: string;
  dirty: boolean;
  lastSavedAt?: string;
  volumes: ProjectVolumeRef[];
  models: ModelInfo[];
  settings: ProjectSettings;
  metrics: ProjectMetric[];
  /**
   * (getProject) a never-saved project autosaved by an earlier session that ended without saving:
   * offer to restore it with openProject({ path: recoveryPath }).
   */
  recoveryPath?: string;
}

export interface RelocateVolumeRequest {
  volumeRef: string;
  newPath: string;
}

// ---------------------------------------------------------------------------------------------
// Files, system, events
// ---------------------------------------------------------------------------------------------

export interface DirEntry {
  name: string;
  path: string;
  kind: 'file' | 'dir';
  bytes?: number;
}

export interface DialogRequest {
  kind: 'open-volume' | 'open-project' | 'save-project' | 'export-labels' | 'save-snapshot' | 'pick-folder';
  title?: string;
  defaultPath?: string;
}

export interface SystemInfo {
  version: string;
  shell: 'electron' | 'web';
  platform: string;
  arch: string;
  cpus: number;
  memoryBytes: number;
  /** engine of the compute process; null when it could not load (see engineError) */
  engine: EngineInfo | null;
  engineError?: string;
  device: Device;
  threads: number;
  /** which optional parts are available ('io', 'training', 'inference', 'export') */
  features: Record<string, boolean>;
}

export interface LabelsChangedEvent {
  volumeId: string;
  layer: LabelLayer;
  /** null = whole volume */
  box: Box | null;
  cause: 'edit' | 'undo' | 'redo' | 'densify' | 'load' | 'clear';
}

export interface ComputeStatusEvent {
  state: 'starting' | 'ready' | 'crashed' | 'restarting' | 'stopped';
  message?: string;
  /** job ids that were lost with the crash */
  lostJobs?: string[];
}

/** Reading progress of a volume being opened (openVolume / openVolumeBytes / project open). */
export interface VolumeProgressEvent {
  /** the path or dropped file name being read */
  source: string;
  progress: Progress;
}

export interface ProjectEvent {
  kind: 'opened' | 'saved' | 'autosaved' | 'changed' | 'volume-moved' | 'save-failed';
  project: ProjectInfo;
  message?: string;
  moved?: VolumeMovedDetails;
}

/** Application menu commands forwarded to the UI (Electron; the web shell never emits them). */
export type MenuCommand =
  | 'open-volume'
  | 'open-project'
  | 'save-project'
  | 'save-project-as'
  | 'export-labels'
  | 'save-snapshot'
  | 'undo'
  | 'redo'
  | 'train'
  | 'densify';

// ---------------------------------------------------------------------------------------------
// Objects: instances of the prediction layer (main/objects, docs/objects.md)
// ---------------------------------------------------------------------------------------------

export interface ObjectsRequest {
  volumeId: string;
  /** distance (default): split touching objects by a watershed on the distance transform; none: connected components */
  split?: 'distance' | 'none';
  /** seeds closer than this (µm) are one object */
  minSeparationUm?: number;
  /** drop objects smaller than this (µm³) */
  minSizeUm3?: number;
  /** membrane class: objects are the regions it encloses */
  boundaryClass?: number;
}

/** One object of the table (the CLI's CSV row without intensities). */
export interface ObjectRowInfo {
  id: number;
  class: number;
  voxels: number;
  volumeUm3: number;
  /** centroid in voxel indices (rounded): where "jump to object" puts the crosshair */
  centroid: [number, number, number];
  centroidUm: [number, number, number];
  /** bounding box in voxels, [x0, y0, z0, x1, y1, z1], end exclusive */
  bbox: [number, number, number, number, number, number];
  equivalentDiameterUm: number;
  sphericity: number;
}

export interface ObjectsTable {
  volumeId: string;
  count: number;
  objects: ObjectRowInfo[];
  /** increases with every change (compute, merge, split, undo) */
  revision: number;
  /** merge/split steps that undoObjects can take back */
  undoDepth: number;
}

export interface ObjectSliceData {
  plane: Plane;
  index: number;
  width: number;
  height: number;
  /** object id per pixel (0 = none) */
  ids: Uint32Array;
}

export interface ObjectVolumeData {
  size: [number, number, number];
  ids: Uint32Array;
}

export interface SplitObjectRequest {
  volumeId: string;
  plane: Plane;
  index: number;
  /** a line in slice coordinates (u, v): the object under it is cut by the plane through the line, normal to the slice */
  line: [[number, number], [number, number]];
}

export interface ExportObjectsRequest {
  volumeId: string;
  /** instance labels, ImageJ TIFF */
  path: string;
  dtype?: 'uint16' | 'uint32';
  /** also the per-object table as CSV */
  csvPath?: string;
}

export type Unsubscribe = () => void;

// ---------------------------------------------------------------------------------------------
// The interface
// ---------------------------------------------------------------------------------------------

export interface SliceformApi {
  // volumes
  openVolume(req: OpenVolumeRequest): Promise<VolumeInfo>;
  openVolumeBytes(req: OpenVolumeBytesRequest): Promise<VolumeInfo>;
  listVolumes(): Promise<VolumeInfo[]>;
  closeVolume(req: { volumeId: string }): Promise<void>;
  getSlice(req: SliceRequest): Promise<SliceData>;
  getBrick(req: BrickRequest): Promise<BrickData>;

  // annotation
  getClasses(): Promise<LabelClass[]>;
  setClasses(req: { classes: LabelClass[] }): Promise<LabelClass[]>;
  paintStroke(req: StrokeEdit): Promise<EditResult>;
  paintRegion(req: RegionEdit): Promise<EditResult>;
  undo(req: { volumeId: string }): Promise<EditResult>;
  redo(req: { volumeId: string }): Promise<EditResult>;
  /** erase the whole annotation layer of a volume (one undoable edit) */
  clearAnnotation(req: { volumeId: string }): Promise<EditResult>;
  getAnnotationSummary(req: { volumeId: string }): Promise<AnnotationSummary>;
  getLabelSlice(req: LabelSliceRequest): Promise<LabelSliceData>;
  getLabelVolume(req: { volumeId: string; layer: LabelLayer }): Promise<LabelVolumeData>;

  // jobs
  startTraining(req: TrainSettings): Promise<JobRef>;
  /** stops the training job gracefully: the model trained so far is kept (result of the job) */
  stopTraining(req: JobRef): Promise<void>;
  densify(req: DensifyRequest): Promise<JobRef>;
  evaluate(req: EvaluateRequest): Promise<JobRef>;
  startBatch(req: BatchRequest): Promise<JobRef>;
  cancelJob(req: JobRef): Promise<void>;
  getJob(req: JobRef): Promise<JobInfo>;
  listJobs(): Promise<JobInfo[]>;
  /** resolves when the job leaves queued/running (with its final JobInfo; never rejects for a failed job) */
  waitJob(req: JobRef & { timeoutMs?: number }): Promise<JobInfo>;
  listModels(): Promise<ModelInfo[]>;

  // live session: preview of the visible planes, suggestions
  /** what the three slice views show: a live session predicts these planes after each stroke and every few steps */
  setVisiblePlanes(req: VisiblePlanesRequest): Promise<void>;
  /** the newest preview of a plane ('not-found' when there is none yet) */
  getPreview(req: PreviewRequest): Promise<PreviewSliceData>;
  /** a coarse 3D preview ('not-found' when there is none yet) */
  getPreviewVolume(req: { volumeId: string }): Promise<PreviewVolumeData>;
  /** per-slice uncertainty and the best slices to annotate next */
  getSuggestions(req: { volumeId: string }): Promise<SliceSuggestions>;

  // export
  exportLabels(req: ExportLabelsRequest): Promise<ExportResult>;
  saveSnapshot(req: SaveSnapshotRequest): Promise<ExportResult>;

  // objects (instances of the prediction layer; merge/split have their own undo)
  computeObjects(req: ObjectsRequest): Promise<ObjectsTable>;
  getObjects(req: { volumeId: string }): Promise<ObjectsTable>;
  getObjectSlice(req: { volumeId: string; plane: Plane; index: number }): Promise<ObjectSliceData>;
  getObjectVolume(req: { volumeId: string }): Promise<ObjectVolumeData>;
  mergeObjects(req: { volumeId: string; ids: number[] }): Promise<ObjectsTable>;
  splitObject(req: SplitObjectRequest): Promise<ObjectsTable>;
  undoObjects(req: { volumeId: string }): Promise<ObjectsTable>;
  exportObjects(req: ExportObjectsRequest): Promise<ExportResult>;

  // projects
  newProject(req: { name?: string }): Promise<ProjectInfo>;
  openProject(req: { path: string }): Promise<ProjectInfo>;
  /** path omitted = save to the current folder (error bad-request for a never-saved project) */
  saveProject(req: { path?: string }): Promise<ProjectInfo>;
  getProject(): Promise<ProjectInfo>;
  relocateVolume(req: RelocateVolumeRequest): Promise<ProjectInfo>;
  updateSettings(req: { settings: Partial<ProjectSettings> }): Promise<ProjectInfo>;

  // files and system
  listDirectory(req: { path?: string }): Promise<{ path: string; entries: DirEntry[] }>;
  /** native dialog (Electron); the web shell answers null and the UI falls back to listDirectory */
  showDialog(req: DialogRequest): Promise<string | null>;
  systemInfo(): Promise<SystemInfo>;

  // events
  onJob(cb: (job: JobInfo) => void): Unsubscribe;
  onTrainProgress(cb: (p: TrainProgress) => void): Unsubscribe;
  onLabelsChanged(cb: (e: LabelsChangedEvent) => void): Unsubscribe;
  onProject(cb: (e: ProjectEvent) => void): Unsubscribe;
  onCompute(cb: (e: ComputeStatusEvent) => void): Unsubscribe;
  onMenu(cb: (cmd: MenuCommand) => void): Unsubscribe;
  onVolumeProgress(cb: (e: VolumeProgressEvent) => void): Unsubscribe;
  /** a live session predicted a visible plane (fetch it with getPreview) */
  onPreview(cb: (e: PreviewEvent) => void): Unsubscribe;

  /**
   * Electron only, synchronous and local to the preload: the filesystem path of a dropped DOM File
   * (webUtils.getPathForFile). Absent in the web shell: read the File's bytes and use openVolumeBytes.
   */
  getPathForFile?: (file: unknown) => string;
}

/** Method names (request/response calls) — the allow-list both transports use. */
export const API_METHODS = [
  'openVolume',
  'openVolumeBytes',
  'listVolumes',
  'closeVolume',
  'getSlice',
  'getBrick',
  'getClasses',
  'setClasses',
  'paintStroke',
  'paintRegion',
  'undo',
  'redo',
  'clearAnnotation',
  'getAnnotationSummary',
  'getLabelSlice',
  'getLabelVolume',
  'startTraining',
  'stopTraining',
  'densify',
  'evaluate',
  'startBatch',
  'cancelJob',
  'getJob',
  'listJobs',
  'waitJob',
  'listModels',
  'setVisiblePlanes',
  'getPreview',
  'getPreviewVolume',
  'getSuggestions',
  'exportLabels',
  'saveSnapshot',
  'computeObjects',
  'getObjects',
  'getObjectSlice',
  'getObjectVolume',
  'mergeObjects',
  'splitObject',
  'undoObjects',
  'exportObjects',
  'newProject',
  'openProject',
  'saveProject',
  'getProject',
  'relocateVolume',
  'updateSettings',
  'listDirectory',
  'showDialog',
  'systemInfo',
] as const satisfies ReadonlyArray<keyof SliceformApi>;

export type ApiMethod = (typeof API_METHODS)[number];

/** Event names: `onJob` is delivered on channel 'job', etc. */
export const API_EVENTS = {
  onJob: 'job',
  onTrainProgress: 'trainProgress',
  onLabelsChanged: 'labelsChanged',
  onProject: 'project',
  onCompute: 'compute',
  onMenu: 'menu',
  onVolumeProgress: 'volumeProgress',
  onPreview: 'preview',
} as const;

export type ApiEventMethod = keyof typeof API_EVENTS;
export type ApiEventName = (typeof API_EVENTS)[ApiEventMethod];

/** Payload type of each event channel. */
export interface ApiEventPayloads {
  job: JobInfo;
  trainProgress: TrainProgress;
  labelsChanged: LabelsChangedEvent;
  project: ProjectEvent;
  compute: ComputeStatusEvent;
  menu: MenuCommand;
  volumeProgress: VolumeProgressEvent;
  preview: PreviewEvent;
}

/** Request payload type of a method (undefined for no-argument methods). */
export type ApiRequest<M extends ApiMethod> = Parameters<SliceformApi[M]>[0];
export type ApiResponse<M extends ApiMethod> = Awaited<ReturnType<SliceformApi[M]>>;

/** The default class palette of a new project. */
export const DEFAULT_CLASSES: LabelClass[] = [
  { id: 1, name: 'background', color: '#3b82f6' },
  { id: 2, name: 'foreground', color: '#f97316' },
];

/** Width/height of a slice of `shape` on `plane`, and the number of slices. */
export function planeDims(shape: Pick<Shape, 'x' | 'y' | 'z'>, plane: Plane): { width: number; height: number; depth: number } {
  switch (plane) {
    case 'xy':
      return { width: shape.x, height: shape.y, depth: shape.z };
    case 'xz':
      return { width: shape.x, height: shape.z, depth: shape.y };
    case 'yz':
      return { width: shape.y, height: shape.z, depth: shape.x };
  }
}

/** Voxel [x, y, z] of plane point (u, v) on slice `index`. */
export function planeToVoxel(plane: Plane, index: number, u: number, v: number): [number, number, number] {
  switch (plane) {
    case 'xy':
      return [u, v, index];
    case 'xz':
      return [u, index, v];
    case 'yz':
      return [index, u, v];
  }
}
