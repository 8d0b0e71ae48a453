/**
 * What an engine can and cannot do, in plain words, for `sliceform system` and the app's status line
 * (issue 14 item 11). Pure: no Node, no DOM. Figures from docs/tfjs.md (bench/tfjs.bench.mjs) and from the
 * wasm measurement recorded there.
 */
import type { EngineInfo } from './engine.js';

/** One paragraph on the engine's limits, or null when there is nothing to warn about (native engine). */
export function engineLimits(info: Pick<EngineInfo, 'name' | 'backend'> | null | undefined): string | null {
  if (!info || info.name !== 'tfjs') return null;
  if (info.backend === 'tensorflow') {
    return 'TF.js on the tensorflow backend (@tensorflow/tfjs-node): trains and predicts like the native engine, at libtensorflow speed; the app uses the native engine when its addon loads.';
  }
  return (
    `TF.js fallback (${info.backend ?? 'cpu'} backend, pure JavaScript, one thread): for checking results and for machines where the native addon does not load, not for everyday work. ` +
    'Measured 65-140x slower than the native engine for training and 190-310x for prediction (docs/tfjs.md): densifying the bundled sample does not finish in minutes, and a few-minute training budget gives only a handful of steps. ' +
    'What works: opening, viewing, painting, exporting, evaluating; training and predicting small crops with --preset tiny --no-flips. ' +
    'To make it fast install @tensorflow/tfjs-node, or build the native addon (npm run build:addon). ' +
    'The wasm backend is no way out: in Node it runs without threads and its Conv3D took about 2x the cpu backend\'s time here.'
  );
}

/** The same in one sentence, for a status line; null for the native engine. */
export function engineLimitsShort(info: Pick<EngineInfo, 'name' | 'backend'> | null | undefined): string | null {
  if (!info || info.name !== 'tfjs' || info.backend === 'tensorflow') return null;
  return 'the TF.js fallback is 65-310x slower than the native engine: densify small crops only (tiny preset), or build the native addon';
}
