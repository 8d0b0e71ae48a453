// npm run bench:live — stroke -> preview latency of the live loop (issue 13 item 2) on the plant nuclei 1135.
//
// The app's path end to end: an ApiService (the class behind the web shell and Electron main) with its compute
// process, 1135 opened from ../shared/data, the ground truth painted on the middle xy, xz and yz slices, the three
// views' planes made visible (setVisiblePlanes), a live training session (startTraining live: true). After a
// warm-up, simulated strokes of the true class (a short line where the current preview is wrong, else anywhere)
// are painted on the xy view's plane, one at a time: the latency is the time from the paintStroke call to the
// preview of that plane fetched with getPreview (the onPreview event that answers the stroke, then the data).
// Prints the machine, its load (uptime) and `stroke -> preview: median X s, p95 Y s`.
//
//   node bench/live.mjs [--strokes 15] [--warmup 20] [--preset desktop] [--pause 1000] [--dist] [--out F.json]
//
// Runs the TypeScript sources through tsx (always current); --dist uses dist/ (after npm run build:ts, with the
// augmentation worker as in the app).
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (n) => argv.includes(`--${n}`);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : d;
};
if (!flag('dist') && !process.env.SF_LIVE_CHILD) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...argv], {
    cwd: repo,
    stdio: 'inherit',
    env: { ...process.env, SF_LIVE_CHILD: '1' },
  });
  process.exit(r.status ?? 1);
}
const src = (p) => (flag('dist') ? pathToFileURL(join(repo, 'dist', p + '.js')).href : pathToFileURL(join(repo, p + '.ts')).href);
const { ApiService } = await import(src('main/services/api-service'));
const { readVolume } = await import(src('main/io/index'));

const H5 = join(repo, '..', 'shared', 'data', 'plantseg_nuclei_mini', '1135_mini.h5');
if (!existsSync(H5)) throw new Error(`missing ${H5} (the shared data, see ../shared/data/README.md)`);
const strokes = Number(opt('strokes', '15'));
const warmup = Number(opt('warmup', '20'));
const preset = opt('preset', 'desktop');
const pause = Number(opt('pause', '1000'));
const outFile = opt('out', join(repo, 'bench', 'out', `live-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '')}.json`));

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
const uptime = () => {
  try {
    return execSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`;
  }
};
console.log(`machine: ${machine}`);
console.log(`before: ${uptime()}`);

const truthVol = await readVolume(H5, { dataset: 'label' });
const { x: X, y: Y, z: Z } = truthVol.shape;
const truth = Uint8Array.from(truthVol.data, (v) => (v > 0 ? 2 : 1));
const at = (x, y, z) => truth[(z * Y + y) * X + x];

const workDir = mkdtempSync(join(tmpdir(), 'sliceform-bench-live-'));
const api = new ApiService({ shell: 'web', workDir });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let result;
try {
  const info = await api.openVolume({ path: H5, dataset: 'raw' });
  const volumeId = info.id;
  // the ground truth on the middle xy, xz and yz slices, one region per class
  const paintPlane = async (plane, index) => {
    const [w, h] = plane === 'xy' ? [X, Y] : plane === 'xz' ? [X, Z] : [Y, Z];
    for (const classId of [1, 2]) {
      const mask = new Uint8Array(w * h);
      for (let v = 0; v < h; v++)
        for (let u = 0; u < w; u++) {
          const [x, y, z] = plane === 'xy' ? [u, v, index] : plane === 'xz' ? [u, index, v] : [index, u, v];
          mask[v * w + u] = at(x, y, z) === classId ? 1 : 0;
        }
      await api.paintRegion({ volumeId, plane, index, classId, origin: [0, 0], width: w, height: h, mask });
    }
  };
  await paintPlane('xy', Math.floor(Z / 2));
  await paintPlane('xz', Math.floor(Y / 2));
  await paintPlane('yz', Math.floor(X / 2));
  // the three views: an unpainted xy plane (where the strokes go), the painted xz and yz planes
  const zView = Math.floor(Z * 0.3);
  await api.setVisiblePlanes({ volumeId, planes: [{ plane: 'xy', index: zView }, { plane: 'xz', index: Math.floor(Y / 2) }, { plane: 'yz', index: Math.floor(X / 2) }] });

  let iteration = 0;
  api.onTrainProgress((p) => (iteration = p.iteration));
  const waiters = [];
  api.onPreview((e) => {
    for (const w of [...waiters])
      if (w.match(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
  });
  const nextPreview = (match, ms = 120_000) =>
    new Promise((resolve, reject) => {
      const w = { match, resolve };
      waiters.push(w);
      setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) {
          waiters.splice(i, 1);
          reject(new Error('no preview within ' + ms / 1000 + ' s'));
        }
      }, ms).unref();
    });

  const t0 = Date.now();
  const job = await api.startTraining({ volumeIds: [volumeId], preset, live: true, fresh: true, seed: 1 });
  while (iteration < warmup) {
    const j = await api.getJob(job);
    if (j.state !== 'running' && j.state !== 'queued') throw new Error(`the live session ended: ${j.state} ${j.error?.message ?? ''}`);
    await sleep(200);
  }
  await nextPreview((e) => e.plane === 'xy' && e.index === zView && e.iteration >= warmup);
  console.log(`warm-up: ${iteration} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const latencies = [];
  const backend = [];
  for (let k = 0; k < strokes; k++) {
    // where the current preview is wrong, else anywhere; the stroke paints the true class there
    const pv = await api.getPreview({ volumeId, plane: 'xy', index: zView });
    const wrong = [];
    for (let v = 2; v < Y - 2; v++) for (let u = 2; u < X - 8; u++) if (pv.labels[v * X + u] !== at(u, v, zView)) wrong.push([u, v]);
    const [u, v] = wrong.length ? wrong[Math.floor(rand() * wrong.length)] : [2 + Math.floor(rand() * (X - 10)), 2 + Math.floor(rand() * (Y - 4))];
    const classId = at(u, v, zView);
    const ts = Date.now();
    const edit = await api.paintStroke({ volumeId, plane: 'xy', index: zView, classId, radius: 1, points: [[u, v], [u + 4, v]] });
    const e = await nextPreview((e) => e.plane === 'xy' && e.index === zView && e.latencyMs !== undefined && e.revision >= edit.revision);
    const p = await api.getPreview({ volumeId, plane: 'xy', index: zView });
    const ms = Date.now() - ts;
    latencies.push(ms);
    backend.push(e.latencyMs);
    console.log(`stroke ${k + 1}: class ${classId} at (${u}, ${v}), ${edit.changed} voxels, revision ${edit.revision} -> preview at iteration ${p.iteration} (revision ${p.revision}) in ${(ms / 1000).toFixed(2)} s (compute process: ${(e.latencyMs / 1000).toFixed(2)} s)`);
    await sleep(pause);
  }
  await api.stopTraining(job);
  const done = await api.waitJob({ jobId: job.jobId, timeoutMs: 300_000 });
  const q = (a, f) => {
    const s = [...a].sort((x, y) => x - y);
    return s[Math.min(s.length - 1, Math.ceil(f * s.length) - 1)];
  };
  const median = q(latencies, 0.5) / 1000;
  const p95 = q(latencies, 0.95) / 1000;
  const load = uptime();
  console.log(`after: ${load}`);
  console.log(`session: ${done.state}, ${done.result?.iterations ?? '?'} iterations, model ${done.result?.model?.id ?? '-'}`);
  console.log(`stroke -> preview: median ${median.toFixed(2)} s, p95 ${p95.toFixed(2)} s`);
  result = { machine, load, preset, strokes, warmup, latenciesMs: latencies, computeLatenciesMs: backend, median, p95, iterations: done.result?.iterations };
} finally {
  await api.dispose();
  rmSync(workDir, { recursive: true, force: true });
}
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(result, null, 2));
console.log(`wrote ${outFile}`);
