import { describe, expect, it } from 'vitest';
import {
  classesFromTruth,
  detectAnnotatedSlices,
  evenlySpaced,
  powersOfTwoUpTo,
  sliceCurveSplit,
  sliceKey,
  sliceMask,
  slicesFromTruth,
  sparseFromSlices,
  splitFolds,
  spreadOrder,
  type AnnotatedSlice,
} from '../../main/evaluation/slices.js';

const D = { x: 4, y: 3, z: 2 };

describe('slice geometry', () => {
  it('spaces k slices evenly, k = 1 is the middle', () => {
    expect(evenlySpaced(100, 1)).toEqual([50]);
    expect(evenlySpaced(100, 3)).toEqual([16, 50, 83]);
    expect(evenlySpaced(5, 9)).toEqual([0, 1, 2, 3, 4]);
    expect(evenlySpaced(10, 0)).toEqual([]);
  });

  it('masks xy, xz and yz planes at the right voxels (x fastest)', () => {
    // z = 1 plane: indices 12..23
    expect([...sliceMask(D, [{ axis: 'z', index: 1 }])].map((v, i) => (v ? i : -1)).filter((i) => i >= 0)).toEqual([
      12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
    ]);
    // y = 2 plane: (z*3+2)*4 + x
    expect([...sliceMask(D, [{ axis: 'y', index: 2 }])].map((v, i) => (v ? i : -1)).filter((i) => i >= 0)).toEqual([8, 9, 10, 11, 20, 21, 22, 23]);
    // x = 3 plane: (z*3+y)*4 + 3
    expect([...sliceMask(D, [{ axis: 'x', index: 3 }])].map((v, i) => (v ? i : -1)).filter((i) => i >= 0)).toEqual([3, 7, 11, 15, 19, 23]);
  });

  it('derives classes from instance ground truth and copies them onto chosen slices only', () => {
    const truth = new Uint16Array(24);
    truth[5] = 7;
    truth[23] = 300;
    const cls = classesFromTruth(truth, 'instances');
    expect(cls[5]).toBe(2);
    expect(cls[23]).toBe(2);
    expect(cls[0]).toBe(1);
    expect(() => classesFromTruth(truth, 'classes')).toThrow(/300/);
    const sparse = sparseFromSlices(cls, D, [{ axis: 'x', index: 3 }]);
    expect(sparse[23]).toBe(2);
    expect(sparse[3]).toBe(1);
    expect(sparse[5]).toBe(0);
    expect(sparse.reduce((s, v) => s + (v > 0 ? 1 : 0), 0)).toBe(6);
  });

  it('finds painted planes in a sparse label volume and ignores the lines where other planes cross', () => {
    const d = { x: 20, y: 20, z: 20 };
    const dense = new Uint8Array(8000).fill(1);
    const slices = [...slicesFromTruth(d, 1), { volume: 0, axis: 'z' as const, index: 3 }];
    const sparse = sparseFromSlices(dense, d, slices);
    const found = detectAnnotatedSlices(sparse, d, 0);
    expect(found.map(sliceKey).sort()).toEqual(slices.map(sliceKey).sort());
    // an instance labelling (every plane alike, ~25 % labelled) has no slices that stand out
    const inst = new Uint8Array(8000);
    for (let j = 0; j < inst.length; j++) inst[j] = Math.imul(j, 2654435761) >>> 30 === 0 ? 1 + (j % 7) : 0;
    expect(detectAnnotatedSlices(inst, d, 0)).toEqual([]);
  });
});

describe('folds and the slice curve', () => {
  it('splits slices round-robin so each fold gets every volume and axis', () => {
    const slices: AnnotatedSlice[] = [
      ...slicesFromTruth({ x: 100, y: 100, z: 100 }, 3, 0),
      ...slicesFromTruth({ x: 100, y: 100, z: 100 }, 3, 1),
    ];
    const folds = splitFolds(slices, 3);
    expect(folds.map((f) => f.length)).toEqual([6, 6, 6]);
    for (const f of folds) {
      for (const v of [0, 1]) for (const a of ['z', 'y', 'x']) expect(f.filter((s) => s.volume === v && s.axis === a)).toHaveLength(1);
    }
    expect(new Set(folds.flat().map(sliceKey)).size).toBe(18);
    expect(() => splitFolds(slices.slice(0, 2), 3)).toThrow(/cannot be split/);
    expect(() => splitFolds(slices, 1)).toThrow(/folds/);
  });

  it('orders slices nested and spread, middle first', () => {
    // van der Corput: 1/2, 1/4, 3/4, 1/8, 5/8, 3/8, 7/8, 1/16 (x8, floored)
    expect(spreadOrder(8)).toEqual([4, 2, 6, 1, 5, 3, 7, 0]);
    const o = spreadOrder(13);
    expect(o[0]).toBe(6);
    expect([...o].sort((a, b) => a - b)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    expect(powersOfTwoUpTo(8)).toEqual([1, 2, 4, 8]);
    expect(powersOfTwoUpTo(6)).toEqual([1, 2, 4]);
  });

  it('scores every curve point on the same slices, never trained on at any count', () => {
    const pool: AnnotatedSlice[] = [];
    for (const axis of ['z', 'y', 'x'] as const) for (const index of evenlySpaced(100, 16)) pool.push({ volume: 0, axis, index });
    const { test, train } = sliceCurveSplit(pool, [1, 2, 4, 8]);
    expect(train.get(1)!.length).toBe(3);
    expect(train.get(8)!.length).toBe(24);
    expect(test.length).toBe(24);
    // nested
    const k4 = new Set(train.get(4)!.map(sliceKey));
    for (const s of train.get(2)!) expect(k4.has(sliceKey(s))).toBe(true);
    const testKeys = new Set(test.map(sliceKey));
    for (const list of train.values()) for (const s of list) expect(testKeys.has(sliceKey(s))).toBe(false);
    // the one-slice point is the middle pool slice of each axis
    expect(train.get(1)!.map((s) => s.index)).toEqual([53, 53, 53]);
  });
});
