/**
 * The classical learner's forest (main/classical/forest.ts) and its entry points (main/classical/index.ts):
 * against scikit-learn's decision tree on real features (exact-split case), against the random-forest anchor of
 * issue 18 on the three shared tasks, determinism, region prediction and input errors.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import { SliceformError } from '../../main/common/errors.js';
import { evenlySpaced } from '../../main/evaluation/slices.js';
import { argmaxClasses, densifyClassical, fitClassical, forestStats, multiscaleFeatures, predictForestInto, trainForest, volumeFeatures } from '../../main/classical/index.js';
import { binEdges } from '../../main/classical/forest.js';

const NUCLEI = (n: string) => dataFile('plantseg_nuclei_mini', `${n}_mini.h5`);
const OVULE = dataFile('plantseg_ovule_membrane', 'sample_ovule.h5');
const OVULE_TRUTH = dataFile('plantseg_ovule_membrane', 'sample_ovule_membrane_truth.tif');
const dir = mkdtempSync(join(tmpdir(), 'sliceform-forest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** classes from a truth: instances (label > 0 → 2, else 1) or membrane (255 → 2, 0 → 1) */
function classesOf(truth: Volume, mode: 'instances' | 'membrane'): Uint8Array {
  const out = new Uint8Array(truth.data.length);
  for (let i = 0; i < out.length; i++) out[i] = mode === 'membrane' ? (truth.data[i] === 255 ? 2 : 1) : truth.data[i]! > 0 ? 2 : 1;
  return out;
}

/** the truth's classes on k evenly spaced slices per axis, as `sliceform make-sparse --slices k` */
function sparseOf(classes: Uint8Array, v: Volume, k: number): Uint8Array {
  const { x: X, y: Y, z: Z } = v.shape;
  const zs = new Set(evenlySpaced(Z, k));
  const ys = new Set(evenlySpaced(Y, k));
  const xs = new Set(evenlySpaced(X, k));
  const s = new Uint8Array(classes.length);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const i = (z * Y + y) * X + x;
        if (zs.has(z) || ys.has(y) || xs.has(x)) s[i] = classes[i]!;
      }
  return s;
}

function unannotatedIoU(pred: Uint8Array, classes: Uint8Array, sparse: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < pred.length; i++) {
    if (sparse[i]) continue;
    const a = pred[i] === 2;
    const b = classes[i] === 2;
    if (a && b) inter++;
    if (a || b) union++;
  }
  return inter / union;
}

function crop(v: Volume, z0: number, y0: number, x0: number, n: number): Volume {
  const X = v.shape.x;
  const Y = v.shape.y;
  const data = new Float32Array(n * n * n);
  for (let z = 0; z < n; z++) for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) data[(z * n + y) * n + x] = v.data[((z0 + z) * Y + y0 + y) * X + x0 + x]!;
  return { ...v, data, dtype: 'float32', shape: { x: n, y: n, z: n, c: 1, t: 1 } };
}

describe('forest building blocks', () => {
  it('cuts quantile bins at midpoints of distinct values', () => {
    expect(Array.from(binEdges(Float32Array.of(3, 1, 2, 2, 1), 256))).toEqual([1.5, 2.5]);
    const many = Float32Array.from({ length: 1000 }, (_, i) => i);
    const e = binEdges(many, 4);
    expect(Array.from(e)).toEqual([249.5, 499.5, 749.5]);
    expect(binEdges(Float32Array.of(5, 5, 5), 256).length).toBe(0);
  });

  it('grows the same tree as scikit-learn when every value has its own bin (real 1135 features)', async () => {
    // ≤ 256 distinct values per feature → histogram splits are the exact sorted-value splits; all features,
    // no bootstrap, depth 4: the greedy Gini tree is unique up to ties, so predictions must agree
    const v = await readVolume(NUCLEI('1135'), { dataset: 'raw' });
    const t = await readVolume(NUCLEI('1135'), { dataset: 'label' });
    const c = crop(v, 40, 30, 30, 24);
    const tc = crop(t, 40, 30, 30, 24);
    const feats = multiscaleFeatures(c.data, { x: 24, y: 24, z: 24 }, 1, { sigmaMax: 2 });
    const N = 24 ** 3;
    const n = 250; // every 55th voxel
    const F = feats.count;
    const values = new Float32Array(n * F);
    const labels = new Uint8Array(n);
    for (let s = 0; s < n; s++) {
      const i = s * 55;
      labels[s] = tc.data[i]! > 0 ? 2 : 1;
      for (let f = 0; f < F; f++) values[f * n + s] = feats.data[f * N + i]!;
    }
    expect(new Set(labels).size).toBe(2);
    const forest = trainForest({ values, n, numFeatures: F, labels, numClasses: 2 }, { trees: 1, maxDepth: 4, maxFeatures: 'all', bootstrap: false, maxSamples: n });
    const ours = new Float32Array(2 * N);
    predictForestInto(forest, feats.data, N, 0, N, ours, N, 0);
    writeFileSync(join(dir, 'x.f32'), Buffer.from(values.buffer));
    writeFileSync(join(dir, 'y.u8'), labels);
    writeFileSync(join(dir, 'all.f32'), Buffer.from(feats.data.buffer));
    const script = `
import sys, numpy as np
from sklearn.tree import DecisionTreeClassifier
d = sys.argv[1]; n = ${n}; F = ${F}; N = ${N}
X = np.fromfile(d + '/x.f32', dtype='<f4').reshape(F, n).T
y = np.fromfile(d + '/y.u8', dtype=np.uint8)
A = np.fromfile(d + '/all.f32', dtype='<f4').reshape(F, N).T
clf = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
clf.predict_proba(A)[:, 1].astype('<f4').tofile(d + '/p.f32')
print(clf.tree_.node_count)
`;
    const nodes = Number(execFileSync(DEBIAN_PYTHON, ['-c', script, dir], { encoding: 'utf8', timeout: 60_000 }).trim());
    const b = readFileSync(join(dir, 'p.f32'));
    const ref = new Float32Array(b.buffer, b.byteOffset, N);
    expect(forestStats(forest).nodes).toBe(nodes);
    // on the training voxels the two trees must agree exactly; elsewhere a tie between two features that cut
    // the 250 samples the same way may be broken differently (sklearn's feature order is its own RNG's)
    let maxDiff = 0;
    for (let s = 0; s < n; s++) maxDiff = Math.max(maxDiff, Math.abs(ours[N + s * 55]! - ref[s * 55]!));
    expect(maxDiff).toBeLessThan(1e-6);
    let agree = 0;
    for (let i = 0; i < N; i++) if (Math.abs(ours[N + i]! - ref[i]!) < 1e-6) agree++;
    expect(agree / N).toBeGreaterThan(0.95);
  });

  it('is deterministic for a seed and differs between seeds; regions equal the whole prediction', async () => {
    const v = crop(await readVolume(NUCLEI('1136'), { dataset: 'raw' }), 20, 20, 20, 40);
    const truth = crop(await readVolume(NUCLEI('1136'), { dataset: 'label' }), 20, 20, 20, 40);
    const sparse = sparseOf(classesOf(truth, 'instances'), v, 1);
    const features = volumeFeatures(v);
    const a = fitClassical(v, sparse, { precomputed: features, forest: { seed: 7, trees: 20 } });
    const b = fitClassical(v, sparse, { precomputed: features, forest: { seed: 7, trees: 20 } });
    const c = fitClassical(v, sparse, { precomputed: features, forest: { seed: 8, trees: 20 } });
    const pa = a.predictProba();
    expect(pa.dims).toEqual({ x: 40, y: 40, z: 40 });
    expect(pa.data.length).toBe(2 * 40 ** 3);
    expect(Array.from(b.predictProba().data)).toEqual(Array.from(pa.data));
    expect(Array.from(c.predictProba().data)).not.toEqual(Array.from(pa.data));
    for (let i = 0; i < 40 ** 3; i += 101) expect(pa.data[i]! + pa.data[40 ** 3 + i]!).toBeCloseTo(1, 5);
    const M = 40 ** 3;
    const at = (x: number, y: number, z: number, k: number) => pa.data[k * M + (z * 40 + y) * 40 + x]!;
    const pz = a.predictProba({ axis: 'z', index: 13 });
    const py = a.predictProba({ axis: 'y', index: 5 });
    const px = a.predictProba({ axis: 'x', index: 39 });
    const box = a.predictProba({ z: [3, 9], y: [10, 30], x: [0, 7] });
    expect(pz.dims).toEqual({ x: 40, y: 40, z: 1 });
    expect(px.dims).toEqual({ x: 1, y: 40, z: 40 });
    for (let k = 0; k < 2; k++)
      for (let p = 0; p < 40; p++)
        for (let q = 0; q < 40; q++) {
          expect(pz.data[k * 1600 + p * 40 + q]).toBe(at(q, p, 13, k));
          expect(py.data[k * 1600 + p * 40 + q]).toBe(at(q, 5, p, k));
          expect(px.data[k * 1600 + p * 40 + q]).toBe(at(39, q, p, k));
        }
    expect(box.dims).toEqual({ x: 7, y: 20, z: 6 });
    expect(box.data[1 * 840 + (2 * 20 + 3) * 7 + 4]).toBe(at(4, 13, 5, 1));
    expect(() => a.predictProba({ axis: 'z', index: 40 })).toThrow(/plane z = 40 is outside 0..39/);
    expect(() => a.predictProba({ z: [0, 41], y: [0, 1], x: [0, 1] })).toThrow(/region z \[0, 41\)/);
  });

  it('class balance weights each class by n / (K · n_c), as sklearn class_weight="balanced"', async () => {
    // a root-only tree (depth 0, no bootstrap) predicts the weighted class fractions of the painted voxels:
    // the painted fractions without balance, 1 / K each with it
    const v = crop(await readVolume(NUCLEI('1136'), { dataset: 'raw' }), 20, 20, 20, 40);
    const truth = crop(await readVolume(NUCLEI('1136'), { dataset: 'label' }), 20, 20, 20, 40);
    const sparse = sparseOf(classesOf(truth, 'instances'), v, 1);
    const features = volumeFeatures(v);
    const root = { trees: 1, maxDepth: 0, bootstrap: false, maxSamples: 1 };
    const plain = fitClassical(v, sparse, { precomputed: features, forest: root }).predictProba({ axis: 'z', index: 0 });
    const bal = fitClassical(v, sparse, { precomputed: features, forest: { ...root, classBalanced: true } }).predictProba({ axis: 'z', index: 0 });
    let painted = 0;
    let fg = 0;
    for (const l of sparse) {
      if (l) painted++;
      if (l === 2) fg++;
    }
    expect(fg / painted).toBeGreaterThan(0.02);
    expect(fg / painted).toBeLessThan(0.1);
    expect(plain.data[1600 + 77]).toBeCloseTo(fg / painted, 6);
    expect(bal.data[77]).toBeCloseTo(0.5, 6);
    expect(bal.data[1600 + 77]).toBeCloseTo(0.5, 6);
    // a real forest: balance changes the trees (on this crop it lowers the mean foreground probability, as
    // sklearn's does: 0.055 → 0.050 for both over three seeds), and fractions still sum to 1
    const a = densifyClassical(v, sparse, { precomputed: features, forest: { trees: 30 } });
    const b = densifyClassical(v, sparse, { precomputed: features, forest: { trees: 30, classBalanced: true } });
    expect(Array.from(a.probabilities)).not.toEqual(Array.from(b.probabilities));
    expect(a.predictedFractions[1]! + a.predictedFractions[2]!).toBeCloseTo(1, 10);
  });

  it('rejects labels of another shape, empty labels and labels above the class count', async () => {
    const v = crop(await readVolume(NUCLEI('1135'), { dataset: 'raw' }), 0, 0, 0, 10);
    expect(() => fitClassical(v, new Uint8Array(999))).toThrow(SliceformError);
    expect(() => fitClassical(v, new Uint8Array(999))).toThrow(/labels have 999 voxels, the image 1000/);
    expect(() => fitClassical(v, new Uint8Array(1000))).toThrow(/no annotated voxels/);
    const l = new Uint8Array(1000);
    l[3] = 3;
    l[4] = 1;
    expect(() => fitClassical(v, l, { numClasses: 2 })).toThrow(/label 3 exceeds the 2 classes/);
    try {
      fitClassical(v, new Uint8Array(1000));
    } catch (e) {
      expect((e as SliceformError).kind).toBe('bad-input');
    }
  });
});

// Anchors: scikit-learn 1.2.1 RandomForestClassifier(100 trees, depth 10, max_samples 0.05, random_state 0) on
// scikit-image 0.19.3 multiscale_basic_features (sigma 1-8), k = 1 slice per axis, measured with
// `python3 bench/rf_anchor.py` (2026-12-01): 1135 0.7699, 1136 0.6941, ovule membrane 0.6811. Ours with the
// same settings (seed 0): 0.758, 0.687, 0.682 (bench/classical.mjs). Floors: anchor − 0.02 (the brief's bar).
describe('forest vs the random-forest anchor (k = 1, default settings)', () => {
  const cases = [
    { name: '1135', image: NUCLEI('1135'), truth: NUCLEI('1135'), truthDataset: 'label', mode: 'instances' as const, anchor: 0.7699 },
    { name: '1136', image: NUCLEI('1136'), truth: NUCLEI('1136'), truthDataset: 'label', mode: 'instances' as const, anchor: 0.6941 },
    { name: 'ovule membrane', image: OVULE, truth: OVULE_TRUTH, truthDataset: undefined, mode: 'membrane' as const, anchor: 0.6811 },
  ];
  for (const c of cases) {
    describe(c.name, () => {
      let iou = 0;
      let fractions: number[] = [];
      beforeAll(async () => {
        const v = await readVolume(c.image, { dataset: 'raw' });
        const truth = await readVolume(c.truth, { dataset: c.truthDataset });
        expect(truth.shape.x * truth.shape.y * truth.shape.z).toBe(v.data.length);
        const classes = classesOf(truth, c.mode);
        const sparse = sparseOf(classes, v, 1);
        const r = densifyClassical(v, sparse);
        expect(r.probabilities.length).toBe(2 * v.data.length);
        expect(Array.from(argmaxClasses(r.probabilities, 2).subarray(0, 5000))).toEqual(Array.from(r.labels.subarray(0, 5000)));
        iou = unannotatedIoU(r.labels, classes, sparse);
        fractions = r.predictedFractions;
      }, 300_000);
      it(`nucleus/membrane IoU over the unannotated voxels is within 0.02 of sklearn's ${c.anchor}`, () => {
        expect(iou).toBeGreaterThan(c.anchor - 0.02);
        expect(iou).toBeLessThan(c.anchor + 0.05);
        expect(fractions[2]!).toBeGreaterThan(0.1);
        expect(fractions[2]!).toBeLessThan(0.35);
      });
    });
  }
});
