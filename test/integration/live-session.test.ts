/**
 * The live loop through the compute process's job handlers (the app's path: resident volume, label deltas,
 * a live train job, previews of the visible planes): issue 13 items 1 and 2. Real data: a crop of the plant
 * nuclei 1135 with its ground truth painted on the middle xy, xz and yz slices.
 *  - a background stroke over a region the preview calls foreground flips it to background within the next
 *    previews (asserted on getPreview's labels), the stroke's revision is seen, the preview says its latency;
 *  - stop keeps the model; starting again from it continues the iteration count and the loss;
 *  - `sliceform train --init-from DIR` continues a saved model (iterations add up, the model loads).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { main } from '../../main/cli/index.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import type { PreviewEvent } from '../../main/common/api.js';
import type { Progress } from '../../main/common/progress.js';
import { ComputeStore } from '../../main/services/compute-store.js';
import { handlers, type JobContext } from '../../main/services/compute-handlers.js';
import { loadEngine } from '../../main/engine/index.js';
import { loadRecipeModel } from '../../main/pipeline/recipe.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const OUT = join(ARTIFACTS, 'live-session');
const [Z, Y, X] = [40, 64, 64];

function crop(v: Volume): Volume {
  const s = v.shape;
  const data = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++)
        data[(z * Y + y) * X + x] = v.data[((30 + z) * s.y + 20 + y) * s.x + 20 + x]!;
  return { ...v, data, dtype: 'uint8', shape: { ...s, x: X, y: Y, z: Z } };
}

let truth: Uint8Array; // 1 background, 2 nucleus
let sparse: Uint8Array; // the truth on the middle xy, xz and yz slices
const NET = {
  dims: 3,
  inChannels: 1,
  numClasses: 2,
  levels: 2,
  baseFilters: 8,
  padding: 'valid',
  batchNorm: true,
  bnAtTest: 'batch',
} as const;

beforeAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const raw = crop(await readVolume(H5, { dataset: 'raw' }));
  const gt = crop(await readVolume(H5, { dataset: 'label' }));
  await writeImageJTiff(join(OUT, 'raw.tif'), raw);
  truth = Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1));
  sparse = new Uint8Array(truth.length);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const i = (z * Y + y) * X + x;
        if (z === Z / 2 || y === Y / 2 || x === X / 2) sparse[i] = truth[i]!;
      }
  await writeImageJTiff(join(OUT, 'sparse.tif'), { ...gt, data: sparse, dtype: 'uint8' });
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface Session {
  stop: AbortController;
  progress: Progress[];
  previews: PreviewEvent[];
  done: ReturnType<typeof handlers.train>;
  last: () => Record<string, unknown>;
}

function startLive(store: ComputeStore, modelDir: string, resume?: string): Session {
  const stop = new AbortController();
  const progress: Progress[] = [];
  const previews: PreviewEvent[] = [];
  const ctx: JobContext = {
    signal: new AbortController().signal,
    stopSignal: stop.signal,
    onProgress: (p) => progress.push(p),
    store,
    emitPreview: (e) => previews.push(e),
  };
  const done = handlers.train(
    {
      modelId: 'm',
      modelDir,
      settings: { preset: 'desktop', live: true, seed: 3 },
      net: NET,
      classNames: ['background', 'foreground'],
      volumeIds: ['v1'],
      ...(resume ? { resumeModelDir: resume, resumeModelId: 'first' } : {}),
    } as Parameters<typeof handlers.train>[0],
    ctx,
  );
  done.catch(() => undefined);
  const last = () =>
    (progress.filter((p) => p.details?.iteration !== undefined).at(-1)?.details ?? {}) as Record<
      string,
      unknown
    >;
  return { stop, progress, previews, done, last };
}

const iterationOf = (s: Session) => Number(s.last().iteration ?? 0);

describe('live training session (compute handlers)', () => {
  const store = new ComputeStore();
  let firstModel = '';
  let lastLossBefore = NaN;
  let firstStepLoss = NaN;
  let iterationsBefore = 0;

  it('flips a false-positive region painted background in the previews, sees the stroke, times it', async () => {
    await store.open({ volumeId: 'v1', path: join(OUT, 'raw.tif') });
    store.setLabels({ volumeId: 'v1', layer: 'annotation', box: null, data: sparse, revision: 1 });
    // the xy view shows a plane that nobody painted
    const zView = 12;
    store.setVisiblePlanes({ volumeId: 'v1', planes: [{ plane: 'xy', index: zView }] });
    firstModel = join(OUT, 'model-1');
    const s = startLive(store, firstModel);
    try {
      await until(
        () => iterationOf(s) >= 15 && s.previews.some((e) => e.iteration >= 15),
        50_000,
        '15 steps and a preview',
      );
      const before = store.preview({ volumeId: 'v1', plane: 'xy', index: zView });
      expect([before.width, before.height]).toEqual([X, Y]);
      expect(before.revision).toBe(1);
      expect(before.probabilities?.length).toBe(2 * X * Y);
      // a region the preview calls foreground where the truth is background (the largest 4-connected false
      // positive of the plane): the user paints it background, as the truth says
      const fp = (j: number) =>
        before.labels[j] === 2 && truth[(zView * Y + Math.floor(j / X)) * X + (j % X)] === 1;
      const seen = new Uint8Array(X * Y);
      let blob: number[] = [];
      for (let i = 0; i < X * Y; i++) {
        if (seen[i] || !fp(i)) continue;
        const comp: number[] = [];
        const stack = [i];
        seen[i] = 1;
        while (stack.length) {
          const j = stack.pop()!;
          comp.push(j);
          const u = j % X;
          const v = Math.floor(j / X);
          for (const [du, dv] of [
            [1, 0],
            [-1, 0],
            [0, 1],
            [0, -1],
          ] as const) {
            const uu = u + du;
            const vv = v + dv;
            if (uu < 0 || vv < 0 || uu >= X || vv >= Y) continue;
            const k = vv * X + uu;
            if (!seen[k] && fp(k)) {
              seen[k] = 1;
              stack.push(k);
            }
          }
        }
        if (comp.length > blob.length) blob = comp;
      }
      expect(blob.length).toBeGreaterThan(20);
      const us = blob.map((j) => j % X);
      const vs = blob.map((j) => Math.floor(j / X));
      const box = {
        min: [Math.min(...us), Math.min(...vs), zView] as [number, number, number],
        max: [Math.max(...us) + 1, Math.max(...vs) + 1, zView + 1] as [number, number, number],
      };
      const w = box.max[0] - box.min[0];
      const ann = store.layer('v1', 'annotation');
      const delta = new Uint8Array(w * (box.max[1] - box.min[1]));
      for (let v = box.min[1]; v < box.max[1]; v++)
        for (let u = box.min[0]; u < box.max[0]; u++)
          delta[(v - box.min[1]) * w + u - box.min[0]] = ann[(zView * Y + v) * X + u]!;
      for (const j of blob) delta[(Math.floor(j / X) - box.min[1]) * w + (j % X) - box.min[0]] = 1;
      const strokeIt = iterationOf(s);
      const nPreviews = s.previews.length;
      store.setLabels({
        volumeId: 'v1',
        layer: 'annotation',
        box,
        data: delta,
        revision: 2,
        strokeAt: Date.now(),
      });
      // the sampler takes it in at the next step: the progress says revision 2 is seen
      await until(() => JSON.parse(String(s.last().seenRevision ?? '{}')).v1 === 2, 20_000, 'seenRevision 2');
      expect(iterationOf(s)).toBeLessThanOrEqual(strokeIt + 2);
      // a stroke-triggered preview with its latency
      await until(
        () => s.previews.slice(nPreviews).some((e) => e.latencyMs !== undefined),
        20_000,
        'the stroke preview',
      );
      const ev = s.previews.slice(nPreviews).find((e) => e.latencyMs !== undefined)!;
      expect(ev).toMatchObject({ volumeId: 'v1', plane: 'xy', index: zView, revision: 2 });
      expect(ev.latencyMs).toBeGreaterThan(0);
      // within the next previews the region flips to background
      const flipped = () => {
        const p = store.preview({ volumeId: 'v1', plane: 'xy', index: zView });
        return blob.filter((j) => p.labels[j] === 1).length / blob.length;
      };
      let share = 0;
      const end = Date.now() + 45_000;
      while (Date.now() < end) {
        share = flipped();
        if (share >= 0.9) break;
        await sleep(200);
      }
      expect(share).toBeGreaterThanOrEqual(0.9);
      const after = store.preview({ volumeId: 'v1', plane: 'xy', index: zView });
      expect(after.revision).toBe(2);
      expect(after.iteration).toBeGreaterThan(strokeIt);
      // the rest of the plane is not all background: the model did not just learn "everything is background"
      const inBlob = new Set(blob);
      const fgElsewhere = after.labels.filter((l, j) => l === 2 && !inBlob.has(j)).length;
      expect(fgElsewhere).toBeGreaterThan(100);
      // the coarse 3D preview exists
      const pv = store.previewVolume({ volumeId: 'v1' });
      expect(pv.dims.x * pv.dims.y * pv.dims.z).toBe(pv.labels.length);
      expect(pv.labels.some((l) => l === 2)).toBe(true);

      // stop keeps the model
      lastLossBefore = Number(s.last().loss);
      firstStepLoss = Number(s.progress.find((p) => p.details?.stepLoss !== undefined)!.details!.stepLoss);
      s.stop.abort();
      const r = await s.done;
      expect(r.stopped).toBe(true);
      expect(r.seenRevision).toEqual({ v1: 2 });
      iterationsBefore = r.iterations;
      expect(iterationsBefore).toBeGreaterThan(strokeIt);
      const m = JSON.parse(await readFile(join(firstModel, 'model.json'), 'utf8'));
      expect(m.training.iterations).toBe(iterationsBefore);
    } finally {
      s.stop.abort();
      await s.done.catch(() => undefined);
    }
  }, 150_000);

  it('continues from the stopped model: iterations go on, the first loss is within 20 % of the last', async () => {
    expect(firstModel).not.toBe('');
    const s = startLive(store, join(OUT, 'model-2'), firstModel);
    try {
      await until(() => iterationOf(s) >= iterationsBefore + 8, 40_000, '8 more steps');
      const steps = s.progress.filter((p) => p.details?.stepLoss !== undefined);
      const first = steps[0]!.details!;
      expect(first.startIteration).toBe(iterationsBefore);
      expect(first.iteration).toBe(iterationsBefore + 1);
      expect(first.warmStartFrom).toBe('first');
      // the reported (running) loss continues from where it was ...
      expect(Math.abs(Number(first.loss) - lastLossBefore) / lastLossBefore).toBeLessThan(0.2);
      // ... and the weights did continue: the raw losses of the first steps are far below a fresh network's first
      const raw = steps.slice(0, 8).map((p) => Number(p.details!.stepLoss));
      const mean = raw.reduce((a, b) => a + b, 0) / raw.length;
      expect(mean).toBeLessThan(0.6 * firstStepLoss);
      s.stop.abort();
      const r = await s.done;
      expect(r.startIteration).toBe(iterationsBefore);
      expect(r.warmStartFrom).toBe('first');
      expect(r.iterations).toBeGreaterThanOrEqual(iterationsBefore + 8);
    } finally {
      s.stop.abort();
      await s.done.catch(() => undefined);
    }
  }, 90_000);
});

describe('sliceform train --init-from', () => {
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(args, {
      out: (s) => (out += s + '\n'),
      err: (s) => (err += s + '\n'),
      isTTY: false,
    });
    return { code, out, err };
  }

  it('continues a saved model: the iterations add up and the model loads', async () => {
    const base = [
      'train',
      '--image',
      join(OUT, 'raw.tif'),
      '--labels',
      join(OUT, 'sparse.tif'),
      '--preset',
      'tiny',
      '--seed',
      '2',
      '--threads',
      '2',
    ];
    const a = await cli([...base, '--iterations', '3', '--model', join(OUT, 'cli-a')]);
    expect(a.code, a.err).toBe(0);
    const b = await cli([
      ...base,
      '--iterations',
      '2',
      '--init-from',
      join(OUT, 'cli-a'),
      '--model',
      join(OUT, 'cli-b'),
    ]);
    expect(b.code, b.err).toBe(0);
    const ma = JSON.parse(await readFile(join(OUT, 'cli-a', 'model.json'), 'utf8'));
    const mb = JSON.parse(await readFile(join(OUT, 'cli-b', 'model.json'), 'utf8'));
    expect(ma.training.iterations).toBe(3);
    expect(mb.training.iterations).toBe(5);
    expect(mb.normalisation).toEqual(ma.normalisation);
    const engine = await loadEngine();
    const { model } = await loadRecipeModel(join(OUT, 'cli-b'), engine);
    expect(model.config.numClasses).toBe(2);
    model.dispose();
    // a model of another network cannot be continued: a clear error naming the folder
    const c = await cli([
      ...base.map((x) => (x === 'tiny' ? 'desktop' : x)),
      '--iterations',
      '1',
      '--init-from',
      join(OUT, 'cli-a'),
      '--model',
      join(OUT, 'cli-c'),
    ]);
    expect(c.code).toBe(2);
    expect(c.err).toContain('cannot continue from this model');
    expect(c.err).toContain('cli-a');
  }, 120_000);
});
