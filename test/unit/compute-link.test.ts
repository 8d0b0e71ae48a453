/**
 * The compute link (issue 12 items 2 and 3): one schema per job kind and per resident-volume call, checked in
 * the child (requests) and in the parent (results, replies); volumes resident in the compute process, jobs that
 * name them by id and send label deltas only; a reopened project and a restarted compute process.
 * Real data: plant-seg nuclei 1135_mini.h5 (its `raw` image; painted strokes). The fake channel in the
 * "parent checks" block stands in for a compute process that answers wrongly (no real one does).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiService } from '../../main/services/api-service.js';
import { JobManager, nodeForkLauncher, type ComputeChannel, type ComputeLauncher } from '../../main/services/jobs.js';
import { parseJobResult, parseToCompute, type ToComputeOut } from '../../main/services/compute-protocol.js';
import { readVolume } from '../../main/io/index.js';
import { volumeSlice } from '../../main/services/volume-data.js';
import type { Volume } from '../../main/common/volume.js';
import { REPO, dataFile } from '../helpers/paths.js';

const SRC = dataFile('plantseg_nuclei_mini', '1135_mini.h5');

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** bytes of every typed array in a message tree */
function typedBytes(v: unknown): number {
  if (ArrayBuffer.isView(v)) return v.byteLength;
  if (Array.isArray(v)) return v.reduce((a: number, x) => a + typedBytes(x), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce((a: number, x) => a + typedBytes(x), 0);
  return 0;
}

/** A real compute child whose outgoing messages are recorded. */
function recordingLauncher(sent: ToComputeOut[]): ComputeLauncher {
  const base = nodeForkLauncher();
  return () => {
    const ch = base();
    return {
      get pid() {
        return ch.pid;
      },
      send: (m) => {
        sent.push(m);
        ch.send(m);
      },
      onMessage: (cb) => ch.onMessage(cb),
      onExit: (cb) => ch.onExit(cb),
      kill: () => ch.kill(),
    };
  };
}

describe('compute protocol schemas', () => {
  const train = {
    modelId: 'model-1',
    modelDir: '/tmp/m',
    settings: { preset: 'tiny', iterations: 5 },
    net: { dims: 3, inChannels: 1, numClasses: 2, levels: 2, baseFilters: 8, padding: 'same', batchNorm: true, bnAtTest: 'batch' },
    classNames: ['background', 'nucleus'],
    volumeIds: ['vol-1'],
  };

  it('the child accepts a train job that names its volumes, and refuses one that carries an image', () => {
    const ok = parseToCompute({ type: 'start', jobId: 'train-1', kind: 'train', payload: train });
    expect(ok.ok).toBe(true);
    if (ok.ok && ok.msg.type === 'start' && ok.msg.kind === 'train') expect(ok.msg.payload.net.baseFilters).toBe(8);
    const { volumeIds: _v, ...noIds } = train;
    const bad = parseToCompute({ type: 'start', jobId: 'train-2', kind: 'train', payload: { ...noIds, volumes: [{ id: 'v', data: new Uint16Array(8) }] } });
    expect(bad).toMatchObject({ ok: false, jobId: 'train-2' });
    expect(!bad.ok && bad.message).toMatch(/train job: invalid request: .*volumeIds/);
    expect(!bad.ok && bad.message).toMatch(/volumes/);
    // the API's own rules apply to the settings inside (schemas derived from api-schema.ts)
    const noBudget = parseToCompute({ type: 'start', jobId: 'train-3', kind: 'train', payload: { ...train, settings: { preset: 'tiny' } } });
    expect(!noBudget.ok && noBudget.message).toMatch(/minutes or iterations/);
    const badNet = parseToCompute({ type: 'start', jobId: 'train-4', kind: 'train', payload: { ...train, net: { ...train.net, padding: 'mirror' } } });
    expect(!badNet.ok && badNet.message).toMatch(/net\.padding/);
  });

  it('the child refuses unknown calls and bad call payloads, naming the call and the field', () => {
    const unknown = parseToCompute({ type: 'call', callId: 3, method: 'readFile', payload: { path: '/etc/passwd' } });
    expect(unknown.ok).toBe(false);
    expect(!unknown.ok && unknown.message).toMatch(/method/);
    const badPlane = parseToCompute({ type: 'call', callId: 4, method: 'getSlice', payload: { volumeId: 'v', plane: 'ab', index: 0 } });
    expect(badPlane).toMatchObject({ ok: false, callId: 4 });
    expect(!badPlane.ok && badPlane.message).toMatch(/getSlice: invalid request: plane/);
  });

  it('the parent refuses results that do not match their job kind', () => {
    expect(parseJobResult('densify', { seconds: 1 })).toMatchObject({ ok: false });
    expect(parseJobResult('densify', { labels: [1, 2], seconds: 1 })).toMatchObject({ ok: false });
    const good = parseJobResult('densify', { labels: new Uint8Array(4), seconds: 1 });
    expect(good.ok && good.value.labels.length).toBe(4);
    expect(parseJobResult('train', { iterations: 3, finalLoss: NaN, seconds: 1, stopped: false }).ok).toBe(true);
    expect(parseJobResult('evaluate', { volumeId: 'v', iou: [NaN, 0.5], meanIoU: 0.5 })).toMatchObject({ ok: false });
  });

  it('nothing is cast across the link', async () => {
    for (const f of ['compute-protocol', 'compute-entry', 'compute-handlers', 'compute-store', 'jobs', 'job-facade', 'volume-store', 'api-service']) {
      const src = await readFile(join(REPO, 'main', 'services', `${f}.ts`), 'utf8');
      expect(src, f).not.toMatch(/as unknown as/);
      expect(src, f).not.toMatch(/\braw as\b/);
      // handlers get checked, typed requests: none parses an unknown payload itself
      expect(src, f).not.toMatch(/\(payload: unknown, ctx/);
    }
  });
});

describe('the parent checks what the compute process answers', () => {
  /** an in-process stand-in for a compute process that answers every job and call with the wrong shape */
  function liarLauncher(): ComputeLauncher {
    return (): ComputeChannel => {
      let listener: (m: unknown) => void = () => {};
      return {
        pid: 1,
        send: (m) => {
          if (m.type === 'start') setTimeout(() => listener({ type: 'done', jobId: m.jobId, result: { labels: 'not an array', seconds: 1 } }), 5);
          if (m.type === 'call') setTimeout(() => listener({ type: 'reply', callId: m.callId, ok: true, value: { width: 'wide' } }), 5);
        },
        onMessage: (cb) => {
          listener = cb;
          setTimeout(() => cb({ type: 'ready', pid: 1 }), 1);
        },
        onExit: () => {},
        kill: () => {},
      };
    };
  }

  it('a job result of the wrong shape fails the job; a reply of the wrong shape rejects the call', async () => {
    const m = new JobManager(liarLauncher(), { job: () => {}, compute: () => {} });
    cleanup.push(() => m.dispose());
    let finished = false;
    const j = m.submit('densify', 'densify', { volumeId: 'v', modelDir: '/m', modelId: 'm', keepAnnotation: false }, { finish: () => (finished = true) });
    const done = await m.wait(j.id, 5000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('internal');
    expect(done.error?.message).toMatch(/invalid result: labels/);
    expect(finished).toBe(false);
    await expect(m.call('getSlice', { volumeId: 'v', plane: 'xy', index: 0 })).rejects.toThrow(/answered getSlice with an invalid result/);
  });

  it('a real compute process answers a job with a bad request as failed, naming the field', async () => {
    const m = new JobManager(nodeForkLauncher(), { job: () => {}, compute: () => {} });
    cleanup.push(() => m.dispose());
    const j = m.submit('densify', 'densify', { volumeId: 'v', modelDir: '/m', modelId: 'm', keepAnnotation: 'yes' } as never);
    const done = await m.wait(j.id, 60_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('bad-request');
    expect(done.error?.message).toMatch(/densify job: invalid request: keepAnnotation/);
    await expect(m.call('getSlice', { volumeId: 'nope', plane: 'xy', index: 0 })).rejects.toThrow(/not resident/);
  });
});

describe('volumes resident in the compute process', () => {
  let dir: string;
  let direct: Volume;
  beforeAll(async () => {
    direct = await readVolume(SRC);
  });

  async function service(sent: ToComputeOut[]) {
    dir = await mkdtemp(join(tmpdir(), 'sliceform-link-'));
    await copyFile(SRC, join(dir, 'nuclei.h5'));
    const api = new ApiService({ shell: 'web', workDir: join(dir, 'work'), launcher: recordingLauncher(sent) });
    cleanup.push(async () => {
      await api.dispose();
      await rm(dir, { recursive: true, force: true });
    });
    return api;
  }

  it('holds the image once, serves slices, and jobs send ids and label deltas only', async () => {
    const sent: ToComputeOut[] = [];
    const api = await service(sent);
    const v = await api.openVolume({ path: join(dir, 'nuclei.h5') });
    const voxelBytes = direct.data.byteLength;
    const res = await api.jobs.call('resident', undefined);
    expect(res.reads).toBe(1);
    expect(res.images).toHaveLength(1);
    expect(res.images[0]!.bytes).toBe(voxelBytes);
    expect(res.images[0]!.sha256).toBe(v.sha256);
    // slices come from the compute process and are the file's voxels
    for (const [plane, index] of [['xy', 20], ['xz', 30], ['yz', 7]] as const) {
      const s = await api.getSlice({ volumeId: v.id, plane, index });
      const want = volumeSlice(direct, plane, index);
      expect([s.width, s.height, s.dtype]).toEqual([want.width, want.height, want.dtype]);
      expect(Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength).equals(Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength))).toBe(true);
    }
    const a = await api.paintStroke({ volumeId: v.id, plane: 'xy', index: 20, classId: 2, radius: 3, points: [[20, 20], [40, 22]] });
    const b = await api.paintStroke({ volumeId: v.id, plane: 'xy', index: 21, classId: 1, radius: 2, points: [[60, 30]] });
    expect(a.changed + b.changed).toBeGreaterThan(0);
    const before = sent.length;
    const job = await api.waitJob({ jobId: (await api.evaluate({ volumeId: v.id, layer: 'annotation' })).jobId, timeoutMs: 120_000 });
    expect(job.state).toBe('done');
    // annotation against itself on the annotated voxels: the compute process's copy is exactly the editor's
    expect(job.result).toMatchObject({ meanIoU: 1, voxels: a.changed + b.changed });
    const msgs = sent.slice(before);
    const start = msgs.find((m) => m.type === 'start')!;
    expect(typedBytes(start)).toBe(0);
    const deltas = msgs.filter((m) => m.type === 'call' && m.method === 'setLabels');
    expect(deltas).toHaveLength(1);
    // the delta is the union of the two edits' boxes (z 20 and 21), not the volume
    const boxVoxels = [0, 1, 2].reduce((p, k) => p * (Math.max(a.box!.max[k]!, b.box!.max[k]!) - Math.min(a.box!.min[k]!, b.box!.min[k]!)), 1);
    expect(Math.min(a.box!.min[2], b.box!.min[2])).toBe(20);
    expect(typedBytes(deltas[0])).toBe(boxVoxels);
    expect(typedBytes(deltas[0])).toBeLessThan(voxelBytes / 50);
    // no typed array bigger than a slice ever went to the compute process
    expect(Math.max(...sent.map(typedBytes))).toBeLessThan(voxelBytes / 50);
  }, 240_000);

  it('a reopened project does not read its volume again; a restarted compute process gets it back with its labels', async () => {
    const sent: ToComputeOut[] = [];
    const api = await service(sent);
    const v = await api.openVolume({ path: join(dir, 'nuclei.h5') });
    const st = await api.paintStroke({ volumeId: v.id, plane: 'xz', index: 30, classId: 2, radius: 2, points: [[10, 10], [30, 12]] });
    await api.saveProject({ path: join(dir, 'p.sliceform') });
    await api.newProject();
    await api.openProject({ path: join(dir, 'p.sliceform') });
    const r1 = await api.jobs.call('resident', undefined);
    expect(r1.reads).toBe(1);
    const vid = (await api.listVolumes())[0]!.id;
    expect(vid).toBe(v.id);
    const s = await api.getSlice({ volumeId: vid, plane: 'xz', index: 30 });
    expect(Array.from(s.data.subarray(0, 64))).toEqual(Array.from(volumeSlice(direct, 'xz', 30).data.subarray(0, 64)));
    // the saved annotation reached the compute process with the reopened project
    const e1 = await api.waitJob({ jobId: (await api.evaluate({ volumeId: vid, layer: 'annotation' })).jobId, timeoutMs: 120_000 });
    expect(e1.result).toMatchObject({ meanIoU: 1, voxels: st.changed });
    // crash the compute process: the next call opens the volume in the new one, the next job re-sends the labels
    const pid = api.jobs.computePid;
    const crash = await api.waitJob({ jobId: api.jobs.submit('evaluate', 'selftest', { mode: 'crash', code: 70 }).id, timeoutMs: 60_000 });
    expect(crash.error?.code).toBe('compute-crashed');
    const s2 = await api.getSlice({ volumeId: vid, plane: 'xz', index: 31 }); // not cached in the app process
    expect(api.jobs.computePid).not.toBe(pid);
    expect(Array.from(s2.data.subarray(0, 64))).toEqual(Array.from(volumeSlice(direct, 'xz', 31).data.subarray(0, 64)));
    // a slice seen before is answered from the app process's small cache
    const again = await api.getSlice({ volumeId: vid, plane: 'xz', index: 30 });
    expect(again.data).toBe(s.data);
    const e2 = await api.waitJob({ jobId: (await api.evaluate({ volumeId: vid, layer: 'annotation' })).jobId, timeoutMs: 120_000 });
    expect(e2.result).toMatchObject({ meanIoU: 1, voxels: st.changed });
    expect((await api.jobs.call('resident', undefined)).reads).toBe(1);
  }, 240_000);
});
