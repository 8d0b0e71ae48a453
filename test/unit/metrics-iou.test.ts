import { describe, expect, it } from 'vitest';
import { classIoU, scoreSegmentation } from '../../main/evaluation/metrics.js';

describe('scoreSegmentation', () => {
  it('is 1.0 for a perfect prediction', () => {
    const t = [1, 1, 2, 2, 3];
    const s = scoreSegmentation(t, t);
    expect(s.meanIoU).toBe(1);
    expect(s.perClass.map((c) => c.iou)).toEqual([1, 1, 1]);
  });
  it('matches hand-computed IoU and Dice', () => {
    // class 2: tp = 2, fp = 1, fn = 1 -> IoU 0.5, Dice 4/6
    const pred = [1, 2, 2, 2, 1, 1];
    const truth = [1, 2, 2, 1, 2, 1];
    const s = scoreSegmentation(pred, truth);
    const c2 = s.perClass[1]!;
    expect([c2.tp, c2.fp, c2.fn]).toEqual([2, 1, 1]);
    expect(c2.iou).toBeCloseTo(0.5);
    expect(c2.dice).toBeCloseTo(4 / 6);
    // class 1: tp = 2, fp = 1, fn = 1 -> 0.5
    expect(s.perClass[0]!.iou).toBeCloseTo(0.5);
    expect(s.accuracy).toBeCloseTo(4 / 6);
  });
  it('annotated-only ignores unlabelled truth; a mask restricts further', () => {
    const pred = [2, 2, 1, 1];
    const truth = [0, 2, 1, 0];
    const s = scoreSegmentation(pred, truth, { annotatedOnly: true });
    expect(s.voxels).toBe(2);
    expect(s.meanIoU).toBe(1);
    const m = scoreSegmentation([2, 1, 2, 2], [2, 2, 2, 1], { mask: [1, 1, 0, 0] });
    expect(m.voxels).toBe(2);
    expect(m.perClass[1]!.iou).toBeCloseTo(0.5);
    expect(classIoU([2, 1, 2, 2], [2, 2, 2, 1], 2, [1, 1, 0, 0])).toBeCloseTo(0.5);
  });
  it('reports absent classes as null and rejects mismatched sizes', () => {
    const s = scoreSegmentation([1, 1], [1, 1], { numClasses: 2 });
    expect(s.perClass[1]!.iou).toBeNull();
    expect(s.meanIoU).toBe(1);
    expect(() => scoreSegmentation([1], [1, 2])).toThrow(/1 voxels, truth has 2/);
  });
});
