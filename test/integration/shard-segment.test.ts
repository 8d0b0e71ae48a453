/**
 * One volume over N processes (issue 16 item 4): `segment --shard I/N --out X.ome.zarr` run as N = 3 separate
 * processes (at the same time, as a SLURM array would) writes disjoint chunk rows of one OME-Zarr store; the
 * assembled store equals a single run voxel for voxel, and the single streamed run equals the in-memory path
 * (--in-memory, TIFF). Independent check: Debian's python3-zarr reads the sharded store. Real data: plant nuclei
 * 1135 (100³, HDF5) with a tiny model trained for 3 steps on its middle slices.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEBIAN_PYTHON, REPO, dataFile } from '../helpers/paths.js';
import { PRESETS } from '../../main/common/engine.js';
import { loadEngine } from '../../main/engine/index.js';
import { readVolume } from '../../main/io/index.js';
import { trainModel } from '../../main/training/trainer.js';
import { saveModelDir } from '../../main/inference/model-dir.js';
import { classesFromTruth, slicesFromTruth, sparseFromSlices } from '../../main/evaluation/slices.js';
import { main } from '../../main/cli/index.js';
import { shardRange } from '../../main/inference/stream.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
let dir: string;
let modelDir: string;

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s), isTTY: false });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** The CLI in its own process (tsx runs the TypeScript sources, so no build is needed). */
function runProcess(runner: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(join(REPO, 'node_modules', '.bin', 'tsx'), [runner, ...args], { cwd: REPO, maxBuffer: 1 << 24 }, (e, stdout, stderr) =>
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-shard-'));
  modelDir = join(dir, 'model');
  const image = await readVolume(H5, { dataset: 'raw' });
  const gt = await readVolume(H5, { dataset: 'label' });
  const dims = { x: 100, y: 100, z: 100 };
  const sparse = sparseFromSlices(classesFromTruth(gt.data, 'instances'), dims, slicesFromTruth(dims, 1));
  const net = { ...PRESETS.tiny };
  const optim = { optimizer: 'adam' as const, lr: 1e-3 };
  const engine = await loadEngine();
  const r = await trainModel(engine, [{ image, labels: { ...gt, data: sparse, dtype: 'uint8' } }], { net, optim, iterations: 3, holdout: 'none', worker: 'inline' });
  await saveModelDir(modelDir, r.model, {
    net,
    optim,
    normalisation: r.normalisation,
    classNames: ['background', 'nucleus'],
    spacing: { z: image.spacing.z, y: image.spacing.y, x: image.spacing.x, unit: image.spacing.unit },
    downsample: [1, 1, 1],
    training: r.summary,
  });
  r.model.dispose();
}, 240_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('shard ranges', () => {
  it('are disjoint runs of whole chunk rows that cover the volume, for any N', () => {
    for (const [Z, cz, N] of [[100, 16, 3], [100, 16, 7], [100, 16, 9], [5, 64, 2], [512, 64, 5]] as const) {
      const r = Array.from({ length: N }, (_, i) => shardRange(Z, cz, { index: i + 1, count: N }));
      expect(r[0]![0]).toBe(0);
      expect(r[N - 1]![1]).toBe(Z);
      for (let i = 0; i < N; i++) {
        if (i > 0) expect(r[i]![0]).toBe(r[i - 1]![1]);
        expect(r[i]![0] % cz).toBe(0);
        expect(r[i]![1] % cz === 0 || r[i]![1] === Z).toBe(true);
      }
    }
    expect(shardRange(100, 16, { index: 2, count: 3 })).toEqual([32, 64]);
  });
});

describe('segment --shard I/N on one volume', () => {
  it('3 shard processes assemble to the single run, which equals the in-memory path', async () => {
    const common = ['--model', modelDir, '--input', H5, '--dataset', 'raw', '--no-flips', '--threads', '1'];
    const single = join(dir, 'single.ome.zarr');
    const s = await run(['segment', ...common, '--out', single, '--chunks', '16,64,64']);
    expect(s.err).not.toMatch(/error/i);
    expect(s.code).toBe(0);
    const mem = await run(['segment', ...common, '--out', join(dir, 'mem.tif'), '--in-memory']);
    expect(mem.code).toBe(0);

    const runner = join(dir, 'cli.mts');
    await writeFile(runner, `import { main } from ${JSON.stringify(join(REPO, 'main', 'cli', 'index.ts'))};\nprocess.exitCode = await main(process.argv.slice(2));\n`);
    const sharded = join(dir, 'sharded.ome.zarr');
    const shards = await Promise.all(
      [1, 2, 3].map((i) => runProcess(runner, ['segment', ...common, '--out', sharded, '--chunks', '16,64,64', '--shard', `${i}/3`])),
    );
    for (const r of shards) {
      expect(r.err).not.toMatch(/error/i);
      expect(r.code).toBe(0);
    }
    const planes = shards.map((r) => JSON.parse(r.out).planes);
    expect(planes).toEqual([[0, 32], [32, 64], [64, 100]]);

    const a = await readVolume(single);
    const b = await readVolume(sharded);
    const m = await readVolume(join(dir, 'mem.tif'));
    expect(a.shape).toMatchObject({ x: 100, y: 100, z: 100, c: 1 });
    expect(b.shape).toMatchObject({ x: 100, y: 100, z: 100, c: 1 });
    let diffShard = 0;
    let diffMem = 0;
    let nucleus = 0;
    for (let i = 0; i < a.data.length; i++) {
      if (a.data[i] !== b.data[i]) diffShard++;
      if (a.data[i] !== m.data[i]) diffMem++;
      if (a.data[i] === 2) nucleus++;
    }
    expect(diffShard).toBe(0);
    expect(diffMem).toBe(0);
    expect(nucleus).toBeGreaterThan(0);
    expect(nucleus).toBeLessThan(a.data.length);
    // class counts of the shards add up to the single run's
    const sum = (k: string) => shards.reduce((t, r) => t + JSON.parse(r.out).classCounts[k], 0);
    expect(sum('nucleus')).toBe(JSON.parse(s.out).classCounts.nucleus);
    expect(sum('background')).toBe(JSON.parse(s.out).classCounts.background);
    // no temporary files left behind in the shared store
    const left = await readdir(join(sharded, '0'), { recursive: true });
    expect(left.filter((f) => String(f).endsWith('.tmp'))).toEqual([]);
    // an independent reader: zarr-python 2 (Debian) sees the same voxels and chunks
    const py = execFileSync(
      DEBIAN_PYTHON,
      ['-c', 'import zarr, sys, numpy as np; a = zarr.open(sys.argv[1] + "/0", mode="r"); print(a.shape, a.chunks, int((a[...] == 2).sum()))', sharded],
      { encoding: 'utf8' },
    ).trim();
    expect(py).toBe(`(100, 100, 100) (16, 64, 64) ${nucleus}`);
  }, 600_000);

  it('refuses --shard with a TIFF --out, before the model loads', async () => {
    const r = await run(['segment', '--model', modelDir, '--input', H5, '--out', join(dir, 'x.tif'), '--shard', '1/3']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--shard 1\/3 on one stack needs an OME-Zarr output/);
  });
});
