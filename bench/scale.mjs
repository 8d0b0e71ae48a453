// Scale benchmark (issue 16): streamed `segment` on a stack bigger than the working set, as TIFF and as
// OME-Zarr, against the in-memory path on a stack of a quarter the plane size.
//
//   npm run bench:scale -- [--planes 512] [--tile-voxels 1000000] [--iterations 20] [--generate-only] [--flips]
//
// Generates once (cached in bench/out/scale-cache/, git-ignored; delete it to regenerate or to free the disk)
//   stack-1024x1024xZ.tif       3-channel uint16 ImageJ TIFF (Z = --planes; 512 planes = 3 GiB of voxels)
//   stack-1024x1024xZ.ome.zarr  the same voxels as OME-Zarr (NGFF 0.4, chunks 32x256x256, blosc-lz4)
//   small-512x512xZ/2.tif       the in-memory reference stack (a quarter of the plane, half the planes)
//   model-3ch/                  a tiny 3-channel model (PRESETS.tiny, inChannels 3) trained --iterations steps on
//                               a 48x96x96 crop with the 1135 truth on its three middle planes
// Voxels: the real plant-nuclei stack 1135 (100³, ../shared/data) mirrored to fill the volume, three channels
// made from it (c0 = raw*200 + noise, c1 = (255-raw)*120 + noise, c2 = raw shifted 17 voxels in x * 150).
// Each `segment` runs in its own process under /usr/bin/time -v (peak RSS = its "Maximum resident set size");
// prints RSS, seconds, voxels/s and the throughput ratio, and writes bench/out/scale.json. No timed assertions.
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readVolume } from '../main/io/index.ts';
import { SlabTiffWriter } from '../main/inference/slab-writer.ts';
import { createOmeZarrImage, writePyramid } from '../main/io/zarr/writer.ts';
import { loadEngine } from '../main/engine/index.ts';
import { PRESETS } from '../main/common/engine.ts';
import { trainModel } from '../main/training/trainer.ts';
import { saveModelDir } from '../main/inference/model-dir.ts';
import { mirrorIndex } from '../main/volume/mirror.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (k, d) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : d;
};
const Z = Number(opt('planes', 512));
const TILE = Number(opt('tile-voxels', 1_000_000));
const ITER = Number(opt('iterations', 20));
const FLIPS = args.includes('--flips');
const CACHE = join(root, 'bench', 'out', 'scale-cache');
const OUT = join(root, 'bench', 'out', 'scale-runs');
mkdirSync(CACHE, { recursive: true });
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const H5 = join(root, '..', 'shared', 'data', 'plantseg_nuclei_mini', '1135_mini.h5');
const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

const raw = await readVolume(H5, { dataset: 'raw' });
const truth = await readVolume(H5, { dataset: 'label' });
const R = 100;
/** the three channels of voxel (x, y, z) of the synthetic stack */
function fillSlab(X, Y, z0, depth, out /* Uint16Array 3*depth*Y*X */) {
  const plane = X * Y;
  const n = depth * plane;
  const mx = new Int32Array(X);
  const mx2 = new Int32Array(X);
  for (let x = 0; x < X; x++) {
    mx[x] = mirrorIndex(x, R);
    mx2[x] = mirrorIndex(x + 17, R);
  }
  let h = (z0 * 2654435761) >>> 0;
  for (let z = 0; z < depth; z++) {
    const rz = mirrorIndex(z0 + z, R) * R * R;
    for (let y = 0; y < Y; y++) {
      const row = rz + mirrorIndex(y, R) * R;
      const o = z * plane + y * X;
      for (let x = 0; x < X; x++) {
        h = (h * 1103515245 + 12345) >>> 0;
        const v = raw.data[row + mx[x]];
        out[o + x] = v * 200 + (h >>> 24);
        out[n + o + x] = (255 - v) * 120 + ((h >>> 16) & 255);
        out[2 * n + o + x] = raw.data[row + mx2[x]] * 150;
      }
    }
  }
}

async function generate(name, X, Y, ZZ, zarr) {
  const tif = join(CACHE, `${name}.tif`);
  const zr = join(CACHE, `${name}.ome.zarr`);
  const need = [tif, ...(zarr ? [zr] : [])].filter((p) => !existsSync(p));
  if (need.length === 0) return { tif, zarr: zarr ? zr : null };
  const bytes = X * Y * ZZ * 3 * 2;
  const st = statfsSync(CACHE);
  const free = Number(st.bavail) * Number(st.bsize);
  if (free < bytes * 2.5) throw new Error(`bench:scale: ${CACHE} has ${(free / 2 ** 30).toFixed(1)} GiB free, needs ~${((bytes * 2.5) / 2 ** 30).toFixed(1)} GiB for the stacks and outputs`);
  log(`generating ${name} (${X}x${Y}x${ZZ}x3 uint16, ${(bytes / 2 ** 30).toFixed(2)} GiB)`);
  const spacing = { x: 1, y: 1, z: 1, unit: 'µm' };
  const tw = need.includes(tif) ? await SlabTiffWriter.create(tif, { width: X, height: Y, depth: ZZ, channels: 3, dtype: 'uint16', spacing, displayRange: [0, 65535] }) : null;
  const zw = zarr && need.includes(zr) ? await createOmeZarrImage(`${zr}.tmp`, '', { shape: { x: X, y: Y, z: ZZ, c: 3 }, dtype: 'uint16', spacing, chunks: [32, 256, 256], channelNames: ['c0', 'c1', 'c2'] }) : null;
  const step = 32;
  const buf = new Uint16Array(3 * step * X * Y);
  for (let z0 = 0; z0 < ZZ; z0 += step) {
    const d = Math.min(step, ZZ - z0);
    const slab = d === step ? buf : buf.subarray(0, 3 * d * X * Y);
    fillSlab(X, Y, z0, d, slab);
    if (tw) await tw.writeSlab(slab, d);
    if (zw) await zw.writeRegion({ x0: 0, y0: 0, z0, x1: X, y1: Y, z1: z0 + d }, slab);
  }
  if (tw) await tw.close();
  if (zw) {
    // the downsampled levels viewers use; the app opens a big store through one of them (docs/app.md, big volumes)
    await writePyramid(`${zr}.tmp`, '');
    const { rename } = await import('node:fs/promises');
    await rename(`${zr}.tmp`, zr);
  }
  return { tif, zarr: zarr ? zr : null };
}

async function model() {
  const dir = join(CACHE, 'model-3ch');
  if (existsSync(join(dir, 'model.json'))) return dir;
  log(`training the 3-channel tiny model (${ITER} steps)`);
  const [D, H, W] = [48, 96, 96];
  const data = new Uint16Array(3 * D * H * W);
  fillSlab(W, H, 26, D, data);
  const labels = new Uint8Array(D * H * W);
  for (let z = 0; z < D; z++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        if (z === 24 || y === 48 || x === 48) labels[(z * H + y) * W + x] = truth.data[((26 + z) * R + y) * R + x] > 0 ? 2 : 1;
  const spacing = { x: 1, y: 1, z: 1, unit: 'µm' };
  const info = { dtype: 'uint16', shape: { x: W, y: H, z: D, c: 3, t: 1 }, spacing, channelNames: ['c0', 'c1', 'c2'], format: 'tiff', source: 'synthetic', timepoint: 0, metadata: {} };
  const image = { ...info, data };
  const lab = { ...info, dtype: 'uint8', shape: { ...info.shape, c: 1 }, channelNames: ['labels'], data: labels };
  const net = { ...PRESETS.tiny, inChannels: 3 };
  const optim = { optimizer: 'adam', lr: 3e-3 };
  const engine = await loadEngine();
  const r = await trainModel(engine, [{ image, labels: lab }], { net, optim, iterations: ITER, holdout: 'none', worker: 'inline', planeOut: 32, cubeOut: 16 });
  await saveModelDir(dir, r.model, { net, optim, normalisation: r.normalisation, classNames: ['background', 'nucleus'], spacing, downsample: [1, 1, 1], training: r.summary });
  r.model.dispose();
  return dir;
}

function segment(label, input, out, extra = []) {
  const cli = [process.execPath, '--import', 'tsx', join(root, 'bench', 'cli-entry.ts')];
  const a = ['segment', '--model', modelDir, '--input', input, '--out', out, '--tile-voxels', String(TILE), '--threads', '2', ...(FLIPS ? [] : ['--no-flips']), ...extra];
  log(`${label}: ${a.join(' ')}`);
  const r = spawnSync('/usr/bin/time', ['-v', ...cli, ...a], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26 });
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const j = JSON.parse(r.stdout);
  const voxels = j.shape.x * j.shape.y * j.shape.z;
  const res = { label, input, voxels, peakRssMiB: Math.round(rssKb / 1024), seconds: j.seconds, totalSeconds: j.totalSeconds, voxelsPerSecond: Math.round(voxels / j.seconds), tiles: j.tiles, streamed: j.streamed ?? null };
  log(`${label}: peak RSS ${res.peakRssMiB} MiB, ${res.seconds.toFixed(1)} s, ${(res.voxelsPerSecond / 1e6).toFixed(3)} M voxels/s`);
  return res;
}

const t0 = Date.now();
const big = await generate(`stack-1024x1024x${Z}`, 1024, 1024, Z, true);
const smallZ = Math.max(1, Math.round(Z / 2));
const small = await generate(`small-512x512x${smallZ}`, 512, 512, smallZ, false);
const modelDir = await model();
log(`generation and model: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
if (args.includes('--generate-only')) process.exit(0);
const load0 = loadavg();
const runs = [
  segment('streamed TIFF', big.tif, join(OUT, 'seg_tif.tif')),
  segment('streamed OME-Zarr', big.zarr, join(OUT, 'seg_zarr.ome.zarr')),
  segment('in-memory TIFF (small)', small.tif, join(OUT, 'seg_small_mem.tif'), ['--in-memory']),
  segment('streamed TIFF (small)', small.tif, join(OUT, 'seg_small_stream.tif')),
];
const inMem = runs[2].voxelsPerSecond;
const result = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), loadavgBefore: load0, loadavgAfter: loadavg() },
  stack: { shape: [1024, 1024, Z, 3], dtype: 'uint16', voxelGiB: (1024 * 1024 * Z * 3 * 2) / 2 ** 30 },
  tileVoxels: TILE,
  flips: FLIPS,
  runs,
  throughputRatio: { tiff: runs[0].voxelsPerSecond / inMem, zarr: runs[1].voxelsPerSecond / inMem, smallStreamed: runs[3].voxelsPerSecond / inMem },
};
writeFileSync(join(root, 'bench', 'out', 'scale.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result, null, 2));

