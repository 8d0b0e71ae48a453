/**
 * E2E (Chromium via the web shell): a 3 GiB OME-Zarr (1024×1024×512 × 3 channels uint16) opens out of core,
 * the 3D view shows its 3D level (1/4), the slice views the file's slices at full resolution (fetched on
 * demand: 1024 px wide, values equal to python3-zarr's), a brush stroke on the xy view lands on the server at
 * the file voxels drawn (not 4×4 squares), undo/redo work on it, and the server's memory stays bounded. The
 * stack is the one `npm run bench:scale` generates (or any store named by SLICEFORM_BIG_ZARR); without one the
 * test is skipped with a message saying how to make it.
 *
 * Figures (open seconds, seconds until the xy view has the file's slice, peak RSS of the web shell and of the
 * compute process) are printed. The acceptance
 * asks for under 10 s and under 1.5 GiB on the 2-core machine; the RSS bound is asserted, the time is asserted
 * only loosely (60 s) because the shared machine's load decides it, and printed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eMissing, startApp, type App } from './harness.js';
import { dragVoxels, openByPath, waitForUi, type UiWindow } from './ui-helpers.js';
import { DEBIAN_PYTHON, REPO } from '../helpers/paths.js';

/** a 1024×1024×512×3 uint16 OME-Zarr: SLICEFORM_BIG_ZARR, else what bench:scale (or a developer) left */
function findStack(): string | null {
  const shapeOf = (p: string): number[] | null => {
    for (const a of ['0/.zarray', '0/zarr.json']) {
      try {
        const j = JSON.parse(readFileSync(join(p, a), 'utf8')) as { shape?: number[] };
        if (j.shape) return j.shape;
      } catch {
        /* not this layout */
      }
    }
    return null;
  };
  const ok = (p: string) => JSON.stringify(shapeOf(p)) === JSON.stringify([3, 512, 1024, 1024]);
  if (process.env.SLICEFORM_BIG_ZARR) return ok(process.env.SLICEFORM_BIG_ZARR) ? process.env.SLICEFORM_BIG_ZARR : null;
  for (const dir of [join(REPO, 'bench', 'out', 'scale-cache'), join(REPO, 'bench', 'out', 'scale'), join(REPO, 'bench', '.cache'), join(REPO, 'bench', 'out'), '/tmp/sliceform-scale'])
    if (existsSync(dir)) for (const f of readdirSync(dir)) if (f.endsWith('.zarr') && ok(join(dir, f))) return join(dir, f);
  return null;
}

/** peak RSS (VmHWM, bytes) of a process and of each process below it */
function peakRss(root: number): { server: number; children: Array<{ pid: number; bytes: number }> } {
  const hwm = (pid: number) => {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  };
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc'))
    if (/^\d+$/.test(d))
      try {
        const st = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
        kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
      } catch {
        /* gone */
      }
  const below: number[] = [];
  const walk = (p: number) => (kids.get(p) ?? []).forEach((k) => (below.push(k), walk(k)));
  walk(root);
  return { server: hwm(root), children: below.map((pid) => ({ pid, bytes: hwm(pid) })) };
}

const stack = findStack();
const missing = e2eMissing() ?? (stack ? null : 'no 1024×1024×512×3 OME-Zarr found: run `npm run bench:scale` first, or set SLICEFORM_BIG_ZARR');
if (missing) console.warn(`ui-big-volume skipped: ${missing}`);
const GiB = 2 ** 30;

describe.skipIf(missing !== null)('web shell on a 3 GiB OME-Zarr (out of core)', () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp();
    await waitForUi(app.page);
  }, 120_000);
  afterAll(async () => app?.cleanup());

  it('opens it out of core, shows the 3D level, and a stroke lands at full resolution', async () => {
    const page = app.page;
    const t0 = Date.now();
    try {
      await openByPath(page, stack!);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nstatus: ${await page.textContent('[data-testid=status-text]')}\npage: ${app.pageErrors.join('\n')}\nserver: ${app.serve.log().slice(-3000)}`);
    }
    const openSeconds = (Date.now() - t0) / 1000;
    const info = (await page.evaluate(async () => (await (window as unknown as UiWindow).sliceform.listVolumes!())) as Array<Record<string, unknown>>)[0]!;
    expect(info.shape).toMatchObject({ x: 1024, y: 1024, z: 512, c: 3 });
    expect(info.outOfCore).toEqual({ level: expect.any(Number), step: 4, size: [256, 256, 128] });
    // the page holds the 3D level; the cursor and the slice views are in file voxels
    expect(await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.app.store.volume?.dims)).toEqual({ x: 1024, y: 1024, z: 512 });
    expect(await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.app.store.volume?.held)).toMatchObject({ dims: { x: 256, y: 256, z: 128 }, step: 4 });
    await expect.poll(() => page.textContent('[data-testid=status-text]')).toContain('big volume (out of core): slices at full resolution, 3D at 1/4');

    // a full-resolution slice from the server equals an independent reader (python3-zarr) at a few voxels
    const probe = [
      [0, 300, 17, 900],
      [2, 300, 1000, 3],
      [1, 300, 511, 512],
    ];
    const ours = await page.evaluate(
      async ({ id, probe }) => {
        const s = (await (window as unknown as UiWindow).sliceform.getSlice!({ volumeId: id, plane: 'xy', index: 300 })) as { width: number; height: number; channels: number; data: Uint16Array };
        return { w: s.width, h: s.height, c: s.channels, v: probe.map(([c, , y, x]) => s.data[(c! * s.height + y!) * s.width + x!]) };
      },
      { id: info.id as string, probe },
    );
    expect([ours.w, ours.h, ours.c]).toEqual([1024, 1024, 3]);
    const ds = JSON.parse(readFileSync(join(stack!, '.zattrs'), 'utf8')).multiscales[0].datasets[0].path as string;
    const theirs = JSON.parse(
      execFileSync(DEBIAN_PYTHON, ['-c', `import zarr,json,sys; a=zarr.open(sys.argv[1],'r'); print(json.dumps([int(a[c,z,y,x]) for c,z,y,x in json.loads(sys.argv[2])]))`, join(stack!, ds), JSON.stringify(probe)], {
        encoding: 'utf8',
      }),
    ) as number[];
    expect(ours.v).toEqual(theirs);

    // file slice 301 (not on the 3D level's grid) in the xy view: the level's slice at once, upscaled, then the
    // file's own slice at full resolution (1024×1024 pixels of data), equal to python3-zarr's voxels
    type Ui = {
      __sliceformUi: {
        app: {
          setSlice(p: string, i: number): void;
          undoRedo(k: string): Promise<void>;
          views: Record<string, { fullValuesAt(v: number[]): { channels: number[]; annotation: number } | null; shownResolution(): { plane: number[]; resolution: string; index: number } }>;
        };
      };
    };
    const z = 301;
    const tSlice = Date.now();
    await page.evaluate((z) => (window as unknown as Ui).__sliceformUi.app.setSlice('xy', z), z);
    const xyShown = () => page.evaluate(() => (window as unknown as Ui).__sliceformUi.app.views.xy!.shownResolution());
    expect(await xyShown()).toEqual({ resolution: 'level', plane: [256, 256, 1], index: 301 });
    await expect.poll(xyShown, { timeout: 120_000 }).toEqual({ resolution: 'full', plane: [1024, 1024, 1], index: 301 });
    const fullResSeconds = (Date.now() - tSlice) / 1000;
    expect(await page.locator('[data-resolution=full]').count()).toBeGreaterThanOrEqual(1);
    const probe301 = [
      [17, 900],
      [1000, 3],
      [511, 512],
    ];
    const shownVals = await page.evaluate(
      ({ z, probe }) => probe.map(([y, x]) => (window as unknown as Ui).__sliceformUi.app.views.xy!.fullValuesAt([x!, y!, z])?.channels ?? null),
      { z, probe: probe301 },
    );
    const zarrVals = JSON.parse(
      execFileSync(DEBIAN_PYTHON, ['-c', `import zarr,json,sys; a=zarr.open(sys.argv[1],'r'); print(json.dumps([[int(a[c,${z},y,x]) for c in range(3)] for y,x in json.loads(sys.argv[2])]))`, join(stack!, ds), JSON.stringify(probe301)], {
        encoding: 'utf8',
      }),
    ) as number[][];
    expect(shownVals).toEqual(zarrVals);

    // paint on it (brush radius 4 file voxels): the server holds the stroke at the file voxels drawn
    await page.click('[data-testid=tool-brush]');
    const path: Array<[number, number, number]> = [
      [240, 400, z],
      [480, 416, z],
      [720, 440, z],
    ];
    await dragVoxels(page, 'xy', path);
    await page.evaluate(() => (window as unknown as UiWindow).__sliceformUi.idle());
    const readStroke = () =>
      page.evaluate(
        async ({ id, z }) => {
          const w = (window as unknown as UiWindow).sliceform;
          const sum = (await w.getAnnotationSummary!({ volumeId: id })) as { classVoxels: number[]; paintedSlices: Record<string, number[]>; revision: number };
          const s = (await w.getLabelSlice!({ volumeId: id, plane: 'xy', index: z, layer: 'annotation' })) as { width: number; height: number; data: Uint8Array };
          const near = await Promise.all([z - 1, z + 1].map((i) => w.getLabelSlice!({ volumeId: id, plane: 'xy', index: i, layer: 'annotation' }) as Promise<{ data: Uint8Array }>));
          let painted = 0;
          let box = [1e9, 1e9, -1, -1];
          for (let y = 0; y < s.height; y++)
            for (let x = 0; x < s.width; x++)
              if (s.data[y * s.width + x]) {
                painted++;
                box = [Math.min(box[0]!, x), Math.min(box[1]!, y), Math.max(box[2]!, x), Math.max(box[3]!, y)];
              }
          // painted rows of a few columns
          const rows = [300, 480, 600].map((x) => {
            const ys: number[] = [];
            for (let y = 0; y < s.height; y++) if (s.data[y * s.width + x]) ys.push(y);
            return ys;
          });
          return { sum, painted, box, rows, width: s.width, nearPainted: near.map((n) => n.data.some((v) => v !== 0)) };
        },
        { id: info.id as string, z },
      );
    const server = await readStroke();
    expect(server.width).toBe(1024);
    expect(server.nearPainted).toEqual([false, false]); // one slice of the file only
    expect(server.sum.paintedSlices.xy).toEqual([z]);
    expect(server.sum.classVoxels.slice(1).reduce((a, b) => a + b, 0)).toBe(server.painted);
    // the stroke's extent is the path's ± the radius (a pixel of the pointer's rounding), in file voxels
    expect(server.box[0]).toBeGreaterThanOrEqual(240 - 6);
    expect(server.box[0]).toBeLessThanOrEqual(240 - 2);
    expect(server.box[2]).toBeGreaterThanOrEqual(720 + 2);
    expect(server.box[2]).toBeLessThanOrEqual(720 + 6);
    expect(server.box[1]).toBeGreaterThanOrEqual(400 - 6);
    expect(server.box[3]).toBeLessThanOrEqual(440 + 6);
    // full resolution, not 4×4 squares: each column holds a thin run of rows around the path (a disc of radius 4
    // covers 9 rows, its union along a slanted path a row or two more; at 1/4 it was 33 rows or more)
    const pathY = (x: number) => (x <= 480 ? 400 + ((x - 240) / 240) * 16 : 416 + ((x - 480) / 240) * 24);
    server.rows.forEach((ys, k) => {
      const x = [300, 480, 600][k]!;
      expect(ys.length).toBeGreaterThanOrEqual(5);
      expect(ys.length).toBeLessThanOrEqual(11);
      expect(ys[ys.length - 1]! - ys[0]!).toBe(ys.length - 1); // contiguous
      expect(Math.abs((ys[0]! + ys[ys.length - 1]!) / 2 - pathY(x))).toBeLessThanOrEqual(2);
    });
    expect(server.painted).toBeLessThan(12 * 500);
    // the view's overlay is the server's slice (the readout's label under the path)
    expect(await page.evaluate((z) => (window as unknown as Ui).__sliceformUi.app.views.xy!.fullValuesAt([480, 416, z])?.annotation, z)).toBe(2);
    // undo empties the file slice (and the view's overlay), redo brings the stroke back voxel for voxel
    await page.evaluate(() => (window as unknown as Ui).__sliceformUi.app.undoRedo('undo'));
    expect((await readStroke()).painted).toBe(0);
    await expect.poll(() => page.evaluate((z) => (window as unknown as Ui).__sliceformUi.app.views.xy!.fullValuesAt([480, 416, z])?.annotation, z)).toBe(0);
    await page.evaluate(() => (window as unknown as Ui).__sliceformUi.app.undoRedo('redo'));
    const redone = await readStroke();
    expect(redone.sum.revision).toBe(server.sum.revision + 2);
    expect({ ...redone, sum: { ...redone.sum, revision: 0 } }).toEqual({ ...server, sum: { ...server.sum, revision: 0 } });
    await expect.poll(() => page.evaluate((z) => (window as unknown as Ui).__sliceformUi.app.views.xy!.fullValuesAt([480, 416, z])?.annotation, z)).toBe(2);

    // the annotation exports as OME-Zarr labels: the painted chunks only
    const out = join(app.serve.workDir, 'big_labels.ome.zarr');
    const exported = (await page.evaluate(
      async ({ id, out }) => (window as unknown as UiWindow).sliceform.exportLabels!({ volumeId: id, layer: 'annotation', path: out, format: 'ome-zarr' }),
      { id: info.id as string, out },
    )) as { bytes: number };
    expect(exported.bytes).toBeGreaterThan(0);
    expect(exported.bytes).toBeLessThan(4 * 2 ** 20);

    // (training and densify of such a volume read the crops around the paint: their tests are big-train's, not this one's)

    const rss = peakRss(app.serve.proc.pid!);
    const compute = Math.max(0, ...rss.children.map((c) => c.bytes));
    console.log(
      JSON.stringify({
        openSeconds,
        fullResSliceSeconds: fullResSeconds,
        serverPeakRssMiB: Math.round(rss.server / 2 ** 20),
        computePeakRssMiB: Math.round(compute / 2 ** 20),
        summedPeakMiB: Math.round((rss.server + rss.children.reduce((a, c) => a + c.bytes, 0)) / 2 ** 20),
      }),
    );
    expect(rss.server).toBeLessThan(1.5 * GiB);
    expect(compute).toBeLessThan(1.5 * GiB);
    expect(openSeconds).toBeLessThan(60);
  }, 300_000);
});
