#!/usr/bin/env node
// `npm run bench:suggest`: is "annotate here next" (main/pipeline/suggest.ts) worth having? A simulated
// annotator on the shared tasks (1135, 1136 nuclei; ovule membrane) starts from the ground truth on the middle
// slice of each axis (`sliceform make-sparse --slices 1`) and adds ONE ground-truth slice per round, chosen
//   (a) suggest: the first of the ranked suggestions of the current model's probabilities,
//   (b) even:    axes in turn (xy, xz, yz, xy), on each the next of a nested well-spread order (van der Corput:
//                the middle, then 1/4, 3/4, 1/8 … of the depth; the order of the slice-count curve),
//   (c) random:  a random plane and a random slice not yet painted (seeded).
// After every round the learner is refitted from scratch on all slices so far, and the foreground IoU
// (class 2: nucleus / membrane) is measured over the voxels that NO strategy of that task and seed annotated
// in any round (the same voxels for all three, so a strategy does not gain by removing hard voxels from the
// score). Prints the mean over seeds of the IoU after rounds 0-4 per task and strategy, with machine and load.
//
//   node bench/suggest.mjs [--tasks 1135,1136,ovule] [--seeds 1,2,3] [--rounds 4] [--measure entropy|margin]
//                          [--aggregate mean|sum] [--window F] [--gap F]
//                          [--learner forest|recipe] [--iterations 100] [--dist] [--out F.json]
//
// --learner forest (default): the recipe's forest member alone (main/pipeline/ensemble.ts: RECOMMENDED_FOREST
// on the anchor's multiscale features, at the recipe's working resolution and normalisation, probabilities
// upsampled to full resolution like densify's), refitted per round. About 10-20 min for 3 tasks x 3 seeds on
// the shared 2-core machine. --learner recipe: the whole recipe (U-Net + forest, `--iterations` per round, the
// same budget for every strategy and round; default 100), about 1.5 min per fit: use it on one task.
// Runs the TypeScript sources through tsx (always current); --dist uses dist/ (after npm run build:ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (n) => argv.includes(`--${n}`);
const opt = (n, d) => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : d;
};
if (!flag('dist') && !process.env.SF_SUGGEST_CHILD) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...argv], {
    cwd: repo,
    stdio: 'inherit',
    env: { ...process.env, SF_SUGGEST_CHILD: '1' },
  });
  process.exit(r.status ?? 1);
}
const src = (p) => (flag('dist') ? pathToFileURL(join(repo, 'dist', p + '.js')).href : pathToFileURL(join(repo, p + '.ts')).href);
const { readVolume } = await import(src('main/io/index'));
const { evenlySpaced, spreadOrder, sparseFromSlices, sliceMask } = await import(src('main/evaluation/slices'));
const { suggestSlices, sliceUncertainty, describeSlice, DEFAULT_WINDOW, DEFAULT_GAP } = await import(src('main/pipeline/suggest'));
const { fitEnsembleForest, forestProbabilities, ENSEMBLE_FEATURES } = await import(src('main/pipeline/ensemble'));
const { computeNormalisation, normaliseVolume } = await import(src('main/volume/preprocess'));
const { autoDownsample, downsampleVolume, downsampleLabelVolume, upsampleSlab, isIdentity } = await import(src('main/volume/resample'));
const { decideInto } = await import(src('main/volume/predict'));

const DATA = join(repo, '..', 'shared', 'data');
const TASKS = {
  1135: { image: join(DATA, 'plantseg_nuclei_mini', '1135_mini.h5'), dataset: 'raw', truth: join(DATA, 'plantseg_nuclei_mini', '1135_mini.h5'), truthDataset: 'label' },
  1136: { image: join(DATA, 'plantseg_nuclei_mini', '1136_mini.h5'), dataset: 'raw', truth: join(DATA, 'plantseg_nuclei_mini', '1136_mini.h5'), truthDataset: 'label' },
  ovule: { image: join(DATA, 'plantseg_ovule_membrane', 'sample_ovule.h5'), dataset: 'raw', truth: join(DATA, 'plantseg_ovule_membrane', 'sample_ovule_membrane_truth.tif'), truthDataset: undefined },
};
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const taskNames = list(opt('tasks', '1135,1136,ovule'));
const seeds = list(opt('seeds', '1,2,3')).map(Number);
const rounds = Number(opt('rounds', '4'));
const measure = opt('measure', 'entropy');
const aggregate = opt('aggregate', 'mean');
// defaults: the product's (main/pipeline/suggest.ts)
const windowFrac = Number(opt('window', String(DEFAULT_WINDOW)));
const gapFrac = Number(opt('gap', String(DEFAULT_GAP)));
const gapOpt = { gap: (depth) => Math.max(1, Math.round(gapFrac * depth)) };
const learnerName = opt('learner', 'forest');
const iterations = Number(opt('iterations', '100'));
const outFile = opt('out', join(repo, 'bench', 'out', `suggest-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '')}.json`));
for (const t of taskNames) {
  if (!TASKS[t]) throw new Error(`unknown task ${t} (${Object.keys(TASKS).join(', ')})`);
  if (!existsSync(TASKS[t].image)) throw new Error(`missing ${TASKS[t].image} (the shared data)`);
}
if (!['forest', 'recipe'].includes(learnerName)) throw new Error(`--learner must be forest or recipe, got ${learnerName}`);
if (!['entropy', 'margin'].includes(measure)) throw new Error(`--measure must be entropy or margin, got ${measure}`);

const PLANE_AXIS = { xy: 'z', xz: 'y', yz: 'x' };
const AXIS_PLANE = { z: 'xy', y: 'xz', x: 'yz' };
const K = 2;

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A learner: fit on sparse full-resolution labels, return full-resolution class-planar probabilities. */
async function makeLearner(image) {
  const dims = { x: image.shape.x, y: image.shape.y, z: image.shape.z };
  if (learnerName === 'forest') {
    // the recipe's working resolution and normalisation (main/pipeline/recipe.ts trainRecipe)
    const f = autoDownsample(image.spacing);
    const low = downsampleVolume(image, f);
    const norm = computeNormalisation([low]);
    const img = { data: normaliseVolume(low, norm), shape: [low.shape.z, low.shape.y, low.shape.x], channels: low.shape.c };
    const cache = { owner: low.data, key: 'bench-suggest' };
    return {
      describe: `the recipe's forest member alone (RECOMMENDED_FOREST, multiscale features sigma 1-8, working resolution ${f.join('x')} (z,y,x), argmax)`,
      async fit(sparse, seed) {
        const labels = downsampleLabelVolume({ ...image, data: sparse, dtype: 'uint8', shape: { ...image.shape, c: 1 } }, f);
        const forest = fitEnsembleForest([img], [labels.data], K, seed, ENSEMBLE_FEATURES, [cache]);
        const p = forestProbabilities(img, forest, ENSEMBLE_FEATURES, undefined, cache);
        if (isIdentity(f)) return p;
        return upsampleSlab(p, K, img.shape, [dims.z, dims.y, dims.x], f, 0, dims.z);
      },
    };
  }
  const { loadEngine } = await import(src('main/engine/index'));
  const { trainRecipe, segmentOptionsFor } = await import(src('main/pipeline/recipe'));
  const { recipeFromValues } = await import(src('main/pipeline/options'));
  const { segmentVolume } = await import(src('main/inference/segment'));
  const engine = await loadEngine();
  return {
    describe: `the recipe (U-Net + forest member, CLI densify defaults) with ${iterations} iterations per fit`,
    async fit(sparse, seed) {
      const settings = { ...recipeFromValues({ iterations: String(iterations), seed: String(seed) }, 4), threads: cpus().length };
      const labels = { ...image, data: sparse, dtype: 'uint8', shape: { ...image.shape, c: 1 }, channelNames: ['labels'], metadata: {} };
      const t = await trainRecipe(engine, [{ image, labels }], settings, { numClasses: K });
      try {
        const N = dims.x * dims.y * dims.z;
        const out = new Float32Array(K * N);
        const plane = dims.x * dims.y;
        await segmentVolume(t.model, image, {
          ...segmentOptionsFor(t),
          probabilities: true,
          collect: false,
          onSlab: (s) => {
            const n = s.depth * plane;
            for (let k = 0; k < K; k++) out.set(s.probabilities.subarray(k * n, (k + 1) * n), k * N + s.z0 * plane);
          },
        });
        return out;
      } finally {
        t.model.dispose();
      }
    },
  };
}

function nextEven(dims, painted, round) {
  const axis = ['z', 'y', 'x'][(round - 1) % 3];
  const plane = AXIS_PLANE[axis];
  const n = dims[axis];
  for (const index of spreadOrder(n)) if (!painted[plane].includes(index)) return { plane, index };
  throw new Error(`no slice left on ${plane}`);
}

function nextRandom(dims, painted, rng) {
  for (;;) {
    const plane = ['xy', 'xz', 'yz'][Math.floor(rng() * 3)];
    const n = dims[PLANE_AXIS[plane]];
    const index = Math.floor(rng() * n);
    if (!painted[plane].includes(index)) return { plane, index };
  }
}

const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const t0 = Date.now();
console.log(`bench:suggest ${new Date().toISOString()} on ${machine}; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const results = [];
const loads = [];
let learnerText = '';
for (const name of taskNames) {
  const T = TASKS[name];
  const image = await readVolume(T.image, { dataset: T.dataset });
  const truth = await readVolume(T.truth, { dataset: T.truthDataset });
  const dims = { x: image.shape.x, y: image.shape.y, z: image.shape.z };
  const N = dims.x * dims.y * dims.z;
  const classes = Uint8Array.from(truth.data.subarray(0, N), (v) => (v > 0 ? 2 : 1));
  const learner = await makeLearner(image);
  learnerText = learner.describe;
  const start = ['z', 'y', 'x'].map((axis) => ({ plane: AXIS_PLANE[axis], index: evenlySpaced(dims[axis], 1)[0] }));
  for (const seed of seeds) {
    const runs = {};
    const ts = Date.now();
    const p0 = await learner.fit(sparseFromSlices(classes, dims, start.map((s) => ({ axis: PLANE_AXIS[s.plane], index: s.index }))), seed);
    const fitSeconds = [(Date.now() - ts) / 1000];
    for (const strategy of ['suggest', 'even', 'random']) {
      const rng = mulberry32(seed * 7919 + 17);
      const chosen = [...start];
      const preds = [p0];
      const picks = [];
      let probs = p0;
      for (let r = 1; r <= rounds; r++) {
        const painted = { xy: [], xz: [], yz: [] };
        for (const s of chosen) painted[s.plane].push(s.index);
        let pick;
        if (strategy === 'suggest') pick = suggestSlices(sliceUncertainty(probs, dims, K, measure), painted, { aggregate, window: windowFrac, dims, ...gapOpt }).ranked[0];
        else if (strategy === 'even') pick = nextEven(dims, painted, r);
        else pick = nextRandom(dims, painted, rng);
        chosen.push({ plane: pick.plane, index: pick.index });
        picks.push(describeSlice(pick));
        const tf = Date.now();
        loads.push(loadavg()[0]);
        probs = await learner.fit(sparseFromSlices(classes, dims, chosen.map((s) => ({ axis: PLANE_AXIS[s.plane], index: s.index }))), seed);
        fitSeconds.push((Date.now() - tf) / 1000);
        preds.push(probs);
      }
      runs[strategy] = { chosen, picks, preds };
    }
    // the score's voxels: none of any strategy's slices (same for all three)
    const all = Object.values(runs).flatMap((r) => r.chosen.map((s) => ({ axis: PLANE_AXIS[s.plane], index: s.index })));
    const off = sliceMask(dims, all);
    const lab = new Uint8Array(N);
    for (const [strategy, r] of Object.entries(runs)) {
      const ious = r.preds.map((p) => {
        decideInto(p, N, K, undefined, lab);
        let inter = 0;
        let union = 0;
        for (let i = 0; i < N; i++) {
          if (off[i]) continue;
          const a = lab[i] === 2;
          const b = classes[i] === 2;
          if (a && b) inter++;
          if (a || b) union++;
        }
        return union ? inter / union : NaN;
      });
      results.push({ task: name, seed, strategy, ious, picks: r.picks });
      console.log(`${name} seed ${seed} ${strategy.padEnd(7)} IoU ${ious.map((x) => x.toFixed(3)).join(' ')}  picks ${r.picks.join(', ')}`);
    }
    const mean = fitSeconds.reduce((a, b) => a + b, 0) / fitSeconds.length;
    console.log(`  (${fitSeconds.length} fits, ${mean.toFixed(1)} s each, load ${loadavg()[0].toFixed(1)})`);
  }
}
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(3) : '—');
const meanOf = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(`\nlearner: ${learnerText}; uncertainty: ${measure}, ${aggregate} per slice, neighbourhood window ±${windowFrac} of the depth (tent), near-duplicate gap ${gapFrac} of the depth; seeds ${seeds.join(', ')}; IoU of class 2 over the voxels no strategy annotated, mean over seeds`);
console.log(`\n| task | strategy | start (3 middle slices) | ${Array.from({ length: rounds }, (_, i) => `round ${i + 1}`).join(' | ')} | mean gain over rounds 1-${rounds} vs even |`);
console.log(`| --- | --- | --- | ${Array.from({ length: rounds }, () => '---').join(' | ')} | --- |`);
const summary = [];
for (const name of taskNames) {
  const evenRows = results.filter((r) => r.task === name && r.strategy === 'even');
  for (const strategy of ['suggest', 'even', 'random']) {
    const rs = results.filter((r) => r.task === name && r.strategy === strategy);
    const m = Array.from({ length: rounds + 1 }, (_, i) => meanOf(rs.map((r) => r.ious[i])));
    const gain = meanOf(rs.flatMap((r, j) => r.ious.slice(1).map((v, i) => v - evenRows[j].ious[i + 1])));
    summary.push({ task: name, strategy, mean: m, gainVsEven: gain });
    console.log(`| ${name} | ${strategy} | ${m.map(fmt).join(' | ')} | ${strategy === 'even' ? '—' : `${gain >= 0 ? '+' : ''}${gain.toFixed(3)}`} |`);
  }
}
const minutes = (Date.now() - t0) / 60000;
console.log(`\n${minutes.toFixed(1)} min; load (1 min) during the fits: mean ${meanOf(loads).toFixed(1)}, max ${Math.max(...loads).toFixed(1)}`);
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), machine, learner: learnerText, measure, aggregate, window: windowFrac, gap: gapFrac, seeds, rounds, minutes, results, summary }, null, 2));
console.log(`results: ${outFile}`);
