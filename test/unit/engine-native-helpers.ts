// Shared helpers for the native-engine specs (not a spec itself). Synthetic tensors only: these tests check
// the network maths, which no real volume covers better than a seeded pseudo-random tile.
import { createNativeEngine, type NativeEngine } from '../../main/engine/native.js';
import type { NetConfig } from '../../main/common/engine.js';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomInput(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * 2 - 1;
  return a;
}

export const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

export function net(over: Partial<NetConfig> = {}): NetConfig {
  return {
    dims: 3,
    inChannels: 1,
    numClasses: 2,
    levels: 2,
    baseFilters: 4,
    padding: 'valid',
    batchNorm: true,
    bnAtTest: 'running',
    ...over,
  };
}

let engine: Promise<NativeEngine> | undefined;
/** The native engine; fails (does not skip) when the addon is not built: run `npm run build:addon`. */
export function nativeEngine(): Promise<NativeEngine> {
  engine ??= createNativeEngine();
  return engine;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
