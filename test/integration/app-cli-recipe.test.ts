/**
 * One recipe for the app and the CLI (issues 12 and 18): the same sparse labels and seed, trained once through
 * the compute process's job handlers (the app's path: resident volume, label delta, train job, densify job) and
 * once through `sliceform densify --model` (the CLI's path), give the same model settings (network, working
 * resolution, decision weights, forest member) and the same dense labels. Real data: a crop of the plant nuclei
 * 1135 with its ground truth on the middle xy, xz and yz slices (make-sparse --slices 1).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { main } from '../../main/cli/index.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import { ComputeStore } from '../../main/services/compute-store.js';
import { handlers, type JobContext } from '../../main/services/compute-handlers.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const OUT = join(ARTIFACTS, 'app-cli-recipe');

function crop(v: Volume, Z: number, Y: number, X: number): Volume {
  const s = v.shape;
  const data = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++)
        data[(z * Y + y) * X + x] = v.data[((30 + z) * s.y + 20 + y) * s.x + 20 + x]!;
  return { ...v, data, dtype: 'uint8', shape: { ...s, x: X, y: Y, z: Z } };
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, {
    out: (s) => (out += s + '\n'),
    err: (s) => (err += s + '\n'),
    isTTY: false,
  });
  return { code, out, err };
}

let sparse: Uint8Array;
const [Z, Y, X] = [40, 64, 64];

beforeAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const raw = crop(await readVolume(H5, { dataset: 'raw' }), Z, Y, X);
  const gt = crop(await readVolume(H5, { dataset: 'label' }), Z, Y, X);
  await writeImageJTiff(join(OUT, 'raw.tif'), raw);
  await writeImageJTiff(join(OUT, 'gt.tif'), {
    ...gt,
    data: Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1)),
  });
  const r = await cli([
    'make-sparse',
    '--truth',
    join(OUT, 'gt.tif'),
    '--slices',
    '1',
    '--out',
    join(OUT, 'sparse.tif'),
  ]);
  expect(r.code, r.err).toBe(0);
  sparse = Uint8Array.from((await readVolume(join(OUT, 'sparse.tif'))).data);
}, 60_000);

describe('the app and the CLI train one recipe', () => {
  it('gives the same model settings and the same dense labels for the same labels and seed', async () => {
    // the CLI
    const r = await cli([
      'densify',
      '--image',
      join(OUT, 'raw.tif'),
      '--labels',
      join(OUT, 'sparse.tif'),
      '--out',
      join(OUT, 'cli-seg.tif'),
      '--preset',
      'tiny',
      '--iterations',
      '4',
      '--seed',
      '5',
      '--threads',
      '2',
      '--model',
      join(OUT, 'cli-model'),
    ]);
    expect(r.code, r.err).toBe(0);
    const cliSeg = (await readVolume(join(OUT, 'cli-seg.tif'))).data;

    // the app: the compute process's handlers on a resident volume with the paint sent as a label delta
    const store = new ComputeStore();
    await store.open({ volumeId: 'v1', path: join(OUT, 'raw.tif') });
    store.setLabels({ volumeId: 'v1', layer: 'annotation', box: null, data: sparse });
    const ac = new AbortController();
    const ctx: JobContext = {
      signal: ac.signal,
      stopSignal: new AbortController().signal,
      onProgress: () => {},
      store,
    };
    const tr = await handlers.train(
      {
        modelId: 'm-app',
        modelDir: join(OUT, 'app-model'),
        settings: { preset: 'tiny', iterations: 4, seed: 5 },
        net: {
          dims: 3,
          inChannels: 1,
          numClasses: 2,
          levels: 2,
          baseFilters: 4,
          padding: 'valid',
          batchNorm: true,
          bnAtTest: 'batch',
        },
        classNames: ['background', 'foreground'],
        volumeIds: ['v1'],
      } as Parameters<typeof handlers.train>[0],
      ctx,
    );
    expect(tr.iterations).toBe(4);
    const ds = await handlers.densify(
      {
        volumeId: 'v1',
        modelDir: join(OUT, 'app-model'),
        modelId: 'm-app',
        keepAnnotation: false,
      } as Parameters<typeof handlers.densify>[0],
      ctx,
    );

    const a = JSON.parse(await readFile(join(OUT, 'app-model', 'model.json'), 'utf8'));
    const c = JSON.parse(await readFile(join(OUT, 'cli-model', 'model.json'), 'utf8'));
    expect(a.net).toEqual(c.net);
    expect(a.optim).toEqual(c.optim);
    expect(a.downsample).toEqual(c.downsample);
    expect(a.downsample).toEqual([1, 2, 2]); // the app works at the CLI's reduced resolution (it used not to)
    expect(a.normalisation).toEqual(c.normalisation);
    expect(a.training.classWeights).toEqual(c.training.classWeights);
    expect(a.training.samplesPerStep).toBe(c.training.samplesPerStep);
    expect(a.calibration).toEqual(c.calibration);
    expect(a.prediction).toEqual({ testTimeFlips: true });
    expect(a.ensemble.weight).toBe(c.ensemble.weight);
    expect(a.ensemble.weight).toBe(0.5);
    // the forest member at full resolution (issue 18 item 4): recorded, and fitted on every painted voxel of the
    // full-resolution paint (not on the working-resolution labels, a quarter as many)
    expect(a.ensemble.resolution).toBe('full');
    expect(c.ensemble.resolution).toBe('full');
    const { loadForest } = await import('../../main/pipeline/ensemble.js');
    const forest = await loadForest(join(OUT, 'app-model', 'forest.bin'));
    const painted = sparse.reduce((n, v) => n + (v ? 1 : 0), 0);
    expect(forest.classCounts.reduce((x, y) => x + y, 0)).toBe(painted);
    expect(
      Buffer.compare(
        await readFile(join(OUT, 'app-model', 'forest.bin')),
        await readFile(join(OUT, 'cli-model', 'forest.bin')),
      ),
    ).toBe(0);
    expect(ds.labels.length).toBe(cliSeg.length);
    let differ = 0;
    for (let i = 0; i < cliSeg.length; i++) if (ds.labels[i] !== cliSeg[i]) differ++;
    expect(differ).toBe(0);
  }, 300_000);
});
