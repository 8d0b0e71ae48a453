/** Valid-convolution tile geometry helpers shared by training and inference. Pure. */
import { unetOutputSize } from '../common/engine.js';

export interface NetGeometry {
  levels: number;
  padding: 'valid' | 'same';
}

/** Smallest input size whose output is exactly `out`, or null. */
export function inputForOutput(out: number, g: NetGeometry): number | null {
  for (let n = Math.max(1, out); n < out + 4096; n++) {
    const o = unetOutputSize(n, g.levels, g.padding);
    if (o === out) return n;
    if (o !== null && o > out) return null;
  }
  return null;
}

/** The valid output size nearest to `near` from below (at least the smallest valid one). */
export function validOutputAtMost(near: number, g: NetGeometry): number {
  let best: number | null = null;
  for (let n = 1; n < near + 4096; n++) {
    const o = unetOutputSize(n, g.levels, g.padding);
    if (o === null) continue;
    if (o <= near) best = o;
    else {
      if (best === null) best = o;
      break;
    }
  }
  if (best === null) throw new Error(`no valid output size near ${near}`);
  return best;
}

/** Smallest valid output size. */
export function minValidOutput(g: NetGeometry): number {
  return validOutputAtMost(1, g);
}

/** Context lost by valid convolutions (input - output), the same for every valid size. */
export function contextSize(g: NetGeometry): number {
  const o = minValidOutput(g);
  return inputForOutput(o, g)! - o;
}
