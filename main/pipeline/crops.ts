/**
 * Training on a volume that does not fit in memory: the recipe (recipe.ts) gets crops of it around the paint.
 *
 *   cropMargin        how far a training tile reaches from a painted voxel (the largest input tile, rotated)
 *   paintedCrops      the painted 64³ blocks grouped into a few boxes, each grown by the margin (aligned to the
 *                     working-resolution grid, clamped); a box's labels are the paint of its own blocks only,
 *                     so paint in the overlap of two boxes is trained on once
 *   readCrops         each box read from the RegionSource into memory with its dense label crop: RecipePairs
 *   trainOnSource     plan -> crops -> whole-volume normalisation (source-stats.ts) -> trainRecipe
 *
 * The crops' memory is checked before anything is read ("the painted region spans X GiB …").
 */
import type { Engine } from '../common/engine.js';
import type { Volume } from '../common/volume.js';
import { DTYPE_BYTES } from '../common/volume.js';
import { CancelledError, SliceformError } from '../common/errors.js';
import type { RegionBox, RegionSource } from '../io/region.js';
import { sameHalo } from '../volume/tiling.js';
import type { Factors } from '../volume/resample.js';
import { planTileShapes } from '../training/sampler.js';
import { NORM_SAMPLE_VOXELS, sourceNormalisation, type SourceNormalisation } from '../inference/source-stats.js';
import { availableMemory, segmentSourceToFiles, type StreamToFilesOptions, type StreamToFilesResult } from '../inference/stream.js';
import { planRecipe, segmentOptionsFor, trainRecipe, type RecipeHooks, type RecipePair, type RecipePlan, type TrainedRecipe } from './recipe.js';
import type { RecipeSettings } from './settings.js';

/** A voxel box [x, y, z], half-open (the API's Box). */
export interface CropBox {
  min: [number, number, number];
  max: [number, number, number];
}

/** What the crops need of an annotation: its painted blocks and their voxels (sparse-labels.ts LabelStore). */
export interface PaintedLabels {
  dims: { x: number; y: number; z: number };
  /** the allocated (painted) blocks as voxel boxes */
  paintedBlocks(): CropBox[];
  /** labels of a box, x fastest */
  box(b: CropBox): Uint8Array;
}

/** Bytes the training on crops may take (cropBytes): SLICEFORM_TRAIN_CROP_BYTES, default 3/4 of the available memory. */
export function cropBudgetBytes(): number {
  const env = Number(process.env.SLICEFORM_TRAIN_CROP_BYTES);
  return Number.isFinite(env) && env > 0 ? env : Math.floor(0.75 * availableMemory());
}

/**
 * Full-resolution voxels a training tile reaches from the annotated voxel it is centred on, per axis [x, y, z]:
 * half the largest input tile (of the plan's thin and cube tiles) rotated by up to 45° (×√2), at the working
 * resolution, times the downsampling factor, plus one working voxel.
 */
export function cropMargin(plan: RecipePlan): [number, number, number] {
  const g = { levels: plan.net.levels, padding: plan.net.padding };
  const t = planTileShapes(g, plan.planeOut, plan.cubeOut);
  const inputs = [...t.thinIn, t.cubeIn];
  let m = 0;
  for (const s of inputs) for (const n of s) m = Math.max(m, n);
  // a 'same' net reads its halo around the tile as well
  if (plan.net.padding === 'same') m += 2 * sameHalo(g);
  const r = Math.ceil((m / 2) * Math.SQRT2) + 1;
  const [fz, fy, fx] = plan.downsample;
  return [r * fx, r * fy, r * fz];
}

const vox = (b: CropBox) => (b.max[0] - b.min[0]) * (b.max[1] - b.min[1]) * (b.max[2] - b.min[2]);
const union = (a: CropBox, b: CropBox): CropBox => ({
  min: [Math.min(a.min[0], b.min[0]), Math.min(a.min[1], b.min[1]), Math.min(a.min[2], b.min[2])],
  max: [Math.max(a.max[0], b.max[0]), Math.max(a.max[1], b.max[1]), Math.max(a.max[2], b.max[2])],
});
function overlap(a: CropBox, b: CropBox): number {
  let v = 1;
  for (let i = 0; i < 3; i++) v *= Math.max(0, Math.min(a.max[i]!, b.max[i]!) - Math.max(a.min[i]!, b.min[i]!));
  return v;
}

export interface Crop {
  /** the box read from the source (grown, aligned, clamped) */
  box: CropBox;
  /** the painted blocks whose paint is this crop's labels */
  blocks: CropBox[];
}

/**
 * Groups painted blocks into boxes grown by `margin` ([x, y, z] voxels), their edges on multiples of the
 * working-resolution factors (so box averages equal the whole volume's) and clamped to the volume. Two boxes
 * are merged when their union reads at most `slack` times what the two read together (rows of blocks on a
 * painted plane become one slab; three orthogonal painted planes stay three slabs, not the whole volume).
 */
export function paintedCrops(
  blocks: CropBox[],
  dims: { x: number; y: number; z: number },
  margin: [number, number, number],
  factors: Factors = [1, 1, 1],
  slack = 1.1,
): Crop[] {
  const D = [dims.x, dims.y, dims.z];
  const f = [factors[2], factors[1], factors[0]];
  const grow = (b: CropBox): CropBox => ({
    min: [0, 1, 2].map((a) => Math.max(0, Math.floor((b.min[a]! - margin[a]!) / f[a]!) * f[a]!)) as [number, number, number],
    max: [0, 1, 2].map((a) => Math.min(D[a]!, Math.ceil((b.max[a]! + margin[a]!) / f[a]!) * f[a]!)) as [number, number, number],
  });
  let crops: Crop[] = blocks.map((b) => ({ box: grow(b), blocks: [b] }));
  const mergeable = (a: CropBox, b: CropBox) => vox(union(a, b)) <= slack * (vox(a) + vox(b) - overlap(a, b));
  // rows first (blocks come sorted x fastest), then any pair, until nothing merges
  for (let changed = true; changed; ) {
    changed = false;
    const out: Crop[] = [];
    for (const c of crops) {
      const last = out[out.length - 1];
      if (last && mergeable(last.box, c.box)) {
        last.box = union(last.box, c.box);
        last.blocks.push(...c.blocks);
        changed = true;
      } else out.push(c);
    }
    crops = out;
    for (let i = 0; i < crops.length; i++)
      for (let j = i + 1; j < crops.length; j++) {
        if (!mergeable(crops[i]!.box, crops[j]!.box)) continue;
        crops[i]!.box = union(crops[i]!.box, crops[j]!.box);
        crops[i]!.blocks.push(...crops[j]!.blocks);
        crops.splice(j, 1);
        j = i;
        changed = true;
      }
  }
  return crops;
}

/** The painted blocks shrunk to the box of their nonzero voxels (a block painted on one plane is one plane thick). */
export function tightBlocks(labels: PaintedLabels): CropBox[] {
  const out: CropBox[] = [];
  for (const b of labels.paintedBlocks()) {
    const d = labels.box(b);
    const nx = b.max[0] - b.min[0],
      ny = b.max[1] - b.min[1];
    const lo = [Infinity, Infinity, Infinity],
      hi = [-1, -1, -1];
    for (let i = 0; i < d.length; i++) {
      if (!d[i]) continue;
      const x = i % nx,
        y = Math.floor(i / nx) % ny,
        z = Math.floor(i / (nx * ny));
      if (x < lo[0]!) lo[0] = x;
      if (x > hi[0]!) hi[0] = x;
      if (y < lo[1]!) lo[1] = y;
      if (y > hi[1]!) hi[1] = y;
      if (z < lo[2]!) lo[2] = z;
      if (z > hi[2]!) hi[2] = z;
    }
    if (hi[0]! < 0) continue; // allocated but erased
    out.push({ min: [b.min[0] + lo[0]!, b.min[1] + lo[1]!, b.min[2] + lo[2]!], max: [b.min[0] + hi[0]! + 1, b.min[1] + hi[1]! + 1, b.min[2] + hi[2]! + 1] });
  }
  return out;
}

const gib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(0)} MiB`);

/**
 * Bytes per voxel and channel the forest member adds (features, fit, its probabilities and the decision fitted on
 * the final mix). Measured with bench/big-train.mjs on bench:scale's 1024×1024×64×3 uint16 stack, crops of
 * 17.2 M voxels: peak RSS 9.2 GB with the forest and the 'fraction' decision, 5.3 GB with 'iou', 1.1 GB without
 * the forest (1 Dec 2026).
 */
export const FOREST_BYTES_PER_VALUE = 170;

/**
 * Bytes the training holds for crops of these voxels: the image, its working-resolution float copy and normalised
 * copy, the labels (full and working resolution), and the forest member's working set when there is one.
 */
export function cropBytes(voxels: number, channels: number, dtype: Volume['dtype'], factors: Factors, forest = false): number {
  const low = voxels / (factors[0] * factors[1] * factors[2]);
  return voxels * channels * (DTYPE_BYTES[dtype] + 4) + 2 * low * channels * 4 + voxels + 2 * low + (forest ? FOREST_BYTES_PER_VALUE * voxels * channels : 0);
}

/** Refuses (too-large, with the numbers) crops that exceed the budget. */
export function checkCropBudget(crops: Crop[], source: RegionSource, factors: Factors, budget = cropBudgetBytes(), forest = false): number {
  const { c: C } = source.info.shape;
  const voxels = crops.reduce((a, c) => a + vox(c.box), 0);
  const bytes = cropBytes(voxels, C, source.info.dtype, factors, forest);
  if (bytes > budget) {
    const { x, y, z } = source.info.shape;
    throw new SliceformError(
      'too-large',
      `the painted region spans ${gib(bytes)} in training (${crops.length} crop${crops.length === 1 ? '' : 's'}, ${voxels} of the ${x}×${y}×${z} voxels, with the tiles' context around the paint), above the training crop budget of ${gib(budget)} (SLICEFORM_TRAIN_CROP_BYTES, default 3/4 of the available memory)${forest ? ', the forest member taking most of it' : ''}: paint less (or closer together)${forest ? ', train without the forest (ensemble none)' : ''}, or raise SLICEFORM_TRAIN_CROP_BYTES`,
      { file: source.info.source },
    );
  }
  return bytes;
}

/** Reads the crops from the source with their labels (each crop's own blocks' paint). */
export async function readCrops(source: RegionSource, labels: PaintedLabels, crops: Crop[], signal?: RecipeHooks['signal']): Promise<RecipePair[]> {
  const info = source.info;
  const pairs: RecipePair[] = [];
  for (const [i, c] of crops.entries()) {
    const b = c.box;
    const rb: RegionBox = { x0: b.min[0], x1: b.max[0], y0: b.min[1], y1: b.max[1], z0: b.min[2], z1: b.max[2] };
    const data = await source.read(rb, { signal });
    const nx = b.max[0] - b.min[0],
      ny = b.max[1] - b.min[1],
      nz = b.max[2] - b.min[2];
    const lab = new Uint8Array(nx * ny * nz);
    for (const bl of c.blocks) {
      const d = labels.box(bl);
      const w = bl.max[0] - bl.min[0];
      for (let z = bl.min[2], k = 0; z < bl.max[2]; z++)
        for (let y = bl.min[1]; y < bl.max[1]; y++, k += w)
          lab.set(d.subarray(k, k + w), ((z - b.min[2]) * ny + (y - b.min[1])) * nx + (bl.min[0] - b.min[0]));
    }
    const shape = { ...info.shape, x: nx, y: ny, z: nz };
    const name = `${info.source} crop ${i + 1} (x ${b.min[0]}..${b.max[0] - 1}, y ${b.min[1]}..${b.max[1] - 1}, z ${b.min[2]}..${b.max[2] - 1})`;
    pairs.push({
      image: { ...info, shape, source: name, data },
      labels: { ...info, source: name, dtype: 'uint8', shape: { ...shape, c: 1 }, channelNames: ['labels'], metadata: {}, data: lab },
    });
  }
  return pairs;
}

export interface SourceTraining {
  trained: TrainedRecipe;
  crops: Crop[];
  /** bytes the crops take in training (what the budget was checked against) */
  cropBytes: number;
  /** full-resolution voxels read for the crops (all channels) */
  cropVoxelsRead: number;
  stats: SourceNormalisation;
}

export interface SourceTrainingOptions {
  /** crop budget in bytes (default cropBudgetBytes()) */
  budgetBytes?: number;
  /** voxels the normalisation sample reads at most (source-stats.ts) */
  normSampleVoxels?: number;
}

/**
 * Trains the recipe on an out-of-core volume from its painted blocks: the crops around the paint, the whole
 * volume's normalisation (the 1st/99.8th percentiles and spread of a deterministic sample at the working
 * resolution), the working resolution chosen from the source's real spacing (the crops carry it).
 */
export async function trainOnSource(
  engine: Engine,
  source: RegionSource,
  labels: PaintedLabels,
  settings: RecipeSettings,
  hooks: RecipeHooks = {},
  o: SourceTrainingOptions = {},
): Promise<SourceTraining> {
  const info = source.info;
  const { x, y, z } = info.shape;
  if (labels.dims.x !== x || labels.dims.y !== y || labels.dims.z !== z)
    throw new SliceformError('bad-input', `labels are ${labels.dims.x}×${labels.dims.y}×${labels.dims.z}, the image ${x}×${y}×${z}`, { file: info.source });
  const blocks = tightBlocks(labels);
  if (blocks.length === 0) throw new SliceformError('bad-input', `${info.source}: nothing is painted (all labels 0): paint a few slices first`, { file: info.source });
  // the plan of the whole volume: tiles, working resolution (from the source's spacing); the classes do not change them
  const plan = planRecipe([{ ...info, data: new Uint8Array(0) }], Math.max(2, hooks.numClasses ?? 2), settings);
  const f = plan.downsample;
  const crops = paintedCrops(blocks, info.shape, cropMargin(plan), f);
  const bytes = checkCropBudget(crops, source, f, o.budgetBytes ?? cropBudgetBytes(), plan.ensemble !== 'none');
  hooks.onProgress?.({ fraction: 0, stage: 'normalisation statistics' });
  const stats = await sourceNormalisation(source, f, { maxVoxels: o.normSampleVoxels ?? NORM_SAMPLE_VOXELS, signal: hooks.signal });
  hooks.log?.(
    `normalisation of the whole ${x}×${y}×${z} volume from ${stats.whole ? 'all of it' : `${stats.groups.read} of ${stats.groups.total} z-plane groups`} at the working resolution`,
  );
  hooks.onProgress?.({ fraction: 0, stage: 'reading the painted region' });
  const pairs = await readCrops(source, labels, crops, hooks.signal);
  const cropVoxelsRead = crops.reduce((a, c) => a + vox(c.box), 0) * info.shape.c;
  hooks.log?.(`training on ${crops.length} crop${crops.length === 1 ? '' : 's'} around the paint (${gib(bytes)}): ${crops.map((c) => `${c.box.max.map((v, a) => v - c.box.min[a]!).join('×')}`).join(', ')}`);
  const trained = await trainRecipe(engine, pairs, settings, { ...hooks, normalisation: stats.normalisation });
  return { trained, crops, cropBytes: bytes, cropVoxelsRead, stats };
}

export interface SourceDensify extends SourceTraining {
  /** the streamed segment's result (labels only when `collect`) */
  segment: StreamToFilesResult;
  trainSeconds: number;
  segmentSeconds: number;
}

/**
 * Densify of an out-of-core volume: trainOnSource, then the streamed segment of the whole volume
 * (inference/stream.ts segmentSourceToFiles: fit check first; an OME-Zarr label image with its pyramid built
 * beside the target and renamed into place, or a TIFF under a temporary name) with the trained recipe's
 * normalisation, working resolution, forest member and calibrated decision. The caller disposes
 * `trained.model` (also when the segment fails: it is disposed here then).
 */
export async function densifySource(
  engine: Engine,
  source: RegionSource,
  labels: PaintedLabels,
  settings: RecipeSettings,
  output: Pick<StreamToFilesOptions, 'out' | 'probabilitiesOut' | 'chunks' | 'ngff' | 'maxTileInputVoxels' | 'fitEnv'> & {
    onProgress?: StreamToFilesOptions['onProgress'];
  },
  hooks: RecipeHooks = {},
  o: SourceTrainingOptions = {},
): Promise<SourceDensify> {
  const t0 = Date.now();
  const tr = await trainOnSource(engine, source, labels, settings, hooks, o);
  const t1 = Date.now();
  try {
    if (hooks.signal?.aborted) throw new CancelledError('densify cancelled during training');
    const segment = await segmentSourceToFiles(tr.trained.model, source, {
      ...segmentOptionsFor(tr.trained),
      ...output,
      signal: hooks.signal,
    });
    return { ...tr, segment, trainSeconds: (t1 - t0) / 1000, segmentSeconds: (Date.now() - t1) / 1000 };
  } catch (e) {
    tr.trained.model.dispose();
    throw e;
  }
}

const B = 64;

/** A label volume held as its painted 64³ blocks only (what a labels file of an out-of-core volume becomes). */
export class BlockLabels implements PaintedLabels {
  private readonly blocks = new Map<number, Uint8Array>();
  private readonly grid: [number, number, number];
  constructor(readonly dims: { x: number; y: number; z: number }) {
    this.grid = [Math.ceil(dims.x / B), Math.ceil(dims.y / B), Math.ceil(dims.z / B)];
  }
  get blockCount(): number {
    return this.blocks.size;
  }
  private bounds(k: number): CropBox {
    const [gx, gy] = this.grid;
    const bx = k % gx,
      by = Math.floor(k / gx) % gy,
      bz = Math.floor(k / (gx * gy));
    const min: [number, number, number] = [bx * B, by * B, bz * B];
    return { min, max: [Math.min(this.dims.x, min[0] + B), Math.min(this.dims.y, min[1] + B), Math.min(this.dims.z, min[2] + B)] };
  }
  /** Stores one block's labels (x fastest over its clipped box); an all-zero block is not kept. */
  setBlock(bx: number, by: number, bz: number, data: Uint8Array): void {
    if (!data.some((v) => v > 0)) return;
    this.blocks.set((bz * this.grid[1] + by) * this.grid[0] + bx, data);
  }
  paintedBlocks(): CropBox[] {
    return [...this.blocks.keys()].sort((a, b) => a - b).map((k) => this.bounds(k));
  }
  box(b: CropBox): Uint8Array {
    const nx = b.max[0] - b.min[0],
      ny = b.max[1] - b.min[1];
    const out = new Uint8Array(nx * ny * (b.max[2] - b.min[2]));
    const [gx, gy] = this.grid;
    for (let bz = Math.floor(b.min[2] / B); bz * B < b.max[2]; bz++)
      for (let by = Math.floor(b.min[1] / B); by * B < b.max[1]; by++)
        for (let bx = Math.floor(b.min[0] / B); bx * B < b.max[0]; bx++) {
          const d = this.blocks.get((bz * gy + by) * gx + bx);
          if (!d) continue;
          const bb = this.bounds((bz * gy + by) * gx + bx);
          const w = bb.max[0] - bb.min[0],
            h = bb.max[1] - bb.min[1];
          const x0 = Math.max(b.min[0], bb.min[0]),
            x1 = Math.min(b.max[0], bb.max[0]);
          for (let z = Math.max(b.min[2], bb.min[2]); z < Math.min(b.max[2], bb.max[2]); z++)
            for (let y = Math.max(b.min[1], bb.min[1]); y < Math.min(b.max[1], bb.max[1]); y++) {
              const src = ((z - bb.min[2]) * h + (y - bb.min[1])) * w + (x0 - bb.min[0]);
              out.set(d.subarray(src, src + x1 - x0), ((z - b.min[2]) * ny + (y - b.min[1])) * nx + (x0 - b.min[0]));
            }
        }
    return out;
  }
}

/**
 * Reads a label volume (dense TIFF/HDF5, or an OME-Zarr label store whose unpainted chunks are absent) through
 * its RegionSource in 64-plane slabs and keeps only the painted 64³ blocks: the labels of an out-of-core volume
 * never exist densely in memory. Refuses another size, several channels or labels above 255, naming the file.
 */
export async function readPaintedLabels(
  source: RegionSource,
  dims: { x: number; y: number; z: number },
  signal?: RecipeHooks['signal'],
): Promise<BlockLabels> {
  const { x: X, y: Y, z: Z, c: C } = source.info.shape;
  const file = source.info.source;
  if (X !== dims.x || Y !== dims.y || Z !== dims.z)
    throw new SliceformError('bad-input', `labels are ${X}×${Y}×${Z} (x×y×z), the image ${dims.x}×${dims.y}×${dims.z}`, { file });
  if (C !== 1) throw new SliceformError('bad-input', `labels must have one channel, found ${C}`, { file });
  if (/float/.test(source.info.dtype)) throw new SliceformError('bad-input', `labels must be an integer volume (0 = unannotated, 1..K = classes), found ${source.info.dtype}`, { file });
  const out = new BlockLabels(dims);
  for (let z0 = 0; z0 < Z; z0 += B) {
    if (signal?.aborted) throw new CancelledError('reading the labels was cancelled');
    const z1 = Math.min(Z, z0 + B);
    const slab = await source.read({ x0: 0, x1: X, y0: 0, y1: Y, z0, z1 }, { signal });
    for (let by = 0; by * B < Y; by++)
      for (let bx = 0; bx * B < X; bx++) {
        const w = Math.min(X, bx * B + B) - bx * B,
          h = Math.min(Y, by * B + B) - by * B;
        const d = new Uint8Array(w * h * (z1 - z0));
        let any = false;
        for (let z = 0, k = 0; z < z1 - z0; z++)
          for (let y = 0; y < h; y++) {
            const row = (z * Y + by * B + y) * X + bx * B;
            for (let x = 0; x < w; x++, k++) {
              const v = slab[row + x]!;
              if (v === 0) continue;
              if (v < 0 || v > 255 || !Number.isInteger(v))
                throw new SliceformError('bad-input', `label value ${v} at x ${bx * B + x}, y ${by * B + y}, z ${z0 + z} is not a class (0..255)`, { file });
              d[k] = v;
              any = true;
            }
          }
        if (any) out.setBlock(bx, by, z0 / B, d);
      }
  }
  if (out.blockCount === 0) throw new SliceformError('bad-input', 'the label volume has no annotated voxels (all 0)', { file });
  return out;
}
