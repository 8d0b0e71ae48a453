/**
 * Web-shell security: token on every HTTP and WebSocket request, Host/Origin checks, malformed payloads get
 * error replies (the server keeps serving), and the page cannot reach Node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'node:http';
import WebSocket from 'ws';
import { e2eMissing, startApp, type App } from './harness.js';
import { REPO } from '../helpers/paths.js';
import { decodeFrame, encodeFrame, type WireMessage } from '../../main/common/wire.js';

const missing = e2eMissing();

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket; resolves with the socket, or with the HTTP status that refused the upgrade. */
function openWs(url: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
    ws.once('error', () => resolve({ status: -1 }));
  });
}

function nextMessage(ws: WebSocket): Promise<WireMessage> {
  return new Promise((resolve) => ws.once('message', (d: Buffer) => resolve(decodeFrame(new Uint8Array(d)))));
}

describe.skipIf(missing)('web shell security', () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp();
  });
  afterAll(async () => {
    await app?.cleanup();
  });

  it('refuses HTTP requests without the right token', async () => {
    const { origin, token } = app.serve;
    expect((await get(`${origin}/`)).status).toBe(401);
    expect((await get(`${origin}/index.html?token=wrong-token-123456`)).status).toBe(401);
    expect((await get(`${origin}/`, { Authorization: 'Bearer nope' })).status).toBe(401);
    const ok = await get(`${origin}/?token=${token}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('<div id="app">');
    expect(String(ok.headers['content-security-policy'])).toContain("default-src 'self'");
    expect(String(ok.headers['set-cookie'])).toContain('HttpOnly');
    expect((await get(`${origin}/`, { Authorization: `Bearer ${token}` })).status).toBe(200);
    // path traversal never leaves the renderer folder
    expect((await get(`${origin}/..%2f..%2fpackage.json?token=${token}`)).status).toBe(404);
  });

  it('refuses a non-loopback Host header (DNS rebinding)', async () => {
    const r = await get(`${app.serve.origin}/?token=${app.token}`, { Host: `evil.example:${app.serve.port}` });
    expect(r.status).toBe(403);
  });

  it('refuses WebSocket upgrades without the token or from another origin', async () => {
    const base = `ws://127.0.0.1:${app.serve.port}/ws`;
    expect((await openWs(base)).status).toBe(401);
    expect((await openWs(`${base}?token=wrong-token-123456`)).status).toBe(401);
    expect((await openWs(`${base}?token=${app.token}`, { Origin: 'http://evil.example' })).status).toBe(403);
    const good = await openWs(`${base}?token=${app.token}`, { Origin: app.serve.origin });
    expect(good.ws).toBeDefined();
    good.ws!.close();
  });

  it('answers malformed frames and payloads with errors and keeps serving', async () => {
    const { ws } = await openWs(`ws://127.0.0.1:${app.serve.port}/ws?token=${app.token}`);
    try {
      ws!.send(Buffer.from('not a frame at all'));
      let m = await nextMessage(ws!);
      expect(m).toMatchObject({ t: 'result', ok: false, error: { code: 'bad-request' } });
      ws!.send('{"t":"call"}');
      m = await nextMessage(ws!);
      expect(m).toMatchObject({ t: 'result', ok: false, error: { code: 'bad-request' } });
      ws!.send(encodeFrame({ t: 'call', id: 7, method: 'rm -rf', payload: {} }));
      m = await nextMessage(ws!);
      expect(m).toMatchObject({ t: 'result', id: 7, ok: false, error: { code: 'bad-request', message: expect.stringContaining('unknown method') } });
      ws!.send(encodeFrame({ t: 'call', id: 8, method: 'getSlice', payload: { volumeId: 5, plane: 'ab', index: -1 } }));
      m = await nextMessage(ws!);
      expect(m).toMatchObject({ t: 'result', id: 8, ok: false, error: { code: 'bad-request' } });
      expect((m as { error: { message: string } }).error.message).toMatch(/volumeId.*plane|plane.*volumeId/s);
      ws!.send(encodeFrame({ t: 'call', id: 9, method: 'getProject' }));
      m = await nextMessage(ws!);
      expect(m).toMatchObject({ t: 'result', id: 9, ok: true, value: { name: 'Untitled', volumes: [] } });
    } finally {
      ws!.close();
    }
  });

  it('rejects malformed payloads from the page with ApiError bad-request', async () => {
    const r = await app.page.evaluate(async () => {
      const api = (window as unknown as { sliceform: Record<string, (p: unknown) => Promise<unknown>> }).sliceform;
      try {
        await api.paintStroke!({ volumeId: 'x', plane: 'xy', index: 0, classId: 999, radius: -1, points: [] });
        return { ok: true };
      } catch (e) {
        return { ok: false, name: (e as Error).name, code: (e as { code?: string }).code, message: (e as Error).message };
      }
    });
    expect(r).toMatchObject({ ok: false, name: 'ApiError', code: 'bad-request' });
    expect(r.message).toContain('classId');
  });

  it('gives the page no Node access', async () => {
    const r = await app.page.evaluate(() => ({
      require: typeof (globalThis as Record<string, unknown>).require,
      process: typeof (globalThis as Record<string, unknown>).process,
      module: typeof (globalThis as Record<string, unknown>).module,
      api: typeof (window as unknown as { sliceform: unknown }).sliceform,
    }));
    expect(r).toEqual({ require: 'undefined', process: 'undefined', module: 'undefined', api: 'object' });
    expect(app.pageErrors.filter((e) => /require|process is not defined|Content Security Policy/.test(e))).toEqual([]);
  });

  it('refuses to bind a non-loopback host without --allow-remote', () => {
    const r = spawnSync(process.execPath, [join(REPO, 'bin', 'sliceform.js'), 'serve', '--host', '0.0.0.0', '--port', '0'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--allow-remote');
  });

  it('binds another host with --allow-remote and prints a warning', async () => {
    const { spawn } = await import('node:child_process');
    const p = spawn(process.execPath, [join(REPO, 'bin', 'sliceform.js'), 'serve', '--host', '0.0.0.0', '--allow-remote', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '',
      err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    try {
      const t0 = Date.now();
      while (!out.includes('\n') && p.exitCode === null && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 100));
      expect(err).toContain('WARNING');
      expect(err).toMatch(/reachable from other machines/);
      const info = JSON.parse(out.split('\n')[0]!);
      expect(info.host).toBe('0.0.0.0');
      // still token-protected
      expect((await get(`http://127.0.0.1:${info.port}/`)).status).toBe(401);
    } finally {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  });
});

if (missing) it('web shell security (skipped)', () => console.warn(`skipped: ${missing}`));
