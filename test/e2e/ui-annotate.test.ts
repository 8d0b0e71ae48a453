/**
 * Annotation through the UI, in Chromium via the web shell, on the real NEUBIAS 2-channel hyperstack:
 * brush strokes with the mouse on the xy and yz planes (vtk.js PaintWidget + PaintFilter), undo/redo across
 * planes with Ctrl+Z / Ctrl+Shift+Z, the eraser, painted-slice counts, the overlay colour in the view, and an
 * export read back with tifffile. The label volume returned by the API must match what the UI shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { e2eMissing, startApp, type App } from './harness.js';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { apiLabels, count, dragVoxels, exportFromUi, flush, labelReport, openByPath, readWithTifffile, shot, waitForUi, type LabelReport, type UiWindow } from './ui-helpers.js';

const HYPERSTACK = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');
const missing = e2eMissing() ?? (existsSync(HYPERSTACK) ? null : `${HYPERSTACK} missing`);
const X = 133;
const Y = 130;
const Z = 45;

describe.skipIf(missing)('UI annotation on a real hyperstack', () => {
  let app: App;
  let cursor: number[] = [];
  let afterXy: LabelReport;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    app = await startApp();
    await waitForUi(app.page);
    await openByPath(app.page, HYPERSTACK);
    // this file is about painting: keep the (slow, software-WebGL) 3D ray caster out of the way
    for (const id of ['show-3d-volume', 'show-3d-labels', 'show-3d-planes']) await app.page.uncheck(`[data-testid=${id}]`);
    cursor = await app.page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('paints a class-2 stroke on xy: only that z slice changes, server and overlay agree', async () => {
    const { page } = app;
    await page.click('[data-testid=tool-brush]');
    await page.keyboard.press('2');
    await expect.poll(() => page.textContent('[data-testid=active-class]')).toContain('class 2');
    const z = cursor[2]!;
    await dragVoxels(page, 'xy', [[40, 60, z], [60, 62, z], [85, 64, z]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const server = await labelReport(page, 'annotation', [[60, 62, z], [60, 62, z + 1], [10, 10, z]]);
    expect(server.size).toEqual([X, Y, Z]);
    expect(server.counts[2]).toBeGreaterThan(150); // a 4-px radius brush over ~45 px
    expect(server.counts[1] ?? 0).toBe(0);
    expect(server.zs[2]).toEqual([z]);
    expect(server.probes).toEqual([2, 0, 0]);
    expect(server.localMatches).toBe(true);
    afterXy = server;
    await expect.poll(() => page.getAttribute('[data-testid=painted-count-xy]', 'data-count')).toBe('1');
    expect(await page.locator('[data-testid=slice-ticks-xy] .tick').count()).toBe(1);

    // the overlay colour (class 2 = orange) is in the xy view
    await page.click('[data-testid=tool-navigate]');
    await flush(page);
    const px = await shot(page, 'view-xy', 'ui-annotate-xy-stroke');
    const orange = (r: number, g: number, b: number) => r > 150 && r > g + 50 && r > b + 90;
    expect(count(px, orange)).toBeGreaterThan(100);
    await page.uncheck('[data-testid=show-annotation]');
    await flush(page);
    expect(count(await shot(page, 'view-xy'), orange)).toBeLessThan(count(px, orange) / 5);
    await page.check('[data-testid=show-annotation]');
    // outline mode: only the border of the stroke keeps the class colour
    await page.check('[data-testid=label-outline]');
    await flush(page);
    const outlined = count(await shot(page, 'view-xy', 'ui-annotate-xy-outline'), orange);
    expect(outlined).toBeGreaterThan(20);
    expect(outlined).toBeLessThan(count(px, orange) * 0.8);
    await page.uncheck('[data-testid=label-outline]');
  });

  it('paints class 1 on yz, undoes it with Ctrl+Z (xy stroke kept), redoes and undoes again', async () => {
    const { page } = app;
    await page.click('[data-testid=tool-brush]');
    await page.keyboard.press('1');
    const x = cursor[0]!;
    await dragVoxels(page, 'yz', [[x, 30, 8], [x, 34, 20], [x, 36, 36]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const both = await labelReport(page, 'annotation');
    expect(both.counts[1]).toBeGreaterThan(100);
    expect(both.xs[1]).toEqual([x]);
    expect(both.counts[2]).toBe(afterXy.counts[2]);
    expect(both.localMatches).toBe(true);
    await expect.poll(() => page.getAttribute('[data-testid=painted-count-yz]', 'data-count')).toBe('1');
    await flush(page);
    await app.screenshot('ui-annotate-two-planes');

    // undo the yz stroke only
    await page.keyboard.press('Control+z');
    await expect.poll(async () => (await labelReport(page, 'annotation')).counts[1] ?? 0).toBe(0);
    expect((await labelReport(page, 'annotation')).hash).toBe(afterXy.hash);
    await expect.poll(async () => (await labelReport(page, 'annotation')).localMatches).toBe(true);
    await expect.poll(() => page.getAttribute('[data-testid=painted-count-yz]', 'data-count')).toBe('0');
    expect(await page.getAttribute('[data-testid=painted-count-xy]', 'data-count')).toBe('1');

    // redo brings it back; undo again leaves only the xy stroke
    await page.keyboard.press('Control+Shift+Z');
    await expect.poll(async () => (await labelReport(page, 'annotation')).hash).toBe(both.hash);
    await page.click('[data-testid=undo]');
    await expect.poll(async () => (await labelReport(page, 'annotation')).hash).toBe(afterXy.hash);
    await expect.poll(async () => (await labelReport(page, 'annotation')).localMatches).toBe(true);
  });

  it('erases part of the xy stroke back to 0 (unannotated)', async () => {
    const { page } = app;
    await page.click('[data-testid=tool-eraser]');
    const z = cursor[2]!;
    await dragVoxels(page, 'xy', [[60, 55, z], [60, 70, z]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const server = await labelReport(page, 'annotation', [[60, 62, z], [42, 60, z]]);
    expect(server.probes).toEqual([0, 2]); // erased in the middle, the start of the stroke untouched
    expect(server.counts[2]).toBeLessThan(afterXy.counts[2]!);
    expect(server.counts[2]).toBeGreaterThan(50);
    expect(server.localMatches).toBe(true);
  });

  it('exports the annotation as a TIFF that tifffile reads back with the same voxels', async () => {
    const { page } = app;
    const out = join(ARTIFACTS, 'ui-export-annotation.tif');
    await exportFromUi(page, 'annotation', 'tiff', out);
    const server = await apiLabels(page, 'annotation');
    const tif = readWithTifffile(out);
    expect(tif.status, tif.stderr).toBe(0);
    expect(tif.header).toContain(`(${Z}, ${Y}, ${X})`);
    const vox = tif.voxels;
    expect(vox.length).toBe(X * Y * Z);
    let mismatches = 0;
    let painted = 0;
    for (let i = 0; i < vox.length; i++) {
      if (vox[i] !== server.data[i]) mismatches++;
      if (vox[i]) painted++;
    }
    expect(mismatches).toBe(0);
    expect(painted).toBeGreaterThan(50);
    expect(app.pageErrors.filter((e) => !e.includes('frame-ancestors') && !/Failed to load resource.*404/.test(e))).toEqual([]);
  });

  it('saves the project to a folder and opens it again with the annotation intact', async () => {
    const { page } = app;
    const { mkdtemp, readdir, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = join(await mkdtemp(join(tmpdir(), 'sliceform-ui-project-')), 'my project');
    try {
      const before = await labelReport(page, 'annotation');
      await page.fill('[data-testid=project-path]', dir);
      await page.click('[data-testid=project-save]');
      await expect.poll(() => page.textContent('[data-testid=project-status]'), { timeout: 30_000 }).toContain(`Saved ${dir}`);
      expect((await readdir(dir)).length).toBeGreaterThan(0);
      await page.click('[data-testid=project-open]');
      await expect.poll(() => page.textContent('[data-testid=project-status]'), { timeout: 30_000 }).toContain('Opened');
      await expect.poll(async () => (await labelReport(page, 'annotation')).hash, { timeout: 30_000 }).toBe(before.hash);
      await expect.poll(async () => (await labelReport(page, 'annotation')).localMatches).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
