#!/usr/bin/env node
// Engine benchmark: Sliceform's native engine vs the same network in Debian's python3-torch, same thread count.
// Prints output-voxels/s for training and inference and the ratio Sliceform / PyTorch; writes bench/out/engine-<device>-<precision>.json.
//   node bench/engine.bench.mjs [--quick] [--no-paper] [--threads N] [--only SUBSTR]
//                               [--device cpu|cuda] [--precision fp32|tf32|bf16] [--no-channels-last]
// Cases (issue 3): (a) base 8, 3 levels, 1 channel, 2 classes: train 60^3 -> 20^3, infer 104^3 -> 64^3;
//                  (b) the paper preset (3 ch, 3 classes, 4 levels, base 32): one training step 132x132x116 -> 44x44x28.
// Timing: one warm-up call, then `repeats` calls, median; the two engines alternate (A B B A) so slow drifts in a
// shared machine's load hit both.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const noPaper = args.includes('--no-paper');
const ti = args.indexOf('--threads');
const threads =
  ti >= 0 ? Number(args[ti + 1]) : Number(process.env.SF_BENCH_THREADS || availableParallelism());
const PY = process.env.SF_BENCH_PYTHON || '/usr/bin/python3';
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const device = opt('--device', 'cpu');
const precision = opt('--precision', 'fp32');
// channels_last_3d on both sides by default (the engine's default, see main/engine/native.ts)
const channelsLast = !args.includes('--no-channels-last');
const only = opt('--only', '');

function ensureTorch() {
  const ok = () => spawnSync(PY, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (ok()) return true;
  console.error(
    `bench: ${PY} has no torch; installing Debian python3-torch (apt-get install -y python3-torch)`,
  );
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const r = spawnSync(
    sudo.length ? 'sudo' : 'apt-get',
    [...(sudo.length ? ['apt-get'] : []), 'install', '-y', 'python3-torch'],
    { stdio: 'inherit' },
  );
  if (r.status !== 0 || !ok()) {
    console.error('bench: could not install python3-torch; PyTorch columns will be empty');
    return false;
  }
  return true;
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)];
const prod = (s) => s.reduce((a, b) => a * b, 1);

function outSize(n, levels) {
  for (let l = 0; l < levels - 1; l++) n = (n - 4) / 2;
  n -= 4;
  for (let l = 0; l < levels - 1; l++) n = n * 2 - 4;
  return n;
}

const lib = await import(pathToFileURL(join(repo, 'native-models', 'lib', 'index.js')).href);

async function nativeRun(c, warmup, repeats) {
  const m = lib.createModel(
    c.config,
    { optimizer: 'sgd', lr: 1e-4, momentum: 0.99 },
    { threads, seed: 0, device, precision, channelsLast },
  );
  try {
    const x = new Float32Array(prod(c.inputShape)).map(() => Math.random() * 2 - 1);
    const osp = c.inputShape.slice(2).map((n) => outSize(n, c.config.levels));
    const labels = new Uint8Array(c.inputShape[0] * prod(osp)).map(() =>
      Math.floor(Math.random() * (c.config.numClasses + 1)),
    );
    const times = [];
    for (let i = 0; i < warmup + repeats; i++) {
      const t = performance.now();
      if (c.mode === 'train') await m.trainStep(x, c.inputShape, labels);
      else await m.predict(x, c.inputShape);
      if (i >= warmup) times.push((performance.now() - t) / 1000);
    }
    return { seconds: times, outputVoxels: c.inputShape[0] * prod(osp) };
  } finally {
    m.dispose();
  }
}

function torchRun(c, warmup, repeats) {
  const r = spawnSync(
    PY,
    [
      join(here, 'engine_torch.py'),
      JSON.stringify({ ...c, threads, warmup, repeats, device, precision, channelsLast }),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`engine_torch.py failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const small = {
  dims: 3,
  inChannels: 1,
  numClasses: 2,
  levels: 3,
  baseFilters: 8,
  padding: 'valid',
  batchNorm: true,
  bnAtTest: 'running',
};
const paper = {
  dims: 3,
  inChannels: 3,
  numClasses: 3,
  levels: 4,
  baseFilters: 32,
  padding: 'valid',
  batchNorm: true,
  bnAtTest: 'running',
};
const cases = [
  {
    name: 'a) base 8, 3 levels: train 60^3 -> 20^3',
    config: small,
    mode: 'train',
    inputShape: [1, 1, 60, 60, 60],
    repeats: quick ? 2 : 3,
    rounds: 2,
  },
  {
    name: 'a) base 8, 3 levels: infer 104^3 -> 64^3',
    config: small,
    mode: 'predict',
    inputShape: [1, 1, 104, 104, 104],
    repeats: quick ? 2 : 3,
    rounds: 2,
  },
];
if (!noPaper)
  cases.push({
    name: 'b) paper: train 132x132x116 -> 44x44x28',
    config: paper,
    mode: 'train',
    inputShape: [1, 3, 116, 132, 132],
    repeats: 1,
    rounds: 1,
  });

const selected = cases.filter((c) => !only || c.name.includes(only));
if (device === 'cuda') for (const c of selected) Object.assign(c, { repeats: 10, rounds: 2 });
const haveTorch = ensureTorch();
const rows = [];
console.log(
  `engine bench: ${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()} logical, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, threads=${threads}, libtorch ${lib.torchVersion()}, device ${device} ${precision}${channelsLast ? ' channels_last' : ''}`,
);
for (const c of selected) {
  const nat = [];
  const tor = [];
  let nvox = 0;
  let torchVersion = '';
  for (let r = 0; r < c.rounds; r++) {
    const order = r % 2 === 0 ? ['n', 't'] : ['t', 'n'];
    for (const o of order) {
      if (o === 'n') {
        const res = await nativeRun(c, 1, c.repeats);
        nat.push(...res.seconds);
        nvox = res.outputVoxels;
      } else if (haveTorch) {
        const res = torchRun(c, 1, c.repeats);
        tor.push(...res.seconds);
        torchVersion = res.torch;
      }
    }
  }
  const sv = nvox / median(nat);
  const pv = tor.length ? nvox / median(tor) : NaN;
  const row = {
    case: c.name,
    device,
    precision,
    channelsLast,
    mode: c.mode,
    outputVoxels: nvox,
    sliceformSeconds: median(nat),
    pytorchSeconds: tor.length ? median(tor) : null,
    sliceformVoxPerS: sv,
    pytorchVoxPerS: pv,
    ratio: sv / pv,
    torchVersion,
    samples: { sliceform: nat, pytorch: tor },
  };
  rows.push(row);
  console.log(
    `${c.name.padEnd(44)} ${c.mode === 'train' ? 'train' : 'infer'}  Sliceform ${sv.toFixed(0).padStart(8)} vox/s (${median(nat).toFixed(2)} s)` +
      `  PyTorch ${Number.isNaN(pv) ? '     n/a' : pv.toFixed(0).padStart(8)} vox/s${tor.length ? ` (${median(tor).toFixed(2)} s)` : ''}` +
      `  ratio ${Number.isNaN(pv) ? 'n/a' : (sv / pv).toFixed(2)}`,
  );
  if (device === 'cuda')
    console.log(
      `${''.padEnd(44)} ms/call: Sliceform ${(1000 * median(nat)).toFixed(1)}  PyTorch ${tor.length ? (1000 * median(tor)).toFixed(1) : 'n/a'}`,
    );
}
let load = '';
try {
  load = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim();
} catch {
  // no /proc on this OS
}
mkdirSync(join(here, 'out'), { recursive: true });
const outFile = join(here, 'out', `engine-${device}-${precision}${channelsLast ? '-cl' : ''}.json`);
writeFileSync(
  outFile,
  JSON.stringify(
    {
      device,
      precision,
      channelsLast,
      date: new Date().toISOString(),
      cpu: cpus()[0]?.model,
      logicalCpus: availableParallelism(),
      threads,
      loadavg: load,
      libtorch: lib.torchVersion(),
      rows,
    },
    null,
    2,
  ),
);
console.log(`engine bench: wrote ${outFile}${existsSync(outFile) ? '' : ' (failed)'}; loadavg ${load}`);
