/**
 * The web shell: serves the renderer (dist/renderer) over HTTP and the API over a WebSocket at /ws.
 * - bound to 127.0.0.1 by default; another host needs `allowRemote` (the CLI prints a warning)
 * - a random session token is required on every request: `?token=` on the first page load (which sets an
 *   HttpOnly SameSite=Strict cookie for the page's assets), the cookie, or `Authorization: Bearer`
 * - on loopback, the Host header must be a loopback name (blocks DNS rebinding); WebSocket upgrades must come
 *   from the same origin
 * - every incoming frame is decoded and validated; anything malformed gets an error reply, never a throw
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Duplex } from 'node:stream';
import { decodeFrame, encodeFrame, WireError, type WireMessage } from '../common/wire.js';
import { ApiError } from '../common/api.js';
import { dispatch, toApiError } from './dispatch.js';
import type { ApiService } from './api-service.js';

export interface WebServerOptions {
  api: ApiService;
  host?: string;
  port?: number;
  /** folder with the built renderer (index.html) */
  rendererDir: string;
  token?: string;
  allowRemote?: boolean;
  /** largest accepted WebSocket message (dropped files), default 2 GiB */
  maxPayloadBytes?: number;
}

export interface WebServer {
  url: string;
  host: string;
  port: number;
  token: string;
  server: Server;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; " +
  "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.glsl': 'text/plain',
};

export function isLoopbackHost(h: string): boolean {
  return LOOPBACK.has(h) || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a),
    y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieToken(req: IncomingMessage): string | undefined {
  const c = req.headers.cookie;
  if (!c) return undefined;
  for (const part of c.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === 'sliceform_token') return decodeURIComponent(v.join('='));
  }
  return undefined;
}

function requestToken(req: IncomingMessage, url: URL): { token?: string; fromQuery: boolean } {
  const q = url.searchParams.get('token');
  if (q) return { token: q, fromQuery: true };
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return { token: auth.slice(7), fromQuery: false };
  return { token: cookieToken(req), fromQuery: false };
}

function hostOf(req: IncomingMessage): string {
  const h = req.headers.host ?? '';
  return h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.split(':')[0]!;
}

export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const host = o.host ?? '127.0.0.1';
  const loopback = isLoopbackHost(host);
  if (!loopback && !o.allowRemote)
    throw new ApiError('bad-request', `refusing to listen on ${host}: only loopback is allowed without --allow-remote (anyone who can reach it and has the token controls this machine's files)`);
  const token = o.token ?? randomBytes(24).toString('base64url');
  const rendererDir = resolve(o.rendererDir);
  const api = o.api;

  const checkHost = (req: IncomingMessage) => !loopback || isLoopbackHost(hostOf(req));
  const authorized = (req: IncomingMessage, url: URL) => {
    const t = requestToken(req, url).token;
    return t !== undefined && safeEqual(t, token);
  };

  const baseHeaders = {
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };

  const send = (res: ServerResponse, status: number, body: string | Buffer, type = 'text/plain; charset=utf-8', extra: Record<string, string> = {}) => {
    res.writeHead(status, { ...baseHeaders, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...extra });
    res.end(body);
  };

  const server = createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://localhost');
        if (!checkHost(req)) return send(res, 403, 'forbidden: unexpected Host header\n');
        if (!authorized(req, url)) return send(res, 401, 'unauthorized: open the URL with ?token=… printed by `sliceform serve`\n', undefined, { 'WWW-Authenticate': 'Bearer' });
        if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n', undefined, { Allow: 'GET, HEAD' });
        const extra: Record<string, string> = {};
        if (requestToken(req, url).fromQuery) extra['Set-Cookie'] = `sliceform_token=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
        let rel: string;
        try {
          rel = decodeURIComponent(url.pathname);
        } catch {
          return send(res, 400, 'bad path\n');
        }
        if (rel.endsWith('/')) rel += 'index.html';
        const file = normalize(join(rendererDir, rel));
        if (!file.startsWith(rendererDir + sep) || rel.includes('\0')) return send(res, 404, 'not found\n');
        let body: Buffer;
        try {
          if (!(await stat(file)).isFile()) return send(res, 404, 'not found\n');
          body = await readFile(file);
        } catch {
          if (rel === '/index.html') return send(res, 503, `the renderer is not built (${join(rendererDir, 'index.html')} missing): run npm run build\n`);
          return send(res, 404, 'not found\n');
        }
        res.writeHead(200, { ...baseHeaders, ...extra, 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch (e) {
        if (!res.headersSent) send(res, 500, `internal error: ${(e as Error).message}\n`);
        else res.destroy();
      }
    })();
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxPayloadBytes ?? 2 * 1024 ** 3 });
  const clients = new Set<WebSocket>();

  const reject = (socket: Duplex, status: number, text: string) => {
    socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\n\r\n${text}\n`);
    socket.destroy();
  };

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return reject(socket, 404, 'Not Found');
    if (!checkHost(req)) return reject(socket, 403, 'Forbidden');
    if (!authorized(req, url)) return reject(socket, 401, 'Unauthorized');
    const origin = req.headers.origin;
    if (origin) {
      let ok = false;
      try {
        ok = new URL(origin).host === req.headers.host;
      } catch {
        ok = false;
      }
      if (!ok) return reject(socket, 403, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  const sendMsg = (ws: WebSocket, m: WireMessage) => {
    if (ws.readyState !== ws.OPEN) return;
    try {
      ws.send(encodeFrame(m));
    } catch (e) {
      process.emitWarning(`sliceform serve: could not send a reply: ${(e as Error).message}`);
    }
  };

  const unsubscribe = api.subscribeAll((name, payload) => {
    for (const ws of clients) sendMsg(ws, { t: 'event', name, payload });
  });

  wss.on('connection', (ws: WebSocket) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', () => clients.delete(ws));
    ws.on('message', (data, isBinary) => {
      void (async () => {
        let msg: WireMessage;
        try {
          if (!isBinary) throw new WireError('text frames are not accepted; send binary Sliceform frames');
          const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
          msg = decodeFrame(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
        } catch (e) {
          sendMsg(ws, { t: 'result', id: 0, ok: false, error: { code: 'bad-request', message: `malformed message: ${(e as Error).message}` } });
          return;
        }
        if (msg.t !== 'call' || !Number.isSafeInteger(msg.id)) {
          sendMsg(ws, { t: 'result', id: Number.isSafeInteger((msg as { id?: number }).id) ? (msg as { id: number }).id : 0, ok: false, error: { code: 'bad-request', message: 'expected a call message' } });
          return;
        }
        try {
          const value = await dispatch(api, msg.method, msg.payload);
          sendMsg(ws, { t: 'result', id: msg.id, ok: true, value });
        } catch (e) {
          sendMsg(ws, { t: 'result', id: msg.id, ok: false, error: toApiError(e).toInfo() });
        }
      })();
    });
  });

  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', rej);
      res();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (o.port ?? 0);
  const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/?token=${token}`,
    host,
    port,
    token,
    server,
    close: async () => {
      unsubscribe();
      for (const ws of clients) ws.terminate();
      wss.close();
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
