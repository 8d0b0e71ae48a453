/**
 * The job manager against a real compute child process (node fork of main/services/compute-entry.ts), using the
 * compute process's built-in diagnostics jobs (sleep / crash / hang / echo) — no training needed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { JobManager, nodeForkLauncher } from '../../main/services/jobs.js';
import type { ComputeStatusEvent, JobInfo } from '../../main/common/api.js';

let mgr: JobManager | undefined;
afterEach(() => {
  mgr?.dispose();
  mgr = undefined;
});

function make(cancelGraceMs = 1500) {
  const jobs: JobInfo[] = [];
  const compute: ComputeStatusEvent[] = [];
  mgr = new JobManager(nodeForkLauncher(), { job: (j) => jobs.push(j), compute: (e) => compute.push(e) }, { cancelGraceMs });
  return { m: mgr, jobs, compute };
}

describe('JobManager + compute process', () => {
  it('runs a job in a separate process with progress and a result', async () => {
    const { m, jobs } = make();
    const j = m.submit('evaluate', 'selftest', { mode: 'sleep', ms: 300, steps: 3 });
    expect(j.state).toBe('queued');
    const done = await m.wait(j.id, 30_000);
    expect(done.state).toBe('done');
    expect(done.result).toEqual({ steps: 3, stopped: false });
    expect(done.progress.fraction).toBe(1);
    const fractions = jobs.filter((x) => x.id === j.id && x.state === 'running').map((x) => x.progress.fraction);
    expect(fractions.some((f) => f > 0 && f < 1)).toBe(true);
    expect(m.computePid).toBeGreaterThan(0);
    expect(m.computePid).not.toBe(process.pid);
    // typed arrays travel binary both ways
    const e = await m.wait(m.submit('evaluate', 'selftest', { mode: 'echo', data: Uint16Array.from([1, 65535]) }).id, 30_000);
    expect(e.result).toBeInstanceOf(Uint16Array);
    expect([...(e.result as Uint16Array)]).toEqual([1, 65535]);
  });

  it('cancels a running job and a queued one', async () => {
    const { m } = make();
    const a = m.submit('train', 'selftest', { mode: 'sleep', ms: 20_000, steps: 200 });
    const b = m.submit('densify', 'selftest', { mode: 'sleep', ms: 10, steps: 1 });
    await new Promise((r) => setTimeout(r, 1500));
    m.cancel(b.id);
    expect(m.get(b.id).state).toBe('cancelled');
    m.cancel(a.id);
    const ra = await m.wait(a.id, 10_000);
    expect(ra.state).toBe('cancelled');
    expect(ra.error?.code).toBe('cancelled');
  });

  it('stops training gracefully (keeps the result)', async () => {
    const { m } = make();
    const a = m.submit('train', 'selftest', { mode: 'sleep', ms: 20_000, steps: 200 });
    // stop once it has made progress (a stop that overtakes the start is also honoured, see below)
    for (let t = 0; m.get(a.id).progress.fraction === 0 && t < 300; t++) await new Promise((r) => setTimeout(r, 100));
    m.stop(a.id);
    const r = await m.wait(a.id, 10_000);
    expect(r.state).toBe('done');
    expect((r.result as { stopped: boolean }).stopped).toBe(true);
  });

  it('honours a stop or cancel sent before the compute process started the job', async () => {
    const { m } = make();
    const a = m.submit('train', 'selftest', { mode: 'sleep', ms: 20_000, steps: 200 });
    m.stop(a.id); // the compute process is still starting
    const r = await m.wait(a.id, 30_000);
    expect(r).toMatchObject({ state: 'done', result: { steps: 0, stopped: true } });
    const b = m.submit('densify', 'selftest', { mode: 'sleep', ms: 20_000, steps: 200 });
    await new Promise((r) => setImmediate(r));
    m.cancel(b.id);
    expect((await m.wait(b.id, 30_000)).state).toBe('cancelled');
  });

  it('reports a crashed compute process, restarts it, and runs the next job', async () => {
    const { m, compute } = make();
    const pid1 = (await m.wait(m.submit('evaluate', 'selftest', { mode: 'echo', data: 1 }).id, 30_000), m.computePid);
    const crash = await m.wait(m.submit('densify', 'selftest', { mode: 'crash', code: 70 }).id, 30_000);
    expect(crash.state).toBe('failed');
    expect(crash.error?.code).toBe('compute-crashed');
    expect(crash.error?.message).toMatch(/exit code 70/);
    const next = await m.wait(m.submit('evaluate', 'selftest', { mode: 'echo', data: 'after' }).id, 30_000);
    expect(next).toMatchObject({ state: 'done', result: 'after' });
    expect(m.computePid).not.toBe(pid1);
    const states = compute.map((c) => c.state);
    expect(states).toEqual(expect.arrayContaining(['starting', 'ready', 'crashed', 'restarting']));
    expect(compute.find((c) => c.state === 'crashed')?.lostJobs).toEqual([crash.id]);
  });

  it('restarts a compute process stuck in a job that ignores cancel', async () => {
    const { m } = make(1000);
    const h = m.submit('train', 'selftest', { mode: 'hang' });
    for (let t = 0; m.get(h.id).progress.stage !== 'hanging' && t < 300; t++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 300));
    const pid = m.computePid;
    m.cancel(h.id);
    const r = await m.wait(h.id, 10_000);
    expect(r.state).toBe('cancelled');
    const next = await m.wait(m.submit('evaluate', 'selftest', { mode: 'echo', data: 2 }).id, 30_000);
    expect(next.result).toBe(2);
    expect(m.computePid).not.toBe(pid);
  });

  it('answers with a clear error for bad payloads inside the compute process', async () => {
    const { m } = make();
    const r = await m.wait(m.submit('evaluate', 'selftest', { mode: 'bogus' }).id, 30_000);
    expect(r.state).toBe('failed');
    expect(r.error?.message).toMatch(/mode/);
  });
});
