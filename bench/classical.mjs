#!/usr/bin/env node
// Classical learner benchmark (main/classical): feature, fit and predict seconds and IoU on the shared tasks
// (1135, 1136 nuclei; ovule membrane) with k ground-truth slices per axis, next to scikit-learn's random-forest
// anchor computed in the same run by bench/rf_anchor.py. Prints figures; no timed tests.
//
//   node bench/classical.mjs [--quick] [--slices 1,3] [--tasks 1135,1136,ovule] [--seed N] [--balanced]
//                            [--anisotropic] [--trees N] [--depth D] [--max-samples F] [--no-anchor] [--json]
//
// --quick = k = 1 only. Runs the TypeScript sources through tsx (always current); `--dist` uses dist/ instead
// (after `npm run build:ts`). Seconds are wall clock and, in brackets, this process's CPU seconds: on a loaded
// shared machine the CPU figure is the one to compare.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (n) => argv.includes(`--${n}`);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : d;
};

// re-exec under tsx so the .ts sources can be imported (unless --dist or already under a loader)
if (!flag('dist') && !process.env.SF_CLASSICAL_CHILD) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...argv], {
    cwd: repo,
    stdio: 'inherit',
    env: { ...process.env, SF_CLASSICAL_CHILD: '1' },
  });
  process.exit(r.status ?? 1);
}

const src = (p) => (flag('dist') ? pathToFileURL(join(repo, 'dist', p + '.js')).href : pathToFileURL(join(repo, p + '.ts')).href);
const { readVolume } = await import(src('main/io/index'));
const { evenlySpaced } = await import(src('main/evaluation/slices'));
const { fitClassical, argmaxClasses, volumeFeatures, forestStats } = await import(src('main/classical/index'));

const DATA = join(repo, '..', 'shared', 'data');
const TASKS = {
  1135: { image: join(DATA, 'plantseg_nuclei_mini', '1135_mini.h5'), dataset: 'raw', truth: join(DATA, 'plantseg_nuclei_mini', '1135_mini.h5'), truthDataset: 'label', mode: 'instances' },
  1136: { image: join(DATA, 'plantseg_nuclei_mini', '1136_mini.h5'), dataset: 'raw', truth: join(DATA, 'plantseg_nuclei_mini', '1136_mini.h5'), truthDataset: 'label', mode: 'instances' },
  ovule: { image: join(DATA, 'plantseg_ovule_membrane', 'sample_ovule.h5'), dataset: 'raw', truth: join(DATA, 'plantseg_ovule_membrane', 'sample_ovule_membrane_truth.tif'), truthDataset: '', mode: 'membrane' },
};
const tasks = opt('tasks', '1135,1136,ovule').split(',');
const slices = flag('quick') ? [1] : opt('slices', '1,3').split(',').map(Number);
const seed = Number(opt('seed', '0'));
const forestOpts = { seed, classBalanced: flag('balanced') };
if (opt('trees')) forestOpts.trees = Number(opt('trees'));
if (opt('depth')) forestOpts.maxDepth = Number(opt('depth'));
if (opt('max-samples')) forestOpts.maxSamples = Number(opt('max-samples'));
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const clock = () => [performance.now() / 1000, cpu()];
const since = ([w, c]) => [performance.now() / 1000 - w, cpu() - c];
const fmt = ([w, c]) => `${w.toFixed(2)} [${c.toFixed(2)}]`;

function classesOf(truth, mode) {
  const out = new Uint8Array(truth.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = truth.data[i];
    if (mode === 'membrane') {
      if (v !== 0 && v !== 255) throw new Error(`${truth.source}: membrane truth must be 0/255, found ${v}`);
      out[i] = v === 255 ? 2 : 1;
    } else out[i] = v > 0 ? 2 : 1;
  }
  return out;
}

/** the truth's classes on k evenly spaced slices per axis (exactly `sliceform make-sparse`) */
function sparseOf(classes, d, k) {
  const s = new Uint8Array(classes.length);
  const zs = new Set(evenlySpaced(d.z, k));
  const ys = new Set(evenlySpaced(d.y, k));
  const xs = new Set(evenlySpaced(d.x, k));
  for (let z = 0; z < d.z; z++)
    for (let y = 0; y < d.y; y++)
      for (let x = 0; x < d.x; x++) {
        const i = (z * d.y + y) * d.x + x;
        if (zs.has(z) || ys.has(y) || xs.has(x)) s[i] = classes[i];
      }
  return s;
}

function anchor(t, k) {
  const args = [join(repo, 'bench', 'rf_anchor.py'), '--image', t.image, '--dataset', t.dataset, '--truth', t.truth, '--truth-dataset', t.truthDataset, '--mode', t.mode, '--slices', String(k)];
  const r = spawnSync('/usr/bin/python3', args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) return { error: (r.stderr || '').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const rows = [];
console.log(`classical learner bench: forest ${JSON.stringify(forestOpts)}${flag('anisotropic') ? ', anisotropic' : ''}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const name of tasks) {
  const t = TASKS[name];
  if (!t) throw new Error(`unknown task ${name} (1135, 1136, ovule)`);
  if (!existsSync(t.image)) throw new Error(`missing ${t.image}`);
  const image = await readVolume(t.image, { dataset: t.dataset });
  const truth = await readVolume(t.truth, { dataset: t.truthDataset || undefined });
  const d = { x: image.shape.x, y: image.shape.y, z: image.shape.z };
  const classes = classesOf(truth, t.mode);
  let c = clock();
  const features = volumeFeatures(image, { anisotropic: flag('anisotropic') });
  const featureTime = since(c);
  for (const k of slices) {
    const sparse = sparseOf(classes, d, k);
    c = clock();
    const model = fitClassical(image, sparse, { precomputed: features, forest: forestOpts });
    const fitTime = since(c);
    c = clock();
    const plane = model.predictProba({ axis: 'z', index: d.z >> 1 });
    const planeTime = since(c);
    c = clock();
    const p = model.predictProba();
    const predictTime = since(c);
    const lab = argmaxClasses(p.data, model.numClasses);
    let inter = 0;
    let union = 0;
    let predFg = 0;
    let un = 0;
    for (let i = 0; i < lab.length; i++) {
      if (sparse[i]) continue;
      un++;
      const a = lab[i] === 2;
      const b = classes[i] === 2;
      if (a) predFg++;
      if (a && b) inter++;
      if (a || b) union++;
    }
    const a = flag('no-anchor') ? null : anchor(t, k);
    const row = {
      task: name,
      k,
      iou: inter / union,
      anchor: a?.iou ?? null,
      diff: a?.iou != null ? inter / union - a.iou : null,
      featureSeconds: featureTime[0],
      featureCpuSeconds: featureTime[1],
      fitSeconds: fitTime[0],
      fitCpuSeconds: fitTime[1],
      planeSeconds: planeTime[0],
      planeVoxels: plane.data.length / model.numClasses,
      predictSeconds: predictTime[0],
      predictCpuSeconds: predictTime[1],
      predictedFraction: predFg / un,
      trainingVoxels: model.trainingVoxels,
      nodes: forestStats(model.forest).nodes,
      anchorSeconds: a?.seconds ?? null,
      anchorFeatureSeconds: a?.featureSeconds ?? null,
      anchorFitSeconds: a?.fitSeconds ?? null,
      anchorPredictSeconds: a?.predictSeconds ?? null,
      anchorError: a?.error,
    };
    rows.push(row);
    console.log(
      `${name.padEnd(6)} k=${k}  IoU ${row.iou.toFixed(3)}  sklearn ${row.anchor?.toFixed(3) ?? '-'}  diff ${row.diff == null ? '-' : (row.diff >= 0 ? '+' : '') + row.diff.toFixed(3)}  ` +
        `features ${fmt(featureTime)} s  fit ${fmt(fitTime)} s  predict ${fmt(predictTime)} s  plane ${(planeTime[0] * 1000).toFixed(0)} ms (${row.planeVoxels} voxels)  ` +
        `sklearn ${a?.seconds?.toFixed(1) ?? '-'} s (features ${a?.featureSeconds?.toFixed(1) ?? '-'}, fit ${a?.fitSeconds?.toFixed(1) ?? '-'}, predict ${a?.predictSeconds?.toFixed(1) ?? '-'})` +
        (a?.error ? `  anchor failed: ${a.error}` : ''),
    );
  }
}
console.log(`load after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
if (flag('json')) console.log(JSON.stringify(rows));
