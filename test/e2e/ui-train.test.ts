/**
 * The sparse-annotation loop through the UI (Chromium, web shell), on the real NEUBIAS 2-channel hyperstack:
 * paint a few strokes of two classes on xy and xz, train the tiny preset for a few iterations from the
 * Training panel, densify, see the dense result in the slice views and in 3D (screenshot pixels of the label
 * colours), paint a correction over it, and export "result + corrections" read back with tifffile.
 * Skips (saying why) when the compute process reports no training engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { e2eMissing, startApp, type App } from './harness.js';
import { ARTIFACTS, DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';
import { apiLabels, count, diffCount, dragVoxels, exportFromUi, flush, labelReport, openByPath, readWithTifffile, shot, waitForUi, type UiWindow } from './ui-helpers.js';

const HYPERSTACK = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');
const missing = e2eMissing() ?? (existsSync(HYPERSTACK) ? null : `${HYPERSTACK} missing`);
const X = 133;
const Y = 130;
const Z = 45;
// label colours at 50 % over the data: class 1 is blue, class 2 orange (renderer/src/state.ts CLASS_COLORS)
const labelColoured = (r: number, g: number, b: number) => (b > r + 40 && b > g + 20) || (r > g + 50 && r > b + 80);

describe.skipIf(missing)('UI training, densify and export on a real hyperstack', () => {
  let app: App;
  let noEngine: string | null = null;
  let cursor: number[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    app = await startApp();
    await waitForUi(app.page);
    const info = (await app.page.evaluate(() => (window as unknown as UiWindow).sliceform.systemInfo!())) as {
      engine: unknown;
      engineError?: string;
      features: Record<string, boolean>;
    };
    if (!info.engine) noEngine = `no training engine: ${info.engineError ?? 'unknown'}`;
    else if (!info.features.training || !info.features.inference) noEngine = `compute features missing: ${JSON.stringify(info.features)}`;
    await openByPath(app.page, HYPERSTACK);
    cursor = await app.page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('paints two classes on xy and xz, trains the tiny preset with live progress, densifies', async (ctx) => {
    if (noEngine) ctx.skip(noEngine);
    const { page } = app;
    const [, cy, cz] = cursor as [number, number, number];
    await page.click('[data-testid=tool-brush]');
    for (let i = 0; i < 3; i++) await page.keyboard.press(']');
    await page.keyboard.press('2'); // nucleus (bright, centre of the stack)
    await dragVoxels(page, 'xy', [[55, 60, cz], [75, 66, cz], [85, 70, cz]]);
    await dragVoxels(page, 'xz', [[55, cy, cz - 2], [80, cy, cz + 2]]);
    await page.keyboard.press('1'); // background
    await dragVoxels(page, 'xy', [[6, 8, cz], [60, 8, cz], [125, 10, cz]]);
    await dragVoxels(page, 'xy', [[6, 120, cz], [125, 122, cz]]);
    await dragVoxels(page, 'xz', [[5, cy, 3], [125, cy, 3]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const ann = await labelReport(page, 'annotation');
    expect(ann.counts[1]).toBeGreaterThan(300);
    expect(ann.counts[2]).toBeGreaterThan(150);
    expect(ann.localMatches).toBe(true);

    await page.selectOption('[data-testid=train-preset]', 'tiny');
    await page.fill('[data-testid=train-minutes]', '1');
    await page.fill('[data-testid=train-iterations]', '12');
    await page.click('[data-testid=train-start]');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-state'), { timeout: 150_000, intervals: [1000] }).toBe('done');
    expect(Number(await page.getAttribute('[data-testid=train-loss-plot]', 'data-points'))).toBeGreaterThan(0);
    expect(await page.textContent('[data-testid=train-status]')).toMatch(/Trained \d+ iterations/);
    expect(Number(await page.getAttribute('[data-testid=train-progress]', 'value'))).toBe(1);
    await page.click('[data-testid=densify]');
    await expect.poll(() => page.textContent('[data-testid=densify-status]'), { timeout: 150_000, intervals: [1000] }).toContain('Done');
    const pred = await labelReport(page, 'prediction');
    expect(pred.size).toEqual([X, Y, Z]);
    expect(pred.counts.reduce((a, b) => a + b, 0)).toBe(X * Y * Z); // dense: every voxel has a class
  });

  it('shows the result in all slice views and in 3D (label-colour pixels)', async (ctx) => {
    if (noEngine) ctx.skip(noEngine);
    const { page } = app;
    await page.click('[data-testid=tool-navigate]');
    await page.uncheck('[data-testid=show-3d-planes]');
    await page.uncheck('[data-testid=show-3d-volume]');
    await flush(page, ['xy', 'xz', 'yz', '3d']);
    const on: Record<string, Awaited<ReturnType<typeof shot>>> = {};
    for (const v of ['xy', 'xz', 'yz', '3d']) on[v] = await shot(page, `view-${v}`, `ui-train-result-${v}`);
    await app.screenshot('ui-train-result');
    for (const v of ['xy', 'xz', 'yz']) {
      const px = on[v]!;
      expect(count(px, labelColoured), `${v}: label-colour pixels in the view`).toBeGreaterThan(2000);
    }
    expect(count(on['3d']!, (r, g, b) => r + g + b > 60), '3D shows the label volume').toBeGreaterThan(1000);
    await page.uncheck('[data-testid=show-prediction]');
    await page.uncheck('[data-testid=show-3d-labels]');
    await flush(page, ['xy', 'xz', 'yz', '3d']);
    for (const v of ['xy', 'xz', 'yz']) {
      const off = await shot(page, `view-${v}`);
      expect(diffCount(on[v]!, off), `${v}: hiding the result changes the view`).toBeGreaterThan(1000);
    }
    const off3d = await shot(page, 'view-3d', 'ui-train-3d-labels-off');
    expect(diffCount(on['3d']!, off3d), '3D: hiding the labels changes the view').toBeGreaterThan(1000);
    await page.check('[data-testid=show-prediction]');
    await page.check('[data-testid=show-3d-labels]');
  });

  it('adds a correction over the result as sparse annotation and exports result + corrections', async (ctx) => {
    if (noEngine) ctx.skip(noEngine);
    const { page } = app;
    const predBefore = await labelReport(page, 'prediction');
    const z = cursor[2]! + 6; // a slice not painted before
    const box = (await page.locator('[data-testid=view-xy]').boundingBox())!;
    await page.mouse.move(box.x + 5, box.y + 5);
    for (let i = 0; i < 6; i++) await page.keyboard.press('ArrowUp');
    await expect.poll(async () => (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2]).toBe(z);
    await page.click('[data-testid=tool-brush]');
    await page.keyboard.press('2');
    await dragVoxels(page, 'xy', [[20, 100, z], [40, 100, z]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const ann = await labelReport(page, 'annotation', [[30, 100, z]]);
    expect(ann.probes).toEqual([2]);
    expect(ann.zs[2]).toContain(z);
    expect((await labelReport(page, 'prediction')).hash).toBe(predBefore.hash); // the result itself is untouched
    await expect.poll(() => page.getAttribute('[data-testid=painted-count-xy]', 'data-count')).toBe('2');

    const out = join(ARTIFACTS, 'ui-export-merged.ome.tif');
    await exportFromUi(page, 'merged', 'ome-tiff', out);
    const annotation = await apiLabels(page, 'annotation');
    const prediction = await apiLabels(page, 'prediction');
    const tif = readWithTifffile(out);
    expect(tif.status, tif.stderr).toBe(0);
    expect(tif.header).toContain(`${Z}, ${Y}, ${X})`);
    const vox = tif.voxels;
    expect(vox.length).toBe(X * Y * Z);
    let bad = 0;
    for (let i = 0; i < vox.length; i++) {
      const want = annotation.data[i]! > 0 ? annotation.data[i]! : prediction.data[i]!;
      if (vox[i] !== want) bad++;
    }
    expect(bad).toBe(0);
    expect(app.pageErrors.filter((e) => !e.includes('frame-ancestors') && !/Failed to load resource.*404/.test(e))).toEqual([]);
  });

  it('runs the trained model on a folder from the Batch panel with per-file results and a report', async (ctx) => {
    if (noEngine) ctx.skip(noEngine);
    const { page } = app;
    const { mkdtemp, readdir, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const outDir = await mkdtemp(join(tmpdir(), 'sliceform-ui-batch-'));
    try {
      await page.click('[data-testid=batch-panel] > summary');
      await expect.poll(() => page.locator('[data-testid=batch-model] option').first().getAttribute('value')).toMatch(/^model-/);
      await page.fill('[data-testid=batch-input]', dataFile('formats', 'imagej_hyperstack'));
      await page.fill('[data-testid=batch-output]', outDir);
      await page.click('[data-testid=batch-run]');
      await expect.poll(() => page.textContent('[data-testid=batch-report]'), { timeout: 150_000, intervals: [1000] }).toMatch(/1 of 1 files segmented/);
      expect(await page.locator('[data-testid=batch-files] li.ok').count()).toBe(1);
      const files = await readdir(outDir);
      const tif = files.find((f) => /\.tiff?$/i.test(f));
      expect(tif, files.join(', ')).toBeDefined();
      const py = spawnSync(DEBIAN_PYTHON, ['-c', 'import sys,tifffile; a=tifffile.imread(sys.argv[1]); print(a.shape)', join(outDir, tif!)], { encoding: 'utf8' });
      expect(py.status, py.stderr).toBe(0);
      expect(py.stdout).toContain(`${Z}, ${Y}, ${X})`);
    } finally {
      await rm(outDir, { recursive: true, force: true });
    }
  });

  it('stops a running training from the panel, keeping the model trained so far', async (ctx) => {
    if (noEngine) ctx.skip(noEngine);
    const { page } = app;
    await page.selectOption('[data-testid=train-preset]', 'tiny');
    await page.fill('[data-testid=train-minutes]', '3');
    await page.fill('[data-testid=train-iterations]', '');
    const modelsBefore = await page.locator('[data-testid=batch-model] option').count();
    await page.click('[data-testid=train-start]');
    await expect.poll(() => page.isDisabled('[data-testid=train-start]')).toBe(true);
    // wait for live progress: loss points and an ETA
    await expect.poll(async () => Number((await page.getAttribute('[data-testid=train-loss-plot]', 'data-points')) ?? 0), { timeout: 90_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.textContent('[data-testid=train-eta]'), { timeout: 30_000 }).toMatch(/ETA \d/);
    await page.click('[data-testid=train-stop]');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-state'), { timeout: 60_000 }).toMatch(/done|cancelled/);
    expect(await page.isDisabled('[data-testid=train-start]')).toBe(false);
    if ((await page.getAttribute('[data-testid=training-panel]', 'data-state')) === 'done') {
      // stopped early: fewer iterations than 3 minutes would give, and the model is listed
      expect(await page.textContent('[data-testid=train-status]')).toMatch(/Trained \d+ iterations/);
      await expect.poll(() => page.locator('[data-testid=batch-model] option').count()).toBe(modelsBefore + 1);
    }
  });
});
