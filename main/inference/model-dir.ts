/**
 * Self-describing model folders. A model is a directory holding:
 *   model.json   manifest: format version, network config, optimizer, normalisation, class names, training
 *                spacing/downsampling, training summary, file names
 *   weights.pt   the engine's checkpoint (weights, BN statistics, optimizer state)
 * `segment` and batch segmentation rebuild the network from model.json alone. Files are written atomically
 * (temp + rename), weights first, so a folder with a model.json always has matching weights.
 */
import { mkdir, readFile, rename, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine, Model, ModelOptions, NetConfig, OptimConfig } from '../common/engine.js';
import { SliceformError } from '../common/errors.js';
import type { Normalisation } from '../volume/preprocess.js';

export const MODEL_FORMAT = 'sliceform-model';
export const MODEL_FORMAT_VERSION = 1;

export interface TrainingSummary {
  iterations: number;
  /** samples per iteration (engine step); absent in models trained before batching (1) */
  samplesPerStep?: number;
  seconds: number;
  seed: number;
  finalLoss: number | null;
  heldOutIoU: number | null;
  bestIteration: number | null;
  volumes: { source: string; shape: [number, number, number]; annotatedVoxels: number; annotatedPlanes: number }[];
  classWeights: number[];
  /** share of output voxels that were annotated in the training tiles */
  annotatedShare: number | null;
  outputVoxelsPerSecond: number | null;
  preset?: string;
}

/** The held-out estimate as densify JSON and model.json record it (`when`: the iteration whose model was scored). */
export interface HeldOutRecord {
  iou: number | null;
  reason?: string;
  mode: string;
  planes: number;
  blocks: number;
  voxels: number;
  when: number | null;
  /** seconds the scoring took */
  seconds?: number;
  conservative?: boolean;
  iouArgmax?: number | null;
  iouNetwork?: number | null;
}

export interface ModelManifest {
  format: typeof MODEL_FORMAT;
  version: number;
  sliceformVersion: string;
  created: string;
  net: NetConfig;
  optim: OptimConfig;
  normalisation: Normalisation;
  classNames: string[];
  /** voxel size the model was trained at [z, y, x] and its unit */
  spacing: { z: number; y: number; x: number; unit: string };
  /** integer downsampling [z, y, x] applied before the network (1 = none) */
  downsample: [number, number, number];
  weights: string;
  training: TrainingSummary | null;
  /**
   * calibrated decision (main/pipeline/calibration.ts): labels = argmax_k w_k p_k with w = decisionWeights
   * (index k-1 = class k), fitted on the annotated voxels after training; absent = plain argmax
   */
  /**
   * a second learner mixed into the network's probabilities (main/pipeline/ensemble.ts): a random forest on
   * multiscale features of the normalised working-resolution image, saved in `file`
   */
  /** how the recipe predicts (the decision was fitted that way): test-time flip averaging */
  prediction?: { testTimeFlips: boolean };
  /**
   * `resolution`: the grid the forest's features and fit are at, 'full' (the stack's) or 'working' (the
   * network's; absent in folders written before it was recorded, which are read and mixed as before)
   */
  ensemble?: { kind: 'forest'; file: string; weight: number; features: Record<string, unknown>; resolution?: 'working' | 'full'; candidates?: { weight: number; estimate: number | null }[] };
  /** the recipe's held-out estimate of the IoU (main/pipeline/recipe.ts heldOutReport); iou null with a reason */
  heldOut?: HeldOutRecord;
  calibration?: { mode: string; decisionWeights: number[]; voxels: number; paintedFractions: number[]; predictedFractionsArgmax: number[]; predictedFractions: number[] };
}

async function atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Writes model.json and weights.pt into `dir` (created if needed). */
export async function saveModelDir(dir: string, model: Model, manifest: Omit<ModelManifest, 'format' | 'version' | 'weights' | 'created' | 'sliceformVersion'>): Promise<ModelManifest> {
  await mkdir(dir, { recursive: true });
  const full: ModelManifest = {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    sliceformVersion: await packageVersion(),
    created: new Date().toISOString(),
    ...manifest,
    weights: 'weights.pt',
  };
  await model.save(join(dir, full.weights));
  await atomicWrite(join(dir, 'model.json'), JSON.stringify(full, null, 2) + '\n');
  return full;
}

/** Reads and validates model.json (does not load weights). */
export async function readModelManifest(dir: string): Promise<ModelManifest> {
  const path = join(dir, 'model.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SliceformError('bad-input', code === 'ENOENT' ? 'not a Sliceform model folder (no model.json)' : `cannot read model.json (${(e as Error).message})`, { file: dir, cause: e });
  }
  let m: ModelManifest;
  try {
    m = JSON.parse(text) as ModelManifest;
  } catch (e) {
    throw new SliceformError('bad-input', `model.json is not valid JSON (${(e as Error).message})`, { file: path, cause: e });
  }
  if (m?.format !== MODEL_FORMAT) throw new SliceformError('bad-input', `model.json is not a ${MODEL_FORMAT} manifest`, { file: path });
  if (typeof m.version !== 'number' || m.version > MODEL_FORMAT_VERSION) {
    throw new SliceformError('unsupported', `model format version ${m.version} is newer than this Sliceform understands (${MODEL_FORMAT_VERSION})`, { file: path });
  }
  for (const k of ['net', 'optim', 'normalisation', 'classNames', 'spacing', 'weights'] as const) {
    if (m[k] === undefined) throw new SliceformError('bad-input', `model.json lacks "${k}"`, { file: path });
  }
  if (m.normalisation.channels.length !== m.net.inChannels) {
    throw new SliceformError('bad-input', `model.json: normalisation has ${m.normalisation.channels.length} channels, the network ${m.net.inChannels}`, { file: path });
  }
  m.downsample ??= [1, 1, 1];
  if (m.ensemble !== undefined) {
    const e = m.ensemble;
    if (e?.kind !== 'forest' || typeof e.file !== 'string' || /[\\/]/.test(e.file) || !(typeof e.weight === 'number' && e.weight >= 0 && e.weight <= 1)) {
      throw new SliceformError('bad-input', 'model.json: ensemble must name a forest file in the folder and a weight in 0..1', { file: path });
    }
    if (e.resolution !== undefined && e.resolution !== 'working' && e.resolution !== 'full')
      throw new SliceformError('bad-input', `model.json: ensemble.resolution must be "working" or "full", got ${JSON.stringify(e.resolution)}`, { file: path });
  }
  if (m.calibration !== undefined) {
    const w = m.calibration?.decisionWeights;
    if (!Array.isArray(w) || w.length !== m.net.numClasses || !w.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
      throw new SliceformError('bad-input', `model.json: calibration.decisionWeights must be ${m.net.numClasses} positive numbers`, { file: path });
    }
  }
  return m;
}

/** Rebuilds the network from model.json and loads its weights. */
export async function loadModelDir(dir: string, engine: Engine, options?: ModelOptions): Promise<{ model: Model; manifest: ModelManifest }> {
  const manifest = await readModelManifest(dir);
  const weights = join(dir, manifest.weights);
  try {
    await stat(weights);
  } catch (e) {
    throw new SliceformError('bad-input', `model weights ${manifest.weights} are missing`, { file: dir, cause: e });
  }
  const model = await engine.createModel(manifest.net, manifest.optim, options);
  try {
    await model.load(weights);
  } catch (e) {
    model.dispose();
    throw new SliceformError('bad-input', `cannot load weights: ${(e as Error).message}`, { file: weights, cause: e });
  }
  return { model, manifest };
}

let cachedVersion: string | null = null;
async function packageVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion;
  try {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    cachedVersion = pkg.version ?? 'unknown';
  } catch {
    try {
      const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
      cachedVersion = pkg.version ?? 'unknown';
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}
