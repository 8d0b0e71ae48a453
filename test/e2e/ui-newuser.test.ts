/**
 * The new-user walk of issue 14 (items 1, 2, 3, 5, 8 and 9's progress), in Chromium via the web shell, on the
 * real NEUBIAS 2-channel hyperstack opened the way a remote user opens it: uploaded from "this computer".
 *  - 9: "Opening…" reports read / upload / decode fractions;
 *  - 2: the upload appears under Recent; after saving, a page reload shows the project the server holds (not an
 *       empty app), with the training settings restored and a status that says what is open;
 *  - 1: 2 xy strokes and 1 xz stroke read "2 / 1 / 0 painted" live, after the reload and after reopening the
 *       saved project (it used to count every slice a stroke touched);
 *  - 3: the default export path of an upload is never the server's scratch copy; once the project is saved it
 *       is beside the project, and the panel says where the file went;
 *  - 8: a truncated upload is explained in plain words naming the file the user chose, details on demand;
 *  - 5: Densify pressed during a training offers the model so far and says which model the result used.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { e2eMissing, startApp, type App } from './harness.js';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { dragVoxels, flush, openByPath, readWithTifffile, waitForUi, type UiWindow } from './ui-helpers.js';

const HYPERSTACK = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');
const NAME = 'xyzc_16bit__dna_conf_wf.tif';
const NUCLEI = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const missing = e2eMissing() ?? (existsSync(HYPERSTACK) ? null : `${HYPERSTACK} missing`);
const [X, Y, Z] = [133, 130, 45];

type Hook = UiWindow & { __sliceformUi: { app: { openProgress: Array<{ stage: string; fraction: number }> } } };

const counts = async (page: Page) =>
  Promise.all((['xy', 'xz', 'yz'] as const).map((p) => page.getAttribute(`[data-testid=painted-count-${p}]`, 'data-count')));

async function waitVolume(page: Page): Promise<void> {
  await page.waitForFunction(
    () => {
      const h = (window as unknown as UiWindow).__sliceformUi;
      return !!h?.volumeId && !h.loading;
    },
    null,
    { timeout: 90_000 },
  );
}

describe.skipIf(missing)('new-user walk: upload, paint, save, reload, reopen, export, errors', () => {
  let app: App;
  let dir: string;
  let cz = 0;
  let cy = 0;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dir = await mkdtemp(join(tmpdir(), 'sliceform-newuser-'));
    app = await startApp();
    await waitForUi(app.page);
    for (const id of ['show-3d-volume', 'show-3d-labels', 'show-3d-planes']) await app.page.uncheck(`[data-testid=${id}]`).catch(() => {});
  });
  afterAll(async () => {
    await app?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uploads with read/upload/decode progress, lists the upload under Recent, no export path into scratch', async () => {
    const { page } = app;
    await page.setInputFiles('[data-testid=open-file-input]', HYPERSTACK);
    await waitVolume(page);
    const progress = await page.evaluate(() => (window as unknown as Hook).__sliceformUi.app.openProgress);
    const stage = (s: string) => progress.filter((p) => p.stage === s).map((p) => p.fraction);
    const reading = stage('reading');
    expect(reading.length).toBeGreaterThan(3); // 3.1 MB read in chunks, each reported
    expect(reading[reading.length - 1]).toBe(1);
    expect(reading.every((f, i) => i === 0 || f >= reading[i - 1]!)).toBe(true);
    expect(stage('uploading').length).toBeGreaterThan(0);
    const decoding = stage('decoding');
    expect(decoding.length).toBeGreaterThan(0);
    expect(decoding[decoding.length - 1]).toBe(1);
    expect(await page.textContent('[data-testid=status]')).toContain(`${X}×${Y}×${Z}, 2 channel(s)`);

    const recent = await page.locator('[data-testid=recent-item]').allTextContents();
    expect(recent[0]).toBe(NAME);
    // nobody chose a folder yet: no default that would hide the labels in the server's scratch folder
    expect(await page.inputValue('[data-testid=export-path]')).toBe('');
    expect(await page.getAttribute('[data-testid=export-path]', 'placeholder')).toContain(`${NAME.replace('.tif', '')}_labels.tif`);
    await page.click('[data-testid=export-button]');
    await expect.poll(() => page.textContent('[data-testid=status]')).toContain('Type where to save the labels');
  });

  it('2 xy strokes and 1 xz stroke are "2 / 1 / 0 painted"', async () => {
    const { page } = app;
    const cursor = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
    [cy, cz] = [cursor[1]!, cursor[2]!];
    await page.click('[data-testid=tool-brush]');
    await page.keyboard.press('2');
    await dragVoxels(page, 'xy', [[40, 60, cz], [60, 62, cz], [85, 64, cz]]);
    await page.keyboard.press('ArrowUp'); // another xy slice
    await page.keyboard.press('ArrowUp');
    const z2 = (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2]!;
    expect(z2).not.toBe(cz);
    await flush(page);
    await page.keyboard.press('1');
    await dragVoxels(page, 'xy', [[10, 10, z2], [120, 12, z2]]);
    await dragVoxels(page, 'xz', [[20, cy, 5], [110, cy, 30]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    await expect.poll(() => counts(page)).toEqual(['2', '1', '0']);
    expect(await page.locator('[data-testid=slice-ticks-xy] .tick').count()).toBe(2);
  });

  it('saves with training settings; a reload shows the project, counts, settings; the export lands beside the project', async () => {
    const { page } = app;
    await page.click('[data-testid=tool-navigate]');
    await page.selectOption('[data-testid=train-preset]', 'tiny');
    await page.fill('[data-testid=train-minutes]', '0.5');
    await page.press('[data-testid=train-minutes]', 'Tab');
    await page.fill('[data-testid=train-iterations]', '');
    await page.press('[data-testid=train-iterations]', 'Tab');
    const pdir = join(dir, 'walk.sliceform');
    await page.fill('[data-testid=project-path]', pdir);
    await page.click('[data-testid=project-save]');
    await expect.poll(() => page.textContent('[data-testid=project-status]'), { timeout: 30_000 }).toContain(`Saved ${pdir}`);
    const saved = JSON.parse(await readFile(join(pdir, 'project.json'), 'utf8'));
    expect(saved.settings.training).toMatchObject({ preset: 'tiny', minutes: 0.5 });

    // the default export path of the upload is now beside the project, and the panel says where it went
    const out = join(dir, `${NAME.replace('.tif', '')}_labels.tif`);
    await expect.poll(() => page.inputValue('[data-testid=export-path]')).toBe(out);
    await page.selectOption('[data-testid=export-layer]', 'annotation');
    await page.click('[data-testid=export-button]');
    await expect.poll(() => page.getAttribute('[data-testid=export-result]', 'data-path'), { timeout: 30_000 }).toBe(out);
    expect(await page.textContent('[data-testid=export-result]')).toContain(`in the folder ${dir}`);
    expect((await stat(out)).size).toBeGreaterThan(X * Y * Z);
    const tiff = readWithTifffile(out);
    expect(tiff.status).toBe(0);
    expect(tiff.header).toContain(`(${Z}, ${Y}, ${X})`);

    await page.reload();
    await waitForUi(page);
    await waitVolume(page);
    await expect.poll(() => page.textContent('[data-testid=status]'), { timeout: 30_000 }).toContain(`Project walk (${pdir}): ${NAME}`);
    await expect.poll(() => counts(page)).toEqual(['2', '1', '0']);
    expect(await page.inputValue('[data-testid=train-preset]')).toBe('tiny');
    expect(await page.inputValue('[data-testid=train-minutes]')).toBe('0.5');
    expect(await page.inputValue('[data-testid=project-path]')).toBe(pdir);
    expect((await page.locator('[data-testid=recent-item]').allTextContents())[0]).toBe(NAME);
  });

  it('reopening the saved project keeps "2 / 1 / 0 painted"', async () => {
    const { page } = app;
    const pdir = join(dir, 'walk.sliceform');
    await page.click('[data-testid=project-new]');
    await expect.poll(() => page.textContent('[data-testid=status]')).toContain('New project');
    await page.fill('[data-testid=project-path]', pdir);
    await page.click('[data-testid=project-open]');
    await expect.poll(() => page.textContent('[data-testid=project-status]'), { timeout: 30_000 }).toContain(`Opened ${pdir}`);
    await expect.poll(() => page.textContent('[data-testid=status]'), { timeout: 30_000 }).toContain(`Project walk (${pdir}): ${NAME}`);
    await expect.poll(() => counts(page)).toEqual(['2', '1', '0']);
    expect(await page.locator('[data-testid=slice-ticks-xz] .tick').count()).toBe(1);
  });

  it('explains a truncated upload in plain words naming the chosen file, with the detail on demand', async () => {
    const { page } = app;
    const bytes = await readFile(HYPERSTACK);
    const bad = join(dir, 'truncated-hyperstack.tif');
    await writeFile(bad, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await page.setInputFiles('[data-testid=open-file-input]', bad);
    await expect.poll(() => page.getAttribute('[data-testid=status]', 'data-level'), { timeout: 60_000 }).toBe('error');
    const text = (await page.textContent('[data-testid=status-text]'))!;
    expect(text).toMatch(/^Opening truncated-hyperstack\.tif failed: the file is shorter than its contents say: it looks incomplete/);
    expect(text).not.toMatch(/imports|[0-9a-f]{12}-|offset|contiguous/);
    expect(await page.isVisible('[data-testid=status-detail]')).toBe(true);
    await page.click('[data-testid=status-detail] summary');
    expect(await page.textContent('[data-testid=status-detail] code')).toMatch(/truncated contiguous ImageJ image data/);
  });

  it('Densify during a training offers the model so far and names the model the result used', async (ctx) => {
    const { page } = app;
    const info = (await page.evaluate(() => (window as unknown as UiWindow).sliceform.systemInfo!())) as { engine: unknown; features: Record<string, boolean> };
    if (!info.engine || !info.features.training) ctx.skip('no training engine');
    // a 1-channel stack (1135) keeps this test about the panel: at 86ac8f3 a training on the 2-channel
    // hyperstack never returned after its loop (the forest member), which ui-train reports
    await openByPath(page, NUCLEI);
    const c = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
    await page.click('[data-testid=tool-brush]');
    await page.keyboard.press('2');
    await dragVoxels(page, 'xy', [[30, 40, c[2]!], [60, 45, c[2]!]]);
    await page.keyboard.press('1');
    await dragVoxels(page, 'xy', [[5, 90, c[2]!], [90, 92, c[2]!]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    await page.click('[data-testid=tool-navigate]');
    await page.fill('[data-testid=train-minutes]', '2');
    await page.click('[data-testid=train-start]');
    // a few steps done (a stop before the first step leaves no model)
    await expect.poll(() => page.textContent('[data-testid=train-status]'), { timeout: 120_000 }).toMatch(/iteration ([3-9]|\d\d)/);
    await page.click('[data-testid=densify]');
    await expect.poll(() => page.isVisible('[data-testid=densify-choice]')).toBe(true);
    expect(await page.textContent('[data-testid=densify-status]')).toContain('A training is running and there is no finished model yet');
    expect(await page.locator('[data-testid=densify-previous]').count()).toBe(0); // there is no previous model
    await page.click('[data-testid=densify-stop-and-run]');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-state'), { timeout: 90_000 }).toBe('done');
    await expect.poll(() => page.textContent('[data-testid=densify-status]'), { timeout: 180_000, intervals: [1000] }).toMatch(/^Done with model ".*" \(\d+ iterations, trained .+\)/);
    const models = (await page.evaluate(() => (window as unknown as UiWindow).sliceform.listModels!())) as Array<{ id: string; iterations: number }>;
    expect(models.length).toBe(1);
    expect(await page.getAttribute('[data-testid=densify-status]', 'data-model-id')).toBe(models[0]!.id);
    expect(await page.textContent('[data-testid=densify-status]')).toContain(`(${models[0]!.iterations} iterations`);
  });
});

if (missing) it('new-user walk (skipped)', () => console.warn(`skipped: ${missing}`));
