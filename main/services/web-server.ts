/**
 * The web shell: serves the renderer (dist/renderer) over HTTP and the API over a WebSocket at /ws.
 * - bound to 127.0.0.1 by default; another host needs `allowRemote` (the CLI prints a warning)
 * - a random session token is required on every request: `?token=` on the first page load (which sets an
 *   HttpOnly SameSite=Strict cookie for the page's assets), the cookie, or `Authorization: Bearer`
 * - on loopback, the Host header must be a loopback name (blocks DNS rebinding); WebSocket upgrades must come
 *   from the same origin
 * - every incoming frame is decoded and validated; anything malformed gets an error reply, never a throw, with
 *   the request's id whenever it can be read from the frame (so the caller's pending call settles)
 * - dropped files are uploaded by `POST /upload` and streamed to the imports folder (never held in memory),
 *   at most `maxConcurrentUploads` at a time; an upload that is too large or unreadable is deleted
 * - every path a call names is checked before the call runs (web-paths.ts): volumes must be regular files
 *   (a FIFO would block the file-I/O pool), and with `roots` (--allow-remote) paths must lie inside them
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { basename, dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Duplex } from 'node:stream';
import { decodeFrame, encodeFrame, WireError, type WireMessage } from '../common/wire.js';
import { ApiError } from '../common/api.js';
import { dispatch, toApiError } from './dispatch.js';
import type { ApiService } from './api-service.js';
import { PathRoots } from './path-guard.js';

export interface WebServerOptions {
  api: ApiService;
  host?: string;
  port?: number;
  /** folder with the built renderer (index.html) */
  rendererDir: string;
  token?: string;
  allowRemote?: boolean;
  /** largest accepted WebSocket message, default 64 MiB (files come through POST /upload) */
  maxPayloadBytes?: number;
  /** largest accepted upload (POST /upload), default 4 GiB */
  maxUploadBytes?: number;
  /** uploads streamed at the same time; more are answered 429 (default 2) */
  maxConcurrentUploads?: number;
  /** with allowRemote: the only folders calls may read or write (default: none = no confinement) */
  roots?: string[];
  /** with roots: the server's own folders calls may use too (the recovery folder); the work dir is added */
  ownDirs?: string[];
}

export interface WebServer {
  url: string;
  /** folders calls are confined to (remote mode), null when unconfined */
  roots: string[] | null;
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

function sameOrigin(origin: string, req: IncomingMessage): boolean {
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * The id of a call whose frame did not decode (bad typed-array reference, bad JSON after the id, text frame):
 * from the JSON when it parses, else from a leading `{"t":"call","id":N` (the way encodeFrame writes it).
 * 0 when none can be read.
 */
export function recoverId(data: unknown): number {
  try {
    const buf = Array.isArray(data)
      ? Buffer.concat(data as Buffer[])
      : Buffer.isBuffer(data)
        ? data
        : Buffer.from(data as ArrayBuffer);
    let text: string;
    if (buf.length >= 8 && buf.subarray(0, 4).toString('latin1') === 'SFW1') {
      const jlen = buf.readUInt32LE(4);
      text = buf.subarray(8, Math.min(buf.length, 8 + jlen, 8 + 4096)).toString('utf8');
    } else text = buf.subarray(0, 4096).toString('utf8');
    try {
      const j = JSON.parse(text) as { id?: unknown };
      if (Number.isSafeInteger(j.id) && (j.id as number) > 0) return j.id as number;
    } catch {
      // not whole JSON: look for the id near the start
    }
    const m = /^\s*\{[^{}]{0,200}?"id"\s*:\s*(\d{1,15})\s*[,}]/.exec(text);
    if (m) {
      const id = Number(m[1]);
      if (Number.isSafeInteger(id) && id > 0) return id;
    }
  } catch {
    // unreadable: 0
  }
  return 0;
}

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
    throw new ApiError(
      'bad-request',
      `refusing to listen on ${host}: only loopback is allowed without --allow-remote (anyone who can reach it and has the token controls this machine's files)`,
    );
  const token = o.token ?? randomBytes(24).toString('base64url');
  // the server's own scratch folder (uploads) and recovery folder stay reachable: the UI reopens uploads by path
  const roots = o.roots?.length
    ? await PathRoots.create(o.roots, [dirname(await o.api.importsDir()), ...(o.ownDirs ?? [])])
    : null;
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

  const send = (
    res: ServerResponse,
    status: number,
    body: string | Buffer,
    type = 'text/plain; charset=utf-8',
    extra: Record<string, string> = {},
  ) => {
    res.writeHead(status, {
      ...baseHeaders,
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      ...extra,
    });
    res.end(body);
  };

  const server = createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://localhost');
        if (!checkHost(req)) return send(res, 403, 'forbidden: unexpected Host header\n');
        if (!authorized(req, url))
          return send(
            res,
            401,
            'unauthorized: open the URL with ?token=… printed by `sliceform serve`\n',
            undefined,
            { 'WWW-Authenticate': 'Bearer' },
          );
        if (url.pathname === '/upload') return await handleUpload(req, res, url);
        if (req.method !== 'GET' && req.method !== 'HEAD')
          return send(res, 405, 'method not allowed\n', undefined, { Allow: 'GET, HEAD' });
        const extra: Record<string, string> = {};
        if (requestToken(req, url).fromQuery)
          extra['Set-Cookie'] =
            `sliceform_token=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
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
          if (rel === '/index.html')
            return send(
              res,
              503,
              `the renderer is not built (${join(rendererDir, 'index.html')} missing): run npm run build\n`,
            );
          return send(res, 404, 'not found\n');
        }
        res.writeHead(200, {
          ...baseHeaders,
          ...extra,
          'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
          'Content-Length': body.length,
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch (e) {
        if (!res.headersSent) send(res, 500, `internal error: ${(e as Error).message}\n`);
        else res.destroy();
      }
    })();
  });

  // ---------------------------------------------------------------------------------------- uploads
  const maxUpload = o.maxUploadBytes ?? 4 * 1024 ** 3;
  const maxUploads = o.maxConcurrentUploads ?? 2;
  let uploading = 0;
  const sendFrame = (res: ServerResponse, status: number, m: WireMessage) => {
    const body = Buffer.from(encodeFrame(m));
    res.writeHead(status, {
      ...baseHeaders,
      'Content-Type': 'application/octet-stream',
      'Content-Length': body.length,
    });
    res.end(body);
  };
  const uploadError = (
    res: ServerResponse,
    status: number,
    code: 'bad-request' | 'too-large' | 'busy' | 'bad-input',
    message: string,
  ) => {
    res.setHeader('Connection', 'close');
    sendFrame(res, status, { t: 'result', id: 0, ok: false, error: { code, message } });
  };
  /** POST /upload?name=N[&timepoint=T]: the body is the file; the answer is a frame with its VolumeInfo */
  const handleUpload = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    if (req.method !== 'POST') return send(res, 405, 'method not allowed\n', undefined, { Allow: 'POST' });
    const origin = req.headers.origin;
    if (origin && !sameOrigin(origin, req))
      return uploadError(res, 403, 'bad-request', 'uploads must come from the Sliceform page');
    const name = url.searchParams.get('name') ?? '';
    if (!name || name.length > 255 || name.includes('\0'))
      return uploadError(
        res,
        400,
        'bad-request',
        'upload needs ?name= (the dropped file name, at most 255 characters)',
      );
    const tpRaw = url.searchParams.get('timepoint');
    const timepoint = tpRaw === null ? undefined : Number(tpRaw);
    if (timepoint !== undefined && !(Number.isInteger(timepoint) && timepoint >= 0))
      return uploadError(res, 400, 'bad-request', 'timepoint must be an integer >= 0');
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > maxUpload)
      return uploadError(
        res,
        413,
        'too-large',
        `${name}: ${declared} bytes is more than the largest upload (${maxUpload} bytes)`,
      );
    if (uploading >= maxUploads)
      return uploadError(
        res,
        429,
        'busy',
        `${maxUploads} uploads are already running; try again when one has finished`,
      );
    uploading++;
    const dir = await api.importsDir();
    const tmp = join(dir, `.upload-${randomBytes(8).toString('hex')}`);
    let final: string | null = null;
    try {
      const hash = createHash('sha256');
      let n = 0;
      const count = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          n += chunk.length;
          if (n > maxUpload)
            return cb(Object.assign(new Error(`more than ${maxUpload} bytes`), { code: 'TOO_LARGE' }));
          hash.update(chunk);
          cb(null, chunk);
        },
      });
      try {
        await pipeline(req, count, createWriteStream(tmp, { flags: 'wx' }));
      } catch (e) {
        if ((e as { code?: string }).code === 'TOO_LARGE')
          return uploadError(
            res,
            413,
            'too-large',
            `${name}: larger than the largest upload (${maxUpload} bytes)`,
          );
        return uploadError(
          res,
          400,
          'bad-request',
          `${name}: the upload was interrupted (${(e as Error).message})`,
        );
      }
      const sha = hash.digest('hex');
      final = join(dir, `${sha.slice(0, 12)}-${basename(name).replace(/[^A-Za-z0-9._-]/g, '_') || 'volume'}`);
      await rename(tmp, final);
      const info = await api.openImportedFile(final, { name, sha256: sha, timepoint });
      final = null; // kept: it is an open volume now
      sendFrame(res, 200, { t: 'result', id: 0, ok: true, value: info });
    } catch (e) {
      const err = toApiError(e);
      sendFrame(res, err.code === 'internal' ? 500 : 400, {
        t: 'result',
        id: 0,
        ok: false,
        error: err.toInfo(),
      });
    } finally {
      uploading--;
      await rm(tmp, { force: true }).catch(() => {});
      // openImportedFile deletes an unreadable upload itself; this covers failures before it ran
      if (final) await rm(final, { force: true }).catch(() => {});
    }
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: o.maxPayloadBytes ?? 64 * 1024 ** 2 });
  const clients = new Set<WebSocket>();

  const reject = (socket: Duplex, status: number, text: string) => {
    socket.write(
      `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\n\r\n${text}\n`,
    );
    socket.destroy();
  };

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return reject(socket, 404, 'Not Found');
    if (!checkHost(req)) return reject(socket, 403, 'Forbidden');
    if (!authorized(req, url)) return reject(socket, 401, 'Unauthorized');
    const origin = req.headers.origin;
    if (origin && !sameOrigin(origin, req)) return reject(socket, 403, 'Forbidden');
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
          sendMsg(ws, {
            t: 'result',
            id: recoverId(data),
            ok: false,
            error: { code: 'bad-request', message: `malformed message: ${(e as Error).message}` },
          });
          return;
        }
        if (msg.t !== 'call' || !Number.isSafeInteger(msg.id)) {
          sendMsg(ws, {
            t: 'result',
            id: Number.isSafeInteger((msg as { id?: number }).id) ? (msg as { id: number }).id : 0,
            ok: false,
            error: { code: 'bad-request', message: 'expected a call message' },
          });
          return;
        }
        try {
          const value = await dispatch(api, msg.method, msg.payload, { roots });
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
    roots: roots?.roots ?? null,
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
