import { join } from 'node:path';
import type { Command } from '../command.js';
import { strOpt } from '../command.js';
import { CancelledError, SliceformError } from '../../common/errors.js';
import type { Volume } from '../../common/volume.js';
import { isZarrPath, readVolume } from '../../io/index.js';
import { loadEngine } from '../../engine/index.js';
import { readLabels } from '../../inference/files.js';
import { maxLabel } from '../../training/trainer.js';
import { RECIPE_OPTIONS, recipeFromValues, recipeUsage } from '../../pipeline/options.js';
import { defaultClassNames, saveRecipeModel, trainRecipe } from '../../pipeline/recipe.js';
import { cliProgress } from './densify.js';
import { openOutOfCore, trainOutOfCore } from '../out-of-core.js';
import { assertFiniteImage, checkDownsample, checkPaths, checkRanges, engineNote, threadsOpt } from '../validate.js';

const usage = `Usage: sliceform train --image A --labels LA [--image B --labels LB ...] --model DIR [options]

Trains one 3D U-Net on one or more sparsely labelled stacks (0 = unannotated, 1..K = classes) and saves a
self-describing model folder (model.json + weights.pt) for 'sliceform segment'. Checkpoints go to
DIR/checkpoint every few minutes and at the end; --resume continues from there. When an axis has at least four
annotated slices, one of them is held out, scored every minute, and the best model by held-out IoU is kept.

Options:
  --image IMG            training stack (repeat for several; pairs with --labels in order)
  --labels LAB           its sparse labels
  --dataset D            HDF5 dataset of the images
  --labels-dataset D     HDF5 dataset of the labels
  --model DIR            output model folder
  --classes a,b,...      class names (default background, foreground for 2 classes)
  --holdout H            auto (default) | none
${recipeUsage(10)}
  --resume               continue from DIR/checkpoint
  --init-from DIR0       continue a saved model folder (weights, optimizer state, normalisation): --iterations
                         more steps, the count goes on from DIR0's; the network and working resolution must match
  --checkpoint-minutes M checkpoint interval (default 5)
  --out-of-core          train on the crops around the paint (automatic above the in-memory limit
                         SLICEFORM_OUT_OF_CORE_BYTES, default 1 GiB; one --image); --labels may be a sparse OME-Zarr store
  -h, --help             show this help`;

const train: Command = {
  name: 'train',
  summary: 'train a model on sparsely labelled stacks and save it as a model folder',
  usage,
  options: {
    image: { type: 'string', multiple: true },
    labels: { type: 'string', multiple: true },
    dataset: { type: 'string' },
    'labels-dataset': { type: 'string' },
    model: { type: 'string' },
    ...RECIPE_OPTIONS,
    classes: { type: 'string' },
    holdout: { type: 'string' },
    resume: { type: 'boolean' },
    'init-from': { type: 'string' },
    'checkpoint-minutes': { type: 'string' },
    'out-of-core': { type: 'boolean' },
  },
  async run(args, io, signal) {
    const v = args.values;
    const images = (v.image as string[] | undefined) ?? [];
    const labelsPaths = (v.labels as string[] | undefined) ?? [];
    if (images.length === 0) throw new SliceformError('bad-input', `missing --image\n\n${usage}`);
    if (images.length !== labelsPaths.length)
      throw new SliceformError(
        'bad-input',
        `give one --labels per --image (got ${images.length} images, ${labelsPaths.length} label volumes)`,
      );
    const dir = strOpt(v, 'model', true);
    // every range and path checked before any file is read (issue 14 items 12, 19): --model must not be an
    // existing file (it is a folder) nor one of the inputs
    checkRanges(v, ['minutes', 'iterations', 'seed', 'lr', 'checkpoint-minutes']);
    checkDownsample(v);
    await checkPaths({
      // OME-Zarr stores are folders (their reader checks them)
      inputs: [
        ...(await Promise.all(images.map(async (path) => ({ label: '--image', path: (await isZarrPath(path)) ? undefined : path })))),
        ...(await Promise.all(labelsPaths.map(async (path) => ({ label: '--labels', path: (await isZarrPath(path)) ? undefined : path })))),
      ],
      dirOutputs: [{ label: '--model', path: dir }],
    });
    const initFrom = strOpt(v, 'init-from');
    if (initFrom !== undefined && v.resume) throw new SliceformError('bad-input', 'give --resume or --init-from, not both');
    if (initFrom !== undefined) await checkPaths({ inputs: [{ label: '--init-from', path: join(initFrom, 'model.json') }] });
    const threads = threadsOpt(v, io);
    const holdout = strOpt(v, 'holdout') ?? 'auto';
    if (holdout !== 'auto' && holdout !== 'none')
      throw new SliceformError('bad-input', '--holdout must be auto or none');
    const settings = { ...recipeFromValues(v, 10), threads, holdout: holdout as 'auto' | 'none' };

    // above the in-memory limit (or --out-of-core): one stack, trained on the crops around its paint
    const forced = Boolean(v['out-of-core']);
    for (let i = 0; i < images.length; i++) {
      const src = await openOutOfCore(images[i]!, strOpt(v, 'dataset'), forced, io);
      if (!src) continue;
      try {
        if (images.length > 1)
          throw new SliceformError('bad-input', `${images[i]} is trained out of core (from the crops around its paint), on its own: give it as the only --image`, { file: images[i] });
        if (v.resume) throw new SliceformError('bad-input', '--resume is not available out of core (use --init-from)');
        const engine = await loadEngine();
        engineNote(engine.info, io);
        const bar = cliProgress(io);
        const hooks = { onProgress: bar.update, log: (l: string) => io.err(l), ...(initFrom !== undefined ? { initFrom } : {}) };
        const names = strOpt(v, 'classes')?.split(',').map((s) => s.trim());
        const code = await trainOutOfCore(
          { engine, source: src, labelsPath: labelsPaths[i]!, labelsDataset: strOpt(v, 'labels-dataset'), settings, signal, io, hooks },
          { modelDir: dir, ...(names ? { classNames: names } : {}) },
        );
        bar.done();
        return code;
      } finally {
        await src.close();
      }
    }
    const pairs: { image: Volume; labels: Volume }[] = [];
    for (let i = 0; i < images.length; i++) {
      const image = await readVolume(images[i]!, {
        dataset: strOpt(v, 'dataset'),
        signal,
        onWarning: (w) => io.err(`warning: ${w}`),
      });
      assertFiniteImage(image, images[i]!);
      const labels = await readLabels(labelsPaths[i]!, image, strOpt(v, 'labels-dataset'), (w) => io.err(`warning: ${w}`));
      pairs.push({ image, labels });
    }
    const K = Math.max(2, ...pairs.map((p) => maxLabel(p.labels.data)));
    const classNames =
      strOpt(v, 'classes')
        ?.split(',')
        .map((s) => s.trim()) ?? defaultClassNames(K);
    if (classNames.length !== K)
      throw new SliceformError(
        'bad-input',
        `--classes names ${classNames.length} classes, the labels have ${K}`,
      );
    const engine = await loadEngine();
    engineNote(engine.info, io);
    const bar = cliProgress(io);
    const trained = await trainRecipe(engine, pairs, settings, {
      checkpointDir: join(dir, 'checkpoint'),
      checkpointMinutes: Number(strOpt(v, 'checkpoint-minutes') ?? 5),
      resume: Boolean(v.resume),
      ...(initFrom !== undefined ? { initFrom } : {}),
      signal,
      onProgress: bar.update,
      log: (l) => io.err(l),
    });
    bar.done();
    const factors = trained.plan.downsample;
    try {
      const first = pairs[0]!.image;
      const manifest = await saveRecipeModel(dir, trained, {
        classNames,
        spacing: { z: first.spacing.z, y: first.spacing.y, x: first.spacing.x, unit: first.spacing.unit },
        preset: settings.preset,
      });
      io.out(
        JSON.stringify(
          {
            model: dir,
            cancelled: trained.cancelled,
            classes: classNames,
            downsample: factors,
            training: manifest.training,
            calibration: manifest.calibration ?? null,
          },
          null,
          2,
        ),
      );
      if (trained.cancelled)
        throw new CancelledError(
          `training cancelled after ${trained.summary.iterations} iterations; the model so far is saved in ${dir} (continue with --resume)`,
        );
      return 0;
    } finally {
      trained.model.dispose();
    }
  },
};

export default train;
