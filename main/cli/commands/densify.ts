import type { Command, CliIO } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { CancelledError, SliceformError } from '../../common/errors.js';
import type { Device } from '../../common/engine.js';
import { readVolume, writeSnapshot } from '../../io/index.js';
import { loadEngine } from '../../engine/index.js';
import { readLabels, segmentToFiles, truthToClasses } from '../../inference/files.js';
import { saveModelDir } from '../../inference/model-dir.js';
import { autoDownsample, downsampleLabelVolume, downsampleVolume, isIdentity, parseFactors } from '../../volume/resample.js';
import { trainModel } from '../../training/trainer.js';
import { maxLabel } from '../../training/trainer.js';
import { resolveNet, TRAINING_DEFAULTS, isPreset, DEFAULT_BALANCE } from '../../training/presets.js';
import { progressPrinter } from '../../training/progress-line.js';
import { assertFiniteImage, checkDownsample, checkPaths, checkRanges, threadsOpt } from '../validate.js';
import { scoreSegmentation } from '../../evaluation/metrics.js';

const usage = `Usage: sliceform densify --image IMG --labels SPARSE --out SEG.tif [options]

Trains a 3D U-Net on this stack's sparse labels (a few painted slices: 0 = unannotated, 1..K = classes),
then writes its dense segmentation as a calibrated ImageJ label TIFF (uint8, classes 1..K).
Prints a JSON summary on stdout; progress on stderr. Ctrl+C cancels cleanly.

Options:
  --image IMG            image stack (TIFF, OME-TIFF, LSM, HDF5)
  --dataset D            HDF5 dataset of the image (default: "raw" or the first image dataset)
  --labels SPARSE        sparse label volume, same x/y/z as the image
  --labels-dataset D     HDF5 dataset of the labels
  --out SEG.tif          dense segmentation (written atomically)
  --minutes M            training time budget (default 4 unless --iterations is given)
  --iterations N         training iterations (with --minutes: whichever comes first)
  --preset P             desktop (default) | paper | tiny
  --device D             cpu (default) | cuda
  --threads T            CPU threads for the engine (default: all cores)
  --seed S               seed for weights, sampling and augmentation (default 1)
  --lr LR                learning rate (default per preset)
  --levels L             override the preset's resolution levels
  --base-filters F       override the preset's first-level filters
  --balance B            class-weight balancing exponent: 0 = equal weights, 1 = inverse frequency (default 0.75)
  --batch N              training samples per step (default per preset: 2, paper 1; on a CPU 2 thin tiles per
                         step train ~3x more samples per second than 1)
  --dice W               add W x soft Dice (classes 2..K, annotated voxels) to the cross-entropy (default 0;
                         1 under-segmented the plant nuclei)
  --average F            average the weights over the last fraction F of training (0 = off)
  --bn-at-test M         batch (default) | running: batch-norm statistics at prediction (batch: the paper's
                         choice; running statistics from thin training tiles under-segmented 1136 badly)
  --no-batch-norm        a network without batch normalisation
  --plane-tile N         in-plane output size of training tiles (default per preset)
  --downsample F         auto (default: xy by round(z/xy spacing), at most 2, when z is coarser) | none |
                         F (xy) | Z,Y,X — train and predict at reduced resolution, labels at full resolution
  --no-flips             predict without test-time flip averaging (4x faster prediction)
  --probabilities P.tif  also write per-class probabilities (float32, one channel per class)
  --snapshot PNG         also write a PNG of the middle xy slice with the segmentation overlaid
  --model DIR            also save the trained model folder (for 'sliceform segment')
  --truth GT             dense ground truth: prints the IoU over the voxels SPARSE leaves unannotated
  --truth-dataset D      HDF5 dataset of the ground truth (e.g. label)
  --truth-mode M         auto (default) | instances (GT > 0 -> class 2, else 1) | classes
  -h, --help             show this help

Exit codes: 0 ok, 1 failure, 2 bad input, 130 cancelled.`;

export function cliProgress(io: CliIO) {
  const write = io.isTTY ? (s: string) => process.stderr.write(s) : io.err;
  return progressPrinter(write, io.isTTY);
}

export function parseDevice(s: string | undefined): Device {
  const d = s ?? 'cpu';
  if (d !== 'cpu' && d !== 'cuda') throw new SliceformError('bad-input', `--device must be cpu or cuda, got "${d}"`);
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
    minutes: { type: 'string' },
    iterations: { type: 'string' },
    preset: { type: 'string' },
    device: { type: 'string' },
    threads: { type: 'string' },
    seed: { type: 'string' },
    lr: { type: 'string' },
    levels: { type: 'string' },
    'base-filters': { type: 'string' },
    'plane-tile': { type: 'string' },
    balance: { type: 'string' },
    dice: { type: 'string' },
    batch: { type: 'string' },
    'bn-at-test': { type: 'string' },
    'no-batch-norm': { type: 'boolean' },
    average: { type: 'string' },
    'no-flips': { type: 'boolean' },
    downsample: { type: 'string' },
    probabilities: { type: 'string' },
    model: { type: 'string' },
    snapshot: { type: 'string' },
    truth: { type: 'string' },
    'truth-dataset': { type: 'string' },
    'truth-mode': { type: 'string' },
  },
  async run(args, io, signal) {
    const v = args.values;
    const imagePath = strOpt(v, 'image', true);
    const labelsPath = strOpt(v, 'labels', true);
    const out = strOpt(v, 'out', true);
    // every range and path checked before any file is read (issue 14 items 12, 19)
    checkRanges(v, ['minutes', 'iterations', 'seed', 'lr', 'plane-tile', 'balance', 'dice', 'batch', 'average', 'levels', 'base-filters']);
    checkDownsample(v);
    await checkPaths({
      inputs: [
        { label: '--image', path: imagePath },
        { label: '--labels', path: labelsPath },
        { label: '--truth', path: strOpt(v, 'truth') },
      ],
      fileOutputs: [
        { label: '--out', path: out },
        { label: '--probabilities', path: strOpt(v, 'probabilities') },
        { label: '--snapshot', path: strOpt(v, 'snapshot') },
      ],
      dirOutputs: [{ label: '--model', path: strOpt(v, 'model') }],
    });
    const preset = strOpt(v, 'preset') ?? 'desktop';
    if (!isPreset(preset)) throw new SliceformError('bad-input', `unknown --preset "${preset}" (desktop, paper, tiny)`);
    const iterations = numOpt(v, 'iterations');
    let minutes = numOpt(v, 'minutes');
    if (iterations === undefined && minutes === undefined) minutes = 4;
    if (minutes !== undefined && !(minutes > 0)) throw new SliceformError('bad-input', `--minutes must be positive, got ${minutes}`);
    if (iterations !== undefined && !(Number.isInteger(iterations) && iterations > 0)) throw new SliceformError('bad-input', `--iterations must be a positive integer, got ${iterations}`);
    const device = parseDevice(strOpt(v, 'device'));
    const threads = threadsOpt(v, io);
    const seed = numOpt(v, 'seed') ?? 1;
    const truthMode = (strOpt(v, 'truth-mode') ?? 'auto') as 'auto' | 'instances' | 'classes';
    if (!['auto', 'instances', 'classes'].includes(truthMode)) throw new SliceformError('bad-input', `--truth-mode must be auto, instances or classes`);

    const t0 = Date.now();
    const image = await readVolume(imagePath, { dataset: strOpt(v, 'dataset'), signal, onWarning: (w) => io.err(`warning: ${w}`) });
    assertFiniteImage(image, imagePath);
    const labels = await readLabels(labelsPath, image, strOpt(v, 'labels-dataset'));
    const truthPath = strOpt(v, 'truth');
    const truth = truthPath ? await readVolume(truthPath, { dataset: strOpt(v, 'truth-dataset'), signal }) : null;
    if (truth && (truth.shape.x !== image.shape.x || truth.shape.y !== image.shape.y || truth.shape.z !== image.shape.z)) {
      throw new SliceformError('bad-input', `ground truth is ${truth.shape.x}x${truth.shape.y}x${truth.shape.z}, the image ${image.shape.x}x${image.shape.y}x${image.shape.z}`, { file: truthPath });
    }
    const K = Math.max(2, maxLabel(labels.data));
    const ds = parseFactors(strOpt(v, 'downsample') ?? (preset === 'paper' ? 'none' : 'auto'));
    if (ds === null) throw new SliceformError('bad-input', `--downsample must be auto, none, F or Z,Y,X (integers 1..8)`);
    const factors = ds === 'auto' ? autoDownsample(image.spacing) : ds;
    const trainImage = downsampleVolume(image, factors);
    const trainLabels = downsampleLabelVolume(labels, factors);
    const net = { ...resolveNet(preset, image.shape.c, K) };
    const lv = numOpt(v, 'levels');
    const bf = numOpt(v, 'base-filters');
    if (lv !== undefined) {
      if (!(Number.isInteger(lv) && lv >= 1 && lv <= 6)) throw new SliceformError('bad-input', `--levels must be an integer 1..6, got ${lv}`);
      net.levels = lv;
    }
    if (bf !== undefined) {
      if (!(Number.isInteger(bf) && bf >= 1 && bf <= 256)) throw new SliceformError('bad-input', `--base-filters must be an integer 1..256, got ${bf}`);
      net.baseFilters = bf;
    }
    const bnt = strOpt(v, 'bn-at-test') ?? 'batch';
    if (bnt !== 'running' && bnt !== 'batch') throw new SliceformError('bad-input', `--bn-at-test must be running or batch, got "${bnt}"`);
    net.bnAtTest = bnt;
    if (v['no-batch-norm']) net.batchNorm = false;
    const planeTile = numOpt(v, 'plane-tile');
    const defaults = TRAINING_DEFAULTS[preset];
    const lr = numOpt(v, 'lr') ?? defaults.optim.lr;
    const engine = await loadEngine();
    const bar = cliProgress(io);
    io.err(`densify: ${image.shape.x}x${image.shape.y}x${image.shape.z} (x*y*z), ${image.shape.c} channel(s), ${K} classes, preset ${preset}, ${minutes !== undefined ? `${minutes} min` : ''}${iterations !== undefined ? ` ${iterations} iterations` : ''}, engine ${engine.info.name} on ${device}`);
    if (!isIdentity(factors)) io.err(`working at reduced resolution: downsampled by ${factors.join('x')} (z,y,x) to ${trainImage.shape.x}x${trainImage.shape.y}x${trainImage.shape.z}`);
    const trained = await trainModel(engine, [{ image: trainImage, labels: trainLabels }], {
      net,
      optim: { ...defaults.optim, lr },
      modelOptions: { device, threads, seed },
      iterations,
      minutes,
      seed,
      classWeightPower: numOpt(v, 'balance') ?? DEFAULT_BALANCE,
      dice: numOpt(v, 'dice') ?? 0,
      batch: numOpt(v, 'batch') ?? defaults.batch,
      averageFrom: numOpt(v, 'average') ?? 0,
      planeOut: planeTile ?? defaults.planeOut,
      cubeOut: defaults.cubeOut,
      signal,
      onProgress: bar.update,
    });
    bar.done();
    const model = trained.model;
    try {
      if (signal.aborted) throw new CancelledError('densify cancelled during training');
      const s = trained.summary;
      io.err(`trained ${s.iterations} iterations in ${s.seconds.toFixed(0)} s, loss ${s.finalLoss?.toFixed(4)}, annotated share of output voxels ${((s.annotatedShare ?? 0) * 100).toFixed(1)} %, ${Math.round(s.outputVoxelsPerSecond ?? 0)} output voxels/s`);
      const classNames = K === 2 ? ['background', 'foreground'] : Array.from({ length: K }, (_, k) => `class ${k + 1}`);
      const modelDir = strOpt(v, 'model');
      if (modelDir) {
        await saveModelDir(modelDir, model, {
          net,
          optim: { ...defaults.optim, lr },
          normalisation: trained.normalisation,
          classNames,
          spacing: { z: image.spacing.z, y: image.spacing.y, x: image.spacing.x, unit: image.spacing.unit },
          downsample: factors,
          training: { ...trained.summary, preset },
        });
      }
      const tp = Date.now();
      const seg = await segmentToFiles(model, image, {
        normalisation: trained.normalisation,
        downsample: factors,
        out,
        probabilitiesOut: strOpt(v, 'probabilities'),
        testTimeFlips: !v['no-flips'],
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
        io.err(`IoU over ${sc.voxels} unannotated voxels: class ${K} (${classNames[K - 1]}) ${fg?.iou?.toFixed(4)}, mean ${sc.meanIoU?.toFixed(4)}`);
      }
      const snap = strOpt(v, 'snapshot');
      if (snap && seg.labels) {
        // class 1 (background) stays transparent; the other classes are tinted
        const overlay = Uint8Array.from(seg.labels, (l) => (l === 1 ? 0 : l));
        await writeSnapshot(image, { plane: 'xy', out: snap, labels: { data: overlay, shape: { ...image.shape, c: 1 } }, alpha: 0.4, labelColors: { 2: [255, 60, 60] } });
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
