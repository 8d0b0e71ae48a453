import type { Command, CliIO } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { checkDownsample, checkPaths, checkRanges } from '../validate.js';
import { SliceformError } from '../../common/errors.js';
import { PRESETS, type NetConfig, type OptimConfig, type PresetName } from '../../common/engine.js';
import { TRAINING_DEFAULTS } from '../../training/presets.js';
import { parseFactors } from '../../volume/resample.js';
import { readVolume } from '../../io/index.js';
import { loadEngine } from '../../engine/index.js';
import { writeFileAtomic } from '../../batch/report.js';
import {
  crossValidate,
  leaveOneVolumeOut,
  sliceCurve,
  type EvalVolume,
  type Learner,
  type ProtocolResult,
  type RunResult,
} from '../../evaluation/protocols.js';
import {
  classesFromTruth,
  detectAnnotatedSlices,
  labelledFraction,
  powersOfTwoUpTo,
  slicesFromTruth,
} from '../../evaluation/slices.js';
import { create2DLearner } from '../../evaluation/mode2d.js';
import { create3DLearner } from '../../evaluation/learner3d.js';
import { recipeSettings } from '../../pipeline/settings.js';
import { planRecipe } from '../../pipeline/recipe.js';

const usage = `Usage: sliceform crossval --image IMG --labels LAB [--image IMG2 --labels LAB2 ...] [options]

The paper's evaluation protocols (Çiçek et al. 2016) on sparsely annotated volumes:
  (default)                semi-automatic k-fold cross-validation: the annotated slices of all volumes are split
                           evenly into --folds folds; per fold a network is trained with that fold's slices
                           removed and scored (IoU) on them (paper Table 1)
  --slice-curve            IoU versus annotated slices per axis (1, 2, 4, ...), scored on slices never used for
                           training at any count (paper Table 2)
  --leave-one-volume-out   fully automatic: train on all volumes but one, score the left-out one (paper Table 3)
Several protocols can be given together; --folds runs the cross-validation alongside the others.
Prints a table per protocol (stdout; --json prints JSON instead). Progress goes to stderr.

Labels:
  LAB holds classes 1..K on some slices and 0 (unannotated) elsewhere; planes with at least
  --slice-min-fraction of their voxels labelled count as annotated slices.
  --labels-from-truth K    LAB is a dense ground truth instead: K evenly spaced slices per axis are the
                           annotated slices (K = 1: the middle slice). With --truth-instances (default for
                           this option) label > 0 is class 2 ("nucleus"), 0 is class 1 ("background").
  --truth-classes          with --labels-from-truth: LAB already holds classes 1..K (no 0)

Options:
  --dataset D              HDF5 dataset of the images (default: the reader's choice, preferring "raw")
  --labels-dataset D       HDF5 dataset of the labels (e.g. "label")
  --folds N                number of folds (default 3)
  --mode 3d|2d             3d: the 3D U-Net; 2d: every annotated slice an independent 2D image for the 2D U-Net,
                           applied slice by slice (default 3d)
  --preset NAME            network size: desktop (default), tiny, paper
  --no-batchnorm           network without batch normalisation
  --bn-at-test MODE        batch (default, as densify: current batch statistics at test time, the paper's choice) or running
  --minutes M              training minutes per run (each fold / curve point / volume; default 5)
  --iterations N           training iterations per run instead of minutes
  --counts 1,2,4           slice counts per axis for --slice-curve (default 1, 2, 4)
  --seed S                 seed (default 1)
  --lr LR                  learning rate (default: the preset's, as densify/train use; desktop: Adam 0.002)
  --downsample F           3d mode: auto (default, as densify: xy by round(z/xy spacing), at most 2, when z is
                           coarser) | none | F (xy) | Z,Y,X; scoring is always at full resolution
  --flips                  test-time mirroring when predicting (4x the prediction time)
  --device cpu|cuda        where the network runs (default cpu)
  --class-names a,b        class names (default background,nucleus with --labels-from-truth)
  --slice-min-fraction F   share of a plane that must be labelled for it to count as an annotated slice (0.2)
  --json                   print the results as JSON instead of tables
  --out FILE.json          also write the results as JSON
  -h, --help               show this help

Time: each run trains for --minutes, then predicts; the cross-validation makes --folds runs, the slice curve
one run per count, leave-one-volume-out one per volume.
Exit codes: 0 ok, 2 bad input (unreadable files, shapes that differ, too few annotated slices).`;

function list(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function fmt(x: number | null | undefined, d = 3): string {
  return x === null || x === undefined ? '–' : x.toFixed(d);
}

/** A markdown table of one protocol's runs. */
export function protocolTable(r: ProtocolResult, classNames: string[]): string {
  const k = r.runs[0]?.score.classes.length ?? classNames.length;
  const names = Array.from({ length: k }, (_, i) => classNames[i] ?? `class ${i + 1}`);
  const head = [
    'run',
    'train slices',
    'test slices',
    ...names.map((n) => `IoU ${n}`),
    'mean IoU',
    'iterations',
    'train s',
    'predict s',
  ];
  const hasWhole = r.runs.some((x) => x.wholeVolume);
  if (hasWhole) head.splice(head.length - 3, 0, 'whole-volume fg IoU');
  const row = (x: RunResult) => {
    const cells = [
      x.label,
      String(x.trainSlices),
      String(x.testSlices),
      ...x.score.classes.map((c) => fmt(c.iou)),
      fmt(x.score.meanIoU),
      x.iterations !== undefined ? String(x.iterations) : '–',
      x.trainSeconds.toFixed(0),
      x.predictSeconds.toFixed(0),
    ];
    if (hasWhole) cells.splice(cells.length - 3, 0, fmt(x.wholeVolume?.foregroundIoU));
    return cells;
  };
  const rows = r.runs.map(row);
  const meanCls = (i: number) => {
    const v = r.runs.map((x) => x.score.classes[i]?.iou).filter((x): x is number => typeof x === 'number');
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  if (r.protocol !== 'slice-curve') {
    const m = ['mean of runs', '', '', ...names.map((_, i) => fmt(meanCls(i))), fmt(r.meanIoU), '', '', ''];
    if (hasWhole) {
      const w = r.runs
        .map((x) => x.wholeVolume?.foregroundIoU)
        .filter((x): x is number => typeof x === 'number');
      m.splice(m.length - 3, 0, fmt(w.length ? w.reduce((a, b) => a + b, 0) / w.length : null));
    }
    rows.push(m);
  }
  if (r.pooled)
    rows.push([
      'pooled voxels',
      '',
      '',
      ...r.pooled.classes.map((c) => fmt(c.iou)),
      fmt(r.pooled.meanIoU),
      '',
      '',
      '',
    ]);
  const lines = [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((c) => `| ${c.join(' | ')} |`),
  ];
  return lines.join('\n');
}

async function loadVolumes(
  images: string[],
  labels: string[],
  o: {
    dataset?: string;
    labelsDataset?: string;
    fromTruth?: number;
    truthClasses: boolean;
    minFraction: number;
  },
  io: CliIO,
): Promise<EvalVolume[]> {
  const vols: EvalVolume[] = [];
  const warn = (w: string) => io.err(`sliceform crossval: warning: ${w}`);
  for (let i = 0; i < images.length; i++) {
    const image = await readVolume(images[i]!, { dataset: o.dataset, onWarning: warn });
    const lab = await readVolume(labels[i]!, { dataset: o.labelsDataset, onWarning: warn });
    const a = image.shape;
    const b = lab.shape;
    if (a.x !== b.x || a.y !== b.y || a.z !== b.z)
      throw new SliceformError(
        'bad-input',
        `labels ${labels[i]} are ${b.x}x${b.y}x${b.z} (x*y*z) but the image ${images[i]} is ${a.x}x${a.y}x${a.z}`,
      );
    if (b.c !== 1)
      throw new SliceformError('bad-input', `labels must have one channel, found ${b.c}`, {
        file: labels[i],
      });
    const dims = { x: a.x, y: a.y, z: a.z };
    const name = images[i]!.split('/').at(-1)!;
    if (o.fromTruth !== undefined) {
      const cls = classesFromTruth(lab.data, o.truthClasses ? 'classes' : 'instances');
      if (o.truthClasses && cls.some((v) => v === 0))
        throw new SliceformError(
          'bad-input',
          '--truth-classes: the ground truth has unlabelled (0) voxels; it must be dense',
          { file: labels[i] },
        );
      vols.push({
        name,
        image,
        dims,
        labels: cls,
        slices: slicesFromTruth(dims, o.fromTruth, i),
        dense: true,
      });
    } else {
      const hint = 'a ground truth or instance labelling needs --labels-from-truth K';
      const frac = labelledFraction(lab.data);
      if (frac > 0.5)
        throw new SliceformError(
          'bad-input',
          `${(frac * 100).toFixed(0)} % of the voxels are labelled: these are not sparse slice annotations (${hint})`,
          { file: labels[i] },
        );
      let cls: Uint8Array;
      try {
        cls = classesFromTruth(lab.data, 'classes');
      } catch (e) {
        throw new SliceformError('bad-input', `${(e as Error).message} (${hint})`, { file: labels[i] });
      }
      const slices = detectAnnotatedSlices(cls, dims, i, o.minFraction);
      if (slices.length === 0)
        throw new SliceformError(
          'bad-input',
          `no annotated slices found (no plane with ${o.minFraction * 100} % of its voxels labelled that stands out from the others; ${hint})`,
          { file: labels[i] },
        );
      vols.push({ name, image, dims, labels: cls, slices });
    }
    io.err(`${name}: ${a.x}x${a.y}x${a.z}x${a.c}, ${vols.at(-1)!.slices.length} annotated slices`);
  }
  return vols;
}

const crossval: Command = {
  name: 'crossval',
  summary:
    "the paper's protocols: k-fold slice cross-validation, slice curve, leave-one-volume-out (3D or 2D)",
  usage,
  options: {
    image: { type: 'string', multiple: true },
    labels: { type: 'string', multiple: true },
    dataset: { type: 'string' },
    'labels-dataset': { type: 'string' },
    'labels-from-truth': { type: 'string' },
    'truth-classes': { type: 'boolean' },
    'truth-instances': { type: 'boolean' },
    folds: { type: 'string' },
    mode: { type: 'string' },
    preset: { type: 'string' },
    'no-batchnorm': { type: 'boolean' },
    'bn-at-test': { type: 'string' },
    minutes: { type: 'string' },
    iterations: { type: 'string' },
    counts: { type: 'string' },
    'slice-curve': { type: 'boolean' },
    'leave-one-volume-out': { type: 'boolean' },
    seed: { type: 'string' },
    lr: { type: 'string' },
    flips: { type: 'boolean' },
    downsample: { type: 'string' },
    device: { type: 'string' },
    'class-names': { type: 'string' },
    'slice-min-fraction': { type: 'string' },
    json: { type: 'boolean' },
    out: { type: 'string' },
  },
  async run(args, io, signal) {
    const v = args.values;
    const images = list(v.image);
    const labels = list(v.labels);
    if (images.length === 0)
      throw new SliceformError('bad-input', `give at least one --image and --labels\n\n${usage}`);
    if (images.length !== labels.length)
      throw new SliceformError(
        'bad-input',
        `${images.length} --image but ${labels.length} --labels: give one --labels per --image`,
      );
    // ranges and paths before any file is read (issue 14 items 12, 19)
    checkRanges(v, ['folds', 'minutes', 'iterations', 'seed', 'lr', 'slice-min-fraction']);
    checkDownsample(v);
    await checkPaths({
      inputs: [...images.map((path) => ({ label: '--image', path })), ...labels.map((path) => ({ label: '--labels', path }))],
      fileOutputs: [{ label: '--out', path: strOpt(v, 'out') }],
    });
    const mode = strOpt(v, 'mode') ?? '3d';
    if (mode !== '3d' && mode !== '2d')
      throw new SliceformError('bad-input', `--mode must be 3d or 2d, got "${mode}"`);
    const presetName = (strOpt(v, 'preset') ?? 'desktop') as PresetName;
    if (!(presetName in PRESETS))
      throw new SliceformError('bad-input', `--preset must be one of ${Object.keys(PRESETS).join(', ')}`);
    const bnAtTest = strOpt(v, 'bn-at-test') ?? 'batch';
    if (bnAtTest !== 'running' && bnAtTest !== 'batch')
      throw new SliceformError('bad-input', `--bn-at-test must be running or batch, got "${bnAtTest}"`);
    const device = strOpt(v, 'device') ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda')
      throw new SliceformError('bad-input', `--device must be cpu or cuda, got "${device}"`);
    const foldsGiven = v.folds !== undefined;
    const folds = numOpt(v, 'folds', 3)!;
    if (!Number.isInteger(folds) || folds < 2)
      throw new SliceformError('bad-input', `--folds must be an integer >= 2, got ${folds}`);
    const iterations = numOpt(v, 'iterations');
    const minutes =
      iterations !== undefined && v.minutes === undefined ? undefined : numOpt(v, 'minutes', 5)!;
    if (minutes !== undefined && !(minutes > 0))
      throw new SliceformError('bad-input', `--minutes must be positive`);
    if (iterations !== undefined && !(Number.isInteger(iterations) && iterations > 0))
      throw new SliceformError('bad-input', `--iterations must be a positive integer`);
    const fromTruthRaw = numOpt(v, 'labels-from-truth');
    if (fromTruthRaw !== undefined && !(Number.isInteger(fromTruthRaw) && fromTruthRaw >= 1))
      throw new SliceformError(
        'bad-input',
        `--labels-from-truth must be a positive integer (slices per axis)`,
      );
    const counts = (strOpt(v, 'counts') ?? '')
      .split(',')
      .filter((s) => s.trim() !== '')
      .map(Number);
    if (counts.some((n) => !Number.isInteger(n) || n < 1))
      throw new SliceformError('bad-input', `--counts must be positive integers, e.g. 1,2,4`);
    const curveCounts = counts.length ? counts : powersOfTwoUpTo(4);
    const doCurve = Boolean(v['slice-curve']);
    const doLovo = Boolean(v['leave-one-volume-out']);
    const doCv = foldsGiven || (!doCurve && !doLovo);
    if (doLovo && images.length < 2)
      throw new SliceformError(
        'bad-input',
        '--leave-one-volume-out needs at least two --image/--labels pairs',
      );
    const seed = numOpt(v, 'seed', 1)!;
    const defaults = TRAINING_DEFAULTS[presetName];
    const ds = parseFactors(strOpt(v, 'downsample') ?? (presetName === 'paper' ? 'none' : 'auto'));
    if (ds === null)
      throw new SliceformError('bad-input', `--downsample must be auto, none, F or Z,Y,X (integers 1..8)`);
    const lr = numOpt(v, 'lr', defaults.optim.lr)!;
    const minFraction = numOpt(v, 'slice-min-fraction', 0.2)!;

    const t0 = Date.now();
    const vols = await loadVolumes(
      images,
      labels,
      {
        dataset: strOpt(v, 'dataset'),
        labelsDataset: strOpt(v, 'labels-dataset'),
        fromTruth: fromTruthRaw,
        truthClasses: Boolean(v['truth-classes']),
        minFraction,
      },
      io,
    );

    const channels = vols[0]!.image.shape.c;
    for (const e of vols)
      if (e.image.shape.c !== channels)
        throw new SliceformError(
          'bad-input',
          `all images need the same channel count (${e.name} has ${e.image.shape.c}, ${vols[0]!.name} ${channels})`,
        );
    let K = 2;
    for (const e of vols) for (const l of e.labels) if (l > K) K = l;
    // densify's recipe; crossval differs only in what it says here (flips opt-in for speed)
    const settings3d = recipeSettings({
      preset: presetName,
      minutes,
      iterations,
      seed,
      device: device as 'cpu' | 'cuda',
      lr,
      bnAtTest: bnAtTest as 'running' | 'batch',
      batchNorm: !v['no-batchnorm'],
      downsample: ds,
      flips: Boolean(v.flips),
    });
    const factors = planRecipe([vols[0]!.image], K, settings3d).downsample;
    const classNames =
      strOpt(v, 'class-names')
        ?.split(',')
        .map((s) => s.trim()) ??
      (fromTruthRaw !== undefined && !v['truth-classes']
        ? ['background', 'nucleus']
        : Array.from({ length: K }, (_, i) => `class${i + 1}`));

    const net: NetConfig = {
      ...PRESETS[presetName],
      dims: 3,
      inChannels: channels,
      numClasses: K,
      batchNorm: !v['no-batchnorm'],
      bnAtTest: bnAtTest as 'running' | 'batch',
    };
    const optim: OptimConfig = { ...defaults.optim, lr };
    const engine = await loadEngine();
    const log = (m: string) => io.err(m);
    let lastStep = 0;
    const learner: Learner =
      mode === '2d'
        ? create2DLearner({
            engine,
            net,
            optim,
            minutes,
            iterations,
            seed,
            device: device as 'cpu' | 'cuda',
            onProgress: (p) => {
              if (Date.now() - lastStep < 15_000) return;
              lastStep = Date.now();
              io.err(
                `${p.label}: iteration ${p.iteration}, loss ${p.loss.toFixed(4)}, ${p.seconds.toFixed(0)} s`,
              );
            },
          })
        : create3DLearner({
            engine,
            settings: settings3d,
            numClasses: K,
            onStep: (label, s) => {
              if (Date.now() - lastStep < 15_000) return;
              lastStep = Date.now();
              io.err(
                `${label}: iteration ${s.iteration}, loss ${s.loss.toFixed(4)}, ${Math.round(s.voxelsPerSecond)} voxels/s, ${s.elapsed.toFixed(0)} s`,
              );
            },
          });

    const popts = {
      signal,
      log,
      classNames,
      onRun: (r: RunResult) =>
        io.err(
          `${r.label}: IoU ${r.score.classes.map((c) => `${c.name ?? c.class} ${fmt(c.iou)}`).join(', ')} (train ${r.trainSeconds.toFixed(0)} s, predict ${r.predictSeconds.toFixed(0)} s)`,
        ),
    };
    const results: ProtocolResult[] = [];
    if (doCv) results.push(await crossValidate(vols, folds, learner, popts));
    if (doCurve) results.push(await sliceCurve(vols, curveCounts, learner, popts));
    if (doLovo) results.push(await leaveOneVolumeOut(vols, learner, popts));
    const seconds = (Date.now() - t0) / 1000;
    const summary = {
      command: 'crossval',
      mode,
      preset: presetName,
      downsample: mode === '3d' ? factors : null,
      net,
      optim,
      minutesPerRun: minutes ?? null,
      iterationsPerRun: iterations ?? null,
      seed,
      engine: engine.info,
      volumes: vols.map((e) => ({ name: e.name, shape: e.dims, annotatedSlices: e.slices.length })),
      classNames,
      folds: doCv ? folds : null,
      results,
      minutes: seconds / 60,
    };
    const outPath = strOpt(v, 'out');
    if (outPath) await writeFileAtomic(outPath, JSON.stringify(summary, null, 2) + '\n');
    if (v.json) io.out(JSON.stringify(summary, null, 2));
    else {
      const title: Record<ProtocolResult['protocol'], string> = {
        crossval: `${folds}-fold cross-validation over annotated slices`,
        'slice-curve': 'IoU versus annotated slices per axis (scored on never-trained slices)',
        'leave-one-volume-out': 'leave-one-volume-out (fully automatic)',
      };
      const bn = net.batchNorm ? `BN, BN at test: ${net.bnAtTest}` : 'no BN';
      const budget = minutes !== undefined ? `${minutes} min/run` : `${iterations} iterations/run`;
      for (const r of results) {
        const res =
          mode === '3d'
            ? `, downsampled ${factors.join('x')} (z,y,x)${ds === 'auto' ? ' (auto)' : ''}`
            : ', full resolution';
        io.out(
          `\n${title[r.protocol]} — ${mode.toUpperCase()} ${presetName}, ${bn}${res}, ${budget}, ${(r.seconds / 60).toFixed(1)} min\n`,
        );
        io.out(protocolTable(r, classNames));
      }
      io.out(
        `\ntotal ${(seconds / 60).toFixed(1)} min, engine ${engine.info.name} (${engine.info.version}), ${vols.length} volume(s)`,
      );
    }
    return 0;
  },
};

export default crossval;
