/**
 * Full-resolution slice views of out-of-core volumes (renderer/src/views/full-res.ts), in Node: which source a
 * slice view draws, how the loader schedules getSlice while scrolling (stale slices skipped, neighbours
 * prefetched, only the newest label answer delivered), and that a stroke drawn at full resolution lands on
 * exactly its voxels of the app process's sparse store (VolumeStore over a stub compute process with the bench
 * stack's shape: 1024×1024×512×3, 3D level 1/4) and on the right voxels of the page's 3D-level annotation.
 * The slice data are synthetic (no voxels are needed to test scheduling); the real-data equality of a
 * full-resolution slice with the in-memory one is in big-volume.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { LabelSliceData, SliceData } from '../../main/common/api.js';
import { cropPlaneMask, planeOfVolume } from '../../renderer/src/render/composite.js';
import { FullResLoader, heldStrokeVoxels, levelIndex, sliceChannel, sliceSource, thinDims } from '../../renderer/src/views/full-res.js';
import type { LoadedVolume } from '../../renderer/src/state.js';

const sp = { x: 0.2, y: 0.2, z: 0.5, unit: 'µm' };
const big: LoadedVolume = {
  id: 'big',
  name: 'big.ome.zarr',
  source: '/data/big.ome.zarr',
  dims: { x: 1024, y: 1024, z: 512 },
  channels: [],
  spacing: sp,
  dtype: 'uint16',
  held: { dims: { x: 256, y: 256, z: 128 }, step: 4, spacing: { ...sp, x: 0.8, y: 0.8, z: 2 } },
};
const slice = (plane: 'xy' | 'xz' | 'yz', index: number, width = 4, height = 3): SliceData => ({
  plane,
  index,
  width,
  height,
  channels: 2,
  dtype: 'uint16',
  data: Uint16Array.from({ length: 2 * width * height }, (_, i) => i + index),
});

describe('slice view source', () => {
  it('draws the full-resolution slice of an out-of-core volume when in hand, the level slice until then', () => {
    const mem: LoadedVolume = { ...big, held: undefined };
    expect(sliceSource(mem, 'xy', 300, null)).toEqual({ kind: 'memory' });
    expect(sliceSource(big, 'xy', 300, null)).toEqual({ kind: 'level', index: 75, step: 4 });
    expect(sliceSource(big, 'xz', 1023, null)).toEqual({ kind: 'level', index: 255, step: 4 });
    const s = slice('xy', 301);
    expect(sliceSource(big, 'xy', 301, s)).toEqual({ kind: 'full', slice: s });
    // another slice's (or another plane's) data is never drawn for this one
    expect(sliceSource(big, 'xy', 302, s).kind).toBe('level');
    expect(sliceSource(big, 'xz', 301, s).kind).toBe('level');
    expect(levelIndex(511, 4, 128)).toBe(127);
    expect(levelIndex(1030, 4, 256)).toBe(255);
  });

  it('reads a slice as slice 0 of a one-voxel-thick volume (the layout compositePlane and cropPlaneMask use)', () => {
    // xz: u = x, v = z; yz: u = y, v = z (planeDims in main/common/api.ts)
    expect(thinDims('xy', 1024, 1024)).toEqual({ x: 1024, y: 1024, z: 1 });
    expect(thinDims('xz', 1024, 512)).toEqual({ x: 1024, y: 1, z: 512 });
    expect(thinDims('yz', 1024, 512)).toEqual({ x: 1, y: 1024, z: 512 });
    for (const plane of ['xy', 'xz', 'yz'] as const) {
      const s = slice(plane, 7, 5, 3);
      const ch1 = sliceChannel(s, 1);
      expect(Array.from(planeOfVolume(ch1, thinDims(plane, 5, 3), plane, 0))).toEqual(Array.from(ch1, (v) => v & 255));
    }
  });
});

/** a fake API whose answers the test releases one by one */
function fakeApi() {
  const pending: Array<{ index: number; resolve: (s: SliceData) => void }> = [];
  const labelAnswers: Array<{ index: number; resolve: (l: LabelSliceData) => void }> = [];
  return {
    pending,
    labelAnswers,
    api: {
      getSlice: (req: { plane: 'xy' | 'xz' | 'yz'; index: number }) => new Promise<SliceData>((resolve) => pending.push({ index: req.index, resolve })),
      getLabelSlice: (req: { plane: 'xy' | 'xz' | 'yz'; index: number; layer: string }) =>
        new Promise<LabelSliceData>((resolve) => (req.layer === 'annotation' ? labelAnswers.push({ index: req.index, resolve }) : resolve({ plane: req.plane, index: req.index, width: 1, height: 1, data: new Uint8Array(1) }))),
    },
    async answer(plane: 'xy' | 'xz' | 'yz' = 'xy') {
      const p = pending.shift()!;
      p.resolve(slice(plane, p.index));
      await new Promise((r) => setTimeout(r, 0));
      return p.index;
    },
  };
}

describe('FullResLoader', () => {
  it('skips the slices scrolled past, draws only the shown one, prefetches the neighbours in the scrolling direction', async () => {
    const f = fakeApi();
    const drawn: number[] = [];
    const l = new FullResLoader(f.api as never, 'big', 'xy', 512, { image: (i) => drawn.push(i), labels: () => {}, error: (e) => { throw e; } });
    l.show(300);
    l.show(301);
    l.show(302);
    l.show(303); // scrolling while 300 is on its way
    expect(l.sent).toEqual([300]);
    expect(await f.answer()).toBe(300);
    expect(drawn).toEqual([]); // 300 is not shown any more: kept, not drawn
    expect(l.get(300)?.index).toBe(300);
    expect(l.sent).toEqual([300, 303]); // 301 and 302 were never asked for
    await f.answer();
    expect(drawn).toEqual([303]);
    // 303 is in: its neighbours, forwards first
    expect(l.sent).toEqual([300, 303, 304]);
    await f.answer();
    expect(l.sent).toEqual([300, 303, 304, 302]);
    await f.answer();
    expect(f.pending).toHaveLength(0);
    // back one: 302 is in hand already (prefetched), then 301 is prefetched (backwards now)
    l.show(302);
    expect(l.get(302)?.index).toBe(302);
    expect(l.sent.at(-1)).toBe(301);
    await f.answer();
    // the cache keeps `keep` slices (6), the shown one never evicted
    expect([300, 301, 302, 303, 304].filter((i) => l.get(i)).length).toBe(5);
    l.close();
    l.show(10);
    expect(l.sent.at(-1)).toBe(301);
  });

  it('does not prefetch past the ends of the stack', async () => {
    const f = fakeApi();
    const l = new FullResLoader(f.api as never, 'big', 'yz', 1024, { image: () => {}, labels: () => {}, error: () => {} });
    l.show(1023);
    await f.answer('yz');
    await f.answer('yz');
    expect(l.sent).toEqual([1023, 1022]);
    expect(f.pending).toHaveLength(0);
  });

  it('delivers only the newest label answer', async () => {
    const f = fakeApi();
    const got: number[] = [];
    const l = new FullResLoader(f.api as never, 'big', 'xy', 512, { image: () => {}, labels: (i) => got.push(i), error: () => {} });
    l.labels(300, false);
    l.labels(301, false);
    const lbl = (index: number): LabelSliceData => ({ plane: 'xy', index, width: 1, height: 1, data: new Uint8Array(1) });
    f.labelAnswers[1]!.resolve(lbl(301));
    f.labelAnswers[0]!.resolve(lbl(300)); // the older answer comes last: dropped
    await new Promise((r) => setTimeout(r, 0));
    expect(got).toEqual([301]);
  });
});

describe('a stroke at full resolution on an out-of-core volume', () => {
  it('lands on exactly the painted voxels of the sparse store, and on the level grid for 3D', async () => {
    const { VolumeStore } = await import('../../main/services/volume-store.js');
    const shape = { x: 1024, y: 1024, z: 512, c: 3, t: 1 };
    const compute = {
      generation: 1,
      computePid: 1,
      async call(method: string, req: Record<string, unknown>) {
        if (method === 'openVolume')
          return {
            volumeId: req.volumeId,
            format: 'ome-zarr',
            dtype: 'uint16',
            shape,
            spacing: sp,
            channelNames: ['a', 'b', 'c'],
            channelStats: [],
            sha256: 'a'.repeat(64),
            timepoint: 0,
            metadata: {},
            outOfCore: { level: 2, step: 4, size: [256, 256, 128] },
            reused: false,
          };
        return { voxels: 0 };
      },
    };
    const vs = new VolumeStore({ emitLabelsChanged() {}, emitVolumeProgress() {}, checkClass() {} }, compute as never);
    await vs.read('/data/big.ome.zarr', { id: 'big' });
    // what the paint filter leaves on the xz view's thin image of file slice y = 301: a ring and a dot,
    // odd coordinates that no 1/4 grid could hit
    const W = 1024,
      H = 512;
    const buf = new Uint8Array(W * H);
    const want = new Set<number>();
    for (let v = 0; v < H; v++)
      for (let u = 0; u < W; u++) {
        const r = Math.hypot(u - 501, v - 203);
        if ((r >= 3 && r < 6) || (u === 777 && v === 5)) {
          buf[v * W + u] = 1;
          want.add(v * W + u);
        }
      }
    const crop = cropPlaneMask(buf, thinDims('xz', W, H), 'xz', 0)!;
    expect([crop.origin, crop.width, crop.height]).toEqual([[496, 5], 282, 204]);
    const res = vs.paintRegion({ volumeId: 'big', plane: 'xz', index: 301, classId: 2, ...crop });
    expect(res.changed).toBe(want.size);
    const s = vs.labelSlice({ volumeId: 'big', plane: 'xz', index: 301, layer: 'annotation' });
    expect([s.width, s.height]).toEqual([W, H]);
    const painted = new Set<number>();
    s.data.forEach((v, i) => {
      if (v) painted.add(i);
      if (v) expect(v).toBe(2);
    });
    expect(painted).toEqual(want);
    for (const y of [300, 302]) expect(vs.labelSlice({ volumeId: 'big', plane: 'xz', index: y, layer: 'annotation' }).data.some((v) => v !== 0)).toBe(false);
    // an xy slice through it sees the ring's row z = 203 at y = 301 only: x 496..498 and 504..506, not the hole
    const xy = vs.labelSlice({ volumeId: 'big', plane: 'xy', index: 203, layer: 'annotation' }).data;
    expect([495, 496, 498, 499, 503, 504, 506, 507].map((x) => xy[301 * 1024 + x])).toEqual([0, 2, 2, 0, 0, 2, 2, 0]);
    expect(xy[300 * 1024 + 496]).toBe(0);
    expect(vs.summary('big').paintedSlices.xz).toEqual([301]);

    // the page's 3D level holds every 4th voxel: y = 301 is not on its grid, y = 300 is
    expect(heldStrokeVoxels('xz', 301, crop, big.held!)).toEqual([]);
    const onGrid = heldStrokeVoxels('xz', 300, crop, big.held!);
    const lv = vs.labelVolume({ volumeId: 'big', layer: 'annotation' }); // (after painting y = 300 on the server too)
    vs.paintRegion({ volumeId: 'big', plane: 'xz', index: 300, classId: 2, ...crop });
    const lv2 = vs.labelVolume({ volumeId: 'big', layer: 'annotation' });
    const serverLevel: number[] = [];
    lv2.data.forEach((v, i) => v && !lv.data[i] && serverLevel.push(i));
    expect(onGrid.length).toBeGreaterThan(0);
    expect(onGrid.sort((a, b) => a - b)).toEqual(serverLevel);
  });
});
