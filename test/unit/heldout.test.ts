// The held-out estimate's pure parts: how many planes the paint lies on (3 needed for an estimate), the one
// foreground IoU (volume/iou.ts) that skips unannotated voxels, the JSON / API forms of the estimate and the
// training panel's line. Synthetic label arrays: these are counting checks, no image is involved.
import { describe, expect, it } from 'vitest';
import { paintedPlanes, MIN_PLANE_VOXELS } from '../../main/pipeline/holdout.js';
import { ClassConfusion, foregroundIoU } from '../../main/volume/iou.js';
import { heldOutExtras, heldOutReport, type SelfValidation } from '../../main/pipeline/recipe.js';
import { heldOutText } from '../../renderer/src/render/held-out.js';

const [Z, Y, X] = [20, 40, 40];
const at = (z: number, y: number, x: number) => (z * Y + y) * X + x;

function paint(fn: (z: number, y: number, x: number) => number): Uint8Array {
  const l = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) l[at(z, y, x)] = fn(z, y, x);
  return l;
}

describe('painted planes', () => {
  it('counts whole painted slices on any axes', () => {
    expect(paintedPlanes(paint((z, y, x) => (z === 10 || y === 20 || x === 5 ? 1 + ((x + y) % 2) : 0)), [Z, Y, X])).toBe(3);
    expect(paintedPlanes(paint((z, y) => (z === 3 || z === 15 || y === 7 ? 1 : 0)), [Z, Y, X])).toBe(3);
    expect(paintedPlanes(paint((z, y) => (z === 10 || y === 20 ? 2 : 0)), [Z, Y, X])).toBe(2);
    expect(paintedPlanes(new Uint8Array(Z * Y * X), [Z, Y, X])).toBe(0);
  });

  it('counts strokes on a slice like the slice, and ignores a few stray voxels', () => {
    // two strokes (lines 3 voxels wide) on the xy slice z = 4, one on the xz slice y = 30, one on the yz slice x = 2
    const strokes = paint((z, y, x) =>
      (z === 4 && ((y >= 10 && y < 13) || (x >= 20 && x < 23))) || (y === 30 && z >= 2 && z < 18 && x >= 10 && x < 18) || (x === 2 && z < 16 && y >= 5 && y < 12) ? 1 : 0,
    );
    expect(paintedPlanes(strokes, [Z, Y, X])).toBe(3);
    // fewer than MIN_PLANE_VOXELS on the third plane: it does not count
    const thin = paint((z, y, x) => (z === 4 || (y === 30 && z === 2 && x < MIN_PLANE_VOXELS - 70) ? 1 : 0));
    expect(paintedPlanes(thin, [Z, Y, X])).toBe(1);
  });
});

describe('foreground IoU', () => {
  it('is the mean IoU of classes 2..K over the labelled voxels; unannotated voxels are not counted', () => {
    expect(foregroundIoU([2, 2, 1, 1], [2, 1, 2, 1], 2)).toBeCloseTo(1 / 3, 12);
    // the same with unannotated voxels predicted as foreground: unchanged
    expect(foregroundIoU([2, 2, 1, 1, 2, 2], [2, 1, 2, 1, 0, 0], 2)).toBeCloseTo(1 / 3, 12);
    // K = 3: class 2 perfect, class 3 half
    expect(foregroundIoU([2, 3, 3, 1], [2, 3, 1, 1], 3)).toBeCloseTo((1 + 0.5) / 2, 12);
    expect(foregroundIoU([1, 1], [1, 1], 2)).toBeNull();
    const c = new ClassConfusion(2).addAll([2, 1, 2], [2, 2, 1]);
    expect([c.tp[2], c.fp[2], c.fn[2]]).toEqual([1, 1, 1]);
    expect(c.iou(1)).toBe(0);
    expect(() => new ClassConfusion(2).addAll([1], [1, 2])).toThrow(/differ in length/);
  });
});

const base: SelfValidation = {
  mode: 'early',
  estimate: 0.71,
  estimateArgmax: 0.71,
  estimateNetwork: 0.66,
  reason: null,
  paintedPlanes: 3,
  heldOutBlocks: 18,
  heldOutVoxels: 2321,
  scoredAtIteration: 200,
  seconds: 4.24,
  fittedOn: 'none',
};

describe('the estimate in densify JSON, model.json, the API and the panel', () => {
  it('reports the estimate with its planes, blocks, voxels and iteration, or a reason and no number', () => {
    expect(heldOutReport(base)).toEqual({ iou: 0.71, mode: 'early', planes: 3, blocks: 18, voxels: 2321, when: 200, seconds: 4.2, iouArgmax: 0.71, iouNetwork: 0.66, conservative: true });
    const none = { ...base, estimate: null, estimateArgmax: null, estimateNetwork: null, paintedPlanes: 2, heldOutBlocks: 0, heldOutVoxels: 0, scoredAtIteration: null, seconds: 0, reason: 'the paint lies on 2 planes; a held-out estimate needs paint on at least 3 planes (any axes)' };
    expect(heldOutReport(none)).toEqual({ iou: null, reason: none.reason, mode: 'early', planes: 2, blocks: 0, voxels: 0, when: null });
    expect(heldOutExtras(base)).toEqual({ heldOutIteration: 200 });
    expect(heldOutExtras(none)).toEqual({ heldOutNote: none.reason });
  });

  it('the training panel names the estimate and its iteration, or why there is none', () => {
    expect(heldOutText({ heldOutIoU: 0.7123, heldOutIteration: 200 })).toBe('held-out IoU estimate 0.712 (measured at iteration 200; the final model is usually better)');
    expect(heldOutText({ heldOutNote: 'the paint lies on 2 planes; a held-out estimate needs paint on at least 3 planes (any axes)' })).toBe(
      'No held-out estimate: the paint lies on 2 planes; a held-out estimate needs paint on at least 3 planes (any axes).',
    );
    expect(heldOutText({})).toBe('');
  });
});
