import type { Command } from '../command.js';
import { strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import type { Spacing } from '../../common/volume.js';
import { readVolume } from '../../io/index.js';
import { openRegionSource } from '../../io/regions.js';
import { isZarrPath } from '../../io/zarr/reader.js';
import { segmentSourceToFiles } from '../../inference/stream.js';
import { isZarrOutputPath as isZarrOutput } from '../../io/zarr/slab.js';
import { parseShard } from '../../batch/files.js';
import { resolve as resolvePath } from 'node:path';
import { loadEngine } from '../../engine/index.js';
import { loadRecipeModel } from '../../pipeline/recipe.js';
import { segmentToFiles } from '../../inference/files.js';
import { cliProgress, parseDevice } from './densify.js';
import { FOLDER_OPTIONS, FOLDER_USAGE, isFolder, segmentFolder } from './segment-folder.js';
import { assertFiniteImage, checkPaths, engineNote, threadsOpt } from '../validate.js';

const usage = `Usage: sliceform segment --model DIR --input IMG --out SEG.tif [options]

Applies a trained model folder (from 'sliceform train' or 'densify --model') to one stack and writes calibrated
labels (uint8, classes 1..K). The stack is read region by region (tiles with their halo), never whole, and the
labels are written slab by slab, so memory is bounded by the tile plan, not by the stack; a check before any work
says when the outputs do not fit on disk or the tile plan in memory. Prints a JSON summary.

Options:
  --model DIR            model folder (model.json + weights.pt)
  --input IMG            stack to segment (TIFF, OME-TIFF, LSM, HDF5, OME-Zarr)
  --dataset D            HDF5 dataset / OME-Zarr image path of the input
  --out SEG              output labels: SEG.tif (ImageJ TIFF) or SEG.ome.zarr (OME-Zarr label image, pyramid)
  --probabilities P      also write per-class probabilities (float32; TIFF, or OME-Zarr with --out .zarr)
  --shard I/N            one volume over N processes (e.g. a SLURM array): shard I writes its own chunk rows of
                         the OME-Zarr --out, reading the halos it needs; no locking, no merge step (docs/batch.md)
  --chunks Z,Y,X         OME-Zarr chunk shape of the outputs (default 64,256,256, clipped to the stack)
  --tile-voxels V        input tile budget in voxels (default 3000000; smaller tiles need less memory)
  --in-memory            read the whole stack first (the older path; same labels)
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
    'tile-voxels': { type: 'string' },
    chunks: { type: 'string' },
    'in-memory': { type: 'boolean' },
    device: { type: 'string' },
    threads: { type: 'string' },
    ...FOLDER_OPTIONS,
  },
  async run(args, io, signal) {
    const v = args.values;
    // --input FOLDER: batch mode (main/batch)
    // (an OME-Zarr store is a folder too, but one stack)
    if ((await isFolder(strOpt(v, 'input', true))) && !(await isZarrPath(strOpt(v, 'input', true)))) return segmentFolder(v, io, signal);
    for (const k of Object.keys(FOLDER_OPTIONS))
      if (v[k] !== undefined && k !== 'shard') throw new SliceformError('bad-input', `--${k} needs --input FOLDER (a folder of stacks)`);
    const dir = strOpt(v, 'model', true);
    const input = strOpt(v, 'input', true);
    const out = strOpt(v, 'out', true);
    const shardOpt = strOpt(v, 'shard');
    const shard = shardOpt ? parseShard(shardOpt) : undefined;
    if (shard && shard.count > 1 && !isZarrOutput(out))
      throw new SliceformError('bad-input', `--shard ${shardOpt} on one stack needs an OME-Zarr output (--out NAME.ome.zarr): shards write disjoint chunks of one store (for a folder of stacks, give --input FOLDER)`);
    if (shard && v['in-memory']) throw new SliceformError('bad-input', '--shard and --in-memory cannot be combined');
    const tileVoxels = strOpt(v, 'tile-voxels');
    const maxTileInputVoxels = tileVoxels === undefined ? undefined : Number(tileVoxels);
    if (maxTileInputVoxels !== undefined && !(Number.isInteger(maxTileInputVoxels) && maxTileInputVoxels >= 1000))
      throw new SliceformError('bad-input', `--tile-voxels must be an integer of at least 1000, got "${tileVoxels}"`);
    const chunksOpt = strOpt(v, 'chunks');
    const chunks = chunksOpt?.split(',').map(Number);
    if (chunks && !(chunks.length === 3 && chunks.every((n) => Number.isInteger(n) && n >= 1)))
      throw new SliceformError('bad-input', `--chunks must be three positive integers Z,Y,X, got "${chunksOpt}"`);
    if (chunks && !isZarrOutput(out)) throw new SliceformError('bad-input', '--chunks applies to an OME-Zarr --out only');
    const zarrIn = await isZarrPath(input);
    const probs = strOpt(v, 'probabilities');
    if (v['in-memory'] && (isZarrOutput(out) || (probs && isZarrOutput(probs))))
      throw new SliceformError('bad-input', '--in-memory writes TIFF outputs only; drop it for an OME-Zarr --out');
    for (const [label, o] of [['--out', out], ['--probabilities', probs]] as const)
      if (o && isZarrOutput(o) && resolvePath(o) === resolvePath(input))
        throw new SliceformError('bad-input', `${label} is the input --input ${input}; refusing to overwrite an input`, { file: o });
    // before the model loads: outputs are not the input, --out is not a folder (issue 14 items 12, 19); OME-Zarr
    // stores are folders
    await checkPaths({
      inputs: zarrIn ? [] : [{ label: '--input', path: input }],
      fileOutputs: [
        ...(isZarrOutput(out) ? [] : [{ label: '--out', path: out }]),
        ...(probs && !isZarrOutput(probs) ? [{ label: '--probabilities', path: probs }] : []),
      ],
    });
    const threads = threadsOpt(v, io);
    const t00 = Date.now();
    const device = parseDevice(strOpt(v, 'device'));
    const engine = await loadEngine();
    engineNote(engine.info, io);
    const { model, manifest, segment: segmentOpts } = await loadRecipeModel(dir, engine, { device, threads });
    try {
      if (!v['in-memory']) {
        const source = await openRegionSource(input, { dataset: strOpt(v, 'dataset'), signal });
        try {
          const info = source.info;
          const warnings = info.metadata.warnings;
          if (Array.isArray(warnings)) for (const w of warnings) io.err(`warning: ${String(w)}`);
          checkStackForModel(info, manifest, input, (l) => io.err(l));
          const bar = cliProgress(io);
          const t0 = Date.now();
          const res = await segmentSourceToFiles(model, source, {
            ...segmentOpts,
            out,
            probabilitiesOut: probs,
            testTimeFlips: !v['no-flips'],
            maxTileInputVoxels,
            shard,
            ...(chunks ? { chunks: chunks as [number, number, number] } : {}),
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
                shape: { x: info.shape.x, y: info.shape.y, z: info.shape.z },
                ...(shard ? { shard: `${shard.index}/${shard.count}`, planes: res.zRange } : {}),
                classNames: manifest.classNames,
                classCounts: Object.fromEntries(res.classCounts.slice(1).map((c, k) => [manifest.classNames[k] ?? String(k + 1), c])),
                seconds: (Date.now() - t0) / 1000,
                totalSeconds: (Date.now() - t00) / 1000,
                tiles: res.plan.count,
                streamed: { tileInput: res.fit.plan.in, tileOutput: res.fit.plan.out, estimatedMemoryMiB: Math.round(res.fit.memoryBytes / 2 ** 20) },
              },
              null,
              2,
            ),
          );
          return 0;
        } finally {
          await source.close();
        }
      }
      const image = await readVolume(input, { dataset: strOpt(v, 'dataset'), signal, onWarning: (w) => io.err(`warning: ${w}`) });
      assertFiniteImage(image, input);
      checkStackForModel(image, manifest, input, (l) => io.err(l));
      const bar = cliProgress(io);
      const t0 = Date.now();
      const res = await segmentToFiles(model, image, {
        ...segmentOpts,
        out,
        probabilitiesOut: probs,
        testTimeFlips: !v['no-flips'],
        maxTileInputVoxels,
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

/** The stack fits the model: its channel count (else bad-input), and a warning when a voxel size differs by > 25 %. */
function checkStackForModel(
  stack: { shape: { c: number }; spacing: Spacing },
  manifest: { net: { inChannels: number }; spacing: Spacing },
  input: string,
  warn: (line: string) => void,
): void {
  if (stack.shape.c !== manifest.net.inChannels)
    throw new SliceformError('bad-input', `the model expects ${manifest.net.inChannels} channel(s), the stack has ${stack.shape.c}`, { file: input });
  const sp = manifest.spacing;
  for (const a of ['x', 'y', 'z'] as const) {
    const r = stack.spacing[a] / sp[a];
    if (stack.spacing.unit === sp.unit && (r > 1.25 || r < 0.8))
      warn(`warning: ${input}: ${a} spacing ${stack.spacing[a]} ${stack.spacing.unit} differs from the training spacing ${sp[a]} by more than 25 %`);
  }
}

export default segment;
