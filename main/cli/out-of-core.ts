/**
 * `densify` and `train` on a stack above the in-memory limit (SLICEFORM_OUT_OF_CORE_BYTES, default 1 GiB, as
 * in the app) or with --out-of-core: the image stays behind a RegionSource, the labels (dense, or a sparse
 * OME-Zarr label store) are kept as their painted 64³ blocks, training reads only the crops around the paint
 * (pipeline/crops.ts) with the whole volume's normalisation, and densify segments the whole volume streamed
 * into the --out file (OME-Zarr with its pyramid, or ImageJ TIFF written slab by slab).
 */
import type { CliIO } from './command.js';
import { CancelledError, SliceformError } from '../common/errors.js';
import type { Engine } from '../common/engine.js';
import { probeVolume } from '../io/index.js';
import { openRegionSource } from '../io/regions.js';
import type { RegionSource } from '../io/region.js';
import { densifySource, readPaintedLabels, trainOnSource, type SourceTraining } from '../pipeline/crops.js';
import { defaultClassNames, heldOutReport, saveRecipeModel, type RecipeHooks } from '../pipeline/recipe.js';
import type { RecipeSettings } from '../pipeline/settings.js';
import { outOfCoreBytes, SOURCE_CACHE_BYTES, volumeBytes } from '../services/big-volume.js';

/** The image's RegionSource when it is to be handled out of core (above the limit, or forced); null otherwise. */
export async function openOutOfCore(path: string, dataset: string | undefined, force: boolean, io: CliIO): Promise<RegionSource | null> {
  const probe = await probeVolume(path, { dataset });
  const bytes = volumeBytes(probe);
  const limit = outOfCoreBytes();
  if (!force && bytes <= limit) return null;
  const src = await openRegionSource(path, { dataset, cacheBytes: SOURCE_CACHE_BYTES });
  const { x, y, z, c } = src.info.shape;
  io.err(
    `out of core: ${x}x${y}x${z}x${c} ${src.info.dtype} (${(bytes / 2 ** 30).toFixed(2)} GiB) ${force ? '(--out-of-core)' : `is above the in-memory limit of ${(limit / 2 ** 30).toFixed(2)} GiB (SLICEFORM_OUT_OF_CORE_BYTES)`}: training reads the crops around the paint, the segmentation is streamed`,
  );
  return src;
}

async function labelsFor(source: RegionSource, labelsPath: string, labelsDataset: string | undefined, signal: AbortSignal) {
  const ls = await openRegionSource(labelsPath, { dataset: labelsDataset, cacheBytes: 64 * 2 ** 20 });
  try {
    return await readPaintedLabels(ls, source.info.shape, signal);
  } finally {
    await ls.close();
  }
}

function trainingReport(t: SourceTraining) {
  return {
    crops: t.crops.map((c) => ({ min: c.box.min, max: c.box.max, blocks: c.blocks.length })),
    cropBytes: t.cropBytes,
    cropVoxelsRead: t.cropVoxelsRead,
    normalisation: { groupsRead: t.stats.groups.read, groupsTotal: t.stats.groups.total, whole: t.stats.whole },
  };
}

export interface OocRun {
  engine: Engine;
  source: RegionSource;
  labelsPath: string;
  labelsDataset?: string;
  settings: RecipeSettings;
  signal: AbortSignal;
  io: CliIO;
  hooks: RecipeHooks;
}

/** densify --image BIG: train on the crops, stream the whole volume into `out`; prints the JSON summary. */
export async function densifyOutOfCore(r: OocRun, o: { out: string; probabilitiesOut?: string; modelDir?: string; onProgress: RecipeHooks['onProgress'] }): Promise<number> {
  const { source, io, settings } = r;
  const t0 = Date.now();
  const labels = await labelsFor(source, r.labelsPath, r.labelsDataset, r.signal);
  const res = await densifySource(r.engine, source, labels, settings, { out: o.out, probabilitiesOut: o.probabilitiesOut, onProgress: o.onProgress }, { ...r.hooks, signal: r.signal });
  const trained = res.trained;
  try {
    const K = trained.plan.net.numClasses;
    if (o.modelDir) {
      const sp = source.info.spacing;
      await saveRecipeModel(o.modelDir, trained, { classNames: defaultClassNames(K), spacing: { z: sp.z, y: sp.y, x: sp.x, unit: sp.unit }, preset: settings.preset });
    }
    const { x, y, z } = source.info.shape;
    io.out(
      JSON.stringify(
        {
          out: o.out,
          shape: { x, y, z },
          classes: K,
          classCounts: Object.fromEntries(res.segment.classCounts.slice(1).map((c, k) => [k + 1, c])),
          preset: settings.preset,
          downsample: trained.plan.downsample,
          engine: r.engine.info.name,
          device: settings.device,
          seed: settings.seed,
          training: trained.summary,
          calibration: trained.calibration,
          heldOut: heldOutReport(trained.selfValidation),
          outOfCore: { ...trainingReport(res), memoryEstimate: res.segment.fit.memoryBytes },
          tile: { output: res.segment.plan.out, input: res.segment.plan.in, count: res.segment.plan.count },
          predictSeconds: res.segmentSeconds,
          totalSeconds: (Date.now() - t0) / 1000,
        },
        null,
        2,
      ),
    );
    return 0;
  } finally {
    trained.model.dispose();
  }
}

/** train --image BIG: one stack, trained on the crops around its paint; saves the model folder. */
export async function trainOutOfCore(r: OocRun, o: { modelDir: string; classNames?: string[] }): Promise<number> {
  const { source, io, settings } = r;
  const labels = await labelsFor(source, r.labelsPath, r.labelsDataset, r.signal);
  const res = await trainOnSource(r.engine, source, labels, settings, { ...r.hooks, signal: r.signal });
  const trained = res.trained;
  try {
    const K = trained.plan.net.numClasses;
    const classNames = o.classNames ?? defaultClassNames(K);
    if (classNames.length !== K) throw new SliceformError('bad-input', `--classes names ${classNames.length} classes, the labels have ${K}`);
    const sp = source.info.spacing;
    const manifest = await saveRecipeModel(o.modelDir, trained, { classNames, spacing: { z: sp.z, y: sp.y, x: sp.x, unit: sp.unit }, preset: settings.preset });
    io.out(
      JSON.stringify(
        { model: o.modelDir, cancelled: trained.cancelled, classes: classNames, downsample: trained.plan.downsample, training: manifest.training, calibration: manifest.calibration ?? null, outOfCore: trainingReport(res) },
        null,
        2,
      ),
    );
    if (trained.cancelled) throw new CancelledError(`training cancelled after ${trained.summary.iterations} iterations; the model so far is saved in ${o.modelDir}`);
    return 0;
  } finally {
    trained.model.dispose();
  }
}
