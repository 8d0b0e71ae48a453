/**
 * Engine selection: the only entry the rest of main/ uses to get a network implementation.
 *   loadEngine()                    native libtorch addon; falls back to TF.js when the addon is unavailable
 *   loadEngine({engine: 'native'})  native only (error with a build hint when missing)
 *   loadEngine({engine: 'tfjs'})    TF.js only
 * `SLICEFORM_ENGINE=native|tfjs` overrides the default choice.
 */
import { SliceformError } from '../common/errors.js';
import type { Engine } from '../common/engine.js';

export interface LoadEngineOptions {
  engine?: 'native' | 'tfjs';
}

const cache = new Map<string, Promise<Engine>>();

async function loadTfjs(): Promise<Engine> {
  let mod: { createTfjsEngine?: () => Promise<Engine> };
  try {
    mod = (await import('./tfjs.js')) as typeof mod;
  } catch (e) {
    throw new SliceformError('engine', `TF.js engine is not available: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (typeof mod.createTfjsEngine !== 'function')
    throw new SliceformError('engine', 'TF.js engine module has no createTfjsEngine()');
  return mod.createTfjsEngine();
}

async function loadNative(): Promise<Engine> {
  const { createNativeEngine } = await import('./native.js');
  return createNativeEngine();
}

function memo(key: string, f: () => Promise<Engine>): Promise<Engine> {
  let p = cache.get(key);
  if (!p) {
    p = f();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

export async function loadEngine(opts: LoadEngineOptions = {}): Promise<Engine> {
  const envChoice = process.env.SLICEFORM_ENGINE;
  const choice = opts.engine ?? (envChoice === 'native' || envChoice === 'tfjs' ? envChoice : undefined);
  if (choice === 'native') return memo('native', loadNative);
  if (choice === 'tfjs') return memo('tfjs', loadTfjs);
  try {
    return await memo('native', loadNative);
  } catch (nativeErr) {
    try {
      return await memo('tfjs', loadTfjs);
    } catch (tfErr) {
      throw new SliceformError(
        'engine',
        `no engine available. Native: ${(nativeErr as Error).message}. TF.js: ${(tfErr as Error).message}`,
        { cause: nativeErr },
      );
    }
  }
}
