/**
 * `sliceform crossval` end to end on the real plant-nuclei volumes with tiny networks and a few iterations
 * (the figures are meaningless here; docs/batch.md has the real runs): the protocols' bookkeeping through the
 * CLI, a sparse label file written by our TIFF writer (annotated slices detected), and the 2D mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile } from '../helpers/paths.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import { classesFromTruth, evenlySpaced, slicesFromTruth, sparseFromSlices } from '../../main/evaluation/slices.js';
import { main } from '../../main/cli/index.js';

let dir: string;
const V1135 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const V1136 = dataFile('plantseg_nuclei_mini', '1136_mini.h5');

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['crossval', ...args], { out: (s) => out.push(s), err: (s) => err.push(s), isTTY: false });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-crossval-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('sliceform crossval', () => {
  it('cross-validates over the slices found in a sparse label file (3D)', async () => {
    // sparse labels: the ground truth on 2 evenly spaced slices per axis (6 slices), 0 elsewhere
    const gt = await readVolume(V1136, { dataset: 'label' });
    const dims = { x: 100, y: 100, z: 100 };
    const sparse = sparseFromSlices(classesFromTruth(gt.data, 'instances'), dims, slicesFromTruth(dims, 2));
    const lab = join(dir, '1136_sparse.tif');
    await writeImageJTiff(lab, { data: sparse, dtype: 'uint8', shape: { ...dims, c: 1, t: 1 }, spacing: gt.spacing });
    const json = join(dir, 'cv.json');
    const r = await run(['--image', V1136, '--labels', lab, '--folds', '3', '--preset', 'tiny', '--iterations', '2', '--out', json]);
    expect(r.code).toBe(0);
    expect(r.err).toContain('1136_mini.h5: 100x100x100x1, 6 annotated slices');
    expect(r.out).toMatch(/3-fold cross-validation over annotated slices — 3D tiny, BN, BN at test: batch, downsampled 1x2x2 \(z,y,x\) \(auto\), 2 iterations\/run/);
    expect(r.out).toMatch(/\| fold 1\/3 \| 4 \| 2 \| \d\.\d{3} \| \d\.\d{3} \| \d\.\d{3} \| 2 \|/);
    expect(r.out).toMatch(/\| pooled voxels \|/);
    const res = JSON.parse(await readFile(json, 'utf8'));
    expect(res.volumes).toEqual([{ name: '1136_mini.h5', shape: dims, annotatedSlices: 6 }]);
    const cv = res.results[0];
    expect(cv.protocol).toBe('crossval');
    expect(cv.runs.map((x: { trainSlices: number; testSlices: number }) => [x.trainSlices, x.testSlices])).toEqual([
      [4, 2],
      [4, 2],
      [4, 2],
    ]);
    // every annotated voxel of the 6 slices is scored exactly once over the folds (fold = 2 slices, which
    // cross in one line of 100 voxels when they lie on different axes)
    const expected = cv.runs.reduce((s: number, x: { score: { voxels: number } }) => s + x.score.voxels, 0);
    expect(cv.pooled.voxels).toBe(expected);
    expect(expected).toBe(6 * 10_000 - 3 * 100);
    for (const run of cv.runs) for (const c of run.score.classes) expect(c.iou === null || (c.iou >= 0 && c.iou <= 1)).toBe(true);
    expect(evenlySpaced(100, 2)).toEqual([25, 75]);
  });

  it('runs the 2D baseline and leave-one-volume-out from ground truth slices', async () => {
    const r = await run([
      '--image', V1135, '--labels', V1135, '--labels-dataset', 'label',
      '--image', V1136, '--labels', V1136, '--labels-dataset', 'label',
      '--labels-from-truth', '1', '--leave-one-volume-out', '--mode', '2d', '--preset', 'tiny', '--iterations', '5', '--json',
    ]);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out);
    expect(res.mode).toBe('2d');
    expect(res.folds).toBeNull();
    expect(res.classNames).toEqual(['background', 'nucleus']);
    const lovo = res.results[0];
    expect(lovo.protocol).toBe('leave-one-volume-out');
    expect(lovo.runs.map((x: { label: string }) => x.label)).toEqual(['test 1135_mini.h5', 'test 1136_mini.h5']);
    // left-out volume: its 3 middle slices scored (3 planes crossing in 3 lines and one voxel), and the whole volume
    expect(lovo.runs[0].score.voxels).toBe(3 * 10_000 - 3 * 100 + 1);
    expect(lovo.runs[0].wholeVolume.voxels).toBe(1_000_000);
    expect(lovo.runs[0].iterations).toBe(5);
  });

  it('refuses bad input with exit code 2', async () => {
    const a = await run(['--image', V1136]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/1 --image but 0 --labels/);
    const b = await run(['--image', V1136, '--labels', V1136, '--labels-dataset', 'label', '--folds', '3']);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/1136_mini\.h5: no annotated slices found .*--labels-from-truth K/);
    const c = await run(['--image', V1136, '--labels', V1136, '--labels-dataset', 'label', '--labels-from-truth', '1', '--leave-one-volume-out']);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/at least two/);
  });
});
