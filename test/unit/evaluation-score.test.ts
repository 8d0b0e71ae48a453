import { describe, expect, it } from 'vitest';
import { Confusion, scoreLabels } from '../../main/evaluation/score.js';

describe('IoU / Dice scoring', () => {
  it('gives 1.0 for a prediction equal to the truth', () => {
    const t = Uint8Array.from([1, 1, 2, 2, 2, 3, 1, 2]);
    const s = scoreLabels(t, t);
    expect(s.classes.map((c) => c.iou)).toEqual([1, 1, 1]);
    expect(s.meanIoU).toBe(1);
    expect(s.meanDice).toBe(1);
    expect(s.accuracy).toBe(1);
    expect(s.voxels).toBe(8);
  });

  it('matches hand-computed values on a toy volume', () => {
    // truth:  1 1 1 2 2 2 2 0 (last voxel unannotated, never scored)
    // pred:   1 2 1 2 2 1 2 2
    // class 1: TP 2 (v0, v2), FP 1 (v5), FN 1 (v1) -> IoU 2/4 = 0.5, Dice 4/6
    // class 2: TP 3 (v3, v4, v6), FP 1 (v1), FN 1 (v5) -> IoU 3/5 = 0.6, Dice 6/8
    const truth = Uint8Array.from([1, 1, 1, 2, 2, 2, 2, 0]);
    const pred = Uint8Array.from([1, 2, 1, 2, 2, 1, 2, 2]);
    const s = scoreLabels(pred, truth);
    expect(s.voxels).toBe(7);
    expect(s.classes[0]).toMatchObject({ tp: 2, fp: 1, fn: 1, iou: 0.5 });
    expect(s.classes[0]!.dice).toBeCloseTo(4 / 6, 12);
    expect(s.classes[1]).toMatchObject({ tp: 3, fp: 1, fn: 1, iou: 0.6, dice: 0.75 });
    expect(s.meanIoU).toBeCloseTo(0.55, 12);
    expect(s.foregroundIoU).toBeCloseTo(0.6, 12);
    expect(s.accuracy).toBeCloseTo(5 / 7, 12);
  });

  it('scores only masked voxels and counts unlabelled predictions as misses', () => {
    const truth = Uint8Array.from([1, 2, 2, 2]);
    const pred = Uint8Array.from([2, 0, 2, 1]);
    const mask = Uint8Array.from([0, 1, 1, 0]);
    const s = scoreLabels(pred, truth, { mask, numClasses: 2 });
    expect(s.voxels).toBe(2);
    expect(s.classes[0]!.iou).toBeNull();
    expect(s.classes[1]).toMatchObject({ tp: 1, fp: 0, fn: 1, iou: 0.5 });
    expect(s.meanIoU).toBe(0.5);
  });

  it('accumulates folds like one big volume and rejects mismatched sizes', () => {
    const a = new Confusion(2).add(Uint8Array.from([1, 2]), Uint8Array.from([1, 1]));
    const b = new Confusion(2).add(Uint8Array.from([2, 2]), Uint8Array.from([2, 2]));
    const all = scoreLabels(Uint8Array.from([1, 2, 2, 2]), Uint8Array.from([1, 1, 2, 2]));
    expect(a.merge(b).score()).toEqual(all);
    expect(() => scoreLabels(new Uint8Array(3), new Uint8Array(4))).toThrow(/prediction has 3 voxels, truth has 4/);
    expect(() => new Confusion(2).add(Uint8Array.from([1]), Uint8Array.from([3]))).toThrow(/exceeds 2 classes/);
  });
});
