/**
 * `sliceform evaluate` end to end: the real plant-nuclei ground truth scored against itself, and toy label
 * volumes (synthetic, written with our TIFF writer: no real file has hand-computable scores) whose IoU and
 * Dice are worked out by hand below.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile } from '../helpers/paths.js';
import { writeImageJTiff } from '../../main/io/index.js';
import { main } from '../../main/cli/index.js';

let dir: string;

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['evaluate', ...args], { out: (s) => out.push(s), err: (s) => err.push(s), isTTY: false });
  return { code, json: out.length ? JSON.parse(out.join('')) : null, err: err.join('\n') };
}

async function writeLabels(name: string, values: number[], shape = { x: 4, y: 2, z: 1 }) {
  const p = join(dir, name);
  await writeImageJTiff(p, { data: Uint8Array.from(values), dtype: 'uint8', shape: { ...shape, c: 1, t: 1 }, spacing: { x: 1, y: 1, z: 1, unit: 'µm' } });
  return p;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-evaluate-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('sliceform evaluate', () => {
  it('gives IoU 1.0 for the real ground truth scored against itself', async () => {
    // the instance ids as classes (0 = unannotated): every object is its own class and must score 1.0
    const f = dataFile('plantseg_nuclei_mini', '1136_mini.h5');
    const r = await run(['--pred', f, '--pred-dataset', 'label', '--truth', f, '--truth-dataset', 'label', '--annotated-only']);
    expect(r.code).toBe(0);
    const present = r.json.classes.filter((c: { iou: number | null }) => c.iou !== null);
    expect(present.length).toBe(32); // 32 nuclei (data README)
    for (const c of present) expect(c.iou).toBe(1);
    expect(r.json.meanIoU).toBe(1);
    expect(r.json.meanDice).toBe(1);
    expect(r.json.voxels).toBeGreaterThan(100_000);
  }, 60_000);

  it('matches hand-computed IoU and Dice on toy volumes', async () => {
    // truth 1 1 1 2 / 2 2 2 0   (the last voxel unannotated)
    // pred  1 2 1 2 / 2 1 2 2
    // class 1: TP 2, FP 1, FN 1 -> IoU 0.5,  Dice 4/6
    // class 2: TP 3, FP 1, FN 1 -> IoU 0.6,  Dice 0.75
    const truth = await writeLabels('truth.tif', [1, 1, 1, 2, 2, 2, 2, 0]);
    const pred = await writeLabels('pred.tif', [1, 2, 1, 2, 2, 1, 2, 2]);
    const r = await run(['--pred', pred, '--truth', truth, '--annotated-only']);
    expect(r.code).toBe(0);
    expect(r.json.voxels).toBe(7);
    expect(r.json.classes[0]).toMatchObject({ class: 1, tp: 2, fp: 1, fn: 1, iou: 0.5 });
    expect(r.json.classes[0].dice).toBeCloseTo(4 / 6, 12);
    expect(r.json.classes[1]).toMatchObject({ class: 2, tp: 3, fp: 1, fn: 1, iou: 0.6, dice: 0.75 });
    expect(r.json.meanIoU).toBeCloseTo(0.55, 12);
    expect(r.json.foregroundIoU).toBeCloseTo(0.6, 12);

    // equal volumes: 1.0 everywhere
    const same = await run(['--pred', truth, '--truth', truth, '--annotated-only']);
    expect(same.json.classes.map((c: { iou: number }) => c.iou)).toEqual([1, 1]);
    expect(same.json.meanIoU).toBe(1);

    // instance truth: 0 = background (class 1), any id = object (class 2)
    const inst = await writeLabels('inst.tif', [0, 0, 7, 7, 9, 0, 0, 0]);
    const p2 = await writeLabels('p2.tif', [1, 1, 2, 2, 2, 2, 1, 1]);
    const ri = await run(['--pred', p2, '--truth', inst, '--foreground-from-instances']);
    // class 2: TP 3 (7,7,9), FP 1, FN 0 -> 0.75; class 1: TP 4, FP 0, FN 1 -> 0.8
    expect(ri.json.classes.map((c: { iou: number }) => c.iou)).toEqual([0.8, 0.75]);
  });

  it('refuses sparse truth without --annotated-only, differing shapes and missing files with clear errors', async () => {
    const truth = await writeLabels('t2.tif', [1, 1, 1, 2, 2, 2, 2, 0]);
    const r = await run(['--pred', truth, '--truth', truth]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/t2\.tif: 1 voxels are 0 \(unannotated\): pass --annotated-only/);
    const other = await writeLabels('other.tif', [1, 1, 1, 1], { x: 2, y: 2, z: 1 });
    const r2 = await run(['--pred', other, '--truth', truth, '--annotated-only']);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/shapes differ: .*other\.tif is 2x2x1 .*t2\.tif is 4x2x1/);
    const r3 = await run(['--pred', join(dir, 'missing.tif'), '--truth', truth]);
    expect(r3.code).toBe(2);
    expect(r3.err).toMatch(/missing\.tif/);
    const r4 = await run(['--truth', truth]);
    expect(r4.code).toBe(2);
    expect(r4.err).toMatch(/--pred/);
  });
});
