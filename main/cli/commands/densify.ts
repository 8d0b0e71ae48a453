import type { Command, CliIO } from '../command.js';
import { strOpt } from '../command.js';
import { CancelledError, SliceformError } from '../../common/errors.js';
import type { Device } from '../../common/engine.js';
import { isZarrPath, readVolume, writeSnapshot } from '../../io/index.js';
import { isZarrOutputPath } from '../../io/zarr/slab.js';
import { loadEngine } from '../../engine/index.js';
import { readLabels, segmentToFiles, truthToClasses } from '../../inference/files.js';
import { progressPrinter } from '../../training/progress-line.js';
import { RECIPE_OPTIONS, recipeFromValues, recipeUsage } from '../../pipeline/options.js';
import { defaultClassNames, heldOutReport, saveRecipeModel, segmentOptionsFor, trainRecipe } from '../../pipeline/recipe.js';
import {
  assertFiniteImage,
  checkDownsample,
  checkPaths,
  checkRanges,
  engineNote,
  threadsOpt,
} from '../validate.js';
import { scoreSegmentation } from '../../evaluation/metrics.js';
import { densifyOutOfCore, openOutOfCore } from '../out-of-core.js';

const usage = `Usage: sliceform densify --image IMG --labels SPARSE --out SEG.tif [options]

Trains a 3D U-Net on this stack's sparse labels (a few painted slices: 0 = unannotated, 1..K = classes),
then writes its dense segmentation as a calibrated ImageJ label TIFF (uint8, classes 1..K), or as an OME-Zarr
label image with a pyramid when --out ends in .zarr (NAME.ome.zarr: napari, Fiji/MoBIE, neuroglancer).
Prints a JSON summary on stdout; progress on stderr. Ctrl+C cancels cleanly.

Options:
  --image IMG            image stack (TIFF, OME-TIFF, LSM, HDF5, OME-Zarr)
  --dataset D            HDF5 dataset / OME-Zarr image path of the image (default: "raw" or the first image)
  --labels SPARSE        sparse label volume, same x/y/z as the image
  --labels-dataset D     HDF5 dataset of the labels
  --out SEG              dense segmentation: SEG.tif or SEG.ome.zarr (written atomically)
${recipeUsage(4)}
  --probabilities P      also write per-class probabilities (float32, one channel per class; .tif or .ome.zarr)
  --snapshot PNG         also write a PNG of the middle xy slice with the segmentation overlaid
  --model DIR            also save the trained model folder (for 'sliceform segment')
  --truth GT             dense ground truth: prints the IoU over the voxels SPARSE leaves unannotated
  --truth-dataset D      HDF5 dataset of the ground truth (e.g. label)
  --truth-mode M         auto (default) | instances (GT > 0 -> class 2, else 1) | classes
  --out-of-core          train on crops around the paint and segment streamed (automatic above the in-memory
                         limit SLICEFORM_OUT_OF_CORE_BYTES, default 1 GiB); --labels may be a sparse OME-Zarr store
  -h, --help             show this help

Exit codes: 0 ok, 1 failure, 2 bad input, 130 cancelled.`;

export function cliProgress(io: CliIO) {
  const write = io.isTTY ? (s: string) => process.stderr.write(s) : io.err;
  return progressPrinter(write, io.isTTY);
}

export function parseDevice(s: string | undefined): Device {
  const d = s ?? 'cpu';
  if (d !== 'cpu' && d !== 'cuda')
    throw new SliceformError('bad-input', `--device must be cpu or cuda, got "${d}"`);
  return d;
}

const densify: Command = {
  name: 'densify',
  summary: 'train on sparse slices of one stack and write its dense segmentation',
  usage,
  options: {
    image: { type: 'string' },
    dataset: { type: 'string' },
    labels: { type: 'string' },
    'labels-dataset': { type: 'string' },
    out: { type: 'string' },
    ...RECIPE_OPTIONS,
    probabilities: { type: 'string' },
    model: { type: 'string' },
    snapshot: { type: 'string' },
    truth: { type: 'string' },
    'truth-dataset': { type: 'string' },
    'truth-mode': { type: 'string' },
    'out-of-core': { type: 'boolean' },
  },
  async run(args, io, signal) {
    const v = args.values;
    const imagePath = strOpt(v, 'image', true);
    const labelsPath = strOpt(v, 'labels', true);
    const out = strOpt(v, 'out', true);
    // every range and path checked before any file is read (issue 14 items 12, 19)
    checkRanges(v, [
      'minutes',
      'iterations',
      'seed',
      'lr',
      'plane-tile',
      'balance',
      'dice',
      'batch',
      'average',
      'levels',
      'base-filters',
    ]);
    checkDownsample(v);
    // OME-Zarr inputs and outputs are folders (the reader and SlabZarrWriter check them)
    const notZarrIn = async (p?: string) => (p && (await isZarrPath(p)) ? undefined : p);
    const notZarrOut = (p?: string) => (p && isZarrOutputPath(p) ? undefined : p);
    await checkPaths({
      inputs: [
        { label: '--image', path: await notZarrIn(imagePath) },
        { label: '--labels', path: await notZarrIn(labelsPath) },
        { label: '--truth', path: await notZarrIn(strOpt(v, 'truth')) },
      ],
      fileOutputs: [
        { label: '--out', path: notZarrOut(out) },
        { label: '--probabilities', path: notZarrOut(strOpt(v, 'probabilities')) },
        { label: '--snapshot', path: strOpt(v, 'snapshot') },
      ],
      dirOutputs: [{ label: '--model', path: strOpt(v, 'model') }],
    });
    const settings = { ...recipeFromValues(v, 4), threads: threadsOpt(v, io) };
    const truthMode = (strOpt(v, 'truth-mode') ?? 'auto') as 'auto' | 'instances' | 'classes';
    if (!['auto', 'instances', 'classes'].includes(truthMode))
      throw new SliceformError('bad-input', `--truth-mode must be auto, instances or classes`);

    // above the in-memory limit (or --out-of-core): crops around the paint, streamed segment (cli/out-of-core.ts)
    {
      const src = await openOutOfCore(imagePath, strOpt(v, 'dataset'), Boolean(v['out-of-core']), io);
      if (src)
        try {
          if (strOpt(v, 'truth') || strOpt(v, 'snapshot'))
            throw new SliceformError('bad-input', `--truth and --snapshot need the whole stack in memory; out of core, score the written ${out} separately`);
          const engine = await loadEngine();
          engineNote(engine.info, io);
          const bar = cliProgress(io);
          const hooks = { onProgress: bar.update, log: (l: string) => io.err(l) };
          const code = await densifyOutOfCore(
            { engine, source: src, labelsPath, labelsDataset: strOpt(v, 'labels-dataset'), settings, signal, io, hooks },
            { out, probabilitiesOut: strOpt(v, 'probabilities'), modelDir: strOpt(v, 'model'), onProgress: bar.update },
          );
          bar.done();
          return code;
        } finally {
          await src.close();
        }
    }
    const t0 = Date.now();
    const image = await readVolume(imagePath, {
      dataset: strOpt(v, 'dataset'),
      signal,
      onWarning: (w) => io.err(`warning: ${w}`),
    });
    assertFiniteImage(image, imagePath);
    const labels = await readLabels(labelsPath, image, strOpt(v, 'labels-dataset'), (w) =>
      io.err(`warning: ${w}`),
    );
    const truthPath = strOpt(v, 'truth');
    const truth = truthPath
      ? await readVolume(truthPath, { dataset: strOpt(v, 'truth-dataset'), signal })
      : null;
    if (
      truth &&
      (truth.shape.x !== image.shape.x || truth.shape.y !== image.shape.y || truth.shape.z !== image.shape.z)
    ) {
      throw new SliceformError(
        'bad-input',
        `ground truth is ${truth.shape.x}x${truth.shape.y}x${truth.shape.z}, the image ${image.shape.x}x${image.shape.y}x${image.shape.z}`,
        { file: truthPath },
      );
    }
    const engine = await loadEngine();
    engineNote(engine.info, io);
    const bar = cliProgress(io);
    const budget = `${settings.minutes !== undefined ? `${settings.minutes} min` : ''}${settings.iterations !== undefined ? ` ${settings.iterations} iterations` : ''}`;
    io.err(
      `densify: ${image.shape.x}x${image.shape.y}x${image.shape.z} (x*y*z), ${image.shape.c} channel(s), preset ${settings.preset}, ${budget}, engine ${engine.info.name} on ${settings.device}`,
    );
    const trained = await trainRecipe(engine, [{ image, labels }], settings, {
      signal,
      onProgress: bar.update,
      log: (l) => io.err(l),
    });
    bar.done();
    const { net } = trained.plan;
    const K = net.numClasses;
    const preset = settings.preset;
    const device: Device = settings.device;
    const seed = settings.seed;
    const factors = trained.plan.downsample;
    const model = trained.model;
    try {
      if (signal.aborted) throw new CancelledError('densify cancelled during training');
      const s = trained.summary;
      io.err(
        `trained ${s.iterations} iterations in ${s.seconds.toFixed(0)} s, loss ${s.finalLoss?.toFixed(4)}, annotated share of output voxels ${((s.annotatedShare ?? 0) * 100).toFixed(1)} %, ${Math.round(s.outputVoxelsPerSecond ?? 0)} output voxels/s`,
      );
      const classNames = defaultClassNames(K);
      const modelDir = strOpt(v, 'model');
      if (modelDir) {
        await saveRecipeModel(modelDir, trained, {
          classNames,
          spacing: { z: image.spacing.z, y: image.spacing.y, x: image.spacing.x, unit: image.spacing.unit },
          preset,
        });
      }
      const tp = Date.now();
      const seg = await segmentToFiles(model, image, {
        ...segmentOptionsFor(trained),
        out,
        probabilitiesOut: strOpt(v, 'probabilities'),
        testTimeFlips: trained.plan.testTimeFlips,
        collect: Boolean(truth) || Boolean(strOpt(v, 'snapshot')),
        signal,
        onProgress: bar.update,
      });
      bar.done();
      const predictSeconds = (Date.now() - tp) / 1000;
      const result: Record<string, unknown> = {
        out,
        shape: { x: image.shape.x, y: image.shape.y, z: image.shape.z },
        classes: K,
        classCounts: Object.fromEntries(seg.classCounts.slice(1).map((c, k) => [k + 1, c])),
        preset,
        downsample: factors,
        engine: engine.info.name,
        device,
        seed,
        training: trained.summary,
        calibration: trained.calibration,
        heldOut: heldOutReport(trained.selfValidation),
        ensemble: trained.ensemble
          ? {
              weight: trained.ensemble.weight,
              resolution: trained.ensemble.resolution,
              candidates: trained.ensemble.candidates,
              seconds: trained.ensemble.seconds,
            }
          : null,
        tile: { output: seg.plan.out, input: seg.plan.in, count: seg.plan.count },
        predictSeconds,
        totalSeconds: (Date.now() - t0) / 1000,
      };
      if (truth && seg.labels) {
        const { classes, mode } = truthToClasses(truth.data, K, truthMode);
        const mask = new Uint8Array(labels.data.length);
        for (let i = 0; i < mask.length; i++) mask[i] = labels.data[i] === 0 ? 1 : 0;
        const sc = scoreSegmentation(seg.labels, classes, { numClasses: K, mask, classNames });
        result.truth = {
          file: truthPath,
          mode,
          scoredVoxels: sc.voxels,
          iou: Object.fromEntries(sc.perClass.map((c) => [c.class, c.iou])),
          dice: Object.fromEntries(sc.perClass.map((c) => [c.class, c.dice])),
          meanIoU: sc.meanIoU,
        };
        const fg = sc.perClass[K - 1];
        io.err(
          `IoU over ${sc.voxels} unannotated voxels: class ${K} (${classNames[K - 1]}) ${fg?.iou?.toFixed(4)}, mean ${sc.meanIoU?.toFixed(4)}`,
        );
      }
      const snap = strOpt(v, 'snapshot');
      if (snap && seg.labels) {
        // class 1 (background) stays transparent; the other classes are tinted
        const overlay = Uint8Array.from(seg.labels, (l) => (l === 1 ? 0 : l));
        await writeSnapshot(image, {
          plane: 'xy',
          out: snap,
          labels: { data: overlay, shape: { ...image.shape, c: 1 } },
          alpha: 0.4,
          labelColors: { 2: [255, 60, 60] },
        });
        result.snapshot = snap;
      }
      io.out(JSON.stringify(result, null, 2));
      return 0;
    } finally {
      model.dispose();
    }
  },
};

export default densify;
