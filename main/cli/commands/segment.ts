import type { Command } from '../command.js';
import { strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import { readVolume } from '../../io/index.js';
import { loadEngine } from '../../engine/index.js';
import { loadRecipeModel } from '../../pipeline/recipe.js';
import { segmentToFiles } from '../../inference/files.js';
import { cliProgress, parseDevice } from './densify.js';
import { FOLDER_OPTIONS, FOLDER_USAGE, isFolder, segmentFolder } from './segment-folder.js';
import { assertFiniteImage, checkPaths, engineNote, threadsOpt } from '../validate.js';

const usage = `Usage: sliceform segment --model DIR --input IMG --out SEG.tif [options]

Applies a trained model folder (from 'sliceform train' or 'densify --model') to one stack and writes a calibrated
ImageJ label TIFF (uint8, classes 1..K), streamed slab by slab. Prints a JSON summary.

Options:
  --model DIR            model folder (model.json + weights.pt)
  --input IMG            stack to segment (TIFF, OME-TIFF, LSM, HDF5)
  --dataset D            HDF5 dataset of the input
  --out SEG.tif          output labels
  --probabilities P.tif  also write per-class probabilities (float32)
  --no-flips             no test-time flip averaging (4x faster)
  --device D             cpu | cuda
  --threads T            CPU threads
  -h, --help             show this help

${FOLDER_USAGE}`;

const segment: Command = {
  name: 'segment',
  summary: 'segment a stack with a trained model folder',
  usage,
  options: {
    model: { type: 'string' },
    input: { type: 'string' },
    dataset: { type: 'string' },
    out: { type: 'string' },
    probabilities: { type: 'string' },
    'no-flips': { type: 'boolean' },
    device: { type: 'string' },
    threads: { type: 'string' },
    ...FOLDER_OPTIONS,
  },
  async run(args, io, signal) {
    const v = args.values;
    // --input FOLDER: batch mode (main/batch)
    if (await isFolder(strOpt(v, 'input', true))) return segmentFolder(v, io, signal);
    for (const k of Object.keys(FOLDER_OPTIONS)) if (v[k] !== undefined) throw new SliceformError('bad-input', `--${k} needs --input FOLDER (a folder of stacks)`);
    const dir = strOpt(v, 'model', true);
    const input = strOpt(v, 'input', true);
    const out = strOpt(v, 'out', true);
    // before the model loads: outputs are not the input, --out is not a folder (issue 14 items 12, 19)
    await checkPaths({
      inputs: [{ label: '--input', path: input }],
      fileOutputs: [
        { label: '--out', path: out },
        { label: '--probabilities', path: strOpt(v, 'probabilities') },
      ],
    });
    const threads = threadsOpt(v, io);
    const t00 = Date.now();
    const device = parseDevice(strOpt(v, 'device'));
    const engine = await loadEngine();
    engineNote(engine.info, io);
    const { model, manifest, segment: segmentOpts } = await loadRecipeModel(dir, engine, { device, threads });
    try {
      const image = await readVolume(input, { dataset: strOpt(v, 'dataset'), signal, onWarning: (w) => io.err(`warning: ${w}`) });
      assertFiniteImage(image, input);
      if (image.shape.c !== manifest.net.inChannels) {
        throw new SliceformError('bad-input', `the model expects ${manifest.net.inChannels} channel(s), the stack has ${image.shape.c}`, { file: input });
      }
      const sp = manifest.spacing;
      for (const a of ['x', 'y', 'z'] as const) {
        const r = image.spacing[a] / sp[a];
        if (image.spacing.unit === sp.unit && (r > 1.25 || r < 0.8)) {
          io.err(`warning: ${input}: ${a} spacing ${image.spacing[a]} ${image.spacing.unit} differs from the training spacing ${sp[a]} by more than 25 %`);
        }
      }
      const bar = cliProgress(io);
      const t0 = Date.now();
      const res = await segmentToFiles(model, image, {
        ...segmentOpts,
        out,
        probabilitiesOut: strOpt(v, 'probabilities'),
        testTimeFlips: !v['no-flips'],
        signal,
        onProgress: bar.update,
      });
      bar.done();
      io.out(
        JSON.stringify(
          {
            input,
            out,
            model: dir,
            shape: { x: image.shape.x, y: image.shape.y, z: image.shape.z },
            classNames: manifest.classNames,
            classCounts: Object.fromEntries(res.classCounts.slice(1).map((c, k) => [manifest.classNames[k] ?? String(k + 1), c])),
            seconds: (Date.now() - t0) / 1000,
            totalSeconds: (Date.now() - t00) / 1000,
            tiles: res.plan.count,
          },
          null,
          2,
        ),
      );
      return 0;
    } finally {
      model.dispose();
    }
  },
};

export default segment;
