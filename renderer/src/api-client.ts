/**
 * Browser-side transport for the web shell: implements SliceformApi over a WebSocket to `sliceform serve`
 * and installs it as `window.sliceform` — unless the Electron preload already put the IPC version there.
 * Bulk data arrives as typed arrays in binary frames (main/common/wire.ts).
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
}

/** `wsUrl` e.g. ws://127.0.0.1:8123/ws ; the token is added as a query parameter. */
export function createWebSocketApi(wsUrl: string, token: string): WebSocketApi {
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
        ev.code === 4401 ? 'the server refused the session token' : `connection to the Sliceform server lost (${ev.code})`,
      );
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      if (!opened) {
        // the server refuses the upgrade with HTTP 401 (seen here as 1006): retrying cannot help
        closed = true;
        queue = [];
        readyReject(
          new ApiError('unauthorized', 'could not connect to the Sliceform server: the session token is missing or wrong, or the server stopped. Open the URL printed by `sliceform serve`.'),
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

  const call = (method: string, payload: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (closed) return reject(new ApiError('internal', 'the Sliceform connection is closed'));
      const id = nextId++;
      pending.set(id, { resolve, reject });
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
    bytesQueued: () => (ws?.bufferedAmount ?? 0) + queue.reduce((n, f) => n + f.length, 0),
  };
  for (const m of API_METHODS) api[m] = (payload?: unknown) => call(m, payload);
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
