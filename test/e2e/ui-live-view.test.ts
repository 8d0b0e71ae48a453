/**
 * How the page draws the live loop's data, independent of the live backend: on the real 1135 stack, the page's
 * own API object gets stand-in getPreview / getPreviewVolume / getSuggestions answers (a synthetic disc of class 2
 * on background, a coarse volume, two ranked slices — synthetic because they stand for a model's output, which
 * no data file holds), and an onPreview event is delivered to the page's preview controller. Asserted: each view
 * draws the preview only on the slice it belongs to (pixels change, the badge names the iteration), P hides it,
 * the 3D view shows the coarse volume, the suggestions give slider ticks and a ranked 1-based list whose click
 * moves the slice, and setVisiblePlanes is told what the views show after a slider moves.
 * ui-live.test.ts covers the same through the real backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { e2eMissing, startApp, type App } from './harness.js';
import { dataFile } from '../helpers/paths.js';
import { diffCount, flush, openByPath, shot, waitForUi } from './ui-helpers.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const missing = e2eMissing() ?? (existsSync(H5) ? null : `${H5} missing`);

describe.skipIf(missing)('live preview drawing (stand-in live answers, 1135)', () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp();
    await waitForUi(app.page);
    await openByPath(app.page, H5);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('draws previews on their own slice, badge, P toggle, coarse 3D, suggestion ticks and list', async () => {
    const { page } = app;
    const before = await shot(page, 'view-xy');
    await page.evaluate(() => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const w = window as any;
      const api = w.sliceform;
      const app = w.__sliceformUi.app;
      const id = app.store.volume.id;
      w.__visible = [];
      api.setVisiblePlanes = async (r: unknown) => void w.__visible.push(r);
      api.getPreview = async (q: { plane: string; index: number }) => {
        const labels = new Uint8Array(100 * 100);
        for (let v = 0; v < 100; v++) for (let u = 0; u < 100; u++) labels[v * 100 + u] = (u - 50) ** 2 + (v - 50) ** 2 < 400 ? 2 : 1;
        return { volumeId: id, plane: q.plane, index: q.index, width: 100, height: 100, labels, iteration: 42, revision: 3, modelTime: new Date().toISOString() };
      };
      api.getPreviewVolume = async () => ({ volumeId: id, dims: { x: 25, y: 25, z: 25 }, step: 4, labels: new Uint8Array(25 ** 3).fill(2), iteration: 42 });
      api.getSuggestions = async () => ({
        volumeId: id,
        from: 'preview',
        iteration: 42,
        perAxis: { xy: Array.from({ length: 100 }, (_, i) => i / 99), xz: Array(100).fill(0.2), yz: Array(100).fill(0.5) },
        ranked: [
          { plane: 'xz', index: 37, score: 0.9 },
          { plane: 'yz', index: 11, score: 0.8 },
        ],
      });
      for (const p of ['xy', 'xz', 'yz']) app.preview.onPreview({ volumeId: id, plane: p, index: 50, iteration: 42, revision: 3 });
    });
    type Hook = { __sliceformUi: { previews(): { shown: Record<string, { iteration: number; index: number } | null>; volume: { step: number } | null } } };
    const shown = () => page.evaluate(() => (window as unknown as Hook).__sliceformUi.previews());
    await expect.poll(async () => (await shown()).shown.xy?.iteration ?? -1, { timeout: 10_000 }).toBe(42);
    expect((await shown()).shown.xz).toEqual({ iteration: 42, revision: 3, index: 50 });
    expect(await page.textContent('[data-testid=preview-badge-xy]')).toBe('preview · iteration 42');
    await flush(page);
    const withPreview = await shot(page, 'view-xy', 'ui-live-view-xy');
    // the disc's outline and fill change a clear number of pixels of the view
    expect(diffCount(before, withPreview)).toBeGreaterThan(500);

    // the coarse 3D preview (fetched throttled) replaces the annotation in 3D
    await expect.poll(async () => (await shown()).volume?.step ?? 0, { timeout: 10_000 }).toBe(4);
    expect(await page.evaluate(() => (window as unknown as { __sliceformDebug: { shown(): { '3d': { labels: number[] | null } } } }).__sliceformDebug.shown()['3d'].labels)).toEqual([25, 25, 25]);

    // P hides the layer everywhere, and brings it back
    await page.hover('[data-testid=view-xy]');
    await page.keyboard.press('p');
    expect((await shown()).shown).toEqual({ xy: null, xz: null, yz: null });
    expect(await page.isHidden('[data-testid=preview-badge-xy]')).toBe(true);
    expect(await page.isChecked('[data-testid=preview-toggle]')).toBe(false);
    await page.keyboard.press('p');
    expect((await shown()).shown.xy?.iteration).toBe(42);

    // suggestions: ticks on the xz slider, a ranked list in 1-based numbers; a click moves the xz slice
    await page.evaluate(() => (window as unknown as { __sliceformUi: { app: { preview: { requestSuggestions(now: boolean): void } } } }).__sliceformUi.app.preview.requestSuggestions(true));
    await expect.poll(() => page.getAttribute('[data-testid=suggest-list]', 'data-count'), { timeout: 5000 }).toBe('2');
    expect(await page.locator('[data-testid=suggest-item]').allTextContents()).toEqual(['xz y 38', 'yz x 12']);
    expect(await page.getAttribute('[data-testid=suggest-ticks-xz]', 'data-count')).toBe('1');
    expect(await page.getAttribute('[data-testid=suggest-ticks-yz]', 'data-count')).toBe('1');
    expect(await page.getAttribute('[data-testid=suggest-ticks-xy]', 'data-count')).toBe('0');
    expect(await page.isVisible('[data-testid=suggest-strip-xy]')).toBe(true);
    await page.locator('[data-testid=suggest-item]').first().click();
    expect(await page.evaluate(() => (window as unknown as { __sliceformUi: { cursor: number[] } }).__sliceformUi.cursor)).toEqual([50, 37, 50]);
    // the xz view now shows slice 37: the stand-in preview of that slice is fetched and drawn there
    await expect.poll(async () => (await shown()).shown.xz?.index ?? -1, { timeout: 10_000 }).toBe(37);
    // the server was told what the views show
    await expect
      .poll(() => page.evaluate(() => JSON.stringify((window as unknown as { __visible: unknown[] }).__visible.at(-1))), { timeout: 5000 })
      .toContain('{"plane":"xz","index":37}');
    expect(app.pageErrors).toEqual([]);
  }, 120_000);
});
