/**
 * "N of M painted" (issue 14, item 1): the painted-slice record is the slices the user painted ON, it follows
 * undo/redo/erase/clear, and it survives save → reopen (before the fix every slice a stroke touched was counted
 * after reopening: 2/1/0 became 42/83/89). The editor cases use small synthetic label volumes (the record is
 * about stroke geometry, which no real file carries); the round trip uses the real plant-seg stack 1135_mini.h5.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFile, mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabelEditor, inferPaintedSlices } from '../../main/services/annotation.js';
import { ApiService } from '../../main/services/api-service.js';
import { paintedSlicesFile } from '../../main/services/project.js';
import { dataFile } from '../helpers/paths.js';

const dims = { x: 40, y: 30, z: 20 };

describe('LabelEditor painted-slice record (synthetic 40×30×20)', () => {
  it('counts the plane a stroke was painted on, not the slices it crosses', () => {
    const ed = new LabelEditor(dims);
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 5, radius: 3, points: [[5, 10], [30, 12]] }), 2);
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 9, radius: 3, points: [[8, 8], [20, 20]] }), 1);
    ed.apply(ed.strokeVoxels({ plane: 'xz', index: 15, radius: 2, points: [[10, 2], [25, 14]] }), 2);
    const s = ed.summary('v');
    expect(s.paintedSlices).toEqual({ xy: [5, 9], xz: [15], yz: [] });
    expect(s.classVoxels[0]! + s.classVoxels[1]! + s.classVoxels[2]!).toBe(dims.x * dims.y * dims.z);
    expect(s.classVoxels[1]).toBe(ed.labels.filter((v) => v === 1).length);
    // the inference used for labels without a record agrees on real strokes
    expect(inferPaintedSlices(ed.labels, dims)).toEqual({ xy: [5, 9], xz: [15], yz: [] });
  });

  it('follows undo, redo, the eraser and clear', () => {
    const ed = new LabelEditor(dims);
    ed.apply(ed.strokeVoxels({ plane: 'yz', index: 7, radius: 2, points: [[5, 5], [20, 6]] }), 2);
    ed.apply(ed.strokeVoxels({ plane: 'xy', index: 3, radius: 2, points: [[5, 5], [20, 6]] }), 2);
    expect(ed.summary('v').paintedSlices).toEqual({ xy: [3], xz: [], yz: [7] });
    ed.undo();
    expect(ed.summary('v').paintedSlices).toEqual({ xy: [], xz: [], yz: [7] });
    ed.redo();
    expect(ed.summary('v').paintedSlices.xy).toEqual([3]);
    // erasing everything on yz 7 (from the xz plane) leaves nothing painted there
    const wipe = ed.regionVoxels({ plane: 'yz', index: 7, origin: [0, 0], width: dims.y, height: dims.z, mask: new Uint8Array(dims.y * dims.z).fill(1) });
    ed.apply(wipe, 0);
    expect(ed.summary('v').paintedSlices).toEqual({ xy: [3], xz: [], yz: [] });
    ed.undo();
    expect(ed.summary('v').paintedSlices.yz).toEqual([7]);
    ed.applyAll(new Uint8Array(ed.labels.length));
    expect(ed.summary('v').paintedSlices).toEqual({ xy: [], xz: [], yz: [] });
    expect(ed.summary('v').classVoxels).toEqual([dims.x * dims.y * dims.z]);
    ed.undo();
    expect(ed.summary('v').paintedSlices).toEqual({ xy: [3], xz: [], yz: [7] });
  });

  it('takes a saved record as given, and infers one for labels that have none', () => {
    const a = new LabelEditor(dims);
    a.apply(a.strokeVoxels({ plane: 'xz', index: 4, radius: 1, points: [[3, 3], [30, 3]] }), 1);
    a.apply(a.strokeVoxels({ plane: 'xz', index: 20, radius: 4, points: [[3, 10]] }), 2);
    const rec = a.paintedSlices();
    expect(rec).toEqual({ xy: [], xz: [4, 20], yz: [] });
    expect(new LabelEditor(dims, a.labels.slice(), rec).summary('v').paintedSlices).toEqual(rec);
    expect(new LabelEditor(dims, a.labels.slice()).summary('v').paintedSlices).toEqual(rec);
    // a stale entry for a slice without labels is dropped
    expect(new LabelEditor(dims, a.labels.slice(), { xy: [17], xz: [4], yz: [] }).summary('v').paintedSlices).toEqual({ xy: [], xz: [4], yz: [] });
  });
});

describe('painted slices across save and reopen (real 1135_mini.h5)', () => {
  let dir: string;
  const services: ApiService[] = [];
  const svc = () => {
    const s = new ApiService({ shell: 'web', workDir: join(dir, 'work') });
    services.push(s);
    return s;
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sliceform-painted-'));
    await copyFile(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), join(dir, 'nuclei.h5'));
  });
  afterEach(async () => {
    for (const s of services.splice(0)) await s.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('2 xy strokes and 1 xz stroke are 2/1/0 after reopening, with and without the saved record', async () => {
    const a = svc();
    const v = await a.openVolume({ path: join(dir, 'nuclei.h5') });
    const { x: X, y: Y, z: Z } = v.shape;
    await a.paintStroke({ volumeId: v.id, plane: 'xy', index: 20, classId: 2, radius: 4, points: [[10, 10], [X - 10, Y - 20]] });
    await a.paintStroke({ volumeId: v.id, plane: 'xy', index: 30, classId: 1, radius: 4, points: [[20, 60], [X - 20, 70]] });
    await a.paintStroke({ volumeId: v.id, plane: 'xz', index: 50, classId: 2, radius: 3, points: [[10, 5], [X - 10, Z - 5]] });
    const live = await a.getAnnotationSummary({ volumeId: v.id });
    expect(live.paintedSlices).toEqual({ xy: [20, 30], xz: [50], yz: [] });
    const pdir = join(dir, 'p.sliceform');
    await a.saveProject({ path: pdir });
    expect(JSON.parse(await readFile(paintedSlicesFile(pdir, v.id), 'utf8'))).toMatchObject({ paintedSlices: { xy: [20, 30], xz: [50], yz: [] } });

    // the first save names the project after its folder in project.json too (it reopened as "Untitled")
    expect(JSON.parse(await readFile(join(pdir, 'project.json'), 'utf8')).name).toBe('p');

    const b = svc();
    expect((await b.openProject({ path: pdir })).name).toBe('p');
    const reopened = await b.getAnnotationSummary({ volumeId: v.id });
    expect(reopened.paintedSlices).toEqual({ xy: [20, 30], xz: [50], yz: [] });
    expect(reopened.classVoxels).toEqual(live.classVoxels);

    // a project saved before the record existed: inferred from the labels
    await rm(paintedSlicesFile(pdir, v.id));
    const c = svc();
    await c.openProject({ path: pdir });
    expect((await c.getAnnotationSummary({ volumeId: v.id })).paintedSlices).toEqual({ xy: [20, 30], xz: [50], yz: [] });
  });
});
