/**
 * Entry of the compute process: a Node child (child_process.fork, web shell / CLI) or an Electron
 * utilityProcess. Receives ToCompute messages, runs one handler per job, streams progress back.
 * Every incoming message is validated; a bad one gets a 'protocol-error' reply, never a crash.
 */
import { ToCompute, type FromCompute } from './compute-protocol.js';
import { runComputeJob, computeInfo, type JobContext } from './compute-handlers.js';
import { toApiError } from './dispatch.js';

interface ParentPort {
  on(ev: 'message', cb: (e: { data: unknown }) => void): void;
  postMessage(m: unknown): void;
}
const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;

function send(m: FromCompute): void {
  if (parentPort) parentPort.postMessage(m);
  else if (process.send) process.send(m);
}

const running = new Map<string, { cancel: AbortController; stop: AbortController }>();
const early = new Map<string, 'cancel' | 'stop'>();

async function onMessage(raw: unknown): Promise<void> {
  const parsed = ToCompute.safeParse(raw);
  if (!parsed.success) {
    send({ type: 'protocol-error', message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
    return;
  }
  const m = parsed.data;
  if (m.type === 'info') {
    send({ type: 'info', info: await computeInfo() });
    return;
  }
  if (m.type === 'cancel' || m.type === 'stop') {
    const r = running.get(m.jobId);
    if (r) (m.type === 'cancel' ? r.cancel : r.stop).abort();
    // the request can overtake the job's start message: remember it for a moment
    else {
      early.set(m.jobId, m.type === 'cancel' || early.get(m.jobId) === 'cancel' ? 'cancel' : 'stop');
      setTimeout(() => early.delete(m.jobId), 60_000).unref();
    }
    return;
  }
  const ctl = { cancel: new AbortController(), stop: new AbortController() };
  const pre = early.get(m.jobId);
  early.delete(m.jobId);
  if (pre === 'cancel') ctl.cancel.abort();
  if (pre === 'stop') ctl.stop.abort();
  running.set(m.jobId, ctl);
  let lastSent = 0;
  const ctx: JobContext = {
    signal: ctl.cancel.signal,
    stopSignal: ctl.stop.signal,
    onProgress: (p) => {
      const t = Date.now();
      // at most ~10 progress messages a second, but always the last one
      if (t - lastSent < 100 && p.fraction < 1) return;
      lastSent = t;
      send({ type: 'progress', jobId: m.jobId, progress: p });
    },
  };
  try {
    const result = await runComputeJob(m.kind, m.payload, ctx);
    send({ type: 'done', jobId: m.jobId, result });
  } catch (e) {
    send({ type: 'failed', jobId: m.jobId, error: ctl.cancel.signal.aborted ? { code: 'cancelled', message: 'cancelled' } : toApiError(e).toInfo() });
  } finally {
    running.delete(m.jobId);
  }
}

if (parentPort) parentPort.on('message', (e) => void onMessage(e.data));
else process.on('message', (m) => void onMessage(m));
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
