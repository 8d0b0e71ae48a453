/**
 * The protocols' bookkeeping with a fake learner (a learned intensity threshold) on small synthetic volumes:
 * what is trained on, what is scored, and how results are combined. The real networks are exercised by
 * test/integration/batch-crossval.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { Volume } from '../../main/common/volume.js';
import {
  crossValidate,
  leaveOneVolumeOut,
  sliceCurve,
  trainingLabels,
  type EvalVolume,
  type Learner,
  type TrainEntry,
} from '../../main/evaluation/protocols.js';
import { sliceMask, slicesFromTruth, type Dims } from '../../main/evaluation/slices.js';

const DIMS: Dims = { x: 12, y: 10, z: 8 };

/** A ball of class 2 in class 1; image = 10 (background) or 50 (+ offset) (foreground). */
function toyVolume(name: string, index: number, offset = 0): EvalVolume {
  const n = DIMS.x * DIMS.y * DIMS.z;
  const labels = new Uint8Array(n);
  const data = new Float32Array(n);
  let i = 0;
  for (let z = 0; z < DIMS.z; z++)
    for (let y = 0; y < DIMS.y; y++)
      for (let x = 0; x < DIMS.x; x++, i++) {
        const fg = (x - 6) ** 2 + (y - 5) ** 2 + (z - 4) ** 2 < 10;
        labels[i] = fg ? 2 : 1;
        data[i] = fg ? 50 + offset : 10;
      }
  const image: Volume = {
    data,
    dtype: 'float32',
    shape: { ...DIMS, c: 1, t: 1 },
    spacing: { x: 1, y: 1, z: 1, unit: 'µm' },
    channelNames: ['c0'],
    format: 'memory',
    source: name,
    timepoint: 0,
    metadata: {},
  };
  return { name, image, dims: DIMS, labels, slices: slicesFromTruth(DIMS, 3, index), dense: true };
}

/** Threshold halfway between the mean annotated intensities of the two classes; records what it saw. */
function thresholdLearner(seen: TrainEntry[][], bias = 0): Learner {
  return {
    async fit(train) {
      seen.push(train);
      let s1 = 0, n1 = 0, s2 = 0, n2 = 0;
      for (const { volume, labels } of train)
        for (let i = 0; i < labels.length; i++) {
          const v = (volume.image.data as Float32Array)[i]!;
          if (labels[i] === 1) {
            s1 += v;
            n1++;
          } else if (labels[i] === 2) {
            s2 += v;
            n2++;
          }
        }
      const thr = (s1 / n1 + s2 / n2) / 2 + bias;
      return {
        async predict(v, planes) {
          const out = new Uint8Array(v.labels.length);
          const m = planes === 'all' ? null : sliceMask(v.dims, planes);
          const d = v.image.data as Float32Array;
          for (let i = 0; i < out.length; i++) if (!m || m[i]) out[i] = d[i]! > thr ? 2 : 1;
          return out;
        },
        dispose() {},
        iterations: 7,
      };
    },
  };
}

describe('evaluation protocols', () => {
  it('removes held-out slices from training labels, including where they cross training slices', () => {
    const v = toyVolume('a', 0);
    const lab = trainingLabels(v, [{ axis: 'z', index: 4 }], [{ axis: 'x', index: 6 }]);
    const z4 = sliceMask(DIMS, [{ axis: 'z', index: 4 }]);
    const x6 = sliceMask(DIMS, [{ axis: 'x', index: 6 }]);
    let n = 0;
    for (let i = 0; i < lab.length; i++) {
      if (x6[i]) expect(lab[i]).toBe(0);
      if (lab[i]) {
        n++;
        expect(z4[i]).toBe(1);
      }
    }
    expect(n).toBe(DIMS.x * DIMS.y - DIMS.y);
  });

  it('cross-validates: each fold trains without its slices, scores exactly them, pools all folds', async () => {
    const vols = [toyVolume('a', 0), toyVolume('b', 1)];
    const seen: TrainEntry[][] = [];
    const rows: string[] = [];
    const r = await crossValidate(vols, 3, thresholdLearner(seen), { onRun: (x) => rows.push(x.label) });
    expect(rows).toEqual(['fold 1/3', 'fold 2/3', 'fold 3/3']);
    expect(r.runs.map((x) => x.iterations)).toEqual([7, 7, 7]);
    expect(r.runs.map((x) => [x.trainSlices, x.testSlices])).toEqual([
      [12, 6],
      [12, 6],
      [12, 6],
    ]);
    expect(r.meanForegroundIoU).toBe(1);
    expect(r.pooled!.foregroundIoU).toBe(1);
    // each fold scores the union of its slices: one per axis and volume = 120 + 96 + 80 voxels, minus the
    // three lines where they cross (12 + 10 + 8), plus their common voxel counted out once too often
    expect(r.runs.map((x) => x.score.voxels)).toEqual([2 * 267, 2 * 267, 2 * 267]);
    expect(r.pooled!.voxels).toBe(6 * 267);
    // no fold saw its held-out voxels
    for (let f = 0; f < 3; f++) {
      for (const { volume, labels } of seen[f]!) {
        const vi = vols.indexOf(volume);
        const test = volume.slices.filter((_, j) => (vi * 9 + j) % 3 === f);
        const m = sliceMask(DIMS, test);
        for (let i = 0; i < labels.length; i++) if (m[i]) expect(labels[i]).toBe(0);
      }
    }
  });

  it('reports imperfect predictions as such (a biased threshold misses the dim foreground)', async () => {
    const vols = [toyVolume('a', 0), toyVolume('b', 1, -30)];
    const r = await crossValidate(vols, 3, thresholdLearner([], 0));
    // volume b's foreground (20) sits below the learned threshold (~27.5): fg IoU on b is 0
    expect(r.pooled!.foregroundIoU).toBeGreaterThan(0.3);
    expect(r.pooled!.foregroundIoU).toBeLessThan(0.7);
  });

  it('slice curve: nested training sets, the same never-trained test slices at every count', async () => {
    const vols = [toyVolume('a', 0)];
    const seen: TrainEntry[][] = [];
    const r = await sliceCurve(vols, [1, 2], thresholdLearner(seen));
    expect(r.runs.map((x) => x.trainSlices)).toEqual([3, 6]);
    expect(r.runs[0]!.testSlices).toBe(r.runs[1]!.testSlices);
    expect(r.runs[0]!.score.voxels).toBe(r.runs[1]!.score.voxels);
    const annotated = (l: Uint8Array) => l.reduce((s, x) => s + (x ? 1 : 0), 0);
    expect(annotated(seen[1]![0]!.labels)).toBeGreaterThan(annotated(seen[0]![0]!.labels));
    expect(r.meanForegroundIoU).toBe(1);
  });

  it('leave-one-volume-out trains only on the other volumes and scores the left-out one whole', async () => {
    const vols = [toyVolume('a', 0), toyVolume('b', 1)];
    const seen: TrainEntry[][] = [];
    const r = await leaveOneVolumeOut(vols, thresholdLearner(seen));
    expect(seen.map((s) => s.map((e) => e.volume.name))).toEqual([['b'], ['a']]);
    expect(r.runs.map((x) => x.label)).toEqual(['test a', 'test b']);
    expect(r.runs[0]!.wholeVolume!.voxels).toBe(DIMS.x * DIMS.y * DIMS.z);
    expect(r.runs[0]!.wholeVolume!.foregroundIoU).toBe(1);
    await expect(leaveOneVolumeOut([vols[0]!], thresholdLearner([]))).rejects.toThrow(/at least two/);
  });
});
