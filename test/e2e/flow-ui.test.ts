/**
 * The annotate → train → densify → export loop by clicks in the UI, through the web shell in Chromium.
 * Real data: plant-seg nuclei 1135_mini.h5; strokes follow runs of its ground truth on one xy and one xz slice
 * (foreground runs painted as class 2, background runs as class 1).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { e2eMissing, startApp, type App } from './harness.js';
import { apiLabels, dragVoxels, flush, openByPath, shot, waitForUi, type Plane, type UiWindow } from './ui-helpers.js';
import { ARTIFACTS, DEBIAN_PYTHON, REPO, dataFile } from '../helpers/paths.js';
import { readVolume } from '../../main/io/index.js';

const VOLUME = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const missing = e2eMissing() ?? (existsSync(VOLUME) ? null : `${VOLUME} missing`) ?? (existsSync(join(REPO, 'renderer', 'src', 'app.ts')) ? null : 'the UI is not there');

type Seg = { plane: Plane; cls: 1 | 2; from: [number, number, number]; to: [number, number, number] };

/** Horizontal runs of >= 14 voxels that are all foreground or all background in the truth, away from edges. */
function runs(truth: Uint8Array | Uint16Array, X: number, Y: number, plane: Plane, index: number, perClass = 2): Seg[] {
  const out: Seg[] = [];
  const at = (u: number, v: number) => (plane === 'xy' ? truth[(index * Y + v) * X + u]! : truth[(v * Y + index) * X + u]!);
  const H = plane === 'xy' ? Y : 100;
  const want = { 1: perClass, 2: perClass };
  for (let v = 10; v < H - 10 && (want[1] || want[2]); v += 9) {
    for (let u = 8; u + 14 < X - 8; u++) {
      const fg = at(u, v) > 0;
      let n = 0;
      while (u + n < X - 8 && at(u + n, v) > 0 === fg && (v < 2 || at(u + n, v - 2) > 0 === fg) && at(u + n, v + 2) > 0 === fg) n++;
      const cls = fg ? 2 : 1;
      if (n >= 14 && want[cls] > 0) {
        want[cls]--;
        const p = (uu: number): [number, number, number] => (plane === 'xy' ? [uu, v, index] : [uu, index, v]);
        out.push({ plane, cls, from: p(u + 3), to: p(u + n - 4) });
      }
      u += Math.max(n, 1);
    }
  }
  return out;
}

describe.skipIf(missing)('UI flow by clicks in Chromium via the web shell', () => {
  let app: App;
  const exported = join(ARTIFACTS, 'flow-ui-labels.tif');
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    rmSync(exported, { force: true });
    app = await startApp();
    await waitForUi(app.page);
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('opens, paints on xy and xz, trains, densifies, shows the overlay and exports', async () => {
    const page = app.page;
    /** the first job of `kind` once it left queued/running (polled from here: the UI shows the same through onJob) */
    const settled = async (kind: string, timeoutMs: number) => {
      const t0 = Date.now();
      for (;;) {
        const jobs = (await page.evaluate(() => (window as unknown as UiWindow).sliceform.listJobs!())) as Array<{ kind: string; state: string }>;
        const j = jobs.find((x) => x.kind === kind && x.state !== 'queued' && x.state !== 'running');
        if (j) return j;
        if (Date.now() - t0 > timeoutMs) throw new Error(`${kind} did not finish in ${timeoutMs} ms: ${JSON.stringify(jobs)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    const truth = await readVolume(VOLUME, { dataset: 'label' });
    const { x: X, y: Y } = truth.shape;
    const segs = [...runs(truth.data as Uint8Array, X, Y, 'xy', 50), ...runs(truth.data as Uint8Array, X, Y, 'xz', 30)];
    expect(segs.filter((s) => s.cls === 2).length).toBeGreaterThanOrEqual(2);

    await openByPath(page, VOLUME);
    // navigate: a click in xy at y = 30 moves the xz view to that slice (xy stays at z = 50)
    await page.keyboard.press('n');
    const p = await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.voxelToPage('xy', 50, 30, 50));
    await page.mouse.click(p.x, p.y);
    await flush(page);
    expect(await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.cursor)).toEqual([50, 30, 50]);
    await page.keyboard.press('b');
    for (let i = 0; i < 10; i++) await page.keyboard.press('[');
    for (const s of segs) {
      await page.keyboard.press(String(s.cls));
      await dragVoxels(page, s.plane, [s.from, s.to]);
    }
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const ann = await apiLabels(page, 'annotation');
    const painted = ann.data.reduce((n, v) => n + (v ? 1 : 0), 0);
    expect(painted).toBeGreaterThan(50);
    const classes = new Set(ann.data.filter((v) => v > 0));
    expect([...classes].sort()).toEqual([1, 2]);
    const before = await shot(page, 'view-xy', 'flow-ui-before');

    // train the tiny preset for a few iterations, then densify
    await page.selectOption('[data-testid=train-preset]', 'tiny');
    await page.fill('[data-testid=train-iterations]', '15');
    await page.fill('[data-testid=train-minutes]', '2');
    await page.click('[data-testid=train-start]');
    await settled('train', 180_000);
    const jobs = (await page.evaluate(() => (window as unknown as UiWindow).sliceform.listJobs!())) as Array<{ kind: string; state: string; error?: unknown }>;
    expect(jobs.find((j) => j.kind === 'train'), JSON.stringify(jobs)).toMatchObject({ state: 'done' });
    await page.click('[data-testid=densify]');
    const dj = await settled('densify', 120_000);
    expect(dj, JSON.stringify(dj)).toMatchObject({ state: 'done' });
    await page.waitForFunction(() => !!(window as unknown as UiWindow).__sliceformUi.app.store.prediction, null, { timeout: 30_000 });
    await flush(page);
    await page.waitForTimeout(500);
    const after = await shot(page, 'view-xy', 'flow-ui-after');
    // the prediction overlay changed the xy view: orange-ish (class 2) pixels appeared
    const orange = (p: typeof after) => {
      let n = 0;
      for (let i = 0; i < p.data.length; i += 3) if (p.data[i]! > 150 && p.data[i]! > p.data[i + 1]! + 40 && p.data[i + 1]! > p.data[i + 2]! + 20) n++;
      return n;
    };
    expect(orange(after)).toBeGreaterThan(orange(before) + 200);
    await app.screenshot('flow-ui-page');

    // export through the Files panel, then read it back independently
    await page.fill('[data-testid=export-path]', exported);
    await page.selectOption('[data-testid=export-layer]', 'merged');
    await page.selectOption('[data-testid=export-format]', 'tiff');
    await page.click('[data-testid=export-button]');
    await page.waitForFunction((p) => document.querySelector('[data-testid=export-result]')?.textContent?.includes(p.split('/').pop()!), exported, { timeout: 60_000 });
    const py = spawnSync(
      DEBIAN_PYTHON,
      ['-c', 'import sys,tifffile; a=tifffile.imread(sys.argv[1]); print(a.shape, a.dtype); sys.stdout.flush(); open(sys.argv[2],"wb").write(a.astype("uint8").tobytes())', exported, exported + '.raw'],
      { encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    expect(py.stdout.trim()).toBe('(100, 100, 100) uint8');
    const back = new Uint8Array(readFileSync(exported + '.raw'));
    rmSync(exported + '.raw');
    let mismatches = 0;
    ann.data.forEach((v, i) => {
      if (v && back[i] !== v) mismatches++;
    });
    expect(mismatches).toBe(0);
  });
});

if (missing) it('UI flow (skipped)', () => console.warn(`skipped: ${missing}`));
