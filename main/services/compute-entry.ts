/**
 * Entry of the compute process: a Node child (child_process.fork, web shell / CLI) or an Electron
 * utilityProcess. Holds the resident volumes (compute-store.ts), answers calls on them at once (also while a
 * job runs), runs one handler per job, streams progress back. Every incoming message is checked against the
 * protocol's schemas (compute-protocol.ts); a bad one gets a 'protocol-error' (or the job's / call's failure)
 * reply, never a crash.
 */
import { parseToCompute, type CallMessage, type CallResult, type ComputeCallName, type ComputeCalls, type FromCompute, type StartMessage } from './compute-protocol.js';
import { handlers, computeInfo, type JobContext } from './compute-handlers.js';
import { toApiError } from './dispatch.js';
import { ComputeStore } from './compute-store.js';
import type { Progress } from '../common/progress.js';

interface ParentPort {
  on(ev: 'message', cb: (e: { data: unknown }) => void): void;
  postMessage(m: unknown): void;
}
/** Electron's utilityProcess gives the child a parentPort; a Node fork uses process.send */
const parentPort: ParentPort | undefined = Reflect.get(process, 'parentPort');

function send(m: FromCompute): void {
  if (parentPort) parentPort.postMessage(m);
  else if (process.send) process.send(m);
}

const store = new ComputeStore();
const running = new Map<string, { cancel: AbortController; stop: AbortController }>();
const early = new Map<string, 'cancel' | 'stop'>();

/** The resident-volume service, one method per call (what the parent's proxy calls). */
function callsFor(callId: number): ComputeCalls {
  let last = 0;
  const onProgress = (p: Progress) => {
    const t = Date.now();
    if (t - last < 100 && p.fraction < 1) return;
    last = t;
    send({ type: 'call-progress', callId, progress: p });
  };
  return {
    openVolume: (r) => store.open(r, onProgress),
    closeVolume: async (r) => store.close(r),
    getSlice: async (r) => store.slice(r),
    getBrick: async (r) => store.brick(r),
    setLabels: async (r) => store.setLabels(r),
    getUncertainty: async (r) => store.uncertainty(r.volumeId),
    getPredictionSlice: (r) => store.predictionSlice(r),
    resident: async () => store.resident(),
    setVisiblePlanes: async (r) => store.setVisiblePlanes(r),
    getPreview: async (r) => store.preview(r),
    getPreviewVolume: async (r) => store.previewVolume(r),
  };
}

function invoke<M extends ComputeCallName>(calls: ComputeCalls, method: M, payload: Parameters<ComputeCalls[M]>[0]): Promise<CallResult<M>> {
  const fn: (p: Parameters<ComputeCalls[M]>[0]) => Promise<CallResult<M>> = calls[method];
  return fn(payload);
}

async function onCall(m: CallMessage): Promise<void> {
  try {
    const value = await invoke(callsFor(m.callId), m.method, m.payload);
    send({ type: 'reply', callId: m.callId, ok: true, value });
  } catch (e) {
    send({ type: 'reply', callId: m.callId, ok: false, error: toApiError(e).toInfo() });
  }
}

function runJob<K extends StartMessage['kind']>(kind: K, payload: Parameters<(typeof handlers)[K]>[0], ctx: JobContext): Promise<unknown> {
  const fn: (p: Parameters<(typeof handlers)[K]>[0], c: JobContext) => Promise<unknown> = handlers[kind];
  return fn(payload, ctx);
}

async function onStart(m: StartMessage): Promise<void> {
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
    store,
    emitPreview: (event) => send({ type: 'preview', event }),
    onProgress: (p) => {
      const t = Date.now();
      // at most ~10 progress messages a second, but always the last one
      if (t - lastSent < 100 && p.fraction < 1) return;
      lastSent = t;
      send({ type: 'progress', jobId: m.jobId, progress: p });
    },
  };
  try {
    const result = await runJob(m.kind, m.payload, ctx);
    send({ type: 'done', jobId: m.jobId, result });
  } catch (e) {
    send({ type: 'failed', jobId: m.jobId, error: ctl.cancel.signal.aborted ? { code: 'cancelled', message: 'cancelled' } : toApiError(e).toInfo() });
  } finally {
    running.delete(m.jobId);
  }
}

async function onMessage(raw: unknown): Promise<void> {
  const parsed = parseToCompute(raw);
  if (!parsed.ok) {
    if (parsed.jobId !== undefined) send({ type: 'failed', jobId: parsed.jobId, error: { code: 'bad-request', message: parsed.message } });
    else if (parsed.callId !== undefined) send({ type: 'reply', callId: parsed.callId, ok: false, error: { code: 'bad-request', message: parsed.message } });
    else send({ type: 'protocol-error', message: parsed.message });
    return;
  }
  const m = parsed.msg;
  if (m.type === 'info') {
    send({ type: 'info', info: await computeInfo() });
    return;
  }
  if (m.type === 'call') return onCall(m);
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
  return onStart(m);
}

if (parentPort) parentPort.on('message', (e) => void onMessage(e.data));
else process.on('message', (m) => void onMessage(m));
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
