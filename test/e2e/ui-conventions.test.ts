/**
 * What a new user reads and sees, in Chromium via the web shell on the real NEUBIAS 2-channel hyperstack
 * (133×130×45, uint16): the initial display window per channel comes from robust percentiles (the old 1 %/99 %
 * window saturated the nuclei until "auto" was pressed) and its numbers are labelled; one slice numbering,
 * Fiji's 1-based, in the sliders, the position readout and the tick titles (the API stays 0-based); the trail
 * of a stroke in progress shows the class colour (it was green whatever the class).
 * Expected percentiles come from numpy on the file read by tifffile (an independent reader).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { e2eMissing, startApp, type App } from './harness.js';
import { DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';
import { count, flush, openByPath, shot, waitForUi, type UiWindow } from './ui-helpers.js';

const HYPERSTACK = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');
const missing = e2eMissing() ?? (existsSync(HYPERSTACK) ? null : `${HYPERSTACK} missing`);

interface ChannelWindow {
  min: number;
  max: number;
  rangeMin: number;
  rangeMax: number;
  /** fraction of the channel's voxels at or above the window's top (shown saturated) */
  saturated: number;
}

async function windows(page: App['page']): Promise<ChannelWindow[]> {
  return page.evaluate(() => {
    const st = (window as unknown as { __sliceformUi: { app: { store: { channels: Array<{ min: number; max: number; rangeMin: number; rangeMax: number }>; volume: { channels: ArrayLike<number>[] } } } } }).__sliceformUi.app.store;
    return st.channels.map((c, i) => {
      const d = st.volume.channels[i]!;
      let n = 0;
      for (let k = 0; k < d.length; k++) if (d[k]! >= c.max) n++;
      return { min: c.min, max: c.max, rangeMin: c.rangeMin, rangeMax: c.rangeMax, saturated: n / d.length };
    });
  });
}

describe.skipIf(missing)('UI conventions on a real hyperstack: display window, slice numbers, stroke colour', () => {
  let app: App;
  /** numpy percentiles per channel: [p0.5, p99, p99.5, p99.8] */
  let oracle: number[][] = [];

  beforeAll(async () => {
    const py = spawnSync(
      DEBIAN_PYTHON,
      ['-c', 'import sys,json,tifffile,numpy as np; a=tifffile.imread(sys.argv[1]); print(json.dumps([[float(np.percentile(a[:,c],p)) for p in (0.5,99,99.5,99.8)] for c in range(a.shape[1])]))', HYPERSTACK],
      { encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    oracle = JSON.parse(py.stdout);
    app = await startApp();
    await waitForUi(app.page);
    await openByPath(app.page, HYPERSTACK);
    for (const id of ['show-3d-volume', 'show-3d-labels', 'show-3d-planes']) await app.page.uncheck(`[data-testid=${id}]`);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('opens with a robust per-channel window (0.5–99.8 %), the one "auto" gives, and labels its numbers', async () => {
    const { page } = app;
    const w = await windows(page);
    expect(w).toHaveLength(2);
    for (let c = 0; c < 2; c++) {
      const [p05, p99, p995, p998] = oracle[c]!;
      const span = w[c]!.rangeMax - w[c]!.rangeMin;
      expect(Math.abs(w[c]!.min - p05!), `channel ${c + 1} black point`).toBeLessThanOrEqual(span * 0.005);
      expect(Math.abs(w[c]!.max - p998!), `channel ${c + 1} white point`).toBeLessThanOrEqual(span * 0.005);
      // not the 1 %/99 % window that saturated the DNA channel's nuclei
      expect(w[c]!.max, `channel ${c + 1} white point above the 99.5th percentile`).toBeGreaterThan(p995!);
      expect(w[c]!.max).toBeGreaterThan(p99!);
      expect(w[c]!.saturated, `channel ${c + 1}: voxels shown saturated`).toBeLessThanOrEqual(0.0025);
    }
    // the DNA channel: 99 % is 16677, far below its nuclei (99.8 % is 33776)
    expect(w[0]!.max).toBeGreaterThan(30_000);
    // "auto" restores exactly this window
    await page.fill('[data-testid=channel-max-0]', String(Math.round(w[0]!.max / 2)));
    await page.dispatchEvent('[data-testid=channel-max-0]', 'input');
    expect((await windows(page))[0]!.max).toBeLessThan(w[0]!.max * 0.6);
    await page.click('[data-testid=channel-auto-0]');
    expect((await windows(page))[0]).toEqual(w[0]);
    // every number says what it is
    for (let c = 0; c < 2; c++) {
      const text = (await page.textContent(`[data-testid=channel-window-${c}]`))!;
      expect(text).toMatch(/^display -?\d+ – \d+ of data -?\d+ – \d+$/);
      expect(text).toContain(`of data ${Math.round(w[c]!.rangeMin)} – ${Math.round(w[c]!.rangeMax)}`);
    }
    const labels = await page.locator('[data-testid=channels] .wl-label').allTextContents();
    expect(labels.slice(0, 2)).toEqual(['black', 'white']);
  });

  it('numbers slices from 1 everywhere the user reads them; the API and data attributes stay 0-based', async () => {
    const { page } = app;
    await page.click('[data-testid=tool-navigate]');
    const z = (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2]!;
    const target = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.voxelToPage('xy', 30, 90, 0));
    await page.mouse.click(target.x, target.y);
    const c = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
    await expect.poll(() => page.getAttribute('[data-testid=readout]', 'data-voxel')).toBe(`${c[0]},${c[1]},${c[2]}`);
    const text = (await page.textContent('[data-testid=readout]'))!;
    expect(text.startsWith(`x ${c[0]! + 1}  y ${c[1]! + 1}  z ${z + 1}  |`), text).toBe(true);
    // sliders: value is the 0-based index, the label and the accessible text are 1-based
    expect(await page.inputValue('[data-testid=slice-slider-xy]')).toBe(String(z));
    expect(await page.textContent('[data-testid=slice-label-xy]')).toBe(`${z + 1} / 45`);
    expect(await page.getAttribute('[data-testid=slice-slider-xy]', 'aria-valuetext')).toBe(`slice ${z + 1} of 45`);
    expect(await page.textContent('[data-testid=slice-label-yz]')).toBe(`${c[0]! + 1} / 133`);
    // the first slice reads 1, the last reads the depth
    await page.fill('[data-testid=slice-slider-xy]', '0');
    await page.dispatchEvent('[data-testid=slice-slider-xy]', 'input');
    expect(await page.textContent('[data-testid=slice-label-xy]')).toBe('1 / 45');
    await page.fill('[data-testid=slice-slider-xy]', '44');
    await page.dispatchEvent('[data-testid=slice-slider-xy]', 'input');
    expect(await page.textContent('[data-testid=slice-label-xy]')).toBe('45 / 45');
    expect((await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2]).toBe(44);
    await page.fill('[data-testid=slice-slider-xy]', String(z));
    await page.dispatchEvent('[data-testid=slice-slider-xy]', 'input');
  });

  it('draws the trail of a stroke in progress in the class colour (orange for class 2, blue for class 1), and ticks name the slice 1-based', async () => {
    const { page } = app;
    // black background: both channels hidden, so only the brush draws colour
    await page.uncheck('[data-testid=channel-visible-0]');
    await page.uncheck('[data-testid=channel-visible-1]');
    await page.click('[data-testid=tool-brush]');
    for (let i = 0; i < 3; i++) await page.keyboard.press(']');
    const z = (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2]!;
    const orange = (r: number, g: number, b: number) => r > 50 && r > g + 35 && r > b + 40;
    const blue = (r: number, g: number, b: number) => b > 50 && b > r + 35 && b > g + 20;
    const green = (r: number, g: number, b: number) => g > 50 && g > r + 30 && g > b + 30;
    const cyan = (r: number, g: number, b: number) => g > 50 && g > r + 30 && Math.abs(g - b) < 40;
    const trail = async (cls: string, y: number, name: string) => {
      await page.keyboard.press(cls);
      const pts = await page.evaluate(
        (ps) => ps.map((p) => (window as unknown as UiWindow).__sliceformUi.voxelToPage('xy', p[0]!, p[1]!, p[2]!)),
        [[45, y, z], [70, y + 2, z], [100, y + 4, z]],
      );
      await page.mouse.move(pts[0]!.x, pts[0]!.y);
      await page.mouse.down();
      for (const p of pts.slice(1)) await page.mouse.move(p.x, p.y, { steps: 6 });
      await flush(page, ['xy']);
      const px = await shot(page, 'view-xy', name);
      await page.mouse.up();
      await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
      return px;
    };
    const t2 = await trail('2', 40, 'ui-conventions-trail-class2');
    expect(count(t2, orange), 'class 2 trail is orange').toBeGreaterThan(150);
    expect(count(t2, green) + count(t2, cyan), 'no green trail').toBeLessThan(20);
    expect(count(t2, blue)).toBeLessThan(20);
    const t1 = await trail('1', 110, 'ui-conventions-trail-class1');
    // the class-2 stroke is now annotation (orange overlay); the new trail is blue
    expect(count(t1, blue), 'class 1 trail is blue').toBeGreaterThan(150);
    expect(count(t1, green) + count(t1, cyan), 'no green trail').toBeLessThan(20);
    // both strokes landed on slice z: one tick, titled with the 1-based slice number
    await expect.poll(() => page.locator('[data-testid=slice-ticks-xy] .tick').count()).toBe(1);
    expect(await page.getAttribute('[data-testid=slice-ticks-xy] .tick', 'title')).toBe(`xy z ${z + 1} painted`);
    expect(await page.getAttribute('[data-testid=slice-ticks-xy] .tick', 'data-slice')).toBe(String(z));
    expect(app.pageErrors.filter((e) => !e.includes('frame-ancestors'))).toEqual([]);
  });
});
