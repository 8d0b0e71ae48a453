import type { Command } from '../command.js';
import { strOpt } from '../command.js';
import { rangeOpt } from '../validate.js';
import { SliceformError } from '../../common/errors.js';
import { readVolume } from '../../io/index.js';
import { Confusion } from '../../evaluation/score.js';
import { classesFromTruth } from '../../evaluation/slices.js';
import { scoreInstances } from '../../evaluation/instances.js';
import { objectsOf, objectSpacing } from '../../objects/files.js';

/** more classes than this only with --num-classes: a raw image passed as labels has values up to 255 */
export const MAX_IMPLICIT_CLASSES = 32;

const usage = `Usage: sliceform evaluate --pred SEG --truth LABELS [--annotated-only] [--foreground-from-instances]
                          [--truth-dataset D] [--pred-dataset D] [--class-names N1,N2,...]
       sliceform evaluate --instances --pred INST --truth INSTANCES [--pred-semantic] [--thresholds 0.5,0.75]

Scores a segmentation against labels and prints JSON: per-class IoU = TP / (TP + FP + FN) (the paper's
definition), Dice = 2TP / (2TP + FP + FN), their means over the classes present, and the foreground IoU (mean
over classes 2..K; class 1 = background).

Options:
  --pred SEG                    predicted labels (1..K), e.g. a Sliceform label TIFF
  --truth LABELS                ground truth / annotation (TIFF, OME-TIFF, LSM, HDF5)
  --annotated-only              score only voxels labelled (> 0) in LABELS, as the paper scores held-out
                                annotated slices; without it LABELS must be dense (no 0)
  --foreground-from-instances   LABELS holds instance ids (0 = background, k = object k): score
                                "object" (class 2, label > 0) against "background" (class 1, label 0)
  --truth-dataset D             HDF5 dataset of LABELS (e.g. "label")
  --pred-dataset D              HDF5 dataset of SEG
  --class-names N1,N2           names for classes 1, 2, ... in the output
  --instances                   instance scores instead: PRED and LABELS hold object ids (0 = background);
                                average precision AP = TP / (TP + FP + FN) at IoU >= 0.5 and 0.75 (the
                                StarDist / Cellpose convention), precision, recall, F1, object count error
  --pred-semantic               with --instances: SEG is a segmentation (classes 1..K); its objects are made
                                with the default recipe of 'sliceform objects' (watershed split)
  --thresholds T1,T2            with --instances: IoU thresholds (default 0.5,0.75)
  --num-classes K               the labels really hold up to K classes; without it a label value above
                                ${MAX_IMPLICIT_CLASSES} is refused (a raw image given as labels would score 255 "classes")
  -h, --help                    show this help

Exit codes: 0 ok, 2 unreadable files, shapes that differ, or labels that do not fit the options.`;

/** Labels are integers >= 0: a negative value (int8/int16/int32 file) is no class. */
function refuseNegative(data: ArrayLike<number>, file: string): void {
  let neg = 0;
  let first = 0;
  for (let i = 0; i < data.length; i++)
    if (data[i]! < 0) {
      if (!neg) first = data[i]!;
      neg++;
    }
  if (neg) throw new SliceformError('bad-input', `${neg} voxels have negative values (e.g. ${first}): labels are 0 (unannotated) or classes 1..K`, { file });
}

const evaluate: Command = {
  name: 'evaluate',
  summary: 'score a segmentation against labels: per-class IoU, mean IoU, Dice (JSON)',
  usage,
  options: {
    pred: { type: 'string' },
    truth: { type: 'string' },
    'annotated-only': { type: 'boolean' },
    'foreground-from-instances': { type: 'boolean' },
    'truth-dataset': { type: 'string' },
    'pred-dataset': { type: 'string' },
    'class-names': { type: 'string' },
    'num-classes': { type: 'string' },
    instances: { type: 'boolean' },
    'pred-semantic': { type: 'boolean' },
    thresholds: { type: 'string' },
  },
  async run(args, io) {
    const predPath = strOpt(args.values, 'pred', true);
    const truthPath = strOpt(args.values, 'truth', true);
    const annotatedOnly = Boolean(args.values['annotated-only']);
    const instances = Boolean(args.values['foreground-from-instances']);
    const classNames = strOpt(args.values, 'class-names')?.split(',').map((s) => s.trim());
    const numClasses = rangeOpt(args.values, 'num-classes', { min: 2, max: 65535, integer: true });
    const warn = (w: string) => io.err(`sliceform evaluate: warning: ${w}`);
    const pred = await readVolume(predPath, { dataset: strOpt(args.values, 'pred-dataset'), onWarning: warn });
    const truthVol = await readVolume(truthPath, { dataset: strOpt(args.values, 'truth-dataset'), onWarning: warn });
    const a = pred.shape;
    const b = truthVol.shape;
    if (a.x !== b.x || a.y !== b.y || a.z !== b.z) {
      throw new SliceformError('bad-input', `shapes differ: ${predPath} is ${a.x}x${a.y}x${a.z} (x*y*z), ${truthPath} is ${b.x}x${b.y}x${b.z}`);
    }
    if (a.c !== 1) throw new SliceformError('bad-input', `a label volume has one channel, found ${a.c}`, { file: predPath });
    if (b.c !== 1) throw new SliceformError('bad-input', `a label volume has one channel, found ${b.c}`, { file: truthPath });
    if (/float/.test(pred.dtype)) throw new SliceformError('bad-input', `labels must be integers, found ${pred.dtype} (a probability map?)`, { file: predPath });
    if (/float/.test(truthVol.dtype)) throw new SliceformError('bad-input', `labels must be integers, found ${truthVol.dtype}`, { file: truthPath });

    refuseNegative(pred.data, predPath);
    if (!instances) refuseNegative(truthVol.data, truthPath);
    if (args.values.instances) {
      refuseNegative(truthVol.data, truthPath);
      const ths = (strOpt(args.values, 'thresholds') ?? '0.5,0.75').split(',').map((t) => {
        const n = Number(t);
        if (!(n > 0 && n <= 1)) throw new SliceformError('bad-input', `--thresholds: "${t}" is not an IoU in (0, 1]`);
        return n;
      });
      let predIds: ArrayLike<number> = pred.data;
      if (args.values['pred-semantic']) {
        predIds = objectsOf(pred, null, objectSpacing(pred, truthVol, warn)).instances.labels;
      }
      let any = false;
      for (let i = 0; i < truthVol.data.length && !any; i++) if (truthVol.data[i]! > 0) any = true;
      if (!any) throw new SliceformError('bad-input', 'empty mask: the truth has no object (every label is 0)', { file: truthPath });
      const s = scoreInstances(predIds, truthVol.data, ths);
      io.out(JSON.stringify({ pred: predPath, truth: truthPath, instances: true, predSemantic: Boolean(args.values['pred-semantic']), shape: { x: a.x, y: a.y, z: a.z }, ...s }, null, 2));
      return 0;
    }
    let truth: ArrayLike<number>;
    if (instances) {
      truth = classesFromTruth(truthVol.data, 'instances');
    } else {
      truth = truthVol.data;
      let zeros = 0;
      for (let i = 0; i < truth.length; i++) if (truth[i] === 0) zeros++;
      if (zeros > 0 && !annotatedOnly) {
        throw new SliceformError(
          'bad-input',
          `${zeros} voxels are 0 (unannotated): pass --annotated-only to score only labelled voxels, or --foreground-from-instances if 0 means background in an instance label image`,
          { file: truthPath },
        );
      }
      if (zeros === truth.length) throw new SliceformError('bad-input', 'no labelled voxel to score (all 0)', { file: truthPath });
    }
    let k = 1;
    for (let i = 0; i < truth.length; i++) if (truth[i]! > k) k = truth[i]!;
    for (let i = 0; i < pred.data.length; i++) if (pred.data[i]! > k) k = pred.data[i]!;
    if (k > 65535) throw new SliceformError('bad-input', `class value ${k} is too large for a class label (instance ids? use --foreground-from-instances)`);
    const limit = numClasses ?? MAX_IMPLICIT_CLASSES;
    if (k > limit) {
      let where = predPath;
      for (let i = 0; i < truth.length; i++) {
        if (truth[i]! > limit) {
          where = truthPath;
          break;
        }
      }
      throw new SliceformError(
        'bad-input',
        numClasses !== undefined
          ? `a label value is ${k}, above --num-classes ${numClasses}`
          : `label values go up to ${k}: is this an image rather than labels? Give --num-classes ${k} if there really are ${k} classes, or --foreground-from-instances for instance ids`,
        { file: where },
      );
    }
    const score = new Confusion(k).add(pred.data, truth).score(classNames);
    io.out(
      JSON.stringify(
        {
          pred: predPath,
          truth: truthPath,
          annotatedOnly,
          foregroundFromInstances: instances,
          shape: { x: a.x, y: a.y, z: a.z },
          ...score,
        },
        null,
        2,
      ),
    );
    return 0;
  },
};

export default evaluate;
