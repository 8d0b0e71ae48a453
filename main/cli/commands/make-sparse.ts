import type { Command } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { checkPaths } from '../validate.js';
import { SliceformError } from '../../common/errors.js';
import { readVolume, writeImageJTiff } from '../../io/index.js';
import { evenlySpaced } from '../../evaluation/slices.js';
import { truthToClasses } from '../../inference/files.js';

const usage = `Usage: sliceform make-sparse --truth FILE [--dataset D] --slices K --out SPARSE.tif [--mode M]

Simulates sparse annotation from a dense ground truth: the truth's classes on K evenly spaced slices per axis
(xy, xz and yz; K = 1 is the middle slice of each axis; slice i of K at floor((i + 0.5) * n / K)), 0
(unannotated) everywhere else. Writes a calibrated uint8 ImageJ TIFF and prints the slices as JSON.

Options:
  --truth FILE     dense ground truth (TIFF, HDF5, ...)
  --dataset D      HDF5 dataset of the truth (e.g. label)
  --slices K       slices per axis (default 1)
  --axes A         which axes get slices, e.g. z or zyx (default zyx)
  --mode M         instances (default when the truth has values > 2: label > 0 -> class 2 "nucleus",
                   0 -> class 1 "background") | classes (truth values are the classes 1..K already)
  --out SPARSE.tif output label volume
  -h, --help       show this help`;

const makeSparse: Command = {
  name: 'make-sparse',
  summary: 'make sparse labels (K slices per axis) from a dense ground truth',
  usage,
  options: {
    truth: { type: 'string' },
    dataset: { type: 'string' },
    slices: { type: 'string' },
    axes: { type: 'string' },
    mode: { type: 'string' },
    out: { type: 'string' },
  },
  async run(args, io, signal) {
    const v = args.values;
    const truthPath = strOpt(v, 'truth', true);
    const out = strOpt(v, 'out', true);
    // the sparse labels must not replace the truth they come from (issue 14 item 12)
    await checkPaths({ inputs: [{ label: '--truth', path: truthPath }], fileOutputs: [{ label: '--out', path: out }] });
    const k = numOpt(v, 'slices') ?? 1;
    if (!(Number.isInteger(k) && k >= 1)) throw new SliceformError('bad-input', `--slices must be a positive integer, got ${k}`);
    const axes = strOpt(v, 'axes') ?? 'zyx';
    if (!/^[zyx]{1,3}$/.test(axes) || new Set(axes).size !== axes.length) throw new SliceformError('bad-input', `--axes must be letters from zyx, got "${axes}"`);
    const mode = (strOpt(v, 'mode') ?? 'auto') as 'auto' | 'instances' | 'classes';
    if (!['auto', 'instances', 'classes'].includes(mode)) throw new SliceformError('bad-input', `--mode must be instances or classes`);
    const truth = await readVolume(truthPath, { dataset: strOpt(v, 'dataset'), signal });
    if (truth.shape.c !== 1) throw new SliceformError('bad-input', `ground truth must have one channel, found ${truth.shape.c}`, { file: truthPath });
    if (!/int/.test(truth.dtype)) throw new SliceformError('bad-input', `ground truth must be integer labels, found ${truth.dtype}`, { file: truthPath });
    const { classes, mode: used } = truthToClasses(truth.data, 2, mode);
    let maxClass = 0;
    for (const c of classes) if (c > maxClass) maxClass = c;
    if (maxClass > 255) throw new SliceformError('bad-input', `class ${maxClass} does not fit uint8`, { file: truthPath });
    const { x: X, y: Y, z: Z } = truth.shape;
    const sparse = new Uint8Array(X * Y * Z);
    const slices: { axis: string; index: number }[] = [];
    for (const axis of axes) {
      const n = axis === 'z' ? Z : axis === 'y' ? Y : X;
      for (const idx of evenlySpaced(n, Math.min(k, n))) {
        slices.push({ axis, index: idx });
        for (let z = 0; z < Z; z++)
          for (let y = 0; y < Y; y++) {
            if ((axis === 'z' && z !== idx) || (axis === 'y' && y !== idx)) continue;
            const row = (z * Y + y) * X;
            if (axis === 'x') sparse[row + idx] = classes[row + idx]!;
            else for (let x = 0; x < X; x++) sparse[row + x] = classes[row + x]!;
          }
      }
    }
    await writeImageJTiff(out, { data: sparse, dtype: 'uint8', shape: { x: X, y: Y, z: Z, c: 1, t: 1 }, spacing: truth.spacing, channelNames: ['labels'] }, { displayRange: [0, Math.max(2, maxClass)] });
    let annotated = 0;
    for (const s of sparse) if (s) annotated++;
    io.out(JSON.stringify({ out, mode: used, slicesPerAxis: k, slices, annotatedVoxels: annotated, annotatedFraction: annotated / sparse.length }));
    return 0;
  },
};

export default makeSparse;
