/**
 * Objects in the UI (Chromium, web shell) on the real 1135 plant-nuclei stack: paint a few strokes (nucleus /
 * background, placed from the real ground truth), train the tiny preset, densify; the Objects panel then
 * finds the instances by itself. Clicking a row moves the crosshair to that object's centroid; a merge (two
 * rows selected) takes one object off the table and Undo brings the table back.
 * Skips (saying why) when the compute process reports no training engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { e2eMissing, startApp, type App } from './harness.js';
import { dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';
import { dragVoxels, flush, openByPath, shot, waitForUi, type Pixels, type UiWindow } from './ui-helpers.js';

const STACK = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const missing = e2eMissing() ?? (existsSync(STACK) ? null : `${STACK} missing`);

interface Row {
  id: number;
  voxels: number;
  centroid: [number, number, number];
}

/** straight runs of voxels of one kind (nucleus / background) in a slice of the truth, for strokes */
function runsIn(label: ArrayLike<number>, z: number, want: (v: number) => boolean, n: number): Array<[[number, number, number], [number, number, number]]> {
  const out: Array<[[number, number, number], [number, number, number]]> = [];
  for (let y = 5; y < 95 && out.length < n; y += 7) {
    let start = -1;
    for (let x = 0; x < 100; x++) {
      const ok = want(label[(z * 100 + y) * 100 + x]!) && x < 99;
      if (ok && start < 0) start = x;
      if (!ok && start >= 0) {
        if (x - start >= 12) out.push([[start + 3, y, z], [x - 4, y, z]]);
        start = -1;
      }
    }
  }
  return out;
}

/** saturated colours (label overlay, not grey image data) quantised to 32 levels, counted if they cover >= 20 pixels */
function distinctColours(p: Pixels): number {
  const n = new Map<number, number>();
  for (let i = 0; i < p.width * p.height; i++) {
    const r = p.data[3 * i]!;
    const g = p.data[3 * i + 1]!;
    const b = p.data[3 * i + 2]!;
    if (Math.max(r, g, b) - Math.min(r, g, b) < 40) continue;
    const k = ((r >> 5) << 6) | ((g >> 5) << 3) | (b >> 5);
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n.values()].filter((c) => c >= 20).length;
}

describe.skipIf(missing)('UI objects after densify on the real 1135 stack', () => {
  let app: App;
  let noEngine: string | null = null;

  beforeAll(async () => {
    app = await startApp();
    await waitForUi(app.page);
    const info = (await app.page.evaluate(() => (window as unknown as UiWindow).sliceform.systemInfo!())) as { engine: unknown; engineError?: string; features: Record<string, boolean> };
    if (!info.engine) noEngine = `no training engine: ${info.engineError ?? 'unknown'}`;
    else if (!info.features.training || !info.features.inference) noEngine = `compute features missing: ${JSON.stringify(info.features)}`;
    await openByPath(app.page, STACK);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('densify → object table; row click jumps the crosshair; merge and undo change the table', async (ctx) => {
    if (noEngine) ctx.skip(noEngine);
    const { page } = app;
    const gt = await readVolume(STACK, { dataset: 'label' });
    const z = (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor))[2] as number;
    await page.click('[data-testid=tool-brush]');
    await page.keyboard.press('2');
    for (const [a, b] of runsIn(gt.data, z, (v) => v > 0, 6)) await dragVoxels(page, 'xy', [a, b]);
    await page.keyboard.press('1');
    for (const [a, b] of runsIn(gt.data, z, (v) => v === 0, 8)) await dragVoxels(page, 'xy', [a, b]);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    await page.click('[data-testid=tool-navigate]');

    await page.selectOption('[data-testid=train-preset]', 'tiny');
    await page.fill('[data-testid=train-minutes]', '1');
    await page.fill('[data-testid=train-iterations]', '40');
    await page.click('[data-testid=train-start]');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-state'), { timeout: 200_000, intervals: [1000] }).toBe('done');
    await page.click('[data-testid=densify]');
    await expect.poll(() => page.textContent('[data-testid=densify-status]'), { timeout: 200_000, intervals: [1000] }).toContain('Done');

    // the objects of the densify result appear by themselves
    await expect.poll(async () => Number((await page.getAttribute('[data-testid=objects-panel]', 'data-count')) || 0), { timeout: 90_000, intervals: [500] }).toBeGreaterThan(1);
    const count0 = Number(await page.getAttribute('[data-testid=objects-panel]', 'data-count'));
    expect(await page.locator('[data-testid=objects-row]').count()).toBe(count0);
    const table = (await page.evaluate(async () => {
      const w = window as unknown as UiWindow;
      return w.sliceform.getObjects!({ volumeId: w.__sliceformUi.volumeId });
    })) as { objects: Row[] };
    expect(table.objects.length).toBe(count0);

    // sort by volume, largest first (two clicks), then click the first row: the crosshair moves to its centroid
    await page.click('[data-testid=objects-sort-volumeUm3]');
    await page.click('[data-testid=objects-sort-volumeUm3]');
    const firstId = Number(await page.getAttribute('[data-testid=objects-row] >> nth=0', 'data-id'));
    const biggest = [...table.objects].sort((a, b) => b.voxels - a.voxels || a.id - b.id)[0]!;
    expect(firstId).toBe(biggest.id);
    const now = (await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor)) as number[];
    const target = table.objects.find((o) => o.centroid.join() !== now.join() && o.centroid[2] !== now[2]) ?? biggest;
    await page.click(`[data-testid=objects-row][data-id="${target.id}"]`);
    await expect.poll(() => page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor)).toEqual(target.centroid);
    // the object map follows the crosshair's slice
    await expect.poll(() => page.getAttribute('[data-testid=objects-canvas]', 'data-z')).toBe(String(target.centroid[2]));

    // merge two objects (select two rows), then undo
    const rows = page.locator('[data-testid=objects-row]');
    const idA = Number(await rows.nth(0).getAttribute('data-id'));
    const idB = Number(await rows.nth(1).getAttribute('data-id'));
    await rows.nth(0).click();
    await rows.nth(1).click({ modifiers: ['Control'] });
    await page.click('[data-testid=objects-merge]');
    await expect.poll(async () => Number(await page.getAttribute('[data-testid=objects-panel]', 'data-count')), { timeout: 30_000 }).toBe(count0 - 1);
    expect(await page.locator(`[data-testid=objects-row][data-id="${Math.max(idA, idB)}"]`).count()).toBe(0);
    expect(await page.textContent('[data-testid=objects-status]')).toMatch(/1 edit to undo/);
    await page.click('[data-testid=objects-undo]');
    await expect.poll(async () => Number(await page.getAttribute('[data-testid=objects-panel]', 'data-count')), { timeout: 30_000 }).toBe(count0);
    expect(await page.locator(`[data-testid=objects-row][data-id="${Math.max(idA, idB)}"]`).count()).toBe(1);

    // colour the objects in the views: the xy view shows many distinct label colours instead of two classes
    await page.click('[data-testid=tool-navigate]');
    await flush(page, ['xy', '3d']);
    const before = distinctColours(await shot(page, 'view-xy', 'objects-xy-classes'));
    const before3d = distinctColours(await shot(page, 'view-3d', 'objects-3d-classes'));
    await page.check('[data-testid=objects-colour-views]');
    await expect.poll(() => page.getAttribute('[data-testid=objects-panel]', 'data-coloured-views'), { timeout: 30_000 }).toBe('1');
    await flush(page, ['xy', '3d']);
    const after = distinctColours(await shot(page, 'view-xy', 'objects-xy-instances'));
    expect(after).toBeGreaterThan(before + 3);
    // and in 3D (the rendered label volume takes the object palette too)
    expect(distinctColours(await shot(page, 'view-3d', 'objects-3d-instances'))).toBeGreaterThan(before3d + 3);
    await page.uncheck('[data-testid=objects-colour-views]');
    expect(app.pageErrors).toEqual([]);
  }, 600_000);
});
