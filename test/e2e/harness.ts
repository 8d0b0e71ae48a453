/**
 * E2E harness: starts `sliceform serve` on a random loopback port and Debian's Chromium (playwright-core),
 * opens the web shell with its token, and cleans everything up. Needs `npm run build` (dist/ + dist/renderer).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ARTIFACTS, REPO } from '../helpers/paths.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--enable-unsafe-swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Why the E2E tests cannot run here, or null when they can. */
export function e2eMissing(): string | null {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} not found (apt-get install chromium; scripts/setup.sh does it)`;
  if (!existsSync(join(REPO, 'dist', 'main', 'cli', 'index.js'))) return 'dist/ not built (npm run build)';
  if (!existsSync(join(REPO, 'dist', 'renderer', 'index.html'))) return 'dist/renderer not built (npm run build:renderer)';
  return null;
}

export interface ServeHandle {
  url: string;
  origin: string;
  token: string;
  port: number;
  proc: ChildProcess;
  workDir: string;
  log: () => string;
  stop(): Promise<void>;
}

export async function startServe(extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServeHandle> {
  const workDir = await mkdtemp(join(tmpdir(), 'sliceform-e2e-'));
  const proc = spawn(process.execPath, [join(REPO, 'bin', 'sliceform.js'), 'serve', '--port', '0', '--work-dir', join(workDir, 'scratch'), ...extraArgs], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const info = await new Promise<{ url: string; token: string; port: number }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`sliceform serve did not start in 30 s:\n${err}`)), 30_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line && out.includes('\n')) {
        clearTimeout(t);
        resolve(JSON.parse(line));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`sliceform serve exited with ${code}:\n${err}`));
    });
  });
  const origin = `http://127.0.0.1:${info.port}`;
  return {
    ...info,
    origin,
    proc,
    workDir,
    log: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

export interface App {
  serve: ServeHandle;
  context: BrowserContext;
  page: Page;
  token: string;
  /** console errors and page errors seen so far */
  pageErrors: string[];
  screenshot(name: string): Promise<string>;
  cleanup(): Promise<void>;
}

/** Starts the web shell and Chromium, opens the app, waits until window.sliceform answers. */
export async function startApp(opts: { serveArgs?: string[]; env?: NodeJS.ProcessEnv; live?: boolean } = {}): Promise<App> {
  const serve = await startServe(opts.serveArgs, opts.env);
  const profile = await mkdtemp(join(tmpdir(), 'sliceform-chromium-'));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
    });
    // live training starts by itself once two classes are painted; tests of other features open the page with
    // ?live=off (the user's "Live" switched off) so no background session competes with what they measure
    await page.goto(opts.live ? serve.url : `${serve.url}${serve.url.includes('?') ? '&' : '?'}live=off`);
    await page.waitForFunction(() => typeof (window as unknown as { sliceform?: unknown }).sliceform === 'object', null, { timeout: 30_000 });
    const ctx = context;
    return {
      serve,
      context: ctx,
      page,
      token: serve.token,
      pageErrors,
      async screenshot(name: string) {
        await mkdir(ARTIFACTS, { recursive: true });
        const p = join(ARTIFACTS, name.endsWith('.png') ? name : `${name}.png`);
        await writeFile(p, await page.screenshot());
        return p;
      },
      async cleanup() {
        await ctx.close().catch(() => {});
        await rm(profile, { recursive: true, force: true });
        await serve.stop();
      },
    };
  } catch (e) {
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
    await serve.stop();
    throw e;
  }
}

/** Decodes a PNG (via sharp) and reports how many distinct colours and non-background pixels it has. */
export async function pngStats(png: Buffer | string): Promise<{ width: number; height: number; distinctColors: number; stddev: number }> {
  const sharp = (await import('sharp')).default;
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const colors = new Set<number>();
  let sum = 0,
    sum2 = 0;
  for (let i = 0; i < data.length; i += 3) {
    colors.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
    const g = (data[i]! + data[i + 1]! + data[i + 2]!) / 3;
    sum += g;
    sum2 += g * g;
  }
  const n = data.length / 3;
  return { width: info.width, height: info.height, distinctColors: colors.size, stddev: Math.sqrt(Math.max(0, sum2 / n - (sum / n) ** 2)) };
}
