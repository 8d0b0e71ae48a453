/**
 * The CLI commands of the Densify issue on real data (plant nuclei 1135 from ../shared/data; a crop keeps the
 * runs short): make-sparse, densify (tiny preset) with --truth/--model/--probabilities, segment with the saved
 * model, Ctrl+C (SIGINT) cancelling a real process, and bad input.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ARTIFACTS, REPO, dataFile } from '../helpers/paths.js';
import { main } from '../../main/cli/index.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const OUT = join(ARTIFACTS, 'densify-cli');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n'), isTTY: false });
  return { code, out, err };
}

function crop(v: Volume, Z: number, Y: number, X: number): Volume {
  const s = v.shape;
  const data = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) data[(z * Y + y) * X + x] = v.data[((30 + z) * s.y + 20 + y) * s.x + 20 + x]!;
  return { ...v, data, dtype: 'uint8', shape: { ...s, x: X, y: Y, z: Z } };
}

beforeAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const raw = await readVolume(H5, { dataset: 'raw' });
  const lab = await readVolume(H5, { dataset: 'label' });
  await writeImageJTiff(join(OUT, 'raw.tif'), crop(raw, 24, 48, 48));
  const gt = crop(lab, 24, 48, 48);
  await writeImageJTiff(join(OUT, 'gt.tif'), { ...gt, data: Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1)) });
  sparseRun = await run(['make-sparse', '--truth', join(OUT, 'gt.tif'), '--mode', 'classes', '--slices', '1', '--out', join(OUT, 'sparse.tif')]);
});

let sparseRun: { code: number; out: string; err: string };

describe('sliceform make-sparse / densify / segment', () => {
  it('make-sparse keeps the truth on the middle slice of each axis only', async () => {
    const r = await run(['make-sparse', '--truth', H5, '--dataset', 'label', '--slices', '1', '--out', join(OUT, 'sparse-full.tif')]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.slices).toEqual([{ axis: 'z', index: 50 }, { axis: 'y', index: 50 }, { axis: 'x', index: 50 }]);
    expect(j.annotatedVoxels).toBe(3 * 100 * 100 - 3 * 100 + 1);
    const s = await readVolume(join(OUT, 'sparse-full.tif'));
    const t = await readVolume(H5, { dataset: 'label' });
    // on the z = 50 plane: class 2 exactly where the truth is > 0; off the planes: 0
    for (let i = 0; i < 10000; i += 37) expect(s.data[50 * 10000 + i]).toBe(t.data[50 * 10000 + i]! > 0 ? 2 : 1);
    expect(s.data[(10 * 100 + 10) * 100 + 10]).toBe(0);
    const k3 = JSON.parse((await run(['make-sparse', '--truth', H5, '--dataset', 'label', '--slices', '3', '--out', join(OUT, 'sparse3.tif')])).out);
    expect(k3.slices.filter((s: { axis: string }) => s.axis === 'z').map((s: { index: number }) => s.index)).toEqual([16, 50, 83]);
  });

  it('densify writes labels, probabilities, a model and scores the unannotated voxels; segment reproduces it', async () => {
    const r0 = sparseRun;
    expect(r0.code).toBe(0);
    const args = ['densify', '--image', join(OUT, 'raw.tif'), '--labels', join(OUT, 'sparse.tif'), '--out', join(OUT, 'seg.tif'), '--preset', 'tiny', '--iterations', '25', '--seed', '2', '--threads', '2'];
    const r = await run([...args, '--probabilities', join(OUT, 'p.tif'), '--model', join(OUT, 'model'), '--truth', join(OUT, 'gt.tif'), '--snapshot', join(OUT, 'seg.png')]);
    expect(r.err).toContain('trained 25 iterations');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.training.iterations).toBe(25);
    expect(j.truth.scoredVoxels).toBe(24 * 48 * 48 - JSON.parse(r0.out).annotatedVoxels);
    expect(j.truth.iou['2']).toBeGreaterThan(0.3);
    const seg = await readVolume(join(OUT, 'seg.tif'));
    expect(seg.shape).toMatchObject({ x: 48, y: 48, z: 24, c: 1 });
    expect(seg.spacing.z / seg.spacing.x).toBeCloseTo(0.2837 / 0.1268, 2);
    expect(new Set(seg.data)).toEqual(new Set([1, 2]));
    const p = await readVolume(join(OUT, 'p.tif'));
    expect(p.shape.c).toBe(2);
    const n = 24 * 48 * 48;
    for (let i = 0; i < n; i += 101) {
      expect(p.data[i]! + p.data[n + i]!).toBeCloseTo(1, 4);
      expect(seg.data[i]).toBe(p.data[n + i]! > p.data[i]! ? 2 : 1);
    }
    expect(existsSync(join(OUT, 'seg.png'))).toBe(true);
    const s = await run(['segment', '--model', join(OUT, 'model'), '--input', join(OUT, 'raw.tif'), '--out', join(OUT, 'seg2.tif'), '--threads', '2']);
    expect(s.code).toBe(0);
    const seg2 = await readVolume(join(OUT, 'seg2.tif'));
    let same = 0;
    for (let i = 0; i < n; i++) if (seg2.data[i] === seg.data[i]) same++;
    expect(same / n).toBeGreaterThan(0.999);
  });

  it('train saves a model folder with checkpoints and --resume continues it', async () => {
    const dir = join(OUT, 'trained');
    const base = ['train', '--image', join(OUT, 'raw.tif'), '--labels', join(OUT, 'sparse.tif'), '--model', dir, '--preset', 'tiny', '--classes', 'background,nucleus', '--threads', '2'];
    const a = await run([...base, '--iterations', '3']);
    expect(a.code).toBe(0);
    expect(JSON.parse(a.out).training.iterations).toBe(3);
    expect(existsSync(join(dir, 'checkpoint', 'checkpoint.pt'))).toBe(true);
    const b = await run([...base, '--iterations', '5', '--resume']);
    expect(b.code).toBe(0);
    const j = JSON.parse(b.out);
    expect(j.training.iterations).toBe(5);
    expect(j.classes).toEqual(['background', 'nucleus']);
    expect(j.downsample).toEqual([1, 2, 2]);
    const s = await run(['segment', '--model', dir, '--input', join(OUT, 'raw.tif'), '--out', join(OUT, 'seg3.tif'), '--no-flips']);
    expect(s.code).toBe(0);
    expect(Object.keys(JSON.parse(s.out).classCounts)).toEqual(['background', 'nucleus']);
    const bad = await run([...base.slice(0, 3), '--iterations', '2']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/give one --labels per --image/);
  });

  it('bad input: exit 2 with a message naming the file', async () => {
    const r = await run(['densify', '--image', join(OUT, 'raw.tif'), '--labels', join(OUT, 'sparse-full.tif'), '--out', join(OUT, 'x.tif'), '--preset', 'tiny', '--iterations', '2']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/sparse-full\.tif: labels are 100x100x100 .* but the image .*raw\.tif is 48x48x24/);
    const m = await run(['segment', '--model', join(OUT, 'no-model'), '--input', join(OUT, 'raw.tif'), '--out', join(OUT, 'x.tif')]);
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/no-model: not a Sliceform model folder/);
    expect((await run(['densify', '--image', 'a', '--labels', 'b', '--out', 'c', '--preset', 'huge'])).err).toMatch(/unknown --preset "huge"/);
  });

  it('Ctrl+C (SIGINT) cancels a running densify: exit 130, no output file', async () => {
    const code = `import(${JSON.stringify(join(REPO, 'main/cli/index.ts'))}).then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); });`;
    const out = join(OUT, 'cancelled.tif');
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', code, 'densify', '--image', join(OUT, 'raw.tif'), '--labels', join(OUT, 'sparse.tif'), '--out', out, '--preset', 'tiny', '--minutes', '10'], { cwd: REPO });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      if (/training/.test(err) && !child.killed) child.kill('SIGINT');
    });
    const exit = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    expect(err).toMatch(/cancel/);
    expect(exit).toBe(130);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(OUT)).filter((f) => f.includes('cancelled'))).toEqual([]);
  });
});
