/**
 * Helpers for the UI's E2E tests (test/e2e/ui-*.test.ts): drive the workstation through its controls and read
 * pixels back from element screenshots.
 */
import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, DEBIAN_PYTHON } from '../helpers/paths.js';

export type Plane = 'xy' | 'xz' | 'yz';

/** what the page exposes for tests (renderer/src/main.ts installTestHook) */
export interface UiHook {
  volumeId: string | null;
  cursor: number[];
  loading: boolean;
  paintedCount(plane: Plane): number;
  flush(which?: Array<Plane | '3d'>): void;
  idle(): Promise<void>;
  voxelToPage(plane: Plane, x: number, y: number, z: number): { x: number; y: number };
  strokeTimings(): Array<{ applyMs: number; serverMs: number }>;
  renderLog(): Array<{ plane: Plane; ms: number; at: number }>;
  view3dRenderMs(): number;
  setSyncTiming(on: boolean): void;
  app: {
    store: { annotation: Uint8Array | null; prediction: Uint8Array | null; volume: { dims: { x: number; y: number; z: number } } | null };
  };
}
export type UiWindow = { __sliceformUi: UiHook; sliceform: Record<string, (p?: unknown) => Promise<unknown>> };

export async function waitForUi(page: Page): Promise<void> {
  await page.waitForSelector('#app[data-ready="1"]', { timeout: 60_000 });
}

/** Type a path into the Files panel and press Open; waits until the views show it. */
export async function openByPath(page: Page, path: string): Promise<void> {
  await page.fill('[data-testid=open-path]', path);
  await page.click('[data-testid=open-button]');
  await page.waitForFunction(
    () => {
      const h = (window as unknown as UiWindow).__sliceformUi;
      return !!h?.volumeId && !h.loading;
    },
    null,
    { timeout: 90_000 },
  );
  await flush(page);
}

/** Render now; by default only the slice views (the 3D ray caster is slow on software WebGL). */
export async function flush(page: Page, which: Array<Plane | '3d'> = ['xy', 'xz', 'yz']): Promise<void> {
  await page.evaluate((w) => (window as unknown as UiWindow).__sliceformUi.flush(w), which);
}

export interface Pixels {
  width: number;
  height: number;
  data: Buffer;
}

/** Screenshot of one element as raw RGB; also saved under test-artifacts/ when `name` is given. */
export async function shot(page: Page, testid: string, name?: string): Promise<Pixels> {
  const png = await page.locator(`[data-testid="${testid}"]`).screenshot();
  if (name) {
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(join(ARTIFACTS, name.endsWith('.png') ? name : `${name}.png`), png);
  }
  return decode(png);
}

export async function decode(png: Buffer): Promise<Pixels> {
  const sharp = (await import('sharp')).default;
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

/** number of pixels for which `pred(r, g, b)` holds */
export function count(p: Pixels, pred: (r: number, g: number, b: number) => boolean): number {
  let n = 0;
  for (let i = 0; i < p.data.length; i += 3) if (pred(p.data[i]!, p.data[i + 1]!, p.data[i + 2]!)) n++;
  return n;
}

/** pixels that differ by more than `tol` in any component between two same-size images */
export function diffCount(a: Pixels, b: Pixels, tol = 24): number {
  if (a.width !== b.width || a.height !== b.height) throw new Error(`image sizes differ: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  let n = 0;
  for (let i = 0; i < a.data.length; i += 3) {
    if (Math.abs(a.data[i]! - b.data[i]!) > tol || Math.abs(a.data[i + 1]! - b.data[i + 1]!) > tol || Math.abs(a.data[i + 2]! - b.data[i + 2]!) > tol) n++;
  }
  return n;
}

/** the top-left w x h region of an image */
export function crop(p: Pixels, w: number, h: number): Pixels {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) p.data.copy(data, y * w * 3, y * p.width * 3, y * p.width * 3 + w * 3);
  return { width: w, height: h, data };
}

/** Drag the mouse over voxel positions of one plane (page coordinates from the view's camera). */
export async function dragVoxels(page: Page, plane: Plane, voxels: Array<[number, number, number]>, steps = 6): Promise<void> {
  const pts = await page.evaluate(
    ({ plane, voxels }) => voxels.map((v) => (window as unknown as UiWindow).__sliceformUi.voxelToPage(plane as Plane, v[0]!, v[1]!, v[2]!)),
    { plane, voxels },
  );
  await page.mouse.move(pts[0]!.x, pts[0]!.y);
  await page.mouse.down();
  for (const p of pts.slice(1)) await page.mouse.move(p.x, p.y, { steps });
  await page.mouse.up();
}

/** The API's label volume of the open volume (read in the page through window.sliceform). */
export async function apiLabels(page: Page, layer: 'annotation' | 'prediction'): Promise<{ size: number[]; data: number[] }> {
  return page.evaluate(async (layer) => {
    const w = window as unknown as UiWindow;
    const r = (await w.sliceform.getLabelVolume!({ volumeId: w.__sliceformUi.volumeId, layer })) as { size: number[]; data: Uint8Array };
    return { size: r.size, data: Array.from(r.data) };
  }, layer);
}

export interface LabelReport {
  size: number[];
  /** voxels per class id (index = class) */
  counts: number[];
  /** z and x coordinates carrying each class (class -> sorted list) */
  zs: Record<number, number[]>;
  xs: Record<number, number[]>;
  /** values at the probed [x, y, z] voxels */
  probes: number[];
  /** the renderer's local annotation (what the overlay shows) equals the API's annotation */
  localMatches: boolean;
  /** a cheap fingerprint of the whole volume */
  hash: number;
}

/** Summary of the API's label volume computed in the page (no multi-megabyte transfer to the test). */
export async function labelReport(page: Page, layer: 'annotation' | 'prediction', probes: Array<[number, number, number]> = []): Promise<LabelReport> {
  return page.evaluate(
    async ({ layer, probes }) => {
      const w = window as unknown as UiWindow;
      const r = (await w.sliceform.getLabelVolume!({ volumeId: w.__sliceformUi.volumeId, layer })) as { size: number[]; data: Uint8Array };
      const [X, Y] = r.size as [number, number, number];
      const counts: number[] = [];
      const zs: Record<number, Set<number>> = {};
      const xs: Record<number, Set<number>> = {};
      let hash = 0;
      for (let i = 0; i < r.data.length; i++) {
        const v = r.data[i]!;
        hash = (Math.imul(hash, 31) + v) | 0;
        if (!v) continue;
        counts[v] = (counts[v] ?? 0) + 1;
        (zs[v] ??= new Set()).add(Math.floor(i / (X * Y)));
        (xs[v] ??= new Set()).add(i % X);
      }
      for (let k = 0; k < counts.length; k++) counts[k] ??= 0;
      const local = w.__sliceformUi.app.store.annotation;
      const localMatches = layer === 'annotation' && !!local && local.length === r.data.length && local.every((v, i) => v === r.data[i]);
      const sorted = (m: Record<number, Set<number>>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, [...v].sort((a, b) => a - b)]));
      return {
        size: r.size,
        counts,
        zs: sorted(zs),
        xs: sorted(xs),
        probes: probes.map(([x, y, z]) => r.data[(z * Y + y) * X + x]!),
        localMatches,
        hash,
      };
    },
    { layer, probes },
  );
}

/** The renderer's local copy of the annotation (what the overlay shows). */
export async function localAnnotation(page: Page): Promise<number[]> {
  return page.evaluate(() => Array.from((window as unknown as UiWindow).__sliceformUi.app.store.annotation ?? []));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
}

/** Exports a layer through the Export panel (replacing `out`) and waits until the UI reports the written file. */
export async function exportFromUi(page: Page, layer: string, format: string, out: string): Promise<void> {
  rmSync(out, { force: true });
  await page.selectOption('[data-testid=export-layer]', layer);
  await page.selectOption('[data-testid=export-format]', format);
  await page.fill('[data-testid=export-path]', out);
  await page.click('[data-testid=export-button]');
  await expect.poll(() => page.getAttribute('[data-testid=export-result]', 'data-path'), { timeout: 30_000 }).toBe(out);
}

/** Reads a TIFF with tifffile (an independent reader): the "(shape) dtype" line it prints and the voxels as uint8. */
export function readWithTifffile(path: string): { status: number | null; stderr: string; header: string; voxels: Buffer } {
  const py = spawnSync(
    DEBIAN_PYTHON,
    ['-c', 'import sys,tifffile,numpy as np; a=tifffile.imread(sys.argv[1]); print(a.shape, a.dtype); sys.stdout.flush(); sys.stdout.buffer.write(np.ascontiguousarray(a).astype(np.uint8).tobytes())', path],
    { encoding: 'buffer', maxBuffer: 64 << 20 },
  );
  const nl = py.stdout.indexOf(10);
  return {
    status: py.status,
    stderr: py.stderr.toString(),
    header: (nl < 0 ? py.stdout : py.stdout.subarray(0, nl)).toString(),
    voxels: nl < 0 ? Buffer.alloc(0) : py.stdout.subarray(nl + 1),
  };
}
