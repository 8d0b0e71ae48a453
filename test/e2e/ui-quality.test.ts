/**
 * Issue 18's app acceptance, as a new user works: on the real plant nuclei 1135, brush strokes (not whole
 * slices) of both classes along a few rows of the middle xy, xz and yz slices, placed where the ground truth
 * says nucleus or background; train the desktop preset for 1.5 minutes from the Training panel; densify. The
 * densified nucleus fraction must be within 5 points of the truth's (23.3 %; a new user got 48 % before the app
 * trained through the CLI's recipe) and the nucleus IoU over all voxels above a floor measured on this machine
 * under load (docs/densify.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { e2eMissing, startApp, type App } from './harness.js';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { apiLabels, dragVoxels, labelReport, openByPath, waitForUi, type Plane, type UiWindow } from './ui-helpers.js';
import { readVolume } from '../../main/io/index.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const missing = e2eMissing() ?? (existsSync(H5) ? null : `${H5} missing`);
const N = 100;
/**
 * Nucleus IoU floor (all voxels) after 1.5 min of training: measured 0.745 (20.4 % predicted nucleus) on the
 * 2-core machine at load 6-8, 2026-12-01; the floor leaves room for a loaded CI machine (fewer steps).
 */
const IOU_FLOOR = 0.65;

/** Runs of one class at least `min` long along a line of the truth, shortened by `trim` at both ends. */
function runs(line: number[], min: number, trim: number): Array<{ cls: number; a: number; b: number }> {
  const out: Array<{ cls: number; a: number; b: number }> = [];
  let s = 0;
  for (let i = 1; i <= line.length; i++) {
    if (i < line.length && line[i] === line[s]) continue;
    if (i - s >= min) out.push({ cls: line[s]!, a: s + trim, b: i - 1 - trim });
    s = i;
  }
  return out;
}

describe.skipIf(missing)('densify quality in the app from brush strokes (1135)', () => {
  let app: App;
  let truth: Uint8Array;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const gt = await readVolume(H5, { dataset: 'label' });
    truth = Uint8Array.from(gt.data as ArrayLike<number>, (v) => (v > 0 ? 2 : 1));
    app = await startApp();
    await waitForUi(app.page);
    await openByPath(app.page, H5);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('strokes of two classes -> densified nucleus fraction within 5 points of the truth, IoU above the floor', async () => {
    const { page } = app;
    const at = (x: number, y: number, z: number) => truth[(z * N + y) * N + x]!;
    await page.click('[data-testid=tool-brush]');
    // strokes along rows of the middle xy (z = 50), xz (y = 50) and yz (x = 50) slices
    const strokes: Array<{ plane: Plane; cls: number; pts: Array<[number, number, number]> }> = [];
    for (const r of [12, 30, 44, 58, 72, 88]) {
      for (const run of runs(Array.from({ length: N }, (_, x) => at(x, r, 50)), 9, 3)) strokes.push({ plane: 'xy', cls: run.cls, pts: [[run.a, r, 50], [run.b, r, 50]] });
      for (const run of runs(Array.from({ length: N }, (_, x) => at(x, 50, r)), 9, 3)) strokes.push({ plane: 'xz', cls: run.cls, pts: [[run.a, 50, r], [run.b, 50, r]] });
      for (const run of runs(Array.from({ length: N }, (_, y) => at(50, y, r)), 9, 3)) strokes.push({ plane: 'yz', cls: run.cls, pts: [[50, run.a, r], [50, run.b, r]] });
    }
    expect(strokes.filter((s) => s.cls === 2).length).toBeGreaterThan(5);
    for (const cls of [2, 1]) {
      await page.keyboard.press(String(cls));
      for (const s of strokes.filter((t) => t.cls === cls)) await dragVoxels(page, s.plane, s.pts, 4);
    }
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const ann = await labelReport(page, 'annotation');
    // strokes, not slices: a few percent of each painted plane
    expect(ann.counts[1]! + ann.counts[2]!).toBeLessThan(0.3 * 3 * N * N);
    expect(ann.counts[2]).toBeGreaterThan(100);
    // every painted voxel agrees with the truth (the strokes keep 3 voxels off every border)
    const painted = await apiLabels(page, 'annotation');
    let wrong = 0;
    for (let i = 0; i < painted.data.length; i++) if (painted.data[i] && painted.data[i] !== truth[i]) wrong++;
    expect(wrong / (ann.counts[1]! + ann.counts[2]!)).toBeLessThan(0.05);

    await page.selectOption('[data-testid=train-preset]', 'desktop');
    await page.fill('[data-testid=train-minutes]', '1.5');
    await page.fill('[data-testid=train-iterations]', '');
    await page.click('[data-testid=train-start]');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-state'), { timeout: 400_000, intervals: [2000] }).toBe('done');
    await page.click('[data-testid=densify]');
    await expect.poll(() => page.textContent('[data-testid=densify-status]'), { timeout: 300_000, intervals: [2000] }).toContain('Done');
    const pred = await apiLabels(page, 'prediction');
    let fg = 0;
    let tfg = 0;
    let inter = 0;
    let union = 0;
    for (let i = 0; i < truth.length; i++) {
      const p = pred.data[i] === 2;
      const t = truth[i] === 2;
      if (p) fg++;
      if (t) tfg++;
      if (p && t) inter++;
      if (p || t) union++;
    }
    const iou = inter / union;
    console.log(`ui-quality: predicted nucleus ${(100 * fg / truth.length).toFixed(1)} % (truth ${(100 * tfg / truth.length).toFixed(1)} %), IoU ${iou.toFixed(3)}`);
    expect(Math.abs(fg - tfg) / truth.length).toBeLessThan(0.05);
    expect(iou).toBeGreaterThan(IOU_FLOOR);
  }, 900_000);
});
