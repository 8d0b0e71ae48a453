import { join } from 'node:path';
import type { Command } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { CancelledError, SliceformError } from '../../common/errors.js';
import type { Volume } from '../../common/volume.js';
import { readVolume } from '../../io/index.js';
import { loadEngine } from '../../engine/index.js';
import { readLabels } from '../../inference/files.js';
import { saveModelDir } from '../../inference/model-dir.js';
import { autoDownsample, downsampleLabelVolume, downsampleVolume, isIdentity, parseFactors } from '../../volume/resample.js';
import { maxLabel, trainModel } from '../../training/trainer.js';
import { isPreset, resolveNet, TRAINING_DEFAULTS } from '../../training/presets.js';
import { cliProgress, parseDevice } from './densify.js';
import { assertFiniteImage, checkDownsample, checkPaths, checkRanges, threadsOpt } from '../validate.js';

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
  --minutes M            time budget (default 10 unless --iterations)
  --iterations N         iteration budget
  --preset P             desktop (default) | paper | tiny
  --classes a,b,...      class names (default background, foreground for 2 classes)
  --downsample F         auto (default) | none | F | Z,Y,X (see densify --help)
  --device D             cpu | cuda
  --threads T            CPU threads
  --seed S               seed (default 1)
  --lr LR                learning rate
  --holdout H            auto (default) | none
  --bn-at-test M         batch (default) | running: batch-norm statistics at prediction (see densify --help)
  --resume               continue from DIR/checkpoint
  --checkpoint-minutes M checkpoint interval (default 5)
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
    minutes: { type: 'string' },
    iterations: { type: 'string' },
    preset: { type: 'string' },
    classes: { type: 'string' },
    downsample: { type: 'string' },
    device: { type: 'string' },
    threads: { type: 'string' },
    seed: { type: 'string' },
    lr: { type: 'string' },
    holdout: { type: 'string' },
    'bn-at-test': { type: 'string' },
    resume: { type: 'boolean' },
    'checkpoint-minutes': { type: 'string' },
  },
  async run(args, io, signal) {
    const v = args.values;
    const images = (v.image as string[] | undefined) ?? [];
    const labelsPaths = (v.labels as string[] | undefined) ?? [];
    if (images.length === 0) throw new SliceformError('bad-input', `missing --image\n\n${usage}`);
    if (images.length !== labelsPaths.length) throw new SliceformError('bad-input', `give one --labels per --image (got ${images.length} images, ${labelsPaths.length} label volumes)`);
    const dir = strOpt(v, 'model', true);
    // every range and path checked before any file is read (issue 14 items 12, 19): --model must not be an
    // existing file (it is a folder) nor one of the inputs
    checkRanges(v, ['minutes', 'iterations', 'seed', 'lr', 'checkpoint-minutes']);
    checkDownsample(v);
    await checkPaths({
      inputs: [...images.map((path) => ({ label: '--image', path })), ...labelsPaths.map((path) => ({ label: '--labels', path }))],
      dirOutputs: [{ label: '--model', path: dir }],
    });
    const threads = threadsOpt(v, io);
    const preset = strOpt(v, 'preset') ?? 'desktop';
    if (!isPreset(preset)) throw new SliceformError('bad-input', `unknown --preset "${preset}" (desktop, paper, tiny)`);
    const iterations = numOpt(v, 'iterations');
    let minutes = numOpt(v, 'minutes');
    if (iterations === undefined && minutes === undefined) minutes = 10;
    if (minutes !== undefined && !(minutes > 0)) throw new SliceformError('bad-input', `--minutes must be positive, got ${minutes}`);
    if (iterations !== undefined && !(Number.isInteger(iterations) && iterations > 0)) throw new SliceformError('bad-input', `--iterations must be a positive integer, got ${iterations}`);
    const holdout = strOpt(v, 'holdout') ?? 'auto';
    if (holdout !== 'auto' && holdout !== 'none') throw new SliceformError('bad-input', '--holdout must be auto or none');
    const device = parseDevice(strOpt(v, 'device'));
    const seed = numOpt(v, 'seed') ?? 1;
    const dsArg = parseFactors(strOpt(v, 'downsample') ?? (preset === 'paper' ? 'none' : 'auto'));
    if (dsArg === null) throw new SliceformError('bad-input', '--downsample must be auto, none, F or Z,Y,X');

    const pairs: { image: Volume; labels: Volume }[] = [];
    for (let i = 0; i < images.length; i++) {
      const image = await readVolume(images[i]!, { dataset: strOpt(v, 'dataset'), signal, onWarning: (w) => io.err(`warning: ${w}`) });
      assertFiniteImage(image, images[i]!);
      const labels = await readLabels(labelsPaths[i]!, image, strOpt(v, 'labels-dataset'));
      pairs.push({ image, labels });
    }
    const C = pairs[0]!.image.shape.c;
    for (const p of pairs) if (p.image.shape.c !== C) throw new SliceformError('bad-input', `all images need the same channel count: ${p.image.source} has ${p.image.shape.c}, the first ${C}`, { file: p.image.source });
    const factors = dsArg === 'auto' ? autoDownsample(pairs[0]!.image.spacing) : dsArg;
    const K = Math.max(2, ...pairs.map((p) => maxLabel(p.labels.data)));
    const classNames = strOpt(v, 'classes')?.split(',').map((s) => s.trim()) ?? (K === 2 ? ['background', 'foreground'] : Array.from({ length: K }, (_, k) => `class ${k + 1}`));
    if (classNames.length !== K) throw new SliceformError('bad-input', `--classes names ${classNames.length} classes, the labels have ${K}`);
    const bnt = strOpt(v, 'bn-at-test') ?? 'batch';
    if (bnt !== 'running' && bnt !== 'batch') throw new SliceformError('bad-input', `--bn-at-test must be running or batch, got "${bnt}"`);
    const net = { ...resolveNet(preset, C, K), bnAtTest: bnt as 'running' | 'batch' };
    const defaults = TRAINING_DEFAULTS[preset];
    const optim = { ...defaults.optim, lr: numOpt(v, 'lr') ?? defaults.optim.lr };
    const engine = await loadEngine();
    const bar = cliProgress(io);
    if (!isIdentity(factors)) io.err(`working at reduced resolution: downsampled by ${factors.join('x')} (z,y,x)`);
    const trained = await trainModel(
      engine,
      pairs.map((p) => ({ image: downsampleVolume(p.image, factors), labels: downsampleLabelVolume(p.labels, factors) })),
      {
        net,
        optim,
        modelOptions: { device, threads, seed },
        iterations,
        minutes,
        seed,
        planeOut: defaults.planeOut,
        cubeOut: defaults.cubeOut,
        batch: defaults.batch,
        holdout,
        checkpointDir: join(dir, 'checkpoint'),
        checkpointMinutes: numOpt(v, 'checkpoint-minutes') ?? 5,
        resume: Boolean(v.resume),
        signal,
        onProgress: bar.update,
      },
    );
    bar.done();
    try {
      const first = pairs[0]!.image;
      const manifest = await saveModelDir(dir, trained.model, {
        net,
        optim,
        normalisation: trained.normalisation,
        classNames,
        spacing: { z: first.spacing.z, y: first.spacing.y, x: first.spacing.x, unit: first.spacing.unit },
        downsample: factors,
        training: { ...trained.summary, preset },
      });
      io.out(JSON.stringify({ model: dir, cancelled: trained.cancelled, classes: classNames, downsample: factors, training: manifest.training }, null, 2));
      if (trained.cancelled) throw new CancelledError(`training cancelled after ${trained.summary.iterations} iterations; the model so far is saved in ${dir} (continue with --resume)`);
      return 0;
    } finally {
      trained.model.dispose();
    }
  },
};

export default train;
