// Training (and optionally densify) of an out-of-core stack from the crops around its paint: prints the crops,
// the voxels read, peak RSS and seconds of `sliceform train --out-of-core` (and `densify`) under /usr/bin/time -v.
//
//   node --import tsx bench/big-train.mjs [--stack bench/out/scale-cache/stack-1024x1024x512.ome.zarr]
//        [--iterations 20] [--densify]   (densify: streamed segment of the whole stack; hours for 3 GiB on 2 cores)
//
// The stack is bench:scale's (npm run bench:scale generates it once: 1135 mirrored to fill the volume, channel 0 =
// raw·200 + noise), so the paint is 1135's truth mirrored the same way: a P×P patch (--patch, default 512) of xy
// plane 200 and a P×200 patch of an xz plane through its far edge, written as a sparse OME-Zarr label store.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readVolume, probeVolume } from '../main/io/index.js';
import { SparseLabels } from '../main/services/sparse-labels.js';
import { writeLabelsZarr } from '../main/services/big-volume.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({ options: { stack: { type: 'string' }, iterations: { type: 'string' }, densify: { type: 'boolean' }, patch: { type: 'string' } } });
const stack = resolve(o.stack ?? join(root, 'bench', 'out', 'scale-cache', 'stack-1024x1024x512.ome.zarr'));
if (!existsSync(stack)) {
  console.error(`${stack} is missing: run npm run bench:scale first (it generates the stack once)`);
  process.exit(2);
}
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
const info = await probeVolume(stack);
const { x: X, y: Y, z: Z } = info.shape;
const truth = await readVolume(join(root, '..', 'shared', 'data', 'plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'label' });
const R = 100;
const mirror = (i) => {
  const p = 2 * R - 2;
  const m = ((i % p) + p) % p;
  return m < R ? m : p - m;
};
const t = (x, y, z) => (truth.data[(mirror(z) * R + mirror(y)) * R + mirror(x)] > 0 ? 2 : 1);
const labels = new SparseLabels({ x: X, y: Y, z: Z });
const zp = Math.min(200, Z - 1);
const P = Number(o.patch ?? 512);
{
  const w = P, h = P, x0 = 256, y0 = 256;
  const d = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = t(x0 + x, y0 + y, zp);
  labels.writeBox({ min: [x0, y0, zp], max: [x0 + w, y0 + h, zp + 1] }, d);
}
{
  const yp = Math.min(256 + P - 1, Y - 1), w = P, x0 = 256, z0 = Math.max(0, zp - 100), z1 = Math.min(Z, zp + 100);
  const d = new Uint8Array(w * (z1 - z0));
  for (let z = z0; z < z1; z++) for (let x = 0; x < w; x++) d[(z - z0) * w + x] = t(x0 + x, yp, z);
  labels.writeBox({ min: [x0, yp, z0], max: [x0 + w, yp + 1, z1] }, d);
}
const out = join(root, 'bench', 'out', 'big-train');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const lab = join(out, 'paint.ome.zarr');
await writeLabelsZarr(lab, labels, info.spacing, ['background', 'nucleus']);
log(`paint: ${labels.blockCount} blocks -> ${lab}`);

function run(label, args) {
  const cli = [process.execPath, '--import', 'tsx', join(root, 'bench', 'cli-entry.ts')];
  log(`${label}: ${args.join(' ')}`);
  const r = spawnSync('/usr/bin/time', ['-v', ...cli, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26 });
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  const wall = /Elapsed \(wall clock\) time[^:]*: ([\d:.]+)/.exec(r.stderr)?.[1];
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stderr.slice(-3000)}`);
  const j = JSON.parse(r.stdout);
  const res = { label, peakRssMiB: Math.round(rssKb / 1024), wall, iterations: j.training?.iterations, outOfCore: j.outOfCore };
  console.log(JSON.stringify(res));
  return res;
}
const it = o.iterations ?? '20';
run('train', ['train', '--out-of-core', '--image', stack, '--labels', lab, '--model', join(out, 'model'), '--preset', 'tiny', '--iterations', it, '--threads', '2', '--seed', '1']);
if (o.densify) run('densify', ['densify', '--out-of-core', '--image', stack, '--labels', lab, '--out', join(out, 'seg.ome.zarr'), '--preset', 'tiny', '--iterations', it, '--threads', '2', '--seed', '1']);
