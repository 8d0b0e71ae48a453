/**
 * "Annotate here next" end to end in the compute process (issue 13 item 3): the app's path (resident volume,
 * label delta, train job, densify job) records the prediction's per-slice uncertainty, the getUncertainty call
 * answers it, and the API's ranking (services/suggestions.ts) returns the best unpainted slices; then the same
 * through the API service with a real compute process (paint, train, densify, getSuggestions). Real data: a
 * 40 x 64 x 64 crop of the plant nuclei 1135 with its ground truth on the middle xy, xz and yz slices.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, dataFile } from '../helpers/paths.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';
import { ApiError } from '../../main/common/api.js';
import { ComputeStore } from '../../main/services/compute-store.js';
import { handlers, type JobContext } from '../../main/services/compute-handlers.js';
import { COMPUTE_CALLS } from '../../main/services/compute-protocol.js';
import { suggestionsFor } from '../../main/services/suggestions.js';
import { defaultGap } from '../../main/pipeline/suggest.js';
import { sparseFromSlices } from '../../main/evaluation/slices.js';
import { ApiService } from '../../main/services/api-service.js';
import { nodeForkLauncher } from '../../main/services/jobs.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const OUT = join(ARTIFACTS, 'suggest-handler');
const [Z, Y, X] = [40, 64, 64];

function crop(v: Volume): Volume {
  const s = v.shape;
  const data = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) data[(z * Y + y) * X + x] = v.data[((30 + z) * s.y + 20 + y) * s.x + 20 + x]!;
  return { ...v, data, dtype: 'uint8', shape: { ...s, x: X, y: Y, z: Z } };
}

const painted = { xy: [20], xz: [32], yz: [32] };
let sparse: Uint8Array;
let truthClasses: Uint8Array;

beforeAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  await writeImageJTiff(join(OUT, 'raw.tif'), crop(await readVolume(H5, { dataset: 'raw' })));
  const gt = crop(await readVolume(H5, { dataset: 'label' }));
  const classes = Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1));
  truthClasses = classes;
  sparse = sparseFromSlices(classes, { x: X, y: Y, z: Z }, [
    { axis: 'z', index: painted.xy[0]! },
    { axis: 'y', index: painted.xz[0]! },
    { axis: 'x', index: painted.yz[0]! },
  ]);
}, 60_000);

describe('getSuggestions on a densified 1135 crop', () => {
  it('records per-slice uncertainty at densify and ranks unpainted slices, best first', async () => {
    const store = new ComputeStore();
    await store.open({ volumeId: 'v1', path: join(OUT, 'raw.tif') });
    store.setLabels({ volumeId: 'v1', layer: 'annotation', box: null, data: sparse });
    // before any prediction: nothing to rank by, and the API says what to do
    expect(store.uncertainty('v1')).toBeNull();
    expect(() => suggestionsFor('v1', store.uncertainty('v1'), painted)).toThrow(ApiError);
    expect(() => suggestionsFor('v1', null, painted)).toThrow(/no prediction to rank slices by yet: densify/);

    const ctx: JobContext = { signal: new AbortController().signal, stopSignal: new AbortController().signal, onProgress: () => {}, store };
    const tr = await handlers.train(
      {
        modelId: 'm1',
        modelDir: join(OUT, 'model'),
        settings: { preset: 'tiny', iterations: 6, seed: 3 },
        net: { dims: 3, inChannels: 1, numClasses: 2, levels: 2, baseFilters: 4, padding: 'valid', batchNorm: true, bnAtTest: 'batch' },
        classNames: ['background', 'nucleus'],
        volumeIds: ['v1'],
      } as Parameters<typeof handlers.train>[0],
      ctx,
    );
    expect(tr.iterations).toBe(6);
    await handlers.densify({ volumeId: 'v1', modelDir: join(OUT, 'model'), modelId: 'm1', keepAnnotation: false } as Parameters<typeof handlers.densify>[0], ctx);

    const rec = store.uncertainty('v1');
    expect(rec).not.toBeNull();
    // what the compute link carries passes its schema
    expect(COMPUTE_CALLS.getUncertainty.result.safeParse(rec).success).toBe(true);
    expect(rec!.from).toBe('prediction');
    expect(rec!.iteration).toBe(6);
    expect(rec!.perAxis.xy.length).toBe(Z);
    expect(rec!.perAxis.xz.length).toBe(Y);
    expect(rec!.perAxis.yz.length).toBe(X);
    for (const p of ['xy', 'xz', 'yz'] as const) for (const v of rec!.perAxis[p]) expect(v >= 0 && v <= 1).toBe(true);
    // the painted xy slice is learned (the forest member fits its paint): less uncertain than the typical xy slice
    const xy = [...rec!.perAxis.xy].sort((a, b) => a - b);
    expect(rec!.perAxis.xy[20]!).toBeLessThan(xy[Z >> 1]!);

    const s = suggestionsFor('v1', rec, painted);
    expect(s.volumeId).toBe('v1');
    expect(s.from).toBe('prediction');
    expect(s.iteration).toBe(6);
    // at most 10; the near-duplicate gap (15 % of the depth: 6 of 40, 10 of 64) leaves room for about that many
    expect(s.ranked.length).toBeGreaterThanOrEqual(6);
    expect(s.ranked.length).toBeLessThanOrEqual(10);
    expect(Math.max(...s.perAxis.xy, ...s.perAxis.xz, ...s.perAxis.yz)).toBe(1);
    for (let i = 1; i < s.ranked.length; i++) expect(s.ranked[i]!.score).toBeLessThanOrEqual(s.ranked[i - 1]!.score);
    // the top entry is the most uncertain slice that is not painted nor a near-duplicate of a painted one
    const gap = { xy: defaultGap(Z), xz: defaultGap(Y), yz: defaultGap(X) };
    let best = -1;
    for (const p of ['xy', 'xz', 'yz'] as const)
      s.perAxis[p].forEach((v, i) => {
        if (Math.abs(i - painted[p][0]!) > gap[p]) best = Math.max(best, v);
      });
    expect(s.ranked[0]!.score).toBe(best);
    for (const r of s.ranked) {
      expect(Math.abs(r.index - painted[r.plane][0]!)).toBeGreaterThan(gap[r.plane]);
      expect(r.score).toBe(s.perAxis[r.plane][r.index]);
    }
    // painting the top suggestion takes it (and its neighbours) off the list
    const top = s.ranked[0]!;
    const after = suggestionsFor('v1', rec, { ...painted, [top.plane]: [...painted[top.plane], top.index] });
    expect(after.ranked.some((r) => r.plane === top.plane && Math.abs(r.index - top.index) <= gap[top.plane])).toBe(false);
    expect(after.ranked[0]).toEqual(s.ranked[1]);
  }, 240_000);
});

describe('getSuggestions through the API (web shell service, real compute process)', () => {
  it("says 'densify first' before a prediction, then ranks slices away from the painted xy plane", async () => {
    const api = new ApiService({ shell: 'web', workDir: join(OUT, 'work'), launcher: nodeForkLauncher() });
    try {
      const v = await api.openVolume({ path: join(OUT, 'raw.tif') });
      await expect(api.getSuggestions({ volumeId: v.id })).rejects.toMatchObject({ code: 'not-found', message: expect.stringMatching(/densify it/) });
      // the ground truth's classes painted on the xy plane z = 20, one region per class
      const plane = truthClasses.subarray(20 * X * Y, 21 * X * Y);
      for (const c of [1, 2]) {
        const mask = Uint8Array.from(plane, (l) => (l === c ? 1 : 0));
        await api.paintRegion({ volumeId: v.id, plane: 'xy', index: 20, classId: c, origin: [0, 0], width: X, height: Y, mask });
      }
      expect((await api.getAnnotationSummary({ volumeId: v.id })).paintedSlices.xy).toEqual([20]);
      const tr = await api.waitJob({ ...(await api.startTraining({ preset: 'tiny', iterations: 4, seed: 2, fresh: true, volumeIds: [v.id] })), timeoutMs: 180_000 });
      expect(tr.state, tr.error?.message).toBe('done');
      const ds = await api.waitJob({ ...(await api.densify({ volumeId: v.id })), timeoutMs: 180_000 });
      expect(ds.state, ds.error?.message).toBe('done');
      const s = await api.getSuggestions({ volumeId: v.id });
      expect(s.from).toBe('prediction');
      expect(s.perAxis.xy.length).toBe(Z);
      expect(s.perAxis.xz.length).toBe(Y);
      expect(s.ranked.length).toBeGreaterThanOrEqual(6);
      for (const r of s.ranked) if (r.plane === 'xy') expect(Math.abs(r.index - 20)).toBeGreaterThan(defaultGap(Z));
    } finally {
      await api.dispose();
    }
  }, 400_000);
});
