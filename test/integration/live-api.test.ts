/**
 * The live loop through the API the app uses (ApiService + its compute process over the typed compute link):
 * strokes reach a running live session at once (EditResult.revision -> TrainProgress.seenRevision), a stroke on a
 * visible plane gives an onPreview with latencyMs and getPreview data, stop keeps the model, startTraining again
 * warm-starts from it by default, a preset change starts fresh with the reason. Real data: a crop of the plant
 * nuclei 1135 with its ground truth painted on the middle xy, xz and yz slices.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import type { PreviewEvent, TrainProgress, TrainResult } from '../../main/common/api.js';
import { ApiService } from '../../main/services/api-service.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const OUT = join(ARTIFACTS, 'live-api');
const [Z, Y, X] = [40, 64, 64];
let truth: Uint8Array;
let api: ApiService;

beforeAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const raw = await readVolume(H5, { dataset: 'raw' });
  const gt = await readVolume(H5, { dataset: 'label' });
  const cut = (d: ArrayLike<number>) => {
    const o = new Uint8Array(Z * Y * X);
    for (let z = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++) o[(z * Y + y) * X + x] = d[((30 + z) * 100 + 20 + y) * 100 + 20 + x]!;
    return o;
  };
  await writeImageJTiff(join(OUT, 'raw.tif'), {
    ...raw,
    data: cut(raw.data),
    dtype: 'uint8',
    shape: { ...raw.shape, x: X, y: Y, z: Z },
  });
  truth = Uint8Array.from(cut(gt.data), (v) => (v > 0 ? 2 : 1));
  api = new ApiService({ shell: 'web', workDir: join(OUT, 'work') });
}, 60_000);

afterAll(async () => {
  await api?.dispose();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('live loop through the ApiService', () => {
  it('strokes reach the session, previews answer them, continue warm-starts, a preset change starts fresh', async () => {
    const { id: volumeId } = await api.openVolume({ path: join(OUT, 'raw.tif') });
    for (const [plane, index] of [
      ['xy', Z / 2],
      ['xz', Y / 2],
      ['yz', X / 2],
    ] as const) {
      const [w, h] = plane === 'xy' ? [X, Y] : plane === 'xz' ? [X, Z] : [Y, Z];
      for (const classId of [1, 2]) {
        const mask = new Uint8Array(w * h);
        for (let v = 0; v < h; v++)
          for (let u = 0; u < w; u++) {
            const [x, y, z] = plane === 'xy' ? [u, v, index] : plane === 'xz' ? [u, index, v] : [index, u, v];
            mask[v * w + u] = truth[(z * Y + y) * X + x] === classId ? 1 : 0;
          }
        await api.paintRegion({ volumeId, plane, index, classId, origin: [0, 0], width: w, height: h, mask });
      }
    }
    const zView = 12;
    await api.setVisiblePlanes({ volumeId, planes: [{ plane: 'xy', index: zView }] });
    await expect(api.getPreview({ volumeId, plane: 'xy', index: zView })).rejects.toMatchObject({
      code: 'not-found',
    });
    const progress: TrainProgress[] = [];
    const previews: PreviewEvent[] = [];
    api.onTrainProgress((p) => progress.push(p));
    api.onPreview((e) => previews.push(e));

    const job = await api.startTraining({
      volumeIds: [volumeId],
      preset: 'tiny',
      live: true,
      fresh: true,
      seed: 4,
    });
    try {
      await until(
        () => (progress.at(-1)?.iteration ?? 0) >= 5 && previews.length > 0,
        60_000,
        '5 steps and a preview',
      );
      expect(progress.at(-1)!.warmStartFrom).toBeUndefined();
      const p0 = await api.getPreview({ volumeId, plane: 'xy', index: zView });
      expect([p0.width, p0.height, p0.labels.length]).toEqual([X, Y, X * Y]);
      const rev0 = (await api.getAnnotationSummary({ volumeId })).revision;
      expect(p0.revision).toBe(rev0);
      // a stroke while the session runs: its revision is seen and answered by a timed preview
      const n = previews.length;
      const edit = await api.paintStroke({
        volumeId,
        plane: 'xy',
        index: zView,
        classId: 1,
        radius: 1,
        points: [
          [5, 5],
          [12, 5],
        ],
      });
      expect(edit.changed).toBeGreaterThan(0);
      expect(edit.revision).toBe(rev0 + 1);
      await until(
        () => (progress.at(-1)?.seenRevision?.[volumeId] ?? 0) >= edit.revision,
        30_000,
        'the stroke seen',
      );
      await until(() => previews.slice(n).some((e) => e.latencyMs !== undefined), 30_000, 'a stroke preview');
      const e = previews.slice(n).find((x) => x.latencyMs !== undefined)!;
      expect(e).toMatchObject({ volumeId, plane: 'xy', index: zView, revision: edit.revision });
      expect(e.latencyMs).toBeGreaterThan(0);
      const p1 = await api.getPreview({ volumeId, plane: 'xy', index: zView });
      expect(p1.revision).toBeGreaterThanOrEqual(edit.revision);
    } finally {
      await api.stopTraining(job);
    }
    const done = await api.waitJob({ jobId: job.jobId, timeoutMs: 120_000 });
    expect(done.state, JSON.stringify(done.error)).toBe('done');
    const r1 = done.result as TrainResult;
    expect(r1.seenRevision?.[volumeId]).toBeGreaterThanOrEqual(1);
    expect(r1.startIteration).toBe(0);

    // Continue = startTraining again: the newest compatible model by default
    const n2 = progress.length;
    const job2 = await api.startTraining({ volumeIds: [volumeId], preset: 'tiny', live: true });
    try {
      await until(
        () => progress.slice(n2).some((p) => p.iteration > r1.iterations),
        60_000,
        'a continued step',
      );
      const p = progress.slice(n2).find((x) => x.iteration > r1.iterations)!;
      expect(p.warmStartFrom).toBe(r1.model.id);
      expect(p.startIteration).toBe(r1.iterations);
    } finally {
      await api.stopTraining(job2);
    }
    const done2 = await api.waitJob({ jobId: job2.jobId, timeoutMs: 120_000 });
    expect((done2.result as TrainResult).warmStartFrom).toBe(r1.model.id);
    expect((done2.result as TrainResult).model.iterations).toBeGreaterThan(r1.iterations);

    // another preset: a fresh model, with the reason
    const n3 = progress.length;
    const job3 = await api.startTraining({ volumeIds: [volumeId], preset: 'desktop', iterations: 2 });
    const done3 = await api.waitJob({ jobId: job3.jobId, timeoutMs: 120_000 });
    expect(done3.state, JSON.stringify(done3.error)).toBe('done');
    const r3 = done3.result as TrainResult;
    expect(r3.warmStartFrom).toBeUndefined();
    expect(r3.freshReason).toContain('preset changed');
    expect(progress.slice(n3).at(-1)?.freshReason).toContain('preset changed');
    expect(r3.iterations).toBe(2);

    // densify while a live session runs: the session stops (its model kept) and densify uses that model
    const n4 = progress.length;
    const job4 = await api.startTraining({ volumeIds: [volumeId], preset: 'tiny', live: true });
    await until(
      () =>
        progress
          .slice(n4)
          .some(
            (p) => p.jobId === job4.jobId && p.iteration > (done2.result as TrainResult).model.iterations,
          ),
      60_000,
      'the live session running',
    );
    const d = await api.densify({ volumeId });
    const j4 = await api.getJob(job4);
    expect(j4.state).toBe('done');
    const dj = await api.waitJob({ jobId: d.jobId, timeoutMs: 120_000 });
    expect(dj.state, JSON.stringify(dj.error)).toBe('done');
    expect((dj.result as { modelId: string }).modelId).toBe((j4.result as TrainResult).model.id);
  }, 300_000);
});
