/**
 * The Electron shell. Packaging is tested everywhere (a missing Electron dist is reported; a dir build is made
 * from a stand-in dist folder, because no real Electron binary can be downloaded here). The Playwright
 * `_electron` flow runs only where an Electron binary exists and otherwise skips, saying why.
 * Never require('electron') from Node: its index.js tries to locate (and install) the binary.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { _electron, type ElectronApplication } from 'playwright-core';
import { ARTIFACTS, REPO, dataFile } from '../helpers/paths.js';
import { pngStats } from './harness.js';

const ELECTRON_VERSION = JSON.parse(readFileSync(join(REPO, 'node_modules', 'electron', 'package.json'), 'utf8')).version as string;

/** The Electron executable, or why there is none. */
function electronBinary(): { path?: string; why?: string } {
  if (process.env.ELECTRON_BINARY) return existsSync(process.env.ELECTRON_BINARY) ? { path: process.env.ELECTRON_BINARY } : { why: `ELECTRON_BINARY=${process.env.ELECTRON_BINARY} does not exist` };
  const txt = join(REPO, 'node_modules', 'electron', 'path.txt');
  if (!existsSync(txt)) return { why: 'no Electron binary: the electron npm package was installed with ELECTRON_SKIP_BINARY_DOWNLOAD (set ELECTRON_BINARY to run this test)' };
  const p = join(REPO, 'node_modules', 'electron', 'dist', readFileSync(txt, 'utf8').trim());
  return existsSync(p) ? { path: p } : { why: `Electron binary ${p} missing` };
}

const pkgBuilt = existsSync(join(REPO, 'dist', 'electron', 'main.js')) && existsSync(join(REPO, 'dist', 'renderer', 'index.html'));

describe('npm run package', () => {
  it('says what it needs when no Electron dist is given', () => {
    const env = { ...process.env };
    delete env.ELECTRON_DIST;
    const r = spawnSync(process.execPath, [join(REPO, 'electron', 'scripts', 'package.mjs')], { cwd: REPO, env, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('ELECTRON_DIST=');
    expect(r.stderr).toContain(`Electron ${ELECTRON_VERSION}`);
    const bad = spawnSync(process.execPath, [join(REPO, 'electron', 'scripts', 'package.mjs'), '--electron-dist', tmpdir()], { cwd: REPO, env, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('no electron inside');
  });

  it.skipIf(!pkgBuilt || process.platform !== 'linux')('builds a linux dir app from a local Electron dist (stand-in dist: no binary here)', () => {
    // a stand-in Electron distribution: the layout electron-builder copies (executable, version, LICENSE)
    const fake = mkdtempSync(join(tmpdir(), 'sliceform-electron-dist-'));
    const out = mkdtempSync(join(tmpdir(), 'sliceform-pkg-'));
    try {
      mkdirSync(join(fake, 'resources'));
      writeFileSync(join(fake, 'electron'), '#!/bin/sh\nexit 0\n');
      chmodSync(join(fake, 'electron'), 0o755);
      writeFileSync(join(fake, 'version'), `v${ELECTRON_VERSION}`);
      writeFileSync(join(fake, 'LICENSE'), 'MIT');
      const r = spawnSync(process.execPath, [join(REPO, 'electron', 'scripts', 'package.mjs'), '--out', out], {
        cwd: REPO,
        env: { ...process.env, ELECTRON_DIST: fake },
        encoding: 'utf8',
        timeout: 240_000,
      });
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      const res = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
      const app = join(out, 'linux-unpacked');
      expect(res.unpacked).toBe(app);
      expect(existsSync(join(app, 'sliceform'))).toBe(true);
      const asar = join(app, 'resources', 'app.asar');
      expect(existsSync(asar)).toBe(true);
      const list = spawnSync(process.execPath, [join(REPO, 'node_modules', '@electron', 'asar', 'bin', 'asar.js'), 'list', asar], { encoding: 'utf8' }).stdout;
      for (const f of ['/dist/electron/main.js', '/dist/electron/preload.cjs', '/dist/main/services/compute-entry.js', '/dist/renderer/index.html', '/package.json', '/native-models/lib/index.js'])
        expect(list).toContain(f);
      expect(list).not.toContain('/test/');
      if (existsSync(join(REPO, 'native-models', 'build', 'Release', 'sliceform_native.node'))) {
        expect(existsSync(join(app, 'resources', 'native', 'sliceform_native.node'))).toBe(true);
        expect(existsSync(join(app, 'resources', 'native', 'lib'))).toBe(true);
      }
    } finally {
      rmSync(fake, { recursive: true, force: true });
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});

const bin = electronBinary();
const VOLUME = dataFile('plantseg_nuclei_mini', '1135_mini.h5');

describe.skipIf(!bin.path || !pkgBuilt)('Electron app (Playwright _electron)', () => {
  it('opens a sandboxed window whose page has only the API, and runs the annotate → train → densify flow', async () => {
    const app: ElectronApplication = await _electron.launch({ executablePath: bin.path!, args: [REPO, '--no-sandbox'], cwd: REPO, timeout: 60_000 });
    try {
      const page = await app.firstWindow();
      await page.waitForFunction(() => typeof (window as unknown as { sliceform?: unknown }).sliceform === 'object', null, { timeout: 30_000 });
      const env = await page.evaluate(() => ({
        require: typeof (globalThis as Record<string, unknown>).require,
        process: typeof (globalThis as Record<string, unknown>).process,
        url: location.href,
      }));
      expect(env).toEqual({ require: 'undefined', process: 'undefined', url: 'app://sliceform/index.html' });
      const prefs = await app.evaluate(({ BrowserWindow }) => {
        const w = BrowserWindow.getAllWindows()[0]!;
        const p = w.webContents.getLastWebPreferences()!;
        return { contextIsolation: p.contextIsolation, sandbox: p.sandbox, nodeIntegration: p.nodeIntegration };
      });
      expect(prefs).toEqual({ contextIsolation: true, sandbox: true, nodeIntegration: false });
      const r = await page.evaluate(async (path) => {
        const api = (window as unknown as { sliceform: Record<string, (p?: unknown) => Promise<unknown>> }).sliceform;
        const bad = await api.getSlice!({ volumeId: 1 }).catch((e: { code?: string }) => e.code);
        const v = (await api.openVolume!({ path })) as { id: string };
        await api.paintStroke!({ volumeId: v.id, plane: 'xy', index: 50, classId: 2, radius: 5, points: [[50, 50]] });
        await api.paintStroke!({ volumeId: v.id, plane: 'xz', index: 20, classId: 1, radius: 5, points: [[10, 10], [90, 10]] });
        const t = (await api.startTraining!({ volumeIds: [v.id], preset: 'tiny', iterations: 5 })) as { jobId: string };
        const tj = (await api.waitJob!({ jobId: t.jobId })) as { state: string };
        const d = (await api.densify!({ volumeId: v.id })) as { jobId: string };
        const dj = (await api.waitJob!({ jobId: d.jobId })) as { state: string; result: { classVoxels: number[] } };
        const info = (await api.systemInfo!()) as { shell: string };
        return { bad, train: tj.state, densify: dj.state, voxels: dj.result.classVoxels.reduce((a, b) => a + b, 0), shell: info.shell };
      }, VOLUME);
      expect(r).toEqual({ bad: 'bad-request', train: 'done', densify: 'done', voxels: 1_000_000, shell: 'electron' });
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'electron-window.png');
      writeFileSync(shot, await page.screenshot());
      expect((await pngStats(shot)).distinctColors).toBeGreaterThan(1);
    } finally {
      await app.close();
    }
  });
});

if (!bin.path) it('Electron app flow (skipped)', () => console.warn(`skipped Electron flow: ${bin.why}`));
