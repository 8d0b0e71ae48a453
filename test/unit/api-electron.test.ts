/**
 * What of the Electron shell runs in plain Node: the IPC adapter (sender checks, validation, envelopes), the
 * preload's allow-list against the API contract, the compiled preload's module format, window-state clamping.
 * Never loads the `electron` module (no binary here).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import vm from 'node:vm';
import { createIpcHandler, isTrustedSender, type SenderInfo } from '../../electron/ipc.js';
import { clampState } from '../../electron/window-state.js';
import { API_EVENTS, API_METHODS } from '../../main/common/api.js';
import { ApiService } from '../../main/services/api-service.js';
import { REPO } from '../helpers/paths.js';

const ev = (id: number, url: string, parent: unknown = null): SenderInfo => ({ sender: { id }, senderFrame: { url, parent } });

describe('IPC sender checks', () => {
  const ids = new Set([3]);
  it('trusts only our window main frame on the app:// origin', () => {
    expect(isTrustedSender(ev(3, 'app://sliceform/index.html'), ids)).toBe(true);
    expect(isTrustedSender(ev(4, 'app://sliceform/index.html'), ids)).toBe(false); // another webContents
    expect(isTrustedSender(ev(3, 'app://sliceform/index.html', {}), ids)).toBe(false); // a subframe
    expect(isTrustedSender(ev(3, 'https://evil.example/'), ids)).toBe(false);
    expect(isTrustedSender(ev(3, 'file:///etc/passwd'), ids)).toBe(false);
    expect(isTrustedSender(ev(3, 'app://sliceform.evil/x'), ids)).toBe(false);
    expect(isTrustedSender(ev(3, 'not a url'), ids)).toBe(false);
    expect(isTrustedSender({ sender: { id: 3 }, senderFrame: null }, ids)).toBe(false);
  });
});

describe('IPC → API adapter', () => {
  const api = new ApiService({ shell: 'electron' });
  afterAll(() => api.dispose());
  const handle = createIpcHandler(api, () => new Set([1]));

  it('answers valid calls with a value envelope', async () => {
    const r = await handle(ev(1, 'app://sliceform/index.html'), 'getProject', undefined);
    expect(r).toMatchObject({ ok: true, value: { name: 'Untitled', volumes: [] } });
  });

  it('answers invalid calls with an error envelope, never a throw', async () => {
    const bad = await handle(ev(1, 'app://sliceform/'), 'getSlice', { volumeId: 1 });
    expect(bad).toMatchObject({ ok: false, error: { code: 'bad-request' } });
    const unknown = await handle(ev(1, 'app://sliceform/'), '__proto__', {});
    expect(unknown).toMatchObject({ ok: false, error: { code: 'bad-request', message: expect.stringContaining('unknown method') } });
    const notFound = await handle(ev(1, 'app://sliceform/'), 'getSlice', { volumeId: 'nope', plane: 'xy', index: 0 });
    expect(notFound).toMatchObject({ ok: false, error: { code: 'not-found' } });
    const untrusted = await handle(ev(2, 'app://sliceform/'), 'getProject', undefined);
    expect(untrusted).toMatchObject({ ok: false, error: { code: 'unauthorized' } });
    // the web shell and Electron share the showDialog fallback only when no dialog is wired
    expect(await handle(ev(1, 'app://sliceform/'), 'showDialog', { kind: 'open-volume' })).toEqual({ ok: true, value: null });
  });
});

describe('preload', () => {
  const src = readFileSync(join(REPO, 'electron', 'preload.cts'), 'utf8');
  it('allows exactly the API methods and events', () => {
    const methods = [...src.match(/const METHODS = \[([\s\S]*?)\];/)![1]!.matchAll(/'(\w+)'/g)].map((m) => m[1]);
    expect(methods.sort()).toEqual([...API_METHODS].sort());
    const events = Object.fromEntries([...src.match(/const EVENTS[^{]*\{([\s\S]*?)\};/)![1]!.matchAll(/(\w+): '(\w+)'/g)].map((m) => [m[1], m[2]]));
    expect(events).toEqual(API_EVENTS);
  });

  it('compiles to a CommonJS script (sandboxed preloads cannot be ES modules)', () => {
    const out = join(REPO, 'dist', 'electron', 'preload.cjs');
    if (!existsSync(out)) {
      const r = spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'tsconfig.json')], { encoding: 'utf8' });
      expect(existsSync(out), r.stdout).toBe(true);
    }
    const js = readFileSync(out, 'utf8');
    expect(js).toMatch(/require\("electron"\)/);
    expect(js).not.toMatch(/^\s*(import|export) /m);
    // only 'electron' is required: a sandboxed preload cannot load the app's modules
    expect([...js.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1])).toEqual(['electron']);
  });
});

describe('preload behaviour (compiled preload.cjs in a vm with a stand-in electron module)', () => {
  const api = new ApiService({ shell: 'electron' });
  afterAll(() => api.dispose());
  const handle = createIpcHandler(api, () => new Set([1]));

  it('builds window.sliceform: values, ApiError rejections with codes, events with unsubscribe', async () => {
    const out = join(REPO, 'dist', 'electron', 'preload.cjs');
    if (!existsSync(out)) spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'tsconfig.json')]);
    const listeners = new Map<string, (e: unknown, ...a: unknown[]) => void>();
    const required: string[] = [];
    const electron = {
      contextBridge: {
        exposeInMainWorld: () => {
          throw new Error('the preload must not expose anything but the API');
        },
        // like Electron: the function is serialised to source and re-created in the page world (no closures)
        executeInMainWorld: ({ func, args }: { func: (...a: unknown[]) => unknown; args: unknown[] }) =>
          (vm.runInContext(`(${func.toString()})`, ctx) as (...a: unknown[]) => unknown)(...args),
      },
      ipcRenderer: {
        invoke: (channel: string, method: unknown, payload: unknown) => {
          expect(channel).toBe('sliceform:call');
          return handle(ev(1, 'app://sliceform/index.html'), method, payload);
        },
        on: (channel: string, cb: (e: unknown, ...a: unknown[]) => void) => listeners.set(channel, cb),
      },
      webUtils: { getPathForFile: (f: { name: string }) => `/dropped/${f.name}` },
    };
    const ctx: Record<string, unknown> = {
      require: (m: string) => {
        required.push(m);
        if (m !== 'electron') throw new Error(`a sandboxed preload cannot require ${m}`);
        return electron;
      },
      exports: {},
      module: { exports: {} },
    };
    vm.createContext(ctx);
    vm.runInContext(readFileSync(out, 'utf8'), ctx);
    expect(required).toEqual(['electron']);
    const w = ctx.sliceform as Record<string, (p?: unknown) => Promise<unknown>> & Record<string, (cb: (p: unknown) => void) => () => void>;
    expect(Object.isFrozen(w)).toBe(true);
    expect(Object.keys(w).sort()).toEqual([...API_METHODS, ...Object.keys(API_EVENTS), 'getPathForFile'].sort());
    expect(await w.getProject!()).toMatchObject({ name: 'Untitled' });
    const err = (await w.getSlice!({ volumeId: 1 }).catch((e: unknown) => e)) as { name: string; code: string; message: string };
    expect(err).toMatchObject({ name: 'ApiError', code: 'bad-request' });
    expect(err.message).toContain('volumeId');
    const got: unknown[] = [];
    const off = w.onJob!((j) => got.push(j));
    const send = listeners.get('sliceform:event')!;
    send({}, 'job', { id: 'j1' });
    send({}, 'trainProgress', { id: 'other channel' });
    off();
    send({}, 'job', { id: 'j2' });
    expect(got).toEqual([{ id: 'j1' }]);
    expect((w.getPathForFile as unknown as (f: unknown) => string)({ name: 'stack.tif' })).toBe('/dropped/stack.tif');
  });
});

describe('window state', () => {
  const displays = [{ x: 0, y: 0, width: 1920, height: 1080 }];
  it('keeps a visible position and sane sizes', () => {
    expect(clampState({ x: 100, y: 50, width: 1200, height: 800, maximized: true }, displays)).toEqual({ x: 100, y: 50, width: 1200, height: 800, maximized: true });
    expect(clampState({ x: 5000, y: 50, width: 100, height: 99999 }, displays)).toEqual({ width: 640, height: 16384, maximized: false });
    expect(clampState({ width: Number.NaN } as never, displays)).toEqual({ width: 1400, height: 900, maximized: false });
  });
});
