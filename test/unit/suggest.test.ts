// "Annotate here next" scoring (main/pipeline/suggest.ts). SYNTHETIC probability volumes: the rule under test
// (one uncertain slice is ranked first, painted slices and their neighbours are left out) needs a volume whose
// uncertain slice is known exactly, which no real prediction gives. The real-data check is the handler test
// (suggest-handler.test.ts, a 1135 crop).
import { describe, expect, it } from 'vitest';
import {
  SliceUncertaintyAccumulator,
  describeSlice,
  expandCoarse,
  sliceUncertainty,
  suggestSlices,
} from '../../main/pipeline/suggest.js';

const dims = { x: 12, y: 10, z: 8 };
const N = dims.x * dims.y * dims.z;
const idx = (x: number, y: number, z: number) => (z * dims.y + y) * dims.x + x;

/** K = 2, class-planar; every voxel p = (0.95, 0.05) except where `unsure` says (0.5, 0.5). */
function volume(unsure: (x: number, y: number, z: number) => boolean): Float32Array {
  const p = new Float32Array(2 * N);
  for (let z = 0; z < dims.z; z++)
    for (let y = 0; y < dims.y; y++)
      for (let x = 0; x < dims.x; x++) {
        const i = idx(x, y, z);
        const a = unsure(x, y, z) ? 0.5 : 0.95;
        p[i] = a;
        p[N + i] = 1 - a;
      }
  return p;
}

const H95 = -(0.95 * Math.log(0.95) + 0.05 * Math.log(0.05)) / Math.log(2); // 0.2864

describe('slice uncertainty', () => {
  it('means the normalised entropy over each slice, per plane', () => {
    const u = sliceUncertainty(volume((_x, y) => y === 6), dims, 2);
    expect(u.xy.length).toBe(8);
    expect(u.xz.length).toBe(10);
    expect(u.yz.length).toBe(12);
    expect(u.xz[6]).toBeCloseTo(1, 6);
    expect(u.xz[3]).toBeCloseTo(H95, 5);
    // an xy or yz slice crosses the uncertain xz slice in one row of 10
    expect(u.xy[0]).toBeCloseTo((9 * H95 + 1) / 10, 5);
    expect(u.yz[11]).toBeCloseTo((9 * H95 + 1) / 10, 5);
  });

  it('margin: 1 - (p1 - p2)', () => {
    const u = sliceUncertainty(volume((_x, y) => y === 6), dims, 2, 'margin');
    expect(u.xz[6]).toBeCloseTo(1, 6);
    expect(u.xz[0]).toBeCloseTo(0.1, 5);
  });

  it('gives the same result streamed in z-slabs as in one piece', () => {
    const p = volume((x, y, z) => (x * 7 + y * 3 + z) % 5 === 0);
    const whole = sliceUncertainty(p, dims, 2);
    const acc = new SliceUncertaintyAccumulator(dims, 2);
    const plane = dims.x * dims.y;
    for (const [z0, depth] of [
      [0, 3],
      [3, 4],
      [7, 1],
    ] as const) {
      const n = depth * plane;
      const slab = new Float32Array(2 * n);
      slab.set(p.subarray(z0 * plane, z0 * plane + n), 0);
      slab.set(p.subarray(N + z0 * plane, N + z0 * plane + n), n);
      acc.addSlab(z0, depth, slab);
    }
    const s = acc.result();
    for (const pl of ['xy', 'xz', 'yz'] as const) for (let i = 0; i < whole[pl].length; i++) expect(s[pl][i]).toBeCloseTo(whole[pl][i]!, 10);
  });

  it('refuses a slab of the wrong size or outside the volume, naming the numbers', () => {
    const acc = new SliceUncertaintyAccumulator(dims, 2);
    expect(() => acc.addSlab(0, 2, new Float32Array(10))).toThrow(/2 planes needs 480 probabilities \(K = 2\), got 10/);
    expect(() => acc.addSlab(7, 2, new Float32Array(480))).toThrow(/outside 0..7/);
    expect(() => new SliceUncertaintyAccumulator(dims, 1)).toThrow(/at least 2 classes/);
  });
});

describe('suggestSlices', () => {
  it('ranks the one uncertain slice first, with score 1, then others; scores normalised to 0..1', () => {
    const u = sliceUncertainty(volume((_x, y) => y === 6), dims, 2);
    const s = suggestSlices(u, {}, { window: 0 });
    expect(s.ranked[0]).toEqual({ plane: 'xz', index: 6, score: 1 });
    expect(describeSlice(s.ranked[0]!)).toBe('xz y=6');
    expect(s.ranked.length).toBe(10);
    expect(s.perAxis.xz[3]).toBeCloseTo(H95, 5);
    const all = [...s.perAxis.xy, ...s.perAxis.xz, ...s.perAxis.yz];
    expect(Math.min(...all)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...all)).toBe(1);
    // near-duplicates of a better suggestion are left out (default gap: 15 % of 10 slices = 2)
    const xz = s.ranked.filter((r) => r.plane === 'xz').map((r) => r.index);
    expect(xz).not.toContain(5);
    expect(xz).not.toContain(7);
    // best first
    for (let i = 1; i < s.ranked.length; i++) expect(s.ranked[i]!.score).toBeLessThanOrEqual(s.ranked[i - 1]!.score);
  });

  it('excludes painted slices and their near neighbours', () => {
    const u = sliceUncertainty(volume((x, y) => y === 6 || x === 2), dims, 2);
    const free = suggestSlices(u, {}, { window: 0 });
    expect(free.ranked.slice(0, 2).map(describeSlice).sort()).toEqual(['xz y=6', 'yz x=2']);
    const s = suggestSlices(u, { xz: [6], xy: [0] }, { gap: 2, window: 0 });
    const keys = s.ranked.map(describeSlice);
    expect(keys[0]).toBe('yz x=2');
    for (const y of [4, 5, 6, 7, 8]) expect(keys).not.toContain(`xz y=${y}`);
    for (const z of [0, 1, 2]) expect(keys).not.toContain(`xy z=${z}`);
    // the scores of painted slices stay in perAxis (the slider ticks show them)
    expect(s.perAxis.xz[6]).toBe(1);
  });

  it('stops at max, and returns nothing but zeros for a certain prediction', () => {
    const u = sliceUncertainty(volume(() => false), dims, 2);
    const s = suggestSlices(u, {}, { max: 3 });
    expect(s.ranked.length).toBe(3);
    const zero = suggestSlices({ xy: new Float64Array(8), xz: new Float64Array(10), yz: new Float64Array(12) }, {});
    expect(zero.perAxis.xy.every((v) => v === 0)).toBe(true);
    expect(zero.ranked[0]).toEqual({ plane: 'xy', index: 0, score: 0 });
  });

  it('window: scores the slab a slice would teach, so an uncertain border slice does not win for its edge', () => {
    const u = sliceUncertainty(volume((_x, y) => y === 0 || (y >= 4 && y <= 6)), dims, 2);
    expect(suggestSlices(u, {}, { window: 0 }).ranked[0]).toEqual({ plane: 'xz', index: 0, score: 1 });
    const w = suggestSlices(u, {}, { window: 0.1 }); // ±1 slice of 10, the default
    expect(w.ranked[0]).toEqual({ plane: 'xz', index: 5, score: 1 });
    expect(suggestSlices(u, {}).ranked[0]).toEqual(w.ranked[0]);
    // tent weights 1, 2, 1 (of 4); slices outside the volume count as certain: y = 0 is (2 + H95 + 0) / 4
    expect(w.perAxis.xz[0]).toBeCloseTo((2 + H95) / 4, 5);
    // a lone uncertain slice still beats its neighbours under the window
    const lone = suggestSlices(sliceUncertainty(volume((_x, y) => y === 6), dims, 2), {});
    expect(lone.ranked[0]).toEqual({ plane: 'xz', index: 6, score: 1 });
  });

  it("aggregate 'sum' weighs a slice by its voxel count (larger planes first), 'mean' does not", () => {
    // yz x=2 (80 voxels) entirely uncertain, xy z=3 (120 voxels) uncertain on 9 of its 10 rows
    const u = sliceUncertainty(volume((x, y, z) => x === 2 || (z === 3 && y < 9)), dims, 2);
    expect(describeSlice(suggestSlices(u, {}, { window: 0 }).ranked[0]!)).toBe('yz x=2');
    expect(describeSlice(suggestSlices(u, {}, { aggregate: 'sum', dims, window: 0 }).ranked[0]!)).toBe('xy z=3');
    expect(() => suggestSlices(u, {}, { aggregate: 'sum' })).toThrow(/needs the volume's dims/);
  });

  it('spreads a coarse preview back to full slice indices', () => {
    const coarse = { xy: Float64Array.of(0.1, 0.9), xz: Float64Array.of(0.2, 0.3, 0.4), yz: Float64Array.of(0.5) };
    const e = expandCoarse(coarse, { x: 2, y: 5, z: 4 }, 2);
    expect(Array.from(e.xy)).toEqual([0.1, 0.1, 0.9, 0.9]);
    expect(Array.from(e.xz)).toEqual([0.2, 0.2, 0.3, 0.3, 0.4]);
    expect(Array.from(e.yz)).toEqual([0.5, 0.5]);
  });
});
