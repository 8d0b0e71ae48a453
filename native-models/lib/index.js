// Typed entry of the Sliceform native engine (libtorch U-Net). Loads the compiled addon lazily so that a
// missing build is a clear error at first use, not at import time. Only main/engine imports this file.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** Where the addon is looked for, in order: $SLICEFORM_NATIVE, build/Release, build/Debug. */
export function addonCandidates() {
  const c = [];
  if (process.env.SLICEFORM_NATIVE) c.push(resolve(process.env.SLICEFORM_NATIVE));
  c.push(join(here, '..', 'build', 'Release', 'sliceform_native.node'));
  c.push(join(here, '..', 'build', 'Debug', 'sliceform_native.node'));
  return c;
}

let cached;
/** The raw N-API binding. Throws an Error with a build hint when the addon is missing or fails to load. */
export function binding() {
  if (cached) return cached;
  const candidates = addonCandidates();
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    const e = new Error(
      `Sliceform native engine is not built (looked for ${candidates.join(', ')}). ` +
        'Build it with `npm run build:addon` (needs libtorch: Debian `libtorch-dev`, or LIBTORCH=<libtorch root>).',
    );
    e.kind = 'engine';
    throw e;
  }
  try {
    cached = require(path);
  } catch (err) {
    const e = new Error(
      `Sliceform native engine at ${path} failed to load: ${err.message}. ` +
        'Rebuild with `npm run build:addon -- --force` against the libtorch that is installed.',
      { cause: err },
    );
    e.kind = 'engine';
    throw e;
  }
  return cached;
}

/** True when the addon exists and loads. */
export function isAvailable() {
  try {
    binding();
    return true;
  } catch {
    return false;
  }
}

/**
 * Create a model. Argument checking happens in C++ (one place); errors are Error objects with
 * `kind` = 'bad-input' | 'oom' | 'engine'.
 */
export function createModel(config, optim = {}, options = {}) {
  const { Model } = binding();
  return new Model(config, optim, options);
}

/** Like createModel, but weight initialisation runs on the thread pool (0.4 s for the paper preset). */
export function createModelAsync(config, optim = {}, options = {}) {
  return binding().createModel(config, optim, options);
}

export const torchVersion = () => binding().torchVersion();
export const cudaAvailable = () => binding().cudaAvailable();
export const getThreads = () => binding().getThreads();
export const setThreads = (n) => binding().setThreads(n);
