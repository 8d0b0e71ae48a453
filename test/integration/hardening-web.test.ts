/**
 * Issue 14, web-shell items, against a real in-process web shell (ApiService + startWebServer on 127.0.0.1,
 * a handful of connections, every wait bounded) and the real nuclei stack 1135 from ../shared/data:
 * - item 12: exportLabels / saveSnapshot onto an open volume's file (or a hard link to it) is refused;
 * - item 15: FIFOs given as volumes, ground truth or project files are refused at once (six of them, then the
 *   server still opens real files and serves static files); a stroke point at 1e9 answers in milliseconds;
 * - item 16: malformed frames are answered with the request's id; the client times out unanswered calls;
 * - item 17: uploads stream to disk through POST /upload, at most N at a time; too large or unreadable uploads
 *   leave nothing in the imports folder; WebSocket messages are capped;
 * - item 21: with roots (--allow-remote) paths outside them are refused, listDirectory lists the first root,
 *   and `sliceform serve --allow-remote` says where it is confined.
 * FIFOs and garbage bytes are synthetic (no real file is a FIFO); the volumes are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { dataFile, REPO } from '../helpers/paths.js';
import { ApiService } from '../../main/services/api-service.js';
import { recoverId, startWebServer, type WebServer } from '../../main/services/web-server.js';
import { decodeFrame, encodeFrame, type WireMessage } from '../../main/common/wire.js';
import { createWebSocketApi } from '../../renderer/src/api-client.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const TOKEN = 'hardening-test-token-0123456789';

let tmp: string;
let api: ApiService;
let server: WebServer;

function openWs(s: WebServer): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/ws?token=${TOKEN}`);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends raw bytes (or text) and waits (bounded) for the next result frame (with id `want` when given). */
function exchange(ws: WebSocket, data: Buffer | Uint8Array | string, ms = 10_000, want?: number): Promise<WireMessage & { t: 'result' }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no reply')), ms);
    const on = (d: Buffer) => {
      const m = decodeFrame(new Uint8Array(d));
      if (m.t !== 'result' || (want !== undefined && m.id !== want)) return;
      clearTimeout(t);
      ws.off('message', on);
      resolve(m);
    };
    ws.on('message', on);
    ws.send(data, { binary: typeof data !== 'string' });
  });
}

let nextId = 100;
async function call(ws: WebSocket, method: string, payload?: unknown, ms = 20_000) {
  const id = nextId++;
  const r = await exchange(ws, encodeFrame({ t: 'call', id, method, payload }), ms, id);
  expect(r.id).toBe(id);
  return r;
}

function post(s: WebServer, path: string, body: Buffer | (() => AsyncGenerator<Buffer>), headers: Record<string, string> = {}): Promise<{ status: number; msg: WireMessage | null }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: s.port, path, method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        let msg: WireMessage | null = null;
        try {
          msg = decodeFrame(new Uint8Array(b));
        } catch {
          msg = null;
        }
        resolve({ status: res.statusCode!, msg });
      });
    });
    req.on('error', reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else
      void (async () => {
        try {
          for await (const c of body()) if (!req.write(c)) await new Promise((r) => req.once('drain', r));
          req.end();
        } catch {
          req.destroy();
        }
      })();
  });
}

const imports = () => join(tmp, 'work', 'imports');
const importsList = async () => (existsSync(imports()) ? (await readdir(imports())).sort() : []);

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sf-hardening-web-'));
  api = new ApiService({ shell: 'web', workDir: join(tmp, 'work') });
  server = await startWebServer({ api, rendererDir: join(REPO, 'renderer'), token: TOKEN, maxConcurrentUploads: 1, maxUploadBytes: 8 * 1024 ** 2 });
});

afterAll(async () => {
  await server?.close();
  await api?.dispose();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('item 16: malformed frames and client timeouts', () => {
  it('answers a malformed frame with the id of the request when it can be read', async () => {
    const ws = await openWs(server);
    try {
      // JSON fine, typed-array reference broken: the id comes from the JSON
      const j = Buffer.from(JSON.stringify({ t: 'call', id: 7, method: 'getSlice', payload: { $ta: 'Nope', o: 0, n: 1 } }));
      const head = Buffer.alloc(8);
      head.write('SFW1', 0, 'latin1');
      head.writeUInt32LE(j.length, 4);
      expect((await exchange(ws, Buffer.concat([head, j]))).id).toBe(7);
      // JSON broken after the id
      const bad = Buffer.from('{"t":"call","id":8,"method":"getClasses","payload":{oops');
      head.writeUInt32LE(bad.length, 4);
      const r8 = await exchange(ws, Buffer.concat([head, bad]));
      expect(r8).toMatchObject({ id: 8, ok: false });
      expect((r8 as { error: { message: string } }).error.message).toMatch(/malformed message/);
      // a text frame
      expect((await exchange(ws, '{"t":"call","id":9,"method":"getClasses"}')).id).toBe(9);
      // nothing readable: 0
      expect((await exchange(ws, Buffer.from('garbage bytes'))).id).toBe(0);
      // and the server still answers proper calls
      expect((await call(ws, 'getClasses')).ok).toBe(true);
    } finally {
      ws.close();
    }
    expect(recoverId(Buffer.from('{"id": 12, "t": "call"'))).toBe(12);
  });

  it('the client rejects a call the server never answers, after its timeout', async () => {
    // a WebSocket server that accepts and never replies (loopback only)
    const { WebSocketServer } = await import('ws');
    const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => silent.once('listening', r));
    const port = (silent.address() as { port: number }).port;
    const g = globalThis as Record<string, unknown>;
    const saved = { WebSocket: g.WebSocket, location: g.location };
    g.WebSocket = WebSocket;
    g.location = { href: `http://127.0.0.1:${port}/`, protocol: 'http:', host: `127.0.0.1:${port}` };
    try {
      const client = createWebSocketApi(`ws://127.0.0.1:${port}/ws`, TOKEN, { callTimeoutMs: 300 });
      await client.ready;
      const t0 = Date.now();
      await expect(client.getClasses()).rejects.toThrow(/did not answer getClasses within 0 s/);
      expect(Date.now() - t0).toBeLessThan(3000);
      client.close();
    } finally {
      g.WebSocket = saved.WebSocket;
      g.location = saved.location;
      await new Promise((r) => silent.close(r));
    }
  });
});

describe('items 12, 15: paths at the service entry', () => {
  it('FIFOs are refused at once as volume, truth and project file; the server keeps serving', async () => {
    const ws = await openWs(server);
    try {
      const fifos: string[] = [];
      for (let i = 0; i < 6; i++) {
        const p = join(tmp, `fifo-${i}.tif`);
        execFileSync('mkfifo', [p]);
        fifos.push(p);
      }
      const t0 = Date.now();
      const rs = await Promise.all(fifos.map((path) => call(ws, 'openVolume', { path })));
      for (const r of rs) {
        expect(r.ok).toBe(false);
        expect((r as { error: { code: string; message: string } }).error).toMatchObject({ code: 'bad-input', message: expect.stringMatching(/fifo-\d\.tif: the volume: is a FIFO \(named pipe\), not a regular file/) });
      }
      // a project folder whose project.json is a FIFO (this one used to block a file-I/O thread for good)
      const projects: string[] = [];
      for (let i = 0; i < 6; i++) {
        const d = join(tmp, `proj-${i}.sliceform`);
        await mkdir(d);
        execFileSync('mkfifo', [join(d, 'project.json')]);
        projects.push(d);
      }
      const ps = await Promise.all(projects.map((path) => call(ws, 'openProject', { path })));
      for (const r of ps) expect((r as { error: { message: string } }).error.message).toMatch(/project\.json: the project folder holds a FIFO/);
      expect(Date.now() - t0).toBeLessThan(5000);
      // still serving: a real volume opens and a static file comes back
      const open = await call(ws, 'openVolume', { path: H5 }, 60_000);
      expect(open.ok).toBe(true);
      const vol = (open as { value: { id: string; shape: { x: number } } }).value;
      expect(vol.shape.x).toBe(100);
      const ev = await call(ws, 'evaluate', { volumeId: vol.id, truthPath: fifos[0] });
      expect((ev as { error: { message: string } }).error.message).toMatch(/the ground truth: is a FIFO/);
      const page = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: server.port, path: '/index.html', headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.setTimeout(5000, () => reject(new Error('static file timed out')));
        req.end();
      });
      expect(page).toBe(200);
      // a stroke with a point at 1e9 answers in milliseconds (item 15, paintStroke)
      const t1 = Date.now();
      const st = await call(ws, 'paintStroke', { volumeId: vol.id, plane: 'xy', index: 50, radius: 2, classId: 2, points: [[50, 50], [1e9, 50]] });
      expect(st.ok).toBe(true);
      expect(Date.now() - t1).toBeLessThan(2000);
      expect((st as { value: { changed: number } }).value.changed).toBeGreaterThan(5 * 49);
    } finally {
      ws.close();
    }
  }, 90_000);

  it('export and snapshot onto an open volume file (or a hard link to it) are refused, the file untouched', async () => {
    const copy = join(tmp, 'copy-1135.h5');
    await copyFile(H5, copy);
    await link(copy, join(tmp, 'copy-1135-link.h5'));
    const before = await readFile(copy);
    const v = await api.openVolume({ path: copy });
    await expect(api.exportLabels({ volumeId: v.id, layer: 'annotation', path: copy, format: 'tiff' })).rejects.toThrow(/copy-1135\.h5: the export path is the input of the open volume "copy-1135\.h5"/);
    await expect(api.exportLabels({ volumeId: v.id, layer: 'annotation', path: join(tmp, 'copy-1135-link.h5'), format: 'tiff' })).rejects.toThrow(/the same file through a link/);
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]);
    await expect(api.saveSnapshot({ path: copy, png })).rejects.toThrow(/the snapshot path is the input/);
    expect(Buffer.compare(await readFile(copy), before)).toBe(0);
    // another path is fine
    const ok = await api.exportLabels({ volumeId: v.id, layer: 'annotation', path: join(tmp, 'labels.tif'), format: 'tiff' });
    expect(ok.bytes).toBeGreaterThan(100 * 100 * 100);
  }, 60_000);
});

describe('item 17: uploads', () => {
  it('POST /upload streams a real file to the imports folder and opens it under its own name', async () => {
    const bytes = await readFile(H5);
    const r = await post(server, '/upload?name=' + encodeURIComponent('my nuclei.h5'), bytes);
    expect(r.status).toBe(200);
    const info = (r.msg as { value: { name: string; shape: { z: number }; sha256: string } }).value;
    expect(info.name).toBe('my nuclei.h5');
    expect(info.shape.z).toBe(100);
    expect(await importsList()).toEqual([`${info.sha256.slice(0, 12)}-my_nuclei.h5`]);
  }, 60_000);

  it('unreadable, too large and interrupted uploads leave nothing behind; a second concurrent upload is refused', async () => {
    const before = await importsList();
    const junk = await post(server, '/upload?name=junk.tif', Buffer.from('II*\0 this is not a TIFF at all'.repeat(100)));
    expect(junk.status).toBe(400);
    expect((junk.msg as { error: { code: string; message: string } }).error.code).toBe('bad-input');
    const big = await post(server, '/upload?name=big.tif', async function* () {
      for (let i = 0; i < 12; i++) yield Buffer.alloc(1024 ** 2, 7);
    });
    expect(big.status).toBe(413);
    expect((big.msg as { error: { message: string } }).error.message).toMatch(/big\.tif: larger than the largest upload \(8388608 bytes\)/);
    // one upload holds the only slot; a second is answered 429 at once
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = post(server, '/upload?name=slow.tif', async function* () {
      yield Buffer.from('II*\0');
      await gate;
      yield Buffer.from('still not a tiff');
    });
    await new Promise((r) => setTimeout(r, 300));
    const second = await post(server, '/upload?name=second.tif', Buffer.from('x'));
    expect(second.status).toBe(429);
    expect((second.msg as { error: { code: string } }).error.code).toBe('busy');
    release();
    expect((await slow).status).toBe(400);
    expect(await importsList()).toEqual(before);
    // the client goes away in the middle of an upload: the partial file is removed
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: server.port, path: '/upload?name=cut.tif', method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(256 * 1024, 3), () => setTimeout(() => req.destroy(), 200));
    });
    await expect.poll(async () => (existsSync(imports()) ? await readdir(imports()) : []), { timeout: 5000 }).toEqual(before);
    // the WebSocket path deletes a rejected drop too
    await expect(api.openVolumeBytes({ name: 'junk2.tif', bytes: Uint8Array.from(Buffer.from('not a volume')) })).rejects.toThrow();
    expect(await importsList()).toEqual(before);
  }, 60_000);

  it('the client uploads dropped files through /upload, and a WebSocket message over the cap is refused', async () => {
    const g = globalThis as Record<string, unknown>;
    const saved = { WebSocket: g.WebSocket, location: g.location };
    g.WebSocket = WebSocket;
    g.location = { href: `http://127.0.0.1:${server.port}/`, protocol: 'http:', host: `127.0.0.1:${server.port}` };
    try {
      const client = createWebSocketApi(`ws://127.0.0.1:${server.port}/ws`, TOKEN);
      await client.ready;
      const v = await client.openVolumeBytes({ name: '1135 again.h5', bytes: new Uint8Array(await readFile(H5)) });
      expect(v.name).toBe('1135 again.h5');
      await expect(client.openVolumeBytes({ name: 'bad.tif', bytes: new Uint8Array(64) })).rejects.toMatchObject({ code: 'bad-input' });
      client.close();
    } finally {
      g.WebSocket = saved.WebSocket;
      g.location = saved.location;
    }
    const ws = await openWs(server);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send(encodeFrame({ t: 'call', id: 1, method: 'openVolumeBytes', payload: { name: 'x.tif', bytes: new Uint8Array(65 * 1024 ** 2) } }));
    expect(await closed).toBe(1009); // message too big
  }, 60_000);
});

describe('item 21: --allow-remote confines paths to the roots', () => {
  it('refuses paths outside the roots, lists the first root by default', async () => {
    const root = join(tmp, 'root');
    await mkdir(root);
    await copyFile(H5, join(root, 'inside.h5'));
    await symlink(H5, join(root, 'link-out.h5'));
    const rapi = new ApiService({ shell: 'web', workDir: join(tmp, 'rwork') });
    const rs = await startWebServer({ api: rapi, rendererDir: join(REPO, 'renderer'), token: TOKEN, allowRemote: true, roots: [root] });
    const ws = await openWs(rs);
    try {
      const out = await call(ws, 'openVolume', { path: H5 });
      expect((out as { error: { message: string } }).error.message).toMatch(/1135_mini\.h5: the volume is outside the folders this remote web shell may use \(.*root; see --root\)/);
      const link = await call(ws, 'openVolume', { path: join(root, 'link-out.h5') });
      expect((link as { error: { message: string } }).error.message).toMatch(/outside the folders/);
      const ok = await call(ws, 'openVolume', { path: join(root, 'inside.h5') }, 60_000);
      expect(ok.ok).toBe(true);
      const id = (ok as { value: { id: string } }).value.id;
      const ex = await call(ws, 'exportLabels', { volumeId: id, layer: 'annotation', path: join(tmp, 'outside.tif'), format: 'tiff' });
      expect((ex as { error: { message: string } }).error.message).toMatch(/the export path is outside/);
      expect(existsSync(join(tmp, 'outside.tif'))).toBe(false);
      const sv = await call(ws, 'saveProject', { path: join(root, '..', 'escape.sliceform') });
      expect((sv as { error: { message: string } }).error.message).toMatch(/the project folder is outside/);
      const ls = await call(ws, 'listDirectory', {});
      expect((ls as { value: { path: string; entries: Array<{ name: string }> } }).value.path).toBe(root);
      const ls2 = await call(ws, 'listDirectory', { path: '/' });
      expect(ls2.ok).toBe(false);
      // a path field of a method the list does not name yet is confined too (fail closed)
      const { checkCallPaths } = await import('../../main/services/web-paths.js');
      const { PathRoots } = await import('../../main/services/path-guard.js');
      const pr0 = await PathRoots.create([root]);
      await expect(checkCallPaths('someFutureExport', { volumeId: id, outputPath: join(tmp, 'x.csv') }, pr0)).rejects.toThrow(/the outputPath is outside the folders/);
      await expect(checkCallPaths('someFutureExport', { volumeId: id, outputPath: join(root, 'x.csv') }, pr0)).resolves.toBeTruthy();
      // a project inside the root whose project.json names a volume outside it
      const pdir = join(root, 'crafted.sliceform');
      await mkdir(pdir);
      await writeFile(join(pdir, 'project.json'), JSON.stringify({ volumes: [{ id: 'v1', name: 'x', path: H5, sha256: 'x', shape: { x: 1, y: 1, z: 1, c: 1, t: 1 } }] }));
      const pr = await call(ws, 'openProject', { path: pdir });
      expect((pr as { error: { message: string } }).error.message).toMatch(/1135_mini\.h5: a volume of the project .*crafted\.sliceform is outside the folders/);
      // the server's own scratch folder stays usable: an upload reopened by its path
      const up = await post(rs, '/upload?name=up.h5', await readFile(H5));
      expect(up.status).toBe(200);
      const src = (up.msg as { value: { source: string } }).value.source;
      expect((await call(ws, 'openVolume', { path: src }, 60_000)).ok).toBe(true);
    } finally {
      ws.close();
      await rs.close();
      await rapi.dispose();
    }
  }, 60_000);

  it('sliceform serve --allow-remote says which folders it is confined to', async () => {
    const root = join(tmp, 'root');
    const code = `import(${JSON.stringify(join(REPO, 'main/cli/index.ts'))}).then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', code, 'serve', '--allow-remote', '--root', root, '--port', '0', '--work-dir', join(tmp, 'swork')], { cwd: REPO });
    let err = '';
    let out = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 30_000);
        const tick = setInterval(() => {
          if (out.includes('\n')) {
            clearTimeout(t);
            clearInterval(tick);
            resolve();
          }
        }, 100);
      });
      expect(JSON.parse(out.split('\n')[0]!).roots).toEqual([root]);
      expect(err).toContain(`read and write files as this user inside ${root} (--root); paths outside are refused`);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    const bad = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawn(process.execPath, ['--import', 'tsx', '-e', code, 'serve', '--root', root, '--port', '0'], { cwd: REPO });
      let e = '';
      c.stderr.on('data', (d) => (e += d));
      c.once('exit', (code) => resolve({ code, err: e }));
    });
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--root confines a remote web shell: it needs --allow-remote/);
  }, 60_000);
});
