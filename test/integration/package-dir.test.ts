import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../helpers/paths.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

/**
 * `npm run package` with an Electron distribution folder. No Electron binary can be downloaded on our machines,
 * so the distribution here is a stand-in (synthetic): an `electron` script, a `version` file and a valid empty
 * default_app.asar. electron-builder only copies and renames it, so the app it assembles around it is the real one.
 */
describe('npm run package (linux dir target)', () => {
  it('says what it needs when no Electron distribution is given', async () => {
    const r = await run(process.execPath, [join(REPO, 'electron/scripts/package.mjs')], {
      cwd: REPO,
      env: { ...process.env, ELECTRON_DIST: '' },
    }).catch((e: { code: number; stderr: string }) => e);
    expect((r as { code: number }).code).toBe(2);
    expect((r as { stderr: string }).stderr).toMatch(/no Electron distribution given/);
    expect((r as { stderr: string }).stderr).toMatch(/ELECTRON_DIST=/);
  });

  it('assembles linux-unpacked with the compiled app, its dependencies and the native addon', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'sliceform-pkg-'));
    try {
      const dist = join(tmp, 'electron-dist');
      mkdirSync(join(dist, 'resources'), { recursive: true });
      writeFileSync(join(dist, 'electron'), '#!/bin/sh\necho stand-in electron\n');
      chmodSync(join(dist, 'electron'), 0o755);
      const version = JSON.parse(readFileSync(join(REPO, 'node_modules/electron/package.json'), 'utf8')).version;
      writeFileSync(join(dist, 'version'), `${version}\n`);
      writeFileSync(join(dist, 'LICENSE'), '');
      const asar = require('@electron/asar') as {
        createPackage(src: string, dest: string): Promise<void>;
        listPackage(p: string, o?: object): string[];
      };
      mkdirSync(join(tmp, 'default-app'));
      writeFileSync(join(tmp, 'default-app', 'package.json'), '{"name":"default"}');
      await asar.createPackage(join(tmp, 'default-app'), join(dist, 'resources', 'default_app.asar'));

      const out = join(tmp, 'out');
      await run(process.execPath, [join(REPO, 'electron/scripts/package.mjs'), '--targets', 'dir', '--out', out], {
        cwd: REPO,
        env: { ...process.env, ELECTRON_DIST: dist, ELECTRON_BUILDER_7ZIP_PATH: '/usr/bin/7zz' },
        maxBuffer: 64 * 1024 * 1024,
      });
      const app = join(out, 'linux-unpacked');
      expect(existsSync(join(app, 'sliceform'))).toBe(true); // the electron binary, renamed
      const files = asar.listPackage(join(app, 'resources', 'app.asar'));
      for (const f of ['/dist/electron/main.js', '/dist/electron/preload.cjs', '/dist/main/services/compute-entry.js', '/dist/renderer/index.html']) {
        expect(files).toContain(f);
      }
      expect(files.some((f) => f.startsWith('/node_modules/h5wasm/'))).toBe(true);
      expect(files.some((f) => f.startsWith('/node_modules/electron/'))).toBe(false);
      expect(files.some((f) => f.startsWith('/test/'))).toBe(false);
      expect(existsSync(join(app, 'resources', 'native', 'sliceform_native.node'))).toBe(true);
      expect(existsSync(join(app, 'resources', 'native', 'lib'))).toBe(true);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 300_000);
});
