/**
 * The sparse annotation store (main/services/sparse-labels.ts) behind LabelEditor for out-of-core volumes:
 * the same edits, undo/redo, revisions, summaries and label deltas as the dense layer, with memory for the
 * painted 64³ blocks only. Paint comes from the real nuclei truth of 1135_mini (100³); the memory test uses the
 * dimensions of the 1024×1024×512 bench stack (no voxels needed: a label layer has no image).
 */
import { describe, expect, it } from 'vitest';
import { readVolume } from '../../main/io/index.js';
import { LabelEditor } from '../../main/services/annotation.js';
import { BLOCK, DenseLabels, SparseLabels } from '../../main/services/sparse-labels.js';
import type { Plane } from '../../main/common/api.js';
import { dataFile } from '../helpers/paths.js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSparseLayer, sparseAnnotationFile, writeProject } from '../../main/services/project.js';

async function truth(): Promise<{ labels: Uint8Array; dims: { x: number; y: number; z: number } }> {
  const v = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'label' });
  const labels = Uint8Array.from(v.data as ArrayLike<number>, (t) => (t > 0 ? 2 : 1));
  return { labels, dims: { x: v.shape.x, y: v.shape.y, z: v.shape.z } };
}

/** first index where two label arrays differ, -1 when equal (toEqual on 10^6 voxels is slow) */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return -2;
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length)) ? -1 : a.findIndex((v, i) => v !== b[i]);
}

/** the truth of one slice as a region edit mask (nucleus = 2, background = 1) */
function sliceMask(labels: Uint8Array, dims: { x: number; y: number; z: number }, plane: Plane, index: number, cls: number) {
  const s = new DenseLabels(dims, labels).slice(plane, index);
  return { plane, index, origin: [0, 0] as [number, number], width: s.width, height: s.height, mask: Uint8Array.from(s.data, (v) => (v === cls ? 1 : 0)) };
}

describe('SparseLabels', () => {
  it('gives the same labels, deltas, revisions, summaries and undo/redo as the dense layer on real paint', async () => {
    const { labels, dims } = await truth();
    const dense = new LabelEditor(dims);
    const store = new SparseLabels(dims);
    const sparse = new LabelEditor(dims, store);
    expect(sparse.sparse).toBe(true);
    expect(dense.sparse).toBe(false);
    const edits: Array<[Plane, number, number]> = [
      ['xy', 50, 2],
      ['xy', 50, 1],
      ['xz', 30, 2],
      ['yz', 70, 1],
      ['xy', 10, 2],
    ];
    for (const [plane, index, cls] of edits) {
      const m = sliceMask(labels, dims, plane, index, cls);
      const a = dense.apply(dense.regionVoxels(m), cls);
      const b = sparse.apply(sparse.regionVoxels(m), cls);
      expect(b).toEqual(a);
      expect(a.changed).toBeGreaterThan(0);
    }
    // a stroke, and an eraser stroke across it
    for (const ed of [dense, sparse]) {
      ed.apply(ed.strokeVoxels({ plane: 'xy', index: 80, radius: 4, points: [[5, 5], [90, 60]] }), 2);
      ed.apply(ed.strokeVoxels({ plane: 'xy', index: 80, radius: 2, points: [[40, 0], [40, 99]] }), 0);
    }
    expect(sparse.revision).toBe(dense.revision);
    expect(sparse.summary('v')).toEqual(dense.summary('v'));
    expect(firstDiff(store.toDense(), dense.labels)).toBe(-1);
    // label deltas (what the compute process gets) and slices are the same
    const box = { min: [3, 17, 40] as [number, number, number], max: [97, 88, 61] as [number, number, number] };
    expect(store.box(box)).toEqual(dense.store.box(box));
    for (const p of ['xy', 'xz', 'yz'] as const) expect(store.slice(p, 50)).toEqual(dense.store.slice(p, 50));
    // undo everything, then redo it, step by step in lock-step
    while (dense.canUndo) {
      expect(sparse.undo()).toEqual(dense.undo());
      expect(firstDiff(store.toDense(), dense.labels)).toBe(-1);
    }
    expect(sparse.canUndo).toBe(false);
    expect(store.blockCount).toBe(0); // every block freed once its last label is undone
    expect(store.bytes).toBe(0);
    expect(sparse.hasLabels()).toBe(false);
    while (dense.canRedo) expect(sparse.redo()).toEqual(dense.redo());
    expect(firstDiff(store.toDense(), dense.labels)).toBe(-1);
    expect(sparse.summary('v')).toEqual(dense.summary('v'));
    // clear is one undoable edit without a dense array
    const c = sparse.clear();
    expect(c).toEqual(dense.applyAll(new Uint8Array(dense.labels.length)));
    expect(store.blockCount).toBe(0);
    expect(sparse.summary('v').paintedSlices).toEqual({ xy: [], xz: [], yz: [] });
    sparse.undo();
    dense.undo();
    expect(firstDiff(store.toDense(), dense.labels)).toBe(-1);
    expect(sparse.summary('v')).toEqual(dense.summary('v'));
  });

  it('writes label deltas into blocks (the compute side) and reads a saved layer back', async () => {
    const { labels, dims } = await truth();
    const store = new SparseLabels(dims);
    const box = { min: [10, 20, 30] as [number, number, number], max: [80, 70, 35] as [number, number, number] };
    const delta = new DenseLabels(dims, labels).box(box);
    store.writeBox(box, delta);
    expect(store.box(box)).toEqual(delta);
    expect(store.box({ min: [0, 0, 0], max: [10, 10, 10] })).toEqual(new Uint8Array(1000));
    expect(() => store.writeBox(box, delta.subarray(1))).toThrow(/label delta has 17499 values, its box holds 17500/);
    expect(() => store.box({ min: [0, 0, 0], max: [101, 1, 1] })).toThrow(/outside the volume 100×100×100/);
    // an editor over a store with labels counts them (summary without a dense scan of the volume)
    const ed = new LabelEditor(dims, store, { xy: [32], xz: [], yz: [] });
    const sum = ed.summary('v');
    const n2 = delta.filter((v) => v === 2).length;
    expect(sum.classVoxels[2]).toBe(n2);
    expect(sum.classVoxels[1]).toBe(delta.length - n2);
    expect(sum.paintedSlices.xy).toEqual([32]);
  });

  it('holds memory for the painted blocks only on a 1024×1024×512 layer', () => {
    const dims = { x: 1024, y: 1024, z: 512 };
    const store = new SparseLabels(dims);
    const ed = new LabelEditor(dims, store);
    expect(() => ed.labels).toThrow(/stored sparsely.*not supported for out-of-core volumes/);
    // a stroke on xy slice 300 from x 10 to 200 at y 500, radius 5: blocks x 0..3, y 7, z 4
    const r = ed.apply(ed.strokeVoxels({ plane: 'xy', index: 300, radius: 5, points: [[10, 500], [200, 500]] }), 2);
    expect(r.box).toEqual({ min: [5, 495, 300], max: [206, 506, 301] });
    expect(store.blockCount).toBe(4);
    expect(store.bytes).toBe(4 * BLOCK ** 3);
    expect(store.paintedBlocks().map((b) => b.min)).toEqual([0, 1, 2, 3].map((bx) => [bx * 64, 448, 256]));
    expect(store.get((300 * 1024 + 500) * 1024 + 100)).toBe(2);
    expect(store.get((301 * 1024 + 500) * 1024 + 100)).toBe(0);
    const s = store.slice('xz', 500);
    expect([s.width, s.height]).toEqual([1024, 512]);
    expect(s.data[300 * 1024 + 100]).toBe(2);
    expect(ed.summary('v').paintedSlices.xy).toEqual([300]);
    ed.undo();
    expect(store.bytes).toBe(0);
  });

  it('indexes past 2^32 voxels exactly (float64 indices)', () => {
    const dims = { x: 4096, y: 4096, z: 300 }; // 5.0e9 voxels
    const store = new SparseLabels(dims);
    const ed = new LabelEditor(dims, store);
    const v = ed.strokeVoxels({ plane: 'xy', index: 299, radius: 0, points: [[4095, 4095]] });
    expect(v).toBeInstanceOf(Float64Array);
    expect(v[0]).toBe(dims.x * dims.y * dims.z - 1);
    ed.apply(v, 3);
    expect(store.getXYZ(4095, 4095, 299)).toBe(3);
    expect(store.paintedBlocks()).toEqual([{ min: [4032, 4032, 256], max: [4096, 4096, 300] }]);
    expect(ed.summary('v').classVoxels[3]).toBe(1);
  });

  it('saves the painted blocks in a project folder and reads them back (out-of-core annotation file)', async () => {
    const { labels, dims } = await truth();
    const store = new SparseLabels(dims);
    const ed = new LabelEditor(dims, store);
    ed.apply(ed.regionVoxels(sliceMask(labels, dims, 'xz', 40, 2)), 2);
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 99, radius: 3, points: [[99, 99]] }), 1);
    const dir = await mkdtemp(join(tmpdir(), 'sliceform-sparse-'));
    try {
      await writeProject(dir, { name: 't', volumes: [], models: [], settings: { classes: [], autosaveMinutes: 2 } as never, metrics: [] }, [
        { id: 'v', annotation: store.clone(), prediction: null, paintedSlices: ed.paintedSlices() },
      ]);
      const back = await readSparseLayer(sparseAnnotationFile(dir, 'v'), dims);
      expect(back!.blockCount).toBe(store.blockCount);
      expect(firstDiff(back!.toDense(), store.toDense())).toBe(-1);
      const reopened = new LabelEditor(dims, back!, ed.paintedSlices());
      expect(reopened.summary('v').classVoxels).toEqual(ed.summary('v').classVoxels);
      expect(reopened.summary('v').paintedSlices).toEqual({ xy: [99], xz: [40], yz: [] });
      expect(await readSparseLayer(sparseAnnotationFile(dir, 'none'), dims)).toBeNull();
      // a truncated file and one of another volume are refused naming the file
      const f = sparseAnnotationFile(dir, 'v');
      const raw = store.serialize();
      const { gzipSync } = await import('node:zlib');
      await writeFile(f, gzipSync(raw.subarray(0, raw.length - 1)));
      await expect(readSparseLayer(f, dims)).rejects.toThrow(/v\.blocks\.gz: sparse label file is truncated/);
      await expect(readSparseLayer(f, { x: 100, y: 100, z: 99 })).rejects.toThrow(/sparse labels of 100×100×100 in 64³ blocks, the volume is 100×100×99/);
      expect((await readFile(f)).length).toBeGreaterThan(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
