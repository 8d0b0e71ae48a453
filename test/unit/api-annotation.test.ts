import { describe, expect, it } from 'vitest';
import { LabelEditor, labelSlice } from '../../main/services/annotation.js';
import { volumeBrick, volumeSlice, channelStats } from '../../main/services/volume-data.js';
import type { Volume } from '../../main/common/volume.js';

const dims = { x: 20, y: 16, z: 12 };
const at = (x: number, y: number, z: number) => (z * dims.y + y) * dims.x + x;

describe('LabelEditor', () => {
  it('paints a disc on the chosen plane only', () => {
    const ed = new LabelEditor(dims);
    const r = ed.apply(ed.strokeVoxels({ plane: 'xz', index: 5, radius: 2, points: [[10, 6]] }), 2);
    // disc of radius 2 on the integer grid: 13 voxels
    expect(r.changed).toBe(13);
    expect(ed.labels[at(10, 5, 6)]).toBe(2);
    expect(ed.labels[at(12, 5, 6)]).toBe(2);
    expect(ed.labels[at(10, 5, 8)]).toBe(2);
    expect(ed.labels[at(11, 5, 7)]).toBe(2);
    expect(ed.labels[at(12, 5, 7)]).toBe(0);
    expect(ed.labels[at(10, 4, 6)]).toBe(0); // neighbouring xz slice untouched
    expect(r.box).toEqual({ min: [8, 5, 4], max: [13, 6, 9] });
  });

  it('joins stroke points, clips at the border and paints spheres across slices', () => {
    const ed = new LabelEditor(dims);
    const line = ed.strokeVoxels({ plane: 'xy', index: 0, radius: 0, points: [[0, 0], [5, 0]] });
    expect([...line]).toEqual([0, 1, 2, 3, 4, 5].map((x) => at(x, 0, 0)));
    const clipped = ed.strokeVoxels({ plane: 'yz', index: 19, radius: 1, points: [[0, 0]] });
    // (y,z) = (0,0),(1,0),(0,1) on x = 19
    expect([...clipped].sort((a, b) => a - b)).toEqual([at(19, 0, 0), at(19, 1, 0), at(19, 0, 1)].sort((a, b) => a - b));
    const ball = ed.strokeVoxels({ plane: 'xy', index: 6, radius: 1, brush: 'sphere', points: [[10, 8]] });
    expect(ball.length).toBe(7);
    expect([...ball]).toContain(at(10, 8, 5));
    expect([...ball]).toContain(at(10, 8, 7));
    expect(() => ed.strokeVoxels({ plane: 'xy', index: 12, radius: 1, points: [[0, 0]] })).toThrow(/outside the xy range 0..11/);
  });

  it('undoes and redoes exactly, including overlapping edits and erasing', () => {
    const ed = new LabelEditor(dims);
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 3, radius: 3, points: [[5, 5]] }), 1);
    const after1 = ed.labels.slice();
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 3, radius: 2, points: [[7, 5]] }), 2);
    const after2 = ed.labels.slice();
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 3, radius: 1, points: [[6, 5]] }), 0); // eraser
    expect(ed.labels[at(6, 5, 3)]).toBe(0);
    ed.undo();
    expect(ed.labels).toEqual(after2);
    ed.undo();
    expect(ed.labels).toEqual(after1);
    expect(ed.canRedo).toBe(true);
    ed.redo();
    expect(ed.labels).toEqual(after2);
    // a new edit clears the redo stack
    ed.undo();
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 0, radius: 0, points: [[0, 0]] }), 2);
    expect(ed.canRedo).toBe(false);
    ed.undo();
    ed.undo();
    expect(ed.labels.every((v) => v === 0)).toBe(true);
    expect(ed.undo().changed).toBe(0);
  });

  it('applies region masks and summarises painted slices per plane', () => {
    const ed = new LabelEditor(dims);
    const mask = Uint8Array.from([1, 0, 1, 1]);
    const r = ed.apply(ed.regionVoxels({ plane: 'yz', index: 4, origin: [2, 3], width: 2, height: 2, mask }), 2);
    expect(r.changed).toBe(3);
    expect(ed.labels[at(4, 2, 3)]).toBe(2);
    expect(ed.labels[at(4, 3, 3)]).toBe(0);
    expect(ed.labels[at(4, 2, 4)]).toBe(2);
    expect(ed.labels[at(4, 3, 4)]).toBe(2);
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 9, radius: 0, points: [[1, 1]] }), 1);
    const s = ed.summary('v');
    // the slices painted ON, not every slice the two edits touch (xy 3, 4; xz 1..3; yz 1)
    expect(s.paintedSlices.xy).toEqual([9]);
    expect(s.paintedSlices.xz).toEqual([]);
    expect(s.paintedSlices.yz).toEqual([4]);
    expect(s.classVoxels).toEqual([dims.x * dims.y * dims.z - 4, 1, 3]);
  });

  it('extracts label slices in the same orientation as volume slices', () => {
    const ed = new LabelEditor(dims);
    ed.apply(ed.strokeVoxels({ plane: 'yz', index: 7, radius: 0, points: [[3, 9]] }), 2);
    const yz = labelSlice(ed.labels, dims, 'yz', 7);
    expect([yz.width, yz.height]).toEqual([16, 12]);
    expect(yz.data[9 * 16 + 3]).toBe(2);
    const xz = labelSlice(ed.labels, dims, 'xz', 3);
    expect(xz.data[9 * 20 + 7]).toBe(2);
    const xy = labelSlice(ed.labels, dims, 'xy', 9);
    expect(xy.data[3 * 20 + 7]).toBe(2);
  });
});

describe('volume slices and bricks', () => {
  // synthetic 2-channel volume whose value encodes its coordinates (no real file encodes positions like this)
  const X = 6,
    Y = 5,
    Z = 4,
    C = 2;
  const data = new Uint16Array(X * Y * Z * C);
  for (let c = 0; c < C; c++) for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) data[((c * Z + z) * Y + y) * X + x] = c * 1000 + z * 100 + y * 10 + x;
  const v: Volume = { data, dtype: 'uint16', shape: { x: X, y: Y, z: Z, c: C, t: 1 }, spacing: { x: 1, y: 1, z: 2, unit: 'µm' }, channelNames: ['a', 'b'], format: 'test', source: 'mem', timepoint: 0, metadata: {} };

  it('cuts xy, xz and yz slices per channel', () => {
    const xy = volumeSlice(v, 'xy', 2);
    expect([xy.width, xy.height, xy.channels]).toEqual([6, 5, 2]);
    expect(xy.data).toBeInstanceOf(Uint16Array);
    expect(xy.data[1 * 6 + 3]).toBe(213);
    expect(xy.data[30 + 1 * 6 + 3]).toBe(1213);
    const xz = volumeSlice(v, 'xz', 4, 1);
    expect([xz.width, xz.height, xz.channels]).toEqual([6, 4, 1]);
    expect(xz.data[3 * 6 + 5]).toBe(1345);
    const yz = volumeSlice(v, 'yz', 5);
    expect([yz.width, yz.height]).toEqual([5, 4]);
    expect(yz.data[2 * 5 + 4]).toBe(245);
    expect(() => volumeSlice(v, 'yz', 6)).toThrow(/outside/);
    expect(() => volumeSlice(v, 'xy', 0, 2)).toThrow(/channel 2/);
  });

  it('returns bricks with step and channel', () => {
    const b = volumeBrick(v, [1, 1, 1], [4, 3, 2], 2, 1);
    expect(b.size).toEqual([2, 2, 1]);
    expect([...b.data]).toEqual([1111, 1113, 1131, 1133]);
    const whole = volumeBrick(v);
    expect(whole.data.length).toBe(data.length);
    expect(() => volumeBrick(v, [5, 0, 0], [2, 1, 1])).toThrow(/outside/);
  });

  it('computes channel statistics', () => {
    const s = channelStats(v);
    expect(s[0]).toMatchObject({ min: 0, max: 345 });
    expect(s[1]).toMatchObject({ min: 1000, max: 1345 });
    expect(s[0]!.p1).toBeLessThanOrEqual(s[0]!.p99);
  });
});
