#!/usr/bin/env node
// `npm run bench:quality`: densify quality on every shared task against the random-forest anchor computed in the
// same run (bench/rf_anchor.py: scikit-image multiscale features + scikit-learn RandomForest, issue 18's
// settings). Sparse labels = the ground truth on k evenly spaced slices per axis (`sliceform make-sparse`);
// score = IoU of class 2 (nucleus / membrane) over the unannotated voxels. Prints one row per run, then the mean
// over seeds per task and k, and the held-out estimate's error where densify reports one.
//
//   node bench/quality.mjs [--quick] [--tasks 1135,1136,ovule] [--k 1,3] [--seeds 1,2,3] [--minutes 4]
//                          [--iterations N] [--densify "--balance 1 ..."] [--runner dist|tsx] [--out F.json]
//                          [--keep DIR]
//
// --keep DIR keeps, per run, the model folder and the network's and the forest's probabilities apart
// (DIR/<task>-k<k>-s<seed>/{model, cnn.tif, forest.tif}: `segment` with the model's forest weight set to 0 and
// to 1), for offline experiments on the mix and the decision (bench/quality_mix.py). Runs go k by k (all tasks
// at k = 1 first), so a run cut short has whole k rows.
//
// --quick = seed 1, k = 1 (about 15 minutes on the 2-core machine); the full run (3 tasks x k 1,3 x seeds 1-3 at
// 4 minutes each) takes about 80 minutes: run it alone, in the background. Needs the build (npm run build:ts) for
// --runner dist (default), and Debian's python3-sklearn + python3-skimage for the anchor.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const data = resolve(root, '..', 'shared', 'data');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes('--quick');
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const taskNames = list(opt('tasks', '1135,1136,ovule'));
const ks = list(opt('k', quick ? '1' : '1,3')).map(Number);
const seeds = list(opt('seeds', quick ? '1' : '1,2,3')).map(Number);
const minutes = opt('minutes', '4');
const iterations = opt('iterations');
const extra = (opt('densify', '') ?? '').split(/\s+/).filter(Boolean);
const runner = opt('runner', 'dist');
const keep = opt('keep');
const outFile = opt('out', join(root, 'bench', 'out', `quality-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '')}.json`));

const TASKS = {
  1135: { image: join(data, 'plantseg_nuclei_mini', '1135_mini.h5'), dataset: 'raw', truth: join(data, 'plantseg_nuclei_mini', '1135_mini.h5'), truthDataset: 'label', mode: 'instances' },
  1136: { image: join(data, 'plantseg_nuclei_mini', '1136_mini.h5'), dataset: 'raw', truth: join(data, 'plantseg_nuclei_mini', '1136_mini.h5'), truthDataset: 'label', mode: 'instances' },
  ovule: { image: join(data, 'plantseg_ovule_membrane', 'sample_ovule.h5'), dataset: 'raw', truth: join(data, 'plantseg_ovule_membrane', 'sample_ovule_membrane_truth.tif'), truthDataset: '', mode: 'membrane' },
};
for (const t of taskNames) if (!TASKS[t]) throw new Error(`unknown task ${t} (${Object.keys(TASKS).join(', ')})`);
for (const t of taskNames) if (!existsSync(TASKS[t].image)) throw new Error(`missing ${TASKS[t].image} (the shared data)`);

// --runner dist | tsx | the folder of a build (e.g. a private `tsc --outDir F` snapshot, so a long run is not
// changed under it by a rebuild of dist/ in the shared tree; F/main/cli/index.js)
const cli =
  runner === 'tsx'
    ? [join(root, 'node_modules', '.bin', 'tsx'), join(root, 'bench', 'cli-entry.ts')]
    : runner === 'dist'
      ? [process.execPath, join(root, 'bin', 'sliceform.js')]
      : [process.execPath, join(resolve(runner), 'sliceform-launch.mjs')];
if (runner === 'dist' && !existsSync(join(root, 'dist', 'main', 'cli', 'index.js'))) throw new Error('not built: run npm run build:ts (or --runner tsx)');
if (runner !== 'dist' && runner !== 'tsx' && !existsSync(join(resolve(runner), 'main', 'cli', 'index.js'))) throw new Error(`no build at ${runner} (main/cli/index.js)`);
if (runner !== 'dist' && runner !== 'tsx')
  writeFileSync(cli[1], `const { main } = await import(${JSON.stringify(pathToFileURL(join(resolve(runner), 'main', 'cli', 'index.js')).href)});\nprocess.exitCode = await main(process.argv.slice(2));\n`);
const tmp = join(root, 'bench', 'out', 'quality-tmp');
mkdirSync(tmp, { recursive: true });

function sliceform(argv) {
  const r = spawnSync(cli[0], [...cli.slice(1), ...argv], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`sliceform ${argv.join(' ')} failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  return { out: r.stdout, err: r.stderr };
}

function anchor(t, k) {
  const T = TASKS[t];
  const r = spawnSync('/usr/bin/python3', [join(root, 'bench', 'rf_anchor.py'), '--image', T.image, '--dataset', T.dataset, '--truth', T.truth, '--truth-dataset', T.truthDataset, '--mode', T.mode, '--slices', String(k)], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`rf_anchor.py ${t} k=${k} failed:\n${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
console.log(`bench:quality ${new Date().toISOString()} on ${machine}`);
console.log(`tasks ${taskNames.join(', ')}; k ${ks.join(', ')}; seeds ${seeds.join(', ')}; ${iterations ? `${iterations} iterations` : `${minutes} min`} per run${extra.length ? `; densify ${extra.join(' ')}` : ''}`);
const rows = [];
function save() {
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), machine, minutes, iterations: iterations ?? null, extra, rows, anchors }, null, 2));
}
const anchors = {};
const fmt = (x) => (x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(3));
console.log('\n| task | k | seed | IoU | RF anchor | IoU − RF | held-out estimate | iterations | predicted fg % | true fg % | load 1 min | total s (train / forest / predict) |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
// --resume F.json: runs already in F (same budget and densify options) are taken from it, not rerun
const resumeFile = opt('resume');
const previous = resumeFile ? JSON.parse(readFileSync(resumeFile, 'utf8')) : null;
if (previous && (previous.iterations !== (iterations ?? null) || previous.minutes !== minutes || previous.extra.join(' ') !== extra.join(' ')))
  throw new Error(`${resumeFile} was run with other settings (iterations ${previous.iterations}, minutes ${previous.minutes}, densify "${previous.extra.join(' ')}")`);
for (const k of ks) {
  // seed by seed across the tasks, so a run cut short has every task at the first seeds
  for (const t of taskNames) {
    const T = TASKS[t];
    const a = previous?.anchors[`${t}/${k}`] ?? anchor(t, k);
    anchors[`${t}/${k}`] = a;
    const sparse = join(tmp, `${t}-k${k}.tif`);
    const truthArgs = ['--truth', T.truth, ...(T.truthDataset ? ['--dataset', T.truthDataset] : [])];
    sliceform(['make-sparse', ...truthArgs, '--slices', String(k), '--out', sparse]);
  }
  for (const seed of seeds)
  for (const t of taskNames) {
    const T = TASKS[t];
    const a = anchors[`${t}/${k}`];
    const sparse = join(tmp, `${t}-k${k}.tif`);
    {
      const done = previous?.rows.find((x) => x.task === t && x.k === k && x.seed === seed);
      if (done) {
        rows.push(done);
        console.log(`| ${t} | ${k} | ${seed} | ${fmt(done.iou)} | ${fmt(a.iou)} | ${done.iou - a.iou >= 0 ? '+' : ''}${fmt(done.iou - a.iou)} | ${fmt(done.heldOut)} | ${done.iterations} | ${done.predictedFg !== null ? (100 * done.predictedFg).toFixed(1) : '—'} | ${done.trueFg !== null ? (100 * done.trueFg).toFixed(1) : '—'} | ${done.load.toFixed(1)} | (from ${resumeFile})`);
        continue;
      }
      const load = loadavg()[0];
      const budget = iterations ? ['--iterations', iterations] : ['--minutes', minutes];
      const seg = join(tmp, `${t}-k${k}-s${seed}.tif`);
      const kd = keep ? join(resolve(keep), `${t}-k${k}-s${seed}`) : null;
      if (kd) mkdirSync(kd, { recursive: true });
      const r = sliceform([
        'densify', '--image', T.image, '--dataset', T.dataset, '--labels', sparse, '--out', seg, ...budget, '--seed', String(seed),
        '--truth', T.truth, ...(T.truthDataset ? ['--truth-dataset', T.truthDataset] : []), '--truth-mode', 'instances', ...extra,
        ...(kd ? ['--model', join(kd, 'model'), '--probabilities', join(kd, 'mixed.tif')] : []),
      ]);
      const j = JSON.parse(r.out);
      if (kd) {
        writeFileSync(join(kd, 'densify.json'), r.out);
        cpSync(sparse, join(kd, 'sparse.tif'));
        // the two members apart: the same model folder with the forest's weight set to 0 (network) and 1 (forest)
        const manifest = JSON.parse(readFileSync(join(kd, 'model', 'model.json'), 'utf8'));
        for (const [name, w] of [['cnn', 0], ['forest', 1]]) {
          if (!manifest.ensemble) break;
          const md = join(kd, `model-${name}`);
          cpSync(join(kd, 'model'), md, { recursive: true });
          const m = { ...manifest, ensemble: { ...manifest.ensemble, weight: w } };
          delete m.calibration;
          writeFileSync(join(md, 'model.json'), JSON.stringify(m, null, 2));
          sliceform(['segment', '--model', md, '--input', T.image, '--dataset', T.dataset, '--out', join(kd, `${name}-seg.tif`), '--probabilities', join(kd, `${name}.tif`)]);
        }
      }
      const iou = j.truth?.iou?.['2'] ?? null;
      const counts = j.classCounts ?? {};
      const total = Object.values(counts).reduce((s, c) => s + c, 0);
      const row = {
        task: t, k, seed, iou, anchor: a.iou, diff: iou - a.iou, heldOut: j.heldOut?.iou ?? j.selfValidation?.estimate ?? null,
        iterations: j.training?.iterations, predictedFg: total ? counts['2'] / total : null, trueFg: a.truthFraction ?? null, load,
        seconds: j.totalSeconds, calibration: j.calibration ?? null,
        // where the time goes: training (incl. the early held-out scoring and its forest features), the final
        // forest fit, the held-out scoring, the prediction
        trainSeconds: j.training?.seconds ?? null, forestSeconds: j.ensemble?.seconds ?? null,
        forestResolution: j.ensemble?.resolution ?? null, heldOutSeconds: j.heldOut?.seconds ?? null, predictSeconds: j.predictSeconds ?? null,
      };
      rows.push(row);
      save(); // after every run, so a run cut short keeps what finished
      console.log(`| ${t} | ${k} | ${seed} | ${fmt(iou)} | ${fmt(a.iou)} | ${iou - a.iou >= 0 ? '+' : ''}${fmt(iou - a.iou)} | ${fmt(row.heldOut)} | ${row.iterations} | ${row.predictedFg !== null ? (100 * row.predictedFg).toFixed(1) : '—'} | ${row.trueFg !== null ? (100 * row.trueFg).toFixed(1) : '—'} | ${load.toFixed(1)} | ${Math.round(row.seconds ?? 0)} (${Math.round(row.trainSeconds ?? 0)} / ${(row.forestSeconds ?? 0).toFixed(1)} / ${(row.predictSeconds ?? 0).toFixed(1)}) |`);
    }
  }
}
console.log('\n| task | k | mean IoU (seeds) | min | RF anchor | mean − RF | goal mean ≥ RF + 0.03 | every seed ≥ RF |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
let allOk = true;
for (const t of taskNames)
  for (const k of ks) {
    const r = rows.filter((x) => x.task === t && x.k === k);
    const mean = r.reduce((s, x) => s + x.iou, 0) / r.length;
    const min = Math.min(...r.map((x) => x.iou));
    const a = anchors[`${t}/${k}`].iou;
    const goal = mean >= a + 0.03;
    const floor = min >= a;
    allOk &&= goal && floor;
    console.log(`| ${t} | ${k} | ${fmt(mean)} | ${fmt(min)} | ${fmt(a)} | ${mean - a >= 0 ? '+' : ''}${fmt(mean - a)} | ${goal ? 'yes' : 'no'} | ${floor ? 'yes' : 'no'} |`);
  }
const est = rows.filter((x) => x.heldOut !== null);
if (est.length) {
  const err = est.map((x) => x.heldOut - x.iou);
  console.log(`\nheld-out estimate − true IoU over ${est.length} runs: mean ${fmt(err.reduce((s, e) => s + e, 0) / err.length)}, mean |error| ${fmt(err.reduce((s, e) => s + Math.abs(e), 0) / err.length)}`);
}
console.log(`\nacceptance (mean ≥ RF + 0.03 and no seed below RF, every task and k): ${allOk ? 'met' : 'NOT met'}`);
save();
console.log(`results: ${outFile}`);

