/**
 * Loading TensorFlow.js and patching the gaps of tfjs 4.22 that a 3D U-Net runs into.
 *
 * Which tfjs: `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node` when installed and loadable (the `tensorflow`
 * backend, libtensorflow in C++), else the pure-JS `@tensorflow/tfjs` on its `cpu` backend. Both node packages
 * re-export the whole tfjs API, so we always work on the module object that was loaded (never on a second copy
 * of tfjs-core that would not see the registered backend).
 */
import type * as TF from '@tensorflow/tfjs';
import { SliceformError } from '../../common/errors.js';

export type Tf = typeof TF;
export type BackendPreference = 'auto' | 'cpu' | 'tensorflow' | 'wasm';

export interface LoadedTf {
  tf: Tf;
  /** tfjs backend name in use: 'cpu', 'tensorflow', 'wasm' */
  backend: string;
  /** npm package that provided it */
  pkg: string;
  version: string;
  /** whether the tensorflow backend sees a CUDA GPU */
  gpu: boolean;
  /** why the native tfjs packages were not used (for `sliceform system`) */
  notes: string[];
}

async function tryImport(name: string): Promise<{ mod: Tf | null; error?: string }> {
  try {
    // A variable specifier so TypeScript does not require the optional peer dependency to be installed.
    const mod = (await import(name)) as Tf & { default?: Tf };
    return { mod: (mod.default && typeof mod.default.tensor === 'function' ? mod.default : mod) as Tf };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? '';
    const notInstalled = /Cannot find (package|module)|Could not resolve|ERR_MODULE_NOT_FOUND/.test(msg) && msg.includes(name);
    return { mod: null, error: `${name}: ${notInstalled ? 'not installed' : msg}` };
  }
}

const NODE_PKGS = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];
let cached: Promise<LoadedTf> | null = null;
let cachedPref: BackendPreference | null = null;

/**
 * Load tfjs once per process. `auto` prefers tfjs-node-gpu, then tfjs-node, then the cpu backend.
 * Asking for `tensorflow` when neither node package loads is an error that says how to install one.
 */
export async function loadTf(pref: BackendPreference = 'auto'): Promise<LoadedTf> {
  if (pref === 'wasm') {
    const { error } = await tryImport('@tensorflow/tfjs-backend-wasm');
    if (error) {
      throw new SliceformError(
        'unsupported',
        `the TF.js 'wasm' backend is not available (${error}); install @tensorflow/tfjs-backend-wasm (inference only)`,
      );
    }
  }
  if (pref === 'tensorflow' && !(cached && (await cached).backend === 'tensorflow')) {
    const errors: string[] = [];
    for (const pkg of NODE_PKGS) {
      const { mod, error } = await tryImport(pkg);
      if (mod) break;
      if (error) errors.push(error);
    }
    if (errors.length === NODE_PKGS.length) {
      throw new SliceformError(
        'unsupported',
        `the TF.js 'tensorflow' backend is not available (${errors.join('; ')}). ` +
          'Install @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu (see docs/tfjs.md), or use the cpu backend.',
      );
    }
  }
  if (cached && cachedPref === pref) return cached;
  if (cached && cachedPref !== pref) {
    // tfjs keeps one global engine; switching the package mid-process would mix two tfjs-core copies.
    return cached.then((t) => {
      if (pref === 'auto' || t.backend === pref) return t;
      throw new SliceformError(
        'unsupported',
        `TF.js is already loaded with the '${t.backend}' backend in this process; cannot switch to '${pref}'`,
      );
    });
  }
  cachedPref = pref;
  cached = doLoad(pref);
  cached.catch(() => {
    cached = null;
    cachedPref = null;
  });
  return cached;
}

async function doLoad(pref: BackendPreference): Promise<LoadedTf> {
  const notes: string[] = [];
  if (pref === 'auto' || pref === 'tensorflow') {
    for (const pkg of NODE_PKGS) {
      const { mod, error } = await tryImport(pkg);
      if (mod) {
        await mod.ready();
        if (mod.getBackend() === 'tensorflow') {
          patchTf(mod);
          return {
            tf: mod,
            backend: 'tensorflow',
            pkg,
            version: mod.version?.['tfjs-core'] ?? 'unknown',
            gpu: pkg.endsWith('-gpu'),
            notes,
          };
        }
        notes.push(`${pkg}: loaded but the tensorflow backend did not initialise`);
      } else if (error) notes.push(error);
    }
    if (pref === 'tensorflow') {
      throw new SliceformError(
        'unsupported',
        `the TF.js 'tensorflow' backend is not available (${notes.join('; ')}). ` +
          'Install @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu (see docs/tfjs.md), or use the cpu backend.',
      );
    }
  }
  const tf = (await import('@tensorflow/tfjs')) as unknown as Tf;
  // PROD silences the cpu backend's "install tfjs-node" banner (printed to stderr on first use) and debug checks
  tf.env().set('PROD', true);
  if (pref === 'wasm') {
    await tf.setBackend('wasm');
  } else {
    await tf.setBackend('cpu');
  }
  await tf.ready();
  patchTf(tf);
  return { tf, backend: tf.getBackend(), pkg: '@tensorflow/tfjs', version: tf.version_core, gpu: false, notes };
}

/**
 * tfjs 4.22 registers no gradient for Conv3DBackpropInputV2 (the kernel behind conv3dTranspose), so a
 * 3D up-convolution cannot be trained. Its gradient is the pair every transposed convolution has:
 * d/d(dy) = conv3d(ddx, filter) and d/d(filter) = Conv3DBackpropFilterV2(x = ddx, dy = dy) — the same
 * formulas tfjs uses for the 2D case (Conv2DBackpropInput_grad.ts). Checked against finite differences in
 * test/unit/tfjs-gaps.test.ts. Idempotent; does nothing when a gradient is already registered.
 */
export function patchTf(tf: Tf): void {
  if (tf.getGradient('Conv3DBackpropInputV2')) return;
  tf.registerGradient({
    kernelName: 'Conv3DBackpropInputV2',
    inputsToSave: ['dy', 'filter'],
    gradFunc: (ddx, saved, attrs) => {
      const [dy, filter] = saved as [TF.Tensor5D, TF.Tensor5D];
      const { strides, pad } = attrs as unknown as { strides: [number, number, number]; pad: 'valid' | 'same' };
      const g = Array.isArray(ddx) ? ddx[0] : ddx;
      return {
        dy: () => tf.conv3d(g as TF.Tensor5D, filter, strides, pad),
        filter: () =>
          tf.engine().runKernel(
            'Conv3DBackpropFilterV2',
            { x: g, dy },
            { strides, pad, filterShape: filter.shape } as unknown as TF.NamedAttrMap,
          ) as TF.Tensor,
      };
    },
  });
}

/**
 * The wasm backend of tfjs 4.22 computes wrong Conv3DBackpropInputV2 (every stride) and Conv3DBackpropFilterV2
 * (stride 2) results, i.e. wrong gradients for every 3D conv and up-conv: refuse to train there.
 */
export function assertCanTrain(backend: string): void {
  if (backend === 'wasm') {
    throw new SliceformError(
      'unsupported',
      "TF.js 'wasm' backend: refusing to train — its Conv3DBackpropInputV2/Conv3DBackpropFilterV2 kernels return " +
        "wrong gradients in tfjs 4.22. Use the 'cpu' or 'tensorflow' backend (or the native engine) for training.",
    );
  }
}
