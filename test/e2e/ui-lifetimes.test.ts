/**
 * Lifetimes in one page, in Chromium via the web shell: open stack A (the real NEUBIAS 2-channel uint16
 * hyperstack, 133×130×45), then stack B (plant-seg nuclei 1135_mini.h5, 1 channel uint8, 100³), then A again,
 * five times over. Every open must leave the views, channel list, sliders and 3D view showing the current stack
 * (the second open used to fail with "Cannot read properties of undefined (reading 'getScalars')" and leave
 * the views mixed), and the vtk.js objects alive in the page (renderer/src/debug/vtk-count.ts, read after a
 * forced garbage collection) must not grow from one cycle to the next. Objects of the classes the app creates
 * itself must never be dropped without delete().
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { e2eMissing, startApp, type App } from './harness.js';
import { dataFile } from '../helpers/paths.js';
import { count, dragVoxels, flush, openByPath, shot, waitForUi, type UiWindow } from './ui-helpers.js';

const A = { path: dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif'), dims: [133, 130, 45], channels: 2, text: '133×130×45, 2 channel(s), uint16' };
const B = { path: dataFile('plantseg_nuclei_mini', '1135_mini.h5'), dims: [100, 100, 100], channels: 1, text: '100×100×100, 1 channel(s), uint8' };
type Stack = typeof A;
const missing = e2eMissing() ?? ([A, B].every((s) => existsSync(s.path)) ? null : 'shared data missing');

interface Shown {
  plane: number[];
  image: boolean;
  annotation: number[] | null;
  prediction: number[] | null;
}
type DebugWindow = {
  __sliceformDebug: {
    vtk: { created: number; deleted: number; live(): Record<string, number>; liveTotal(): number; dropped(): Record<string, number> };
    closeVolume(): void;
    dispose(): void;
    shown(): { xy: Shown; xz: Shown; yz: Shown; '3d': { dims: number[]; components: number; volumeVisible: boolean; labels: number[] | null } };
  };
};

// channel colours: A's channel 1 green, channel 2 magenta (their sum: green, magenta or pale); a single channel (B) is white
// (the yellow crosshair, r ≈ g > b, is neither)
const crosshair = (r: number, g: number, b: number) => Math.abs(r - g) < 50 && b < Math.min(r, g) - 50;
const coloured = (r: number, g: number, b: number) => Math.max(r, g, b) > 50 && (Math.abs(r - g) > 30 || Math.abs(g - b) > 30) && !crosshair(r, g, b);
const grey = (r: number, g: number, b: number) => r > 50 && Math.abs(r - g) < 12 && Math.abs(r - b) < 12;
/** classes the renderer itself creates with newInstance(): every one of them must be deleted, never dropped */
const OWN_CLASSES = ['vtkImageData', 'vtkDataSetAttributes', 'vtkImageMapper', 'vtkImageSlice', 'vtkVolume', 'vtkVolumeMapper', 'vtkActor', 'vtkPolyData', 'vtkPaintFilter', 'vtkPaintWidget'];

async function liveAfterGc(page: Page): Promise<Record<string, number>> {
  const cdp = await page.context().newCDPSession(page);
  // twice: the first pass runs the finalisers that release what the second collects
  await cdp.send('HeapProfiler.collectGarbage');
  await page.waitForTimeout(100);
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.detach();
  return page.evaluate(() => (window as unknown as DebugWindow).__sliceformDebug.vtk.live());
}

const total = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);

async function expectShows(page: Page, s: Stack, pixels: boolean): Promise<void> {
  const [X, Y, Z] = s.dims as [number, number, number];
  expect(await page.textContent('[data-testid=status]')).toContain(s.text);
  expect(await page.getAttribute('[data-testid=slice-slider-xy]', 'max')).toBe(String(Z - 1));
  expect(await page.getAttribute('[data-testid=slice-slider-xz]', 'max')).toBe(String(Y - 1));
  expect(await page.getAttribute('[data-testid=slice-slider-yz]', 'max')).toBe(String(X - 1));
  expect(await page.textContent('[data-testid=slice-label-xy]')).toBe(`${Math.floor(Z / 2) + 1} / ${Z}`);
  expect(await page.locator('[data-testid^=channel-visible-]').count()).toBe(s.channels);
  const shown = await page.evaluate(() => (window as unknown as DebugWindow).__sliceformDebug.shown());
  expect(shown.xy).toEqual({ plane: [X, Y, 1], image: true, annotation: [X, Y, Z], prediction: null });
  expect(shown.xz).toEqual({ plane: [X, 1, Z], image: true, annotation: [X, Y, Z], prediction: null });
  expect(shown.yz).toEqual({ plane: [1, Y, Z], image: true, annotation: [X, Y, Z], prediction: null });
  expect(shown['3d']).toEqual({ dims: [X, Y, Z], components: s.channels, volumeVisible: true, labels: [X, Y, Z] });
  if (!pixels) return;
  await flush(page, ['xy', 'xz', 'yz', '3d']);
  for (const id of ['xy', 'yz', '3d']) {
    const px = await shot(page, `view-${id}`, `ui-lifetimes-${s === A ? 'A' : 'B'}-${id}`);
    if (s === A) expect(count(px, coloured), `${id} shows A's green and magenta channels`).toBeGreaterThan(200);
    else {
      expect(count(px, coloured), `${id} shows no colour after B replaced A`).toBeLessThan(20);
      expect(count(px, grey), `${id} shows B's grey channel`).toBeGreaterThan(200);
    }
  }
}

describe.skipIf(missing)('UI lifetimes: one page, many stacks', () => {
  let app: App;

  beforeAll(async () => {
    app = await startApp();
    await waitForUi(app.page);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('opens A, B, A, … 5 cycles: every view shows the current stack and the live vtk objects do not grow', async () => {
    const { page } = app;
    const perCycle: Array<Record<string, number>> = [];
    const localPainted = () => page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.app.store.annotation?.reduce((n, v) => n + (v ? 1 : 0), 0) ?? -1);
    let paintedOnA = 0;
    for (let cycle = 1; cycle <= 5; cycle++) {
      for (const s of [A, B]) {
        await openByPath(page, s.path);
        await expectShows(page, s, cycle === 1 || cycle === 5);
        if (s === A && cycle === 1) {
          // a stroke on A: every later open of A shows it again, B never does
          await page.click('[data-testid=tool-brush]');
          await page.keyboard.press('2');
          await dragVoxels(page, 'xy', [[40, 60, 22], [70, 62, 22], [90, 64, 22]]);
          await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
          await page.click('[data-testid=tool-navigate]');
          paintedOnA = await localPainted();
          expect(paintedOnA).toBeGreaterThan(100);
        } else expect(await localPainted(), `${s === A ? 'A' : 'B'}'s annotation in cycle ${cycle}`).toBe(s === A ? paintedOnA : 0);
        expect(await page.getAttribute('[data-testid=painted-count-xy]', 'data-count')).toBe(s === A ? '1' : '0');
      }
      perCycle.push(await liveAfterGc(page));
    }
    expect(app.pageErrors.filter((e) => !e.includes('frame-ancestors'))).toEqual([]);
    const first = perCycle[0]!;
    const grown = perCycle.slice(1).flatMap((live, i) =>
      Object.entries(live)
        .filter(([k, n]) => n > (first[k] ?? 0))
        .map(([k, n]) => `cycle ${i + 2}: ${k} ${first[k] ?? 0} -> ${n}`),
    );
    expect(grown, 'vtk objects alive after each A/B cycle, compared with the first').toEqual([]);
    expect(total(perCycle[4]!)).toBeLessThanOrEqual(total(first));
    expect(total(first)).toBeGreaterThan(100); // the counter sees the views' objects at all
    const dropped = await page.evaluate(() => (window as unknown as DebugWindow).__sliceformDebug.vtk.dropped());
    expect(Object.fromEntries(OWN_CLASSES.filter((k) => dropped[k]).map((k) => [k, dropped[k]])), 'own vtk objects dropped without delete()').toEqual({});
  });

  it('closing the stack releases its label images; opening it again comes back to the same count', async () => {
    const { page } = app;
    await openByPath(page, A.path);
    const open = await liveAfterGc(page);
    await page.evaluate(() => (window as unknown as DebugWindow).__sliceformDebug.closeVolume());
    const closed = await liveAfterGc(page);
    // the annotation image (with its point, cell and field data) is gone; nothing else appeared
    expect(open.vtkImageData! - (closed.vtkImageData ?? 0)).toBe(1);
    expect(open.vtkDataSetAttributes! - (closed.vtkDataSetAttributes ?? 0)).toBe(3);
    expect(total(closed)).toBeLessThan(total(open));
    const shown = await page.evaluate(() => (window as unknown as DebugWindow).__sliceformDebug.shown());
    expect(shown.xy).toMatchObject({ image: false, annotation: null });
    expect(shown['3d']).toMatchObject({ dims: [1, 1, 1], volumeVisible: false, labels: null });
    expect(await page.locator('[data-testid^=channel-visible-]').count()).toBe(0);
    await openByPath(page, A.path);
    await expectShows(page, A, false);
    const reopened = await liveAfterGc(page);
    expect(total(reopened)).toBe(total(open));
    // the page still works after all this: a slice step changes the xy slider
    await page.locator('[data-testid=view-xy]').hover();
    await page.keyboard.press('ArrowUp');
    await expect.poll(() => page.inputValue('[data-testid=slice-slider-xy]')).toBe(String(Math.floor(45 / 2) + 1));
    expect(app.pageErrors.filter((e) => !e.includes('frame-ancestors'))).toEqual([]);
  });

  it('dispose() deletes every vtk object the renderer created (views, label images, lookup tables, paint filter)', async () => {
    const { page } = app;
    const before = await liveAfterGc(page);
    await page.evaluate(() => (window as unknown as DebugWindow).__sliceformDebug.dispose());
    const after = await liveAfterGc(page);
    const left = Object.fromEntries([...OWN_CLASSES, 'vtkColorTransferFunction', 'vtkPiecewiseFunction', 'vtkGenericRenderWindow', 'vtkRenderer', 'vtkRenderWindow', 'vtkOpenGLRenderWindow'].filter((k) => after[k]).map((k) => [k, after[k]]));
    expect(left, 'vtk objects of ours alive after dispose()').toEqual({});
    expect(total(after)).toBeLessThan(total(before) * 0.2);
  });
});
