/**
 * Browser-side transport for the web shell: implements SliceformApi over a WebSocket to `sliceform serve`
 * and installs it as `window.sliceform` — unless the Electron preload already put the IPC version there.
 * Bulk data arrives as typed arrays in binary frames (main/common/wire.ts). Dropped files go up by
 * `POST /upload` (streamed to disk by the server), not as one huge WebSocket message. A call the server does
 * not answer is rejected after a timeout (an answer lost to a malformed frame must not hang the UI).
 */
import {
  API_EVENTS,
  API_METHODS,
  ApiError,
  type ApiEventMethod,
  type ApiEventName,
  type SliceformApi,
} from '../../main/common/api.js';
import { decodeFrame, encodeFrame, type WireMessage } from '../../main/common/wire.js';
import type { OpenVolumeBytesRequest } from '../../main/common/api.js';

declare global {
  interface Window {
    sliceform: SliceformApi;
  }
}

export interface WebSocketApi extends SliceformApi {
  /** resolves once connected (rejects if the server refused the token) */
  readonly ready: Promise<void>;
  close(): void;
  /** bytes of sent calls still queued in the socket (how far a large upload got) */
  bytesQueued(): number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer?: ReturnType<typeof setTimeout>;
}

export interface WebSocketApiOptions {
  /** ms before an unanswered call is rejected (default 60 s) */
  callTimeoutMs?: number;
  /** the same for calls that read or write whole files (default 30 min) */
  fileCallTimeoutMs?: number;
}

/** calls that read or write whole volumes or projects, or label whole volumes: minutes for large files are normal */
const FILE_CALLS = new Set([
  'openVolume',
  'openVolumeBytes',
  'openProject',
  'saveProject',
  'relocateVolume',
  'exportLabels',
  'getLabelVolume',
  'newProject',
  'computeObjects',
  'exportObjects',
  'splitObject',
  'mergeObjects',
]);

/** How long to wait for the answer to `method` (Infinity: waitJob without its own timeout waits for the job). */
export function callTimeout(method: string, payload: unknown, o: WebSocketApiOptions = {}): number {
  if (method === 'waitJob') {
    const t = (payload as { timeoutMs?: unknown } | undefined)?.timeoutMs;
    return typeof t === 'number' && Number.isFinite(t) ? t + (o.callTimeoutMs ?? 60_000) : Infinity;
  }
  return FILE_CALLS.has(method) ? (o.fileCallTimeoutMs ?? 30 * 60_000) : (o.callTimeoutMs ?? 60_000);
}

/** `wsUrl` e.g. ws://127.0.0.1:8123/ws ; the token is added as a query parameter. */
export function createWebSocketApi(
  wsUrl: string,
  token: string,
  opts: WebSocketApiOptions = {},
): WebSocketApi {
  const pending = new Map<number, Pending>();
  const listeners = new Map<ApiEventName, Set<(p: unknown) => void>>();
  let nextId = 1;
  let ws: WebSocket | null = null;
  let closed = false;
  let readyResolve!: () => void;
  let readyReject!: (e: unknown) => void;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  ready.catch(() => {}); // observed by whoever awaits it; no unhandled rejection otherwise
  let opened = false;
  let retryMs = 250;
  let queue: Uint8Array[] = [];

  const connect = () => {
    const u = new URL(wsUrl, location.href);
    u.searchParams.set('token', token);
    const sock = new WebSocket(u.href);
    sock.binaryType = 'arraybuffer';
    ws = sock;
    sock.onopen = () => {
      opened = true;
      retryMs = 250;
      readyResolve();
      for (const f of queue) sock.send(f);
      queue = [];
    };
    sock.onmessage = (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) return;
      let msg: WireMessage;
      try {
        msg = decodeFrame(new Uint8Array(ev.data));
      } catch (e) {
        console.error('sliceform: bad frame from server', e);
        return;
      }
      if (msg.t === 'result') {
        const p = pending.get(msg.id);
        if (!p) return;
        pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.ok) p.resolve(msg.value);
        else p.reject(ApiError.from(msg.error));
      } else if (msg.t === 'event') {
        for (const cb of listeners.get(msg.name as ApiEventName) ?? []) {
          try {
            cb(msg.payload);
          } catch (e) {
            console.error(`sliceform: ${msg.name} listener failed`, e);
          }
        }
      }
    };
    sock.onclose = (ev) => {
      ws = null;
      const err = new ApiError(
        ev.code === 4401 ? 'unauthorized' : 'internal',
        ev.code === 4401
          ? 'the server refused the session token'
          : `connection to the Sliceform server lost (${ev.code})`,
      );
      for (const p of pending.values()) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      pending.clear();
      if (!opened) {
        // the server refuses the upgrade with HTTP 401 (seen here as 1006): retrying cannot help
        closed = true;
        queue = [];
        readyReject(
          new ApiError(
            'unauthorized',
            'could not connect to the Sliceform server: the session token is missing or wrong, or the server stopped. Open the URL printed by `sliceform serve`.',
          ),
        );
        return;
      }
      if (!closed) {
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 5000);
      }
    };
  };
  connect();

  // dropped files: POST /upload, streamed to disk by the server; bytes still to send count as queued
  let uploadLeft = 0;
  const upload = (req: OpenVolumeBytesRequest): Promise<unknown> => {
    if (closed) return Promise.reject(new ApiError('internal', 'the Sliceform connection is closed'));
    const u = new URL(wsUrl, location.href);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.pathname = '/upload';
    u.search = '';
    u.searchParams.set('name', req.name);
    if (req.timepoint !== undefined) u.searchParams.set('timepoint', String(req.timepoint));
    const answer = (status: number, body: ArrayBuffer | null): unknown => {
      let m: WireMessage | null = null;
      try {
        m = body ? decodeFrame(new Uint8Array(body)) : null;
      } catch {
        m = null;
      }
      if (m?.t === 'result') {
        if (m.ok) return m.value;
        throw ApiError.from(m.error);
      }
      throw new ApiError('internal', `uploading ${req.name} failed (HTTP ${status})`);
    };
    const total = req.bytes.byteLength;
    uploadLeft += total;
    let left = total;
    const done = () => {
      uploadLeft -= left;
      left = 0;
    };
    if (typeof XMLHttpRequest === 'undefined') {
      // no XHR (Node tests): fetch, without upload progress
      return fetch(u.href, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
        body: req.bytes as unknown as BodyInit,
      })
        .then(async (r) => answer(r.status, await r.arrayBuffer()))
        .finally(done);
    }
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', u.href);
      xhr.responseType = 'arraybuffer';
      xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.upload.onprogress = (e) => {
        const now = Math.max(0, total - e.loaded);
        uploadLeft -= left - now;
        left = now;
      };
      xhr.onload = () => {
        done();
        try {
          resolve(answer(xhr.status, xhr.response as ArrayBuffer | null));
        } catch (e) {
          reject(e);
        }
      };
      xhr.onerror = () => {
        done();
        reject(
          new ApiError(
            'internal',
            `uploading ${req.name} failed: the connection to the Sliceform server was lost`,
          ),
        );
      };
      xhr.send(req.bytes as unknown as XMLHttpRequestBodyInit);
    });
  };

  const call = (method: string, payload: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (closed) return reject(new ApiError('internal', 'the Sliceform connection is closed'));
      const id = nextId++;
      const ms = callTimeout(method, payload, opts);
      const timer = Number.isFinite(ms)
        ? setTimeout(() => {
            if (!pending.delete(id)) return;
            reject(
              new ApiError(
                'internal',
                `the Sliceform server did not answer ${method} within ${Math.round(ms / 1000)} s`,
              ),
            );
          }, ms)
        : undefined;
      pending.set(id, { resolve, reject, timer });
      const frame = encodeFrame({ t: 'call', id, method, payload });
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(frame);
      else queue.push(frame);
    });

  const api: Record<string, unknown> = {
    ready,
    close() {
      closed = true;
      ws?.close(1000);
    },
    bytesQueued: () => uploadLeft + (ws?.bufferedAmount ?? 0) + queue.reduce((n, f) => n + f.length, 0),
  };
  for (const m of API_METHODS) api[m] = (payload?: unknown) => call(m, payload);
  api.openVolumeBytes = (req: OpenVolumeBytesRequest) => upload(req);
  for (const [method, name] of Object.entries(API_EVENTS) as Array<[ApiEventMethod, ApiEventName]>) {
    api[method] = (cb: (p: unknown) => void) => {
      let set = listeners.get(name);
      if (!set) listeners.set(name, (set = new Set()));
      set.add(cb);
      return () => set!.delete(cb);
    };
  }
  return api as unknown as WebSocketApi;
}

/** The session token: from ?token= (then kept in sessionStorage and removed from the address bar). */
function sessionToken(): string {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('token');
  if (fromUrl) {
    sessionStorage.setItem('sliceform-token', fromUrl);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
    return fromUrl;
  }
  return sessionStorage.getItem('sliceform-token') ?? '';
}

/** Installs window.sliceform for the web shell; a no-op under Electron (the preload set it). */
export function installApi(): SliceformApi {
  if (!window.sliceform) {
    const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    window.sliceform = createWebSocketApi(wsUrl, sessionToken());
  }
  return window.sliceform;
}
