/**
 * Keyboard shortcuts as napari and ilastik users expect them, in Chromium via the web shell on the real
 * plant-seg nuclei stack 1135_mini.h5 (100³ uint8): `?` opens the help overlay listing them (Esc, × or a click
 * beside it closes it); 1–9 pick a class, B/E/N the tools, [ ] the brush size, ↑/↓ and PageUp/PageDown the
 * slice, Ctrl+Z / Ctrl+Shift+Z undo and redo, H hides the labels, T trains and D densifies (as their buttons do).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { e2eMissing, startApp, type App } from './harness.js';
import { dataFile } from '../helpers/paths.js';
import { count, crop, dragVoxels, flush, labelReport, openByPath, shot, waitForUi, type UiWindow } from './ui-helpers.js';

const VOLUME = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const missing = e2eMissing() ?? (existsSync(VOLUME) ? null : `${VOLUME} missing`);
const cursorOf = (page: App['page']) => page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor);
const orange = (r: number, g: number, b: number) => r > 80 && r > g + 50 && r > b + 60;
/** orange overlay pixels in the xy view, without the focus ring (accent orange) along the view's edge */
const orangeInXy = async (page: App['page'], name?: string) => {
  const px = await shot(page, 'view-xy', name);
  return count(crop(px, px.width - 3, px.height - 3), orange);
};

describe.skipIf(missing)('UI keyboard shortcuts and their help overlay', () => {
  let app: App;
  let noEngine: string | null = null;

  beforeAll(async () => {
    app = await startApp();
    await waitForUi(app.page);
    const info = (await app.page.evaluate(() => (window as unknown as UiWindow).sliceform.systemInfo!())) as { engine: unknown; engineError?: string; features: Record<string, boolean> };
    if (!info.engine) noEngine = `no training engine: ${info.engineError ?? 'unknown'}`;
    else if (!info.features.training || !info.features.inference) noEngine = `compute features missing: ${JSON.stringify(info.features)}`;
    await openByPath(app.page, VOLUME);
    for (const id of ['show-3d-volume', 'show-3d-labels', 'show-3d-planes']) await app.page.uncheck(`[data-testid=${id}]`);
    await app.page.locator('[data-testid=view-xy]').hover();
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('? opens the help listing the shortcuts; Esc, the × and a click beside it close it', async () => {
    const { page } = app;
    const help = page.locator('[data-testid=shortcut-help]');
    await expect(help.isVisible()).resolves.toBe(false);
    await page.keyboard.press('?');
    await expect(help.isVisible()).resolves.toBe(true);
    const rows = await page.locator('[data-testid=shortcut-row]').allTextContents();
    expect(rows.length).toBeGreaterThanOrEqual(18);
    for (const [key, what] of [['T', 'train'], ['D', 'densify'], ['H', 'hide'], ['B', 'brush'], ['E', 'eraser'], ['[', 'smaller'], [']', 'larger'], ['Ctrl+Z', 'undo'], ['Ctrl+Shift+Z', 'redo'], ['PageUp', 'slices'], ['Esc', 'close'], ['1', 'class']])
      expect(rows.some((r) => r.startsWith(key) && r.includes(what)), `help lists ${key} (${what})`).toBe(true);
    await app.screenshot('ui-shortcuts-help');
    await page.keyboard.press('Escape');
    await expect(help.isVisible()).resolves.toBe(false);
    // the toolbar's ? button and the close button
    await page.click('[data-testid=shortcut-button]');
    await expect(help.isVisible()).resolves.toBe(true);
    await page.click('[data-testid=shortcut-close]');
    await expect(help.isVisible()).resolves.toBe(false);
    // a click beside the card
    await page.keyboard.press('?');
    await page.mouse.click(4, 400);
    await expect(help.isVisible()).resolves.toBe(false);
    // ? toggles
    await page.keyboard.press('?');
    await page.keyboard.press('?');
    await expect(help.isVisible()).resolves.toBe(false);
    // Esc without the help: back to the navigate tool
    await page.click('[data-testid=tool-brush]');
    await page.keyboard.press('Escape');
    await expect(page.getAttribute('[data-testid=tool-navigate]', 'class')).resolves.toContain('on');
  });

  it('picks tools, classes, brush size and slices; undoes and redoes; hides the labels', async () => {
    const { page } = app;
    await page.locator('[data-testid=view-xy]').hover();
    const on = (tool: string) => page.getAttribute(`[data-testid=tool-${tool}]`, 'class');
    await page.keyboard.press('b');
    expect(await on('brush')).toContain('on');
    await page.keyboard.press('e');
    expect(await on('eraser')).toContain('on');
    await page.keyboard.press('n');
    expect(await on('navigate')).toContain('on');
    await page.keyboard.press('2');
    expect(await page.textContent('[data-testid=active-class]')).toContain('class 2');
    expect(await on('brush')).toContain('on'); // a class key picks the brush too
    await page.keyboard.press('1');
    expect(await page.textContent('[data-testid=active-class]')).toContain('class 1');
    expect(await page.textContent('[data-testid=brush-size-label]')).toBe('4 px');
    await page.keyboard.press(']');
    await page.keyboard.press(']');
    expect(await page.textContent('[data-testid=brush-size-label]')).toBe('6 px');
    await page.keyboard.press('[');
    expect(await page.textContent('[data-testid=brush-size-label]')).toBe('5 px');

    const z0 = (await cursorOf(page))[2]!;
    expect(z0).toBe(50);
    await page.keyboard.press('ArrowUp');
    expect((await cursorOf(page))[2]).toBe(z0 + 1);
    await page.keyboard.press('PageUp');
    expect((await cursorOf(page))[2]).toBe(z0 + 11);
    await page.keyboard.press('PageDown');
    await page.keyboard.press('ArrowDown');
    expect((await cursorOf(page))[2]).toBe(z0);
    expect(await page.textContent('[data-testid=slice-label-xy]')).toBe(`${z0 + 1} / 100`);

    // a class-2 stroke, undone and redone from the keyboard
    await page.keyboard.press('2');
    await dragVoxels(page, 'xy', [[30, 40, z0], [50, 42, z0], [70, 44, z0]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const painted = (await labelReport(page, 'annotation')).counts[2] ?? 0;
    expect(painted).toBeGreaterThan(100);
    await page.keyboard.press('Control+z');
    await expect.poll(async () => (await labelReport(page, 'annotation')).counts[2] ?? 0).toBe(0);
    await page.keyboard.press('Control+Shift+Z');
    await expect.poll(async () => (await labelReport(page, 'annotation')).counts[2] ?? 0).toBe(painted);

    // H hides and shows the labels: the checkboxes follow and the orange overlay goes and comes back
    await page.keyboard.press('n');
    await flush(page);
    const shown = await orangeInXy(page);
    expect(shown).toBeGreaterThan(100);
    await page.keyboard.press('h');
    expect(await page.isChecked('[data-testid=show-annotation]')).toBe(false);
    expect(await page.isChecked('[data-testid=show-prediction]')).toBe(false);
    await flush(page);
    expect(await orangeInXy(page, 'ui-shortcuts-hidden')).toBeLessThan(10);
    await page.keyboard.press('H');
    expect(await page.isChecked('[data-testid=show-annotation]')).toBe(true);
    await flush(page);
    expect(await orangeInXy(page)).toBeGreaterThan(shown * 0.9);
  });

  it('T trains and D densifies, as their buttons do', async (ctx) => {
    if (noEngine) ctx.skip(noEngine);
    const { page } = app;
    const z = (await cursorOf(page))[2]!;
    // background strokes beside the class-2 one (which sits on a nucleus or not: any two classes train)
    await page.keyboard.press('1');
    await dragVoxels(page, 'xy', [[5, 8, z], [50, 8, z], [95, 10, z]]);
    await dragVoxels(page, 'xy', [[5, 92, z], [95, 94, z]]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    await page.selectOption('[data-testid=train-preset]', 'tiny');
    await page.fill('[data-testid=train-minutes]', '1');
    await page.fill('[data-testid=train-iterations]', '4');
    // keys typed into a field stay there: give the focus back to the view first
    await page.locator('[data-testid=view-xy]').focus();
    await page.keyboard.press('t');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-state'), { timeout: 150_000, intervals: [1000] }).toBe('done');
    expect(await page.textContent('[data-testid=train-status]')).toMatch(/Trained 4 iterations/);
    await page.keyboard.press('d');
    await expect.poll(() => page.textContent('[data-testid=densify-status]'), { timeout: 150_000, intervals: [1000] }).toContain('Done');
    const pred = await labelReport(page, 'prediction');
    expect(pred.counts.reduce((a, b) => a + b, 0)).toBe(100 * 100 * 100);
    // typing a T into a text field does not start anything
    await page.fill('[data-testid=open-path]', '');
    await page.locator('[data-testid=open-path]').focus();
    await page.keyboard.press('t');
    expect(await page.inputValue('[data-testid=open-path]')).toBe('t');
    expect(await page.getAttribute('[data-testid=training-panel]', 'data-state')).toBe('done');
    expect(app.pageErrors.filter((e) => !e.includes('frame-ancestors'))).toEqual([]);
  });
});
