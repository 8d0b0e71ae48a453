/**
 * The workstation's views in Chromium (software WebGL) via the web shell, on a real 2-channel ImageJ hyperstack
 * (NEUBIAS dna_conf_wf: 133×130×45, uint16, channel 1 DNA confocal, channel 2 widefield).
 * Checks that both channels reach all three slice views (screenshot pixels change per channel toggle and show
 * each channel's colour), the linked crosshair, slice stepping, maximise and the 3D view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { e2eMissing, startApp, type App } from './harness.js';
import { dataFile } from '../helpers/paths.js';
import { count, crop, diffCount, flush, openByPath, shot, waitForUi, type Plane, type UiWindow } from './ui-helpers.js';

const HYPERSTACK = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');
const missing = e2eMissing() ?? (existsSync(HYPERSTACK) ? null : `${HYPERSTACK} missing`);
const PLANES: Plane[] = ['xy', 'xz', 'yz'];
// channel colours: 1 = green (0.1, 1, 0.1), 2 = magenta (1, 0.1, 1)
const greenish = (r: number, g: number, b: number) => g > 60 && g > r + 30 && g > b + 30;
const magentaish = (r: number, g: number, b: number) => r > 60 && b > 60 && r > g + 30 && b > g + 30;

describe.skipIf(missing)('UI views on a real 2-channel hyperstack', () => {
  let app: App;
  const notFound: string[] = [];

  beforeAll(async () => {
    app = await startApp();
    app.page.on('response', (r) => {
      if (r.status() === 404) notFound.push(r.url());
    });
    await waitForUi(app.page);
    await openByPath(app.page, HYPERSTACK);
    // the 3D ray caster is slow on software WebGL; it is switched on again for the 3D test
    for (const id of ['show-3d-volume', 'show-3d-planes']) await app.page.uncheck(`[data-testid=${id}]`);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('shows the stack with its shape, spacing and both channels listed', async () => {
    const { page } = app;
    await expect.poll(() => page.textContent('[data-testid=status]')).toContain('133×130×45, 2 channel(s), uint16');
    expect(await page.locator('[data-testid^=channel-visible-]').count()).toBe(2);
    // slider ranges are the plane depths: xy has 45 slices, xz 130, yz 133
    expect(await page.getAttribute('[data-testid=slice-slider-xy]', 'max')).toBe('44');
    expect(await page.getAttribute('[data-testid=slice-slider-xz]', 'max')).toBe('129');
    expect(await page.getAttribute('[data-testid=slice-slider-yz]', 'max')).toBe('132');
    await app.screenshot('ui-views-loaded');
  });

  it('shows both channels in all three views: toggling either changes the pixels, each has its colour', async () => {
    const { page } = app;
    const both: Record<string, Awaited<ReturnType<typeof shot>>> = {};
    for (const p of PLANES) both[p] = await shot(page, `view-${p}`, `ui-views-${p}-both`);
    // channel 1 only
    await page.uncheck('[data-testid=channel-visible-1]');
    await flush(page);
    for (const p of PLANES) {
      const only1 = await shot(page, `view-${p}`, `ui-views-${p}-ch1`);
      expect(diffCount(both[p]!, only1), `${p}: hiding channel 2 changes the view`).toBeGreaterThan(500);
      expect(count(only1, greenish), `${p}: channel 1 shows green pixels`).toBeGreaterThan(300);
      expect(count(only1, magentaish), `${p}: no magenta with channel 2 hidden`).toBeLessThan(20);
    }
    // channel 2 only
    await page.check('[data-testid=channel-visible-1]');
    await page.uncheck('[data-testid=channel-visible-0]');
    await flush(page);
    for (const p of PLANES) {
      const only2 = await shot(page, `view-${p}`, `ui-views-${p}-ch2`);
      expect(diffCount(both[p]!, only2), `${p}: hiding channel 1 changes the view`).toBeGreaterThan(500);
      expect(count(only2, magentaish), `${p}: channel 2 shows magenta pixels`).toBeGreaterThan(300);
      expect(count(only2, greenish), `${p}: no green with channel 1 hidden`).toBeLessThan(20);
    }
    await page.check('[data-testid=channel-visible-0]');
    await flush(page);
    const back = await shot(page, 'view-xy');
    expect(diffCount(both.xy!, back)).toBeLessThan(50);
  });

  it('links the crosshair: a click in xy moves the xz and yz planes; wheel and keys step slices', async () => {
    const { page } = app;
    const target = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.voxelToPage('xy', 30, 90, 0));
    const before = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
    await page.click('[data-testid=tool-navigate]');
    await page.mouse.click(target.x, target.y);
    const after = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
    expect(Math.abs(after[0]! - 30)).toBeLessThanOrEqual(1);
    expect(Math.abs(after[1]! - 90)).toBeLessThanOrEqual(1);
    expect(after[2]).toBe(before[2]); // z unchanged by a click in xy
    expect(await page.inputValue('[data-testid=slice-slider-yz]')).toBe(String(after[0]));
    expect(await page.inputValue('[data-testid=slice-slider-xz]')).toBe(String(after[1]));
    await expect.poll(() => page.getAttribute('[data-testid=readout]', 'data-voxel')).toBe(`${after[0]},${after[1]},${after[2]}`);

    // wheel over xy steps z, arrow keys too
    const box = (await page.locator('[data-testid=view-xy]').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, 100);
    await page.mouse.wheel(0, 100);
    await expect.poll(async () => (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2]).toBe(after[2]! + 2);
    await page.keyboard.press('ArrowDown');
    await expect.poll(async () => (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2]).toBe(after[2]! + 1);
    // stepping z changes the xy image
    const a = await shot(page, 'view-xy');
    await page.keyboard.press('PageDown');
    await flush(page);
    const b = await shot(page, 'view-xy');
    expect(diffCount(a, b)).toBeGreaterThan(200);
  });

  it('maximises a view and restores it; the 3D view renders the volume', async () => {
    const { page } = app;
    const small = (await page.locator('[data-testid=view-xz]').boundingBox())!;
    await page.click('[data-testid=maximise-xz]');
    const big = (await page.locator('[data-testid=view-xz]').boundingBox())!;
    expect(big.width * big.height).toBeGreaterThan(small.width * small.height * 3);
    await expect(page.locator('[data-testid=view-xy]').isVisible()).resolves.toBe(false);
    await app.screenshot('ui-views-xz-maximised');
    await page.click('[data-testid=maximise-xz]');
    await expect(page.locator('[data-testid=view-xy]').isVisible()).resolves.toBe(true);

    await page.check('[data-testid=show-3d-volume]');
    await page.check('[data-testid=show-3d-planes]');
    await flush(page, ['3d']);
    const with3d = await shot(page, 'view-3d', 'ui-views-3d');
    expect(count(with3d, (r, g, b) => r + g + b > 90), '3D view is not blank').toBeGreaterThan(1000);
    await page.uncheck('[data-testid=show-3d-volume]');
    await page.uncheck('[data-testid=show-3d-planes]');
    await flush(page, ['3d']);
    const empty3d = await shot(page, 'view-3d');
    expect(diffCount(with3d, empty3d)).toBeGreaterThan(1000);
    // volume rendering alone (no planes) still draws the nuclei
    await page.check('[data-testid=show-3d-volume]');
    await flush(page, ['3d']);
    const volOnly = await shot(page, 'view-3d', 'ui-views-3d-volume-only');
    expect(diffCount(volOnly, empty3d)).toBeGreaterThan(300);
    await page.check('[data-testid=show-3d-planes]');
    expect(app.pageErrors.filter((e) => !e.includes('frame-ancestors') && !/Failed to load resource.*404/.test(e))).toEqual([]);
    expect(notFound.filter((u) => !u.endsWith('/favicon.ico'))).toEqual([]);
  });

  it('saves a PNG snapshot of a view (browser download in the web shell)', async () => {
    const { page } = app;
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=snapshot-yz]')]);
    expect(download.suggestedFilename()).toBe('xyzc_16bit__dna_conf_wf.tif_yz.png');
    const path = await download.path();
    const { decode, count: countPx } = await import('./ui-helpers.js');
    const { readFile } = await import('node:fs/promises');
    const png = await readFile(path!);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    const { writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { ARTIFACTS } = await import('../helpers/paths.js');
    await writeFile(join(ARTIFACTS, 'ui-views-snapshot-yz.png'), png);
    const px = await decode(png);
    expect(px.width).toBeGreaterThan(100);
    expect(countPx(px, (r, g, b) => r + g + b > 30)).toBeGreaterThan(500); // the data, not a blank canvas
    // and it is the view as shown on screen
    await flush(page, ['yz']);
    const onScreen = await shot(page, 'view-yz');
    // same size up to the rounding of the canvas to whole device pixels
    expect(Math.abs(px.width - onScreen.width)).toBeLessThanOrEqual(1);
    expect(Math.abs(px.height - onScreen.height)).toBeLessThanOrEqual(1);
    const w = Math.min(px.width, onScreen.width);
    const h = Math.min(px.height, onScreen.height);
    expect(diffCount(crop(px, w, h), crop(onScreen, w, h))).toBeLessThan(w * h * 0.02);
  });

  it('explains a bad path and a wrong dropped file in words a biologist understands', async () => {
    const { page } = app;
    await page.fill('[data-testid=open-path]', '/no/such/folder/stack.tif');
    await page.click('[data-testid=open-button]');
    await expect.poll(() => page.getAttribute('[data-testid=status]', 'data-level')).toBe('error');
    const msg = (await page.textContent('[data-testid=status]'))!;
    expect(msg).toContain('/no/such/folder/stack.tif');
    expect(msg).toMatch(/Opening .* failed/);
    // the open stack is still shown
    expect(await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.volumeId)).not.toBeNull();
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['hello'], 'notes.txt', { type: 'text/plain' }));
      window.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await expect.poll(() => page.textContent('[data-testid=status]')).toContain('notes.txt: not a stack Sliceform can open');
  });
});
