/**
 * Issue 13's live loop in the app (Chromium, web shell) on the real plant nuclei 1135: brush strokes of two
 * classes on the middle planes start a live training session without pressing anything, and a preview of the
 * shown slices appears (outlined layer with a "preview · iteration N" badge). A background correction painted
 * over a region the preview calls nucleus although the ground truth says background flips that region to
 * background in the next previews (asserted on the API's getPreview data in the page, not on pixels). The
 * panel says "not yet seen by the model" right after a stroke and clears it once the model has used it.
 * Stop, then Continue: the session warm-starts, and its first loss is within 20 % of the last one before.
 * Densify while the session runs pauses it and densifies with its model (the status names the model).
 * Measured 2026-12-01 at load 17-19 on the 2 shared cores (three runs): first preview 109-134 s after the first
 * stroke (painting included), the correction flipped (below 30 % still nucleus) 140-290 s later at about 0.4
 * iterations/s, 4.5-7.5 min in all (not measured on a quiet machine); the timeouts leave room for such a load.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { e2eMissing, startApp, type App } from './harness.js';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { dragVoxels, openByPath, shot, waitForUi, type Plane, type UiWindow } from './ui-helpers.js';
import { readVolume } from '../../main/io/index.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const missing = e2eMissing() ?? (existsSync(H5) ? null : `${H5} missing`);
const N = 100;

interface LiveLog {
  progress: Array<{ jobId: string; iteration: number; loss: number; seen?: number; startIteration?: number; warmStartFrom?: string }>;
  previews: Array<{ plane: Plane; index: number; iteration: number; revision: number; latencyMs?: number }>;
  statusTexts: string[];
}
type LiveWindow = UiWindow & {
  __liveLog: LiveLog;
  __sliceformUi: UiWindow['__sliceformUi'] & {
    previews(): { shown: Record<Plane, { iteration: number; revision: number; index: number } | null>; revision: number };
  };
};

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

/** voxel of pixel (u, v) of a plane slice (api.ts: xy at z, xz at y, yz at x; u fastest) */
function voxelOf(plane: Plane, index: number, u: number, v: number): [number, number, number] {
  return plane === 'xy' ? [u, v, index] : plane === 'xz' ? [u, index, v] : [index, u, v];
}

describe.skipIf(missing)('live loop in the app (1135)', () => {
  let app: App;
  let truth: Uint8Array;
  const at = (x: number, y: number, z: number) => truth[(z * N + y) * N + x]!;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const gt = await readVolume(H5, { dataset: 'label' });
    truth = Uint8Array.from(gt.data as ArrayLike<number>, (v) => (v > 0 ? 2 : 1));
    app = await startApp({ live: true });
    await waitForUi(app.page);
    await openByPath(app.page, H5);
    // what the API says, recorded in the page from its own events (independent of the panel's drawing)
    await app.page.evaluate(() => {
      const w = window as unknown as LiveWindow & { sliceform: { onTrainProgress(cb: (p: never) => void): void; onPreview(cb: (e: never) => void): void } };
      const log: LiveLog = { progress: [], previews: [], statusTexts: [] };
      w.__liveLog = log;
      w.sliceform.onTrainProgress((p: { jobId: string; iteration: number; loss: number; seenRevision?: Record<string, number>; startIteration?: number; warmStartFrom?: string }) =>
        log.progress.push({ jobId: p.jobId, iteration: p.iteration, loss: p.loss, seen: p.seenRevision?.[w.__sliceformUi.volumeId!], startIteration: p.startIteration, warmStartFrom: p.warmStartFrom }),
      );
      w.sliceform.onPreview((e: { plane: Plane; index: number; iteration: number; revision: number; latencyMs?: number }) => log.previews.push(e));
      const status = document.querySelector('[data-testid=train-status]')!;
      new MutationObserver(() => log.statusTexts.push(status.textContent ?? '')).observe(status, { childList: true, characterData: true, subtree: true });
    });
  });
  afterAll(async () => {
    if (app) {
      // end the session so the server stops promptly
      await app.page.click('[data-testid=live-stop]', { timeout: 2000 }).catch(() => {});
      await app.cleanup();
    }
  });

  it('paint -> preview without a button; a correction flips; not-yet-seen shows and clears; stop/continue keeps the loss', async () => {
    const { page } = app;
    const t0 = Date.now();
    const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
    await page.click('[data-testid=tool-brush]');
    // strokes along a few rows of the middle xy (z = 50), xz (y = 50) and yz (x = 50) slices, on the truth's classes
    const strokes: Array<{ plane: Plane; cls: number; pts: Array<[number, number, number]> }> = [];
    for (const r of [20, 44, 58, 80]) {
      for (const run of runs(Array.from({ length: N }, (_, x) => at(x, r, 50)), 9, 3)) strokes.push({ plane: 'xy', cls: run.cls, pts: [[run.a, r, 50], [run.b, r, 50]] });
      for (const run of runs(Array.from({ length: N }, (_, x) => at(x, 50, r)), 9, 3)) strokes.push({ plane: 'xz', cls: run.cls, pts: [[run.a, 50, r], [run.b, 50, r]] });
      for (const run of runs(Array.from({ length: N }, (_, y) => at(50, y, r)), 9, 3)) strokes.push({ plane: 'yz', cls: run.cls, pts: [[50, run.a, r], [50, run.b, r]] });
    }
    expect(strokes.filter((s) => s.cls === 2).length).toBeGreaterThan(3);
    for (const cls of [2, 1]) {
      await page.keyboard.press(String(cls));
      for (const s of strokes.filter((t) => t.cls === cls)) await dragVoxels(page, s.plane, s.pts, 4);
    }
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());

    // 1. the live session starts by itself (Train was never pressed) and a preview appears in the views
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-live'), { timeout: 60_000, intervals: [500] }).toBe('running');
    expect(await page.isChecked('[data-testid=live-toggle]')).toBe(true);
    expect(await page.getAttribute('[data-testid=training-panel]', 'data-state')).toBeNull(); // no timed training
    await expect
      .poll(() => page.evaluate(() => (window as unknown as LiveWindow).__sliceformUi.previews().shown.xy?.iteration ?? -1), { timeout: 180_000, intervals: [1000] })
      .toBeGreaterThanOrEqual(1);
    console.log(`ui-live: first preview after ${elapsed()}`);
    expect(await page.isVisible('[data-testid=preview-badge-xy]')).toBe(true);
    expect(await page.textContent('[data-testid=preview-badge-xy]')).toMatch(/^preview · iteration \d+$/);
    await shot(page, 'view-xy', 'ui-live-preview-xy');

    // 2. a false-positive region: pixels the preview calls nucleus where the truth says background, with a
    //    background 3x3 neighbourhood (so a 1-pixel brush paints only truth background); the shown planes first,
    //    then other unpainted xy slices
    const fpOf = async (plane: Plane, index: number) => {
      const p = await page.evaluate(
        async ({ plane, index }) => {
          const w = window as unknown as LiveWindow & { sliceform: { getPreview(r: unknown): Promise<{ width: number; height: number; labels: Uint8Array; revision: number; iteration: number }> } };
          try {
            const r = await w.sliceform.getPreview({ volumeId: w.__sliceformUi.volumeId, plane, index });
            return { width: r.width, height: r.height, labels: Array.from(r.labels), revision: r.revision, iteration: r.iteration };
          } catch (e) {
            return { error: String(e) };
          }
        },
        { plane, index },
      );
      if ('error' in p) return null;
      const fp: Array<[number, number]> = [];
      for (let v = 1; v < p.height - 1; v++)
        for (let u = 1; u < p.width - 1; u++) {
          if (p.labels[v * p.width + u] !== 2) continue;
          let bg = true;
          for (let dv = -1; dv <= 1 && bg; dv++) for (let du = -1; du <= 1 && bg; du++) bg = at(...voxelOf(plane, index, u + du, v + dv)) === 1;
          if (bg) fp.push([u, v]);
        }
      return { ...p, fp };
    };
    let target: { plane: Plane; index: number; fp: Array<[number, number]>; iteration: number } | null = null;
    for (const [plane, index] of [['xy', 50], ['xz', 50], ['yz', 50], ['xy', 35], ['xy', 65], ['xy', 25], ['xy', 75]] as Array<[Plane, number]>) {
      const cur = await page.evaluate((p) => (window as unknown as UiWindow).__sliceformUi.cursor[p === 'xy' ? 2 : p === 'xz' ? 1 : 0]!, plane);
      if (cur !== index) {
        // the slider as a user drags it (Playwright cannot fill a range input)
        await page.evaluate(
          ({ plane, index }) => {
            const s = document.querySelector(`[data-testid=slice-slider-${plane}]`) as HTMLInputElement;
            s.value = String(index);
            s.dispatchEvent(new Event('input', { bubbles: true }));
          },
          { plane, index },
        );
        await expect
          .poll(() => page.evaluate((p) => (window as unknown as LiveWindow).__sliceformUi.previews().shown[p]?.index ?? -1, plane), { timeout: 60_000, intervals: [1000] })
          .toBe(index);
      }
      const r = await fpOf(plane, index);
      if (r && r.fp.length >= 20) {
        target = { plane, index, fp: r.fp, iteration: r.iteration };
        break;
      }
    }
    expect(target, 'no false-positive region of 20 pixels in the previews of the middle and four unpainted xy slices').not.toBeNull();
    const { plane, index, fp } = target!;
    console.log(`ui-live: ${fp.length} false-positive pixels on ${plane} ${index} at iteration ${target!.iteration} (${elapsed()})`);

    // strokes along the rows of that region, class 1 (background), brush radius 1
    for (let i = 0; i < 3; i++) await page.keyboard.press('[');
    await page.keyboard.press('1');
    const rows = new Map<number, number[]>();
    for (const [u, v] of fp) (rows.get(v) ?? rows.set(v, []).get(v)!).push(u);
    const corr: Array<Array<[number, number, number]>> = [];
    for (const [v, us] of rows) {
      us.sort((a, b) => a - b);
      let s = 0;
      for (let i = 1; i <= us.length; i++) {
        if (i < us.length && us[i] === us[i - 1]! + 1) continue;
        if (i - s >= 2) corr.push([voxelOf(plane, index, us[s]!, v), voxelOf(plane, index, us[i - 1]!, v)]);
        s = i;
      }
    }
    expect(corr.length).toBeGreaterThan(0);
    const unseenBefore = Number((await page.getAttribute('[data-testid=training-panel]', 'data-unseen-shown')) ?? 0);
    for (const pts of corr.sort((a, b) => Math.abs(b[1]![0] - b[0]![0]) + Math.abs(b[1]![1] - b[0]![1]) - Math.abs(a[1]![0] - a[0]![0]) - Math.abs(a[1]![1] - a[0]![1])).slice(0, 25)) await dragVoxels(page, plane, pts, 3);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const revision = await page.evaluate(() => (window as unknown as LiveWindow).__sliceformUi.previews().revision);
    // the corrected pixels: painted background now, and nucleus in the preview before
    const corrected = await page.evaluate(
      async ({ plane, index, fp }) => {
        const w = window as unknown as UiWindow & { sliceform: { getLabelSlice(r: unknown): Promise<{ width: number; data: Uint8Array }> } };
        const s = await w.sliceform.getLabelSlice({ volumeId: w.__sliceformUi.volumeId, layer: 'annotation', plane, index });
        return fp.filter(([u, v]) => s.data[v * s.width + u] === 1);
      },
      { plane, index, fp },
    );
    expect(corrected.length).toBeGreaterThanOrEqual(10);

    // 3. "not yet seen by the model" appeared after the stroke, and clears once the model has used it
    await expect.poll(async () => Number((await page.getAttribute('[data-testid=training-panel]', 'data-unseen-shown')) ?? 0), { timeout: 10_000, intervals: [200] }).toBeGreaterThan(unseenBefore);
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-unseen'), { timeout: 120_000, intervals: [500] }).toBe('0');
    expect(await page.isHidden('[data-testid=live-unseen]')).toBe(true);
    const seen = await page.evaluate(() => (window as unknown as LiveWindow).__liveLog.progress.at(-1)?.seen ?? -1);
    expect(seen).toBeGreaterThanOrEqual(revision);

    // 4. within the next previews of that slice (weights that have seen the correction) the region flips
    const stillFg = async () => {
      const r = await page.evaluate(
        async ({ plane, index }) => {
          const w = window as unknown as UiWindow & { sliceform: { getPreview(r: unknown): Promise<{ width: number; labels: Uint8Array; revision: number; iteration: number }> } };
          const p = await w.sliceform.getPreview({ volumeId: w.__sliceformUi.volumeId, plane, index });
          return { width: p.width, labels: Array.from(p.labels), revision: p.revision, iteration: p.iteration };
        },
        { plane, index },
      );
      if (r.revision < revision) return { fraction: 1, iteration: r.iteration };
      return { fraction: corrected.filter(([u, v]) => r.labels[v * r.width + u] === 2).length / corrected.length, iteration: r.iteration };
    };
    let last = { fraction: 1, iteration: 0 };
    await expect
      .poll(
        async () => {
          last = await stillFg();
          return last.fraction;
        },
        { timeout: 240_000, intervals: [2000] },
      )
      .toBeLessThan(0.3);
    console.log(`ui-live: ${corrected.length} corrected pixels, ${(100 * last.fraction).toFixed(0)} % still nucleus at iteration ${last.iteration} (${elapsed()})`);

    // 5. stop, then continue: a warm start, the loss carries on
    await page.click('[data-testid=live-stop]');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-live'), { timeout: 90_000, intervals: [500] }).toBe('stopped');
    const firstJob = await page.getAttribute('[data-testid=training-panel]', 'data-live-job-id');
    const before = await page.evaluate((id) => (window as unknown as LiveWindow).__liveLog.progress.filter((p) => p.jobId === id && p.iteration > 0 && Number.isFinite(p.loss)).at(-1) ?? null, firstJob);
    expect(before, 'no finite loss reported by the first session').not.toBeNull();
    await page.click('[data-testid=live-continue]');
    await expect.poll(() => page.getAttribute('[data-testid=training-panel]', 'data-live'), { timeout: 30_000, intervals: [500] }).toBe('running');
    const secondJob = await page.getAttribute('[data-testid=training-panel]', 'data-live-job-id');
    expect(secondJob).not.toBe(firstJob);
    await expect
      .poll(() => page.evaluate((id) => (window as unknown as LiveWindow).__liveLog.progress.some((p) => p.jobId === id && p.iteration > 0 && Number.isFinite(p.loss)), secondJob), { timeout: 90_000, intervals: [500] })
      .toBe(true);
    const after = await page.evaluate((id) => (window as unknown as LiveWindow).__liveLog.progress.find((p) => p.jobId === id && p.iteration > 0 && Number.isFinite(p.loss))!, secondJob);
    console.log(`ui-live: loss ${before!.loss.toFixed(4)} at iteration ${before!.iteration} before stopping, ${after.loss.toFixed(4)} at ${after.iteration} after continuing (start ${after.startIteration}, from ${after.warmStartFrom}) (${elapsed()})`);
    expect(after.startIteration ?? 0).toBeGreaterThanOrEqual(before!.iteration);
    expect(after.iteration).toBeGreaterThan(before!.iteration);
    expect(Math.abs(after.loss - before!.loss) / before!.loss).toBeLessThanOrEqual(0.2);

    await shot(page, 'training-panel', 'ui-live-panel');

    // 6. Densify during the live session pauses it and densifies with its model, naming the model
    await page.click('[data-testid=densify]');
    await expect.poll(() => page.textContent('[data-testid=densify-status]'), { timeout: 240_000, intervals: [2000] }).toMatch(/^Done with model "[^"]+" \(\d+ iterations, trained /);
    expect(await page.getAttribute('[data-testid=training-panel]', 'data-live')).toBe('stopped');
    console.log(`ui-live: densified with the live model (${elapsed()}): ${await page.textContent('[data-testid=densify-status]')}`);

    // never "iteration 0 · loss NaN" in the panel
    const texts = await page.evaluate(() => (window as unknown as LiveWindow).__liveLog.statusTexts);
    expect(texts.length).toBeGreaterThan(0);
    expect(texts.filter((t) => /NaN|iteration 0\b/.test(t))).toEqual([]);
    expect(app.pageErrors.filter((e) => !/favicon/.test(e))).toEqual([]);
    console.log(`ui-live: done in ${elapsed()}`);
  }, 780_000);
});
