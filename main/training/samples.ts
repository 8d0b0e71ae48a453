/**
 * Where rendered samples come from: a worker thread (the compiled augment.worker.js beside this module) or,
 * when that file does not exist (running from TypeScript sources), the calling thread. Either way a sample is
 * a pure function of its SampleSpec, so results are identical and deterministic for a seed.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { renderSample, type Sample, type SampleSpec, type TrainVolumeData } from './augment.js';
import { Rng } from './rng.js';

export interface SampleSource {
  readonly kind: 'worker' | 'inline';
  render(spec: SampleSpec): Promise<Sample>;
  dispose(): Promise<void>;
}

/** Copies an array into shared memory so the worker reads the same bytes without a copy per sample. */
function shared<T extends Float32Array | Uint8Array | Uint16Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const Ctor = a.constructor as new (b: SharedArrayBuffer) => T;
  const out = new Ctor(new SharedArrayBuffer(a.byteLength));
  out.set(a);
  return out;
}

export function createSampleSource(volumes: TrainVolumeData[], mode: 'auto' | 'worker' | 'inline' = 'auto'): SampleSource {
  const jsFile = fileURLToPath(new URL('./augment.worker.js', import.meta.url));
  const tsFile = fileURLToPath(new URL('./augment.worker.ts', import.meta.url));
  // compiled: the .js beside this module; from sources (tests, tsx) the .ts through tsx's loader
  const workerFile = existsSync(jsFile) ? jsFile : mode === 'worker' && existsSync(tsFile) ? tsFile : null;
  const useWorker = workerFile !== null && mode !== 'inline';
  if (mode === 'worker' && !workerFile) throw new Error(`augmentation worker not found (${jsFile})`);
  if (!useWorker || !workerFile) {
    return {
      kind: 'inline',
      render: async (spec) => renderSample(volumes[spec.volume]!, spec, (seed) => new Rng(seed)),
      dispose: async () => {},
    };
  }
  // from TypeScript sources (tests) the worker registers tsx's loader first, then imports the .ts module
  const w = workerFile.endsWith('.ts')
    ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(workerFile).href)}); });`, { eval: true })
    : new Worker(workerFile);
  w.unref();
  const vols = volumes.map((v) => ({ ...v, image: shared(v.image), labels: shared(v.labels) }));
  w.postMessage({ type: 'init', volumes: vols });
  let next = 0;
  const pending = new Map<number, { resolve: (s: Sample) => void; reject: (e: Error) => void }>();
  w.on('message', (m: { id: number; input?: Float32Array; labels?: Uint8Array; error?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error !== undefined) p.reject(new Error(`augmentation worker: ${m.error}`));
    else p.resolve({ input: m.input!, labels: m.labels! });
  });
  const failAll = (e: Error) => {
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  w.on('error', failAll);
  w.on('exit', (code) => failAll(new Error(`augmentation worker exited (${code})`)));
  return {
    kind: 'worker',
    render(spec) {
      const id = next++;
      return new Promise<Sample>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        w.ref();
        w.postMessage({ type: 'render', id, spec });
      }).finally(() => {
        if (pending.size === 0) w.unref();
      });
    },
    async dispose() {
      await w.terminate();
    },
  };
}
