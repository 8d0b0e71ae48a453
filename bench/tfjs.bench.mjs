#!/usr/bin/env node
// TF.js engine row of the engine benchmark (issue 7): the same case (a) as bench/engine.bench.mjs — base 8,
// 3 levels, 1 channel, 2 classes: training 60^3 -> 20^3, inference 104^3 -> 64^3 — on the TF.js engine, with the
// native engine timed in the same process for the ratio. Prints output voxels/s; writes bench/out/tfjs.json.
//   node bench/tfjs.bench.mjs [--quick] [--backend cpu|tensorflow|auto] [--threads N]
// The pure-JS cpu backend is single-threaded; the native engine runs with --threads (default: all cores), and
// once more with 1 thread so the per-core ratio is visible too.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const bi = args.indexOf('--backend');
const backend = bi >= 0 ? args[bi + 1] : process.env.SF_BENCH_TFJS_BACKEND || 'cpu';
const ti = args.indexOf('--threads');
const threads = ti >= 0 ? Number(args[ti + 1]) : Number(process.env.SF_BENCH_THREADS || availableParallelism());

const src = (p) => pathToFileURL(join(repo, p)).href;
const { createTfjsEngine } = await tsImport(src('main/engine/tfjs.ts'), import.meta.url);
let nativeEngine = null;
try {
  const { createNativeEngine } = await tsImport(src('main/engine/native.ts'), import.meta.url);
  nativeEngine = await createNativeEngine();
} catch (e) {
  console.error(`tfjs bench: native engine unavailable (${e.message.split('\n')[0]}); TF.js rows only`);
}
const tfjs = await createTfjsEngine({ backend });

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)];
const prod = (s) => s.reduce((a, b) => a * b, 1);
const config = { dims: 3, inChannels: 1, numClasses: 2, levels: 3, baseFilters: 8, padding: 'valid', batchNorm: true, bnAtTest: 'running' };
const cases = [
  { name: 'a) base 8, 3 levels: train 60^3 -> 20^3', mode: 'train', inputShape: [1, 1, 60, 60, 60] },
  { name: 'a) base 8, 3 levels: infer 104^3 -> 64^3', mode: 'predict', inputShape: [1, 1, 104, 104, 104] },
];

/**
 * `warmup` untimed calls, then `repeats` timed calls; returns the median seconds per call and output voxels per
 * call. TF.js gets no warm-up: its pure-JS kernels have nothing to compile and one 104^3 call takes minutes.
 */
async function run(engine, c, opts, repeats, warmup = 1) {
  const m = await engine.createModel(config, { optimizer: 'sgd', lr: 1e-4, momentum: 0.99 }, { seed: 0, ...opts });
  try {
    let seed = 1;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    const x = new Float32Array(prod(c.inputShape)).map(rnd);
    const osp = m.outputShape(c.inputShape.slice(2));
    const labels = new Uint8Array(prod(osp)).map((_, i) => (i % 3 === 0 ? 0 : 1 + (i % 2)));
    const times = [];
    for (let i = 0; i < warmup + repeats; i++) {
      const t = performance.now();
      if (c.mode === 'train') await m.trainStep({ input: x, inputShape: c.inputShape, labels });
      else await m.predict(x, c.inputShape);
      if (i >= warmup) times.push((performance.now() - t) / 1000);
    }
    return { seconds: median(times), samples: times, outputVoxels: prod(osp) };
  } finally {
    m.dispose();
  }
}

console.log(
  `tfjs bench: ${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()} logical, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `TF.js ${tfjs.info.version} backend=${tfjs.info.backend}; native ${nativeEngine ? nativeEngine.info.version : 'n/a'} threads=${threads}`,
);
const rows = [];
for (const c of cases) {
  const tf = await run(tfjs, c, {}, quick ? 1 : 2, 0);
  const nat = nativeEngine ? await run(nativeEngine, c, { threads }, quick ? 2 : 3) : null;
  const nat1 = nativeEngine && threads !== 1 ? await run(nativeEngine, c, { threads: 1 }, quick ? 1 : 2) : null;
  const v = (r) => (r ? r.outputVoxels / r.seconds : NaN);
  const row = {
    case: c.name,
    mode: c.mode,
    outputVoxels: tf.outputVoxels,
    tfjsSeconds: tf.seconds,
    tfjsVoxPerS: v(tf),
    nativeSeconds: nat?.seconds ?? null,
    nativeVoxPerS: v(nat),
    native1ThreadVoxPerS: v(nat1),
    nativeOverTfjs: v(nat) / v(tf),
    native1ThreadOverTfjs: v(nat1) / v(tf),
    samples: { tfjs: tf.samples, native: nat?.samples ?? [], native1: nat1?.samples ?? [] },
  };
  rows.push(row);
  const f = (n) => (Number.isNaN(n) ? 'n/a' : n.toFixed(0));
  console.log(
    `${c.name.padEnd(44)} ${c.mode === 'train' ? 'train' : 'infer'}  TF.js ${f(row.tfjsVoxPerS).padStart(7)} vox/s (${tf.seconds.toFixed(2)} s)` +
      `  native ${f(row.nativeVoxPerS).padStart(8)} vox/s  (1 thread ${f(row.native1ThreadVoxPerS)})` +
      `  native/TF.js ${Number.isNaN(row.nativeOverTfjs) ? 'n/a' : row.nativeOverTfjs.toFixed(1)}x` +
      `${Number.isNaN(row.native1ThreadOverTfjs) ? '' : ` (1 thread ${row.native1ThreadOverTfjs.toFixed(1)}x)`}`,
  );
}
let load = '';
try {
  load = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim();
} catch {
  // no /proc/loadavg (not Linux)
}
mkdirSync(join(here, 'out'), { recursive: true });
const outFile = join(here, 'out', 'tfjs.json');
writeFileSync(
  outFile,
  JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, logicalCpus: availableParallelism(), threads, loadavg: load, tfjs: tfjs.info, native: nativeEngine?.info ?? null, rows }, null, 2),
);
console.log(`tfjs bench: wrote ${outFile}; loadavg ${load}`);
