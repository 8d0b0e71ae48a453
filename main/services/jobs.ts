/**
 * Job manager: runs training, densify, evaluate and batch jobs one at a time in the compute process,
 * reports progress, cancels, and survives a crashed compute process (the job fails with 'compute-crashed',
 * the process is restarted, the queue goes on). The app-side `finish` hook of a job turns the raw result
 * into the public one (e.g. stores a prediction and returns only its class counts).
 */
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { ApiError, type ApiErrorCode, type ApiErrorInfo, type ComputeStatusEvent, type JobInfo, type JobKind, type PreviewEvent } from '../common/api.js';
import type { Progress } from '../common/progress.js';
import {
  FromCompute,
  parseCallResult,
  parseJobResult,
  type CallRequest,
  type CallResult,
  type ComputeCallName,
  type ComputeCalls,
  type ComputeInfo,
  type ComputeJobKind,
  type JobRequest,
  type JobResult,
  type ToComputeOut,
} from './compute-protocol.js';
import { toApiError } from './dispatch.js';

export interface ComputeChannel {
  readonly pid?: number;
  send(msg: ToComputeOut): void;
  onMessage(cb: (m: unknown) => void): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  kill(): void;
}
export type ComputeLauncher = () => ComputeChannel;

/** The compiled compute entry beside this module (dist/), or the .ts source run through tsx (tests). */
export function computeEntryPath(): { path: string; execArgv: string[] } {
  const js = fileURLToPath(new URL('./compute-entry.js', import.meta.url));
  if (existsSync(js)) return { path: js, execArgv: [] };
  const ts = fileURLToPath(new URL('./compute-entry.ts', import.meta.url));
  return { path: ts, execArgv: ['--import', 'tsx'] };
}

/** Node child process (web shell, CLI): fork with structured-clone serialization so typed arrays stay binary. */
export function nodeForkLauncher(env?: NodeJS.ProcessEnv): ComputeLauncher {
  return () => {
    const { path, execArgv } = computeEntryPath();
    const child = fork(path, [], { serialization: 'advanced', execArgv, env: env ?? process.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return {
      get pid() {
        return child.pid;
      },
      send: (m) => {
        if (child.connected) child.send(m);
      },
      onMessage: (cb) => child.on('message', cb),
      onExit: (cb) => child.on('exit', (code, signal) => cb(code, signal)),
      kill: () => {
        child.kill('SIGKILL');
      },
    };
  };
}

interface JobRecord {
  info: JobInfo;
  /** sends the job's start message (typed by its kind); dropped once the job settles */
  start: ((jobId: string) => ToComputeOut) | undefined;
  /** runs just before the start message is sent (e.g. label deltas for the job's volumes) */
  prepare?: () => Promise<void>;
  /** checks the raw result against the kind's schema, then turns it into the public one */
  finish: (raw: unknown) => Promise<unknown>;
  waiters: Array<(j: JobInfo) => void>;
  cancelTimer?: NodeJS.Timeout;
}

export interface SubmitOptions<K extends ComputeJobKind> {
  volumeId?: string;
  /** runs in the app process right before the job starts in the compute process */
  prepare?: () => Promise<void>;
  /** turns the (schema-checked) compute result into the public result */
  finish?: (r: JobResult<K>) => Promise<unknown> | unknown;
}

interface PendingCall {
  method: ComputeCallName;
  resolve: (raw: unknown) => void;
  reject: (e: ApiError) => void;
  onProgress?: (p: Progress) => void;
  timer?: NodeJS.Timeout;
}

export interface JobManagerEvents {
  job(j: JobInfo): void;
  compute(e: ComputeStatusEvent): void;
  /** a live session's preview of a visible plane */
  preview?(e: PreviewEvent): void;
}

const now = () => new Date().toISOString();

export class JobManager {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly queue: string[] = [];
  private running: string | null = null;
  private channel: ComputeChannel | null = null;
  private readyPromise: Promise<void> | null = null;
  private info: ComputeInfo | null = null;
  private infoWaiters: Array<(i: ComputeInfo) => void> = [];
  private crashes: number[] = [];
  private disposed = false;
  private readonly calls = new Map<number, PendingCall>();
  private nextCallId = 1;
  /** bumps with every compute process started: state resident in an older one is gone */
  generation = 0;

  constructor(
    private readonly launcher: ComputeLauncher,
    private readonly events: JobManagerEvents,
    private readonly opts: { cancelGraceMs?: number } = {},
  ) {}

  /**
   * Starts a job; returns its id at once (state 'queued' or 'running'). The payload is typed by the compute
   * job kind; the compute process checks it, and its result is checked here before `finish` sees it.
   */
  submit<K extends ComputeJobKind>(kind: JobKind, computeKind: K, payload: JobRequest<K>, extra: SubmitOptions<K> = {}): JobInfo {
    if (this.disposed) throw new ApiError('internal', 'the job manager is shut down');
    const id = `${kind}-${randomBytes(4).toString('hex')}`;
    const info: JobInfo = { id, kind, state: 'queued', volumeId: extra.volumeId, progress: { fraction: 0, stage: 'queued' }, startedAt: now() };
    const start = (jobId: string): ToComputeOut => ({ type: 'start', jobId, kind: computeKind, payload }) as ToComputeOut;
    const finish = async (raw: unknown): Promise<unknown> => {
      const r = parseJobResult(computeKind, raw);
      if (!r.ok) throw new ApiError('internal', r.message);
      return extra.finish ? extra.finish(r.value) : r.value;
    };
    this.jobs.set(id, { info, start, prepare: extra.prepare, finish, waiters: [] });
    this.queue.push(id);
    const snapshot = structuredClone(info);
    this.events.job(snapshot);
    void this.pump();
    return snapshot;
  }

  get(id: string): JobInfo {
    const r = this.jobs.get(id);
    if (!r) throw new ApiError('not-found', `no job with id ${id}`);
    return structuredClone(r.info);
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((r) => structuredClone(r.info));
  }

  isActive(pred: (j: JobInfo) => boolean): boolean {
    return [...this.jobs.values()].some((r) => (r.info.state === 'queued' || r.info.state === 'running') && pred(r.info));
  }

  wait(id: string, timeoutMs?: number): Promise<JobInfo> {
    const r = this.jobs.get(id);
    if (!r) return Promise.reject(new ApiError('not-found', `no job with id ${id}`));
    if (r.info.state !== 'queued' && r.info.state !== 'running') return Promise.resolve(structuredClone(r.info));
    return new Promise((resolve, reject) => {
      let t: NodeJS.Timeout | undefined;
      const w = (j: JobInfo) => {
        if (t) clearTimeout(t);
        resolve(j);
      };
      r.waiters.push(w);
      if (timeoutMs !== undefined)
        t = setTimeout(() => {
          r.waiters = r.waiters.filter((x) => x !== w);
          reject(new ApiError('busy', `job ${id} still ${r.info.state} after ${timeoutMs} ms`));
        }, timeoutMs);
    });
  }

  /** Graceful stop (training keeps its model); other kinds are cancelled. */
  stop(id: string): void {
    const r = this.jobs.get(id);
    if (!r) throw new ApiError('not-found', `no job with id ${id}`);
    if (r.info.state === 'queued') return this.cancel(id);
    if (r.info.state !== 'running') return;
    if (r.info.kind !== 'train') return this.cancel(id);
    this.channel?.send({ type: 'stop', jobId: id });
  }

  cancel(id: string): void {
    const r = this.jobs.get(id);
    if (!r) throw new ApiError('not-found', `no job with id ${id}`);
    if (r.info.state === 'queued') {
      this.queue.splice(this.queue.indexOf(id), 1);
      this.settle(r, 'cancelled', undefined, { code: 'cancelled', message: 'cancelled before it started' });
      return;
    }
    if (r.info.state !== 'running') return;
    this.channel?.send({ type: 'cancel', jobId: id });
    // a job that ignores the cancel (stuck in native code) is ended by restarting the compute process
    r.cancelTimer ??= setTimeout(() => {
      if (r.info.state === 'running' && this.channel) {
        this.settle(r, 'cancelled', undefined, { code: 'cancelled', message: 'cancelled (compute process restarted)' });
        this.running = null;
        const ch = this.channel;
        this.channel = null;
        this.readyPromise = null;
        this.failCalls('the compute process was restarted');
        ch.kill();
        void this.pump();
      }
    }, this.opts.cancelGraceMs ?? 5000);
  }

  /** Engine/feature info of the compute process (starts it when needed). */
  async computeInfo(timeoutMs = 60_000): Promise<ComputeInfo> {
    if (this.info) return this.info;
    await this.ensureChannel();
    this.channel!.send({ type: 'info' });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new ApiError('internal', `compute process did not answer in ${timeoutMs} ms`)), timeoutMs);
      this.infoWaiters.push((i) => {
        clearTimeout(t);
        resolve(i);
      });
    });
  }

  get computePid(): number | undefined {
    return this.channel?.pid;
  }

  /**
   * Calls the compute process's resident-volume service (starts the process when needed). The reply is checked
   * against the method's result schema. Answered at once, also while a job runs.
   */
  async call<M extends ComputeCallName>(method: M, req: CallRequest<M>, opts: { timeoutMs?: number; onProgress?: (p: Progress) => void } = {}): Promise<CallResult<M>> {
    if (this.disposed) throw new ApiError('internal', 'the job manager is shut down');
    await this.ensureChannel();
    const callId = this.nextCallId++;
    const raw = await new Promise<unknown>((resolve, reject) => {
      const pc: PendingCall = { method, resolve, reject, onProgress: opts.onProgress };
      if (opts.timeoutMs !== undefined)
        pc.timer = setTimeout(() => {
          this.calls.delete(callId);
          reject(new ApiError('internal', `the compute process did not answer ${method} in ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      this.calls.set(callId, pc);
      this.channel!.send({ type: 'call', callId, method, payload: req } as ToComputeOut);
    });
    const r = parseCallResult(method, raw);
    if (!r.ok) throw new ApiError('internal', r.message);
    return r.value;
  }

  /** The resident-volume service as an object typed by its interface (VS Code's ProxyChannel.toService). */
  service(): ComputeCalls {
    return {
      openVolume: (r) => this.call('openVolume', r),
      closeVolume: (r) => this.call('closeVolume', r),
      getSlice: (r) => this.call('getSlice', r),
      getBrick: (r) => this.call('getBrick', r),
      setLabels: (r) => this.call('setLabels', r),
      getUncertainty: (r) => this.call('getUncertainty', r),
      getPredictionSlice: (r) => this.call('getPredictionSlice', r),
      resident: (r) => this.call('resident', r),
      setVisiblePlanes: (r) => this.call('setVisiblePlanes', r),
      getPreview: (r) => this.call('getPreview', r),
      getPreviewVolume: (r) => this.call('getPreviewVolume', r),
    };
  }

  private failCalls(message: string): void {
    for (const [id, c] of this.calls) {
      if (c.timer) clearTimeout(c.timer);
      c.reject(new ApiError('compute-crashed', `${message} while answering ${c.method}`));
      this.calls.delete(id);
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const id of [...this.queue]) this.cancel(id);
    const r = this.running ? this.jobs.get(this.running) : undefined;
    if (r) this.settle(r, 'cancelled', undefined, { code: 'cancelled', message: 'the app is shutting down' });
    this.channel?.kill();
    this.channel = null;
    this.failCalls('the app is shutting down');
    for (const rec of this.jobs.values()) if (rec.cancelTimer) clearTimeout(rec.cancelTimer);
  }

  private ensureChannel(): Promise<void> {
    if (this.readyPromise) return this.readyPromise;
    this.events.compute({ state: 'starting' });
    const ch = this.launcher();
    this.channel = ch;
    this.generation++;
    this.readyPromise = new Promise<void>((resolve, reject) => {
      ch.onMessage((raw) => {
        const parsed = FromCompute.safeParse(raw);
        if (!parsed.success) {
          process.emitWarning(`sliceform: ignoring malformed message from the compute process: ${parsed.error.issues[0]?.message}`);
          return;
        }
        const m = parsed.data;
        if (m.type === 'ready') {
          this.events.compute({ state: 'ready' });
          resolve();
        } else this.onComputeMessage(m);
      });
      ch.onExit((code, signal) => {
        if (this.channel !== ch) return; // a deliberate restart
        this.channel = null;
        this.readyPromise = null;
        this.info = null;
        this.failCalls(`the compute process exited (code ${code}, signal ${signal})`);
        reject(new ApiError('compute-crashed', `compute process exited during start (code ${code}, signal ${signal})`));
        this.onCrash(code, signal);
      });
    });
    this.readyPromise.catch(() => {});
    return this.readyPromise;
  }

  private onCrash(code: number | null, signal: string | null): void {
    if (this.disposed) return;
    const lost: string[] = [];
    if (this.running) {
      const r = this.jobs.get(this.running);
      this.running = null;
      if (r && r.info.state === 'running') {
        lost.push(r.info.id);
        this.settle(r, 'failed', undefined, {
          code: 'compute-crashed',
          message: `the compute process crashed (exit code ${code}, signal ${signal}) while running this job; it has been restarted and the project is intact`,
        });
      }
    }
    const t = Date.now();
    this.crashes = this.crashes.filter((c) => t - c < 60_000);
    this.crashes.push(t);
    const message = `compute process exited (code ${code}, signal ${signal})`;
    this.events.compute({ state: 'crashed', message, lostJobs: lost });
    if (this.crashes.length > 3) {
      this.events.compute({ state: 'stopped', message: 'the compute process crashed 4 times within a minute; not restarting until the next job' });
      this.crashes = [];
      for (const id of this.queue.splice(0)) {
        const r = this.jobs.get(id)!;
        this.settle(r, 'failed', undefined, { code: 'compute-crashed', message: 'the compute process keeps crashing' });
      }
      return;
    }
    this.events.compute({ state: 'restarting' });
    void this.ensureChannel().then(
      () => this.pump(),
      () => {},
    );
  }

  private onComputeMessage(m: FromCompute): void {
    if (m.type === 'info') {
      this.info = m.info;
      for (const w of this.infoWaiters.splice(0)) w(m.info);
      return;
    }
    if (m.type === 'ready') return;
    if (m.type === 'protocol-error') {
      process.emitWarning(`sliceform: compute process rejected a message: ${m.message}`);
      return;
    }
    if (m.type === 'preview') {
      this.events.preview?.(m.event);
      return;
    }
    if (m.type === 'call-progress') {
      this.calls.get(m.callId)?.onProgress?.(m.progress);
      return;
    }
    if (m.type === 'reply') {
      const c = this.calls.get(m.callId);
      if (!c) return;
      this.calls.delete(m.callId);
      if (c.timer) clearTimeout(c.timer);
      const err = m.error;
      if (m.ok) c.resolve(m.value);
      else c.reject(err ? new ApiError(err.code as ApiErrorCode, err.message, { file: err.file, details: err.details }) : new ApiError('internal', `${c.method} failed in the compute process`));
      return;
    }
    const r = this.jobs.get(m.jobId);
    if (!r || r.info.state !== 'running') return;
    if (m.type === 'progress') {
      r.info.progress = m.progress as Progress;
      this.events.job(structuredClone(r.info));
    } else if (m.type === 'done') {
      void (async () => {
        try {
          this.settle(r, 'done', await r.finish(m.result));
        } catch (e) {
          this.settle(r, 'failed', undefined, toApiError(e).toInfo());
        }
        this.running = null;
        void this.pump();
      })();
      return;
    } else if (m.type === 'failed') {
      this.settle(r, m.error.code === 'cancelled' ? 'cancelled' : 'failed', undefined, m.error as ApiErrorInfo);
      this.running = null;
      void this.pump();
    }
  }

  private settle(r: JobRecord, state: JobInfo['state'], result?: unknown, error?: ApiErrorInfo): void {
    if (r.cancelTimer) clearTimeout(r.cancelTimer);
    r.info.state = state;
    r.info.finishedAt = now();
    if (result !== undefined) r.info.result = result;
    if (error) r.info.error = error;
    if (state === 'done') r.info.progress = { ...r.info.progress, fraction: 1, etaSeconds: 0, stage: 'done' };
    r.start = undefined; // free the request
    const snapshot = structuredClone(r.info);
    this.events.job(snapshot);
    for (const w of r.waiters.splice(0)) w(structuredClone(snapshot));
  }

  private async pump(): Promise<void> {
    if (this.running || this.disposed || this.queue.length === 0) return;
    const id = this.queue.shift()!;
    const r = this.jobs.get(id)!;
    this.running = id;
    r.info.state = 'running';
    r.info.progress = { fraction: 0, stage: 'starting' };
    this.events.job(structuredClone(r.info));
    try {
      await this.ensureChannel();
    } catch {
      return; // onCrash settled it
    }
    if (r.prepare) {
      try {
        await r.prepare();
      } catch (e) {
        if (r.info.state === 'running') this.settle(r, 'failed', undefined, toApiError(e).toInfo());
        if (this.running === id) this.running = null;
        void this.pump();
        return;
      }
    }
    if (r.info.state !== 'running' || !r.start || !this.channel) return;
    this.channel.send(r.start(id));
  }
}
