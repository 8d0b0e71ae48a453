/**
 * Issue 14 item 15 (paintStroke part): a stroke point at 1e9 must not freeze the server. Segments are clipped
 * to the slice (grown by the brush radius) before they are walked. Synthetic label grid: the editor only needs
 * dimensions, no image data.
 */
import { describe, expect, it } from 'vitest';
import { clipSegment, LabelEditor } from '../../main/services/annotation.js';

const dims = { x: 20, y: 16, z: 12 };

describe('paintStroke clipping', () => {
  it('a point at 1e9 paints the same voxels as a point just past the border, in milliseconds', () => {
    const ed = new LabelEditor(dims);
    const t0 = performance.now();
    const far = ed.strokeVoxels({ plane: 'xy', index: 3, radius: 2, points: [[5, 5], [1e9, 5]] });
    const farDiag = ed.strokeVoxels({ plane: 'xz', index: 3, radius: 1, points: [[-1e9, -1e9], [5, 5], [1e9, 2e9]] });
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(500);
    const near = ed.strokeVoxels({ plane: 'xy', index: 3, radius: 2, points: [[5, 5], [60, 5]] });
    expect([...far]).toEqual([...near]);
    // row y = 5 from x = 5 to the last column, and the brush's rows 3..7
    expect(far.length).toBe(near.length);
    expect(far.length).toBeGreaterThan(5 * 15);
    // the diagonal strokes: same as their intersection with a box a little past the slice
    const nearDiag = ed.strokeVoxels({ plane: 'xz', index: 3, radius: 1, points: [[-30, -30], [5, 5], [30, 55]] });
    expect([...farDiag]).toEqual([...nearDiag]);
  });

  it('a stroke entirely outside the slice paints nothing; one inside is unchanged by clipping', () => {
    const ed = new LabelEditor(dims);
    expect(ed.strokeVoxels({ plane: 'xy', index: 0, radius: 1, points: [[1e9, 1e9], [2e9, 1e9]] }).length).toBe(0);
    expect(ed.strokeVoxels({ plane: 'xy', index: 0, radius: 0, points: [[0, 0], [5, 0]] }).length).toBe(6);
    const r = ed.apply(ed.strokeVoxels({ plane: 'xy', index: 0, radius: 1, points: [[-1e12, 8], [1e12, 8]] }), 2);
    // rows 7, 8, 9 across the whole 20-wide slice
    expect(r.changed).toBe(3 * 20);
  });

  it('clipSegment: Liang-Barsky against a box', () => {
    const box = { u0: 0, v0: 0, u1: 10, v1: 10 };
    expect(clipSegment([-5, 5], [15, 5], box)).toEqual([0, 5, 10, 5, true]);
    expect(clipSegment([2, 2], [3, 3], box)).toEqual([2, 2, 3, 3, false]);
    expect(clipSegment([-5, -5], [-1, 20], box)).toBeNull();
    expect(clipSegment([11, 0], [11, 10], box)).toBeNull();
  });
});
