/**
 * Overlap-tile planning for valid-convolution U-Nets (pure).
 *
 * A valid network maps an input tile of size n to an output of size n - context, centred. Output tiles are laid
 * edge to edge from the region's origin; each input tile reaches context/2 beyond its output on every side, and
 * voxels outside the volume are mirrored. Because every output size of a valid U-Net is a multiple of
 * 2^(levels-1) (the pooling stride), all tiles share one pooling grid, and the tiled result equals what a single
 * tile covering the whole region would give (up to float rounding). The last tile of an axis may run past the
 * region (mirrored input); its extra output is dropped.
 */
import { unetOutputSize } from '../common/engine.js';
import { contextSize, inputForOutput, minValidOutput, type NetGeometry } from './geometry.js';

export type Vec3 = [number, number, number];

export interface TilePlan {
  /** output tile shape [z, y, x] */
  out: Vec3;
  /** input tile shape */
  in: Vec3;
  /** input voxels before the output start on each axis (context/2, or the halo for 'same' nets) */
  before: Vec3;
  /** tile origins (output coordinates relative to the region origin) per axis */
  starts: [number[], number[], number[]];
  count: number;
}

/** Output sizes a valid net can produce, ascending, up to `max`. */
export function validOutputs(g: NetGeometry, max: number): number[] {
  const out: number[] = [];
  for (let n = 1; n <= max + 4096; n++) {
    const o = unetOutputSize(n, g.levels, g.padding);
    if (o === null) continue;
    if (o > max) {
      out.push(o);
      break;
    }
    if (!out.includes(o)) out.push(o);
  }
  return out;
}

/** Halo for 'same' nets (their borders are zero-padded, so tiles overlap by this much and crop). */
export function sameHalo(g: NetGeometry): number {
  return 2 ** (g.levels - 1) * 4;
}

/**
 * Plans tiles for a region of shape [z, y, x]: the output tile covers the whole region where the input fits in
 * `maxInputVoxels`, otherwise the largest axis shrinks first. `maxOut` caps each axis (optional).
 */
export function planTiles(region: Vec3, g: NetGeometry, maxInputVoxels: number, maxOut?: Vec3): TilePlan {
  const cands = region.map((r, a) => validOutputs(g, Math.min(r, maxOut?.[a] ?? r)));
  // the smallest candidate that covers the region (or the cap), per axis
  const idx = cands.map((c, a) => {
    const target = Math.min(region[a]!, maxOut?.[a] ?? region[a]!);
    const i = c.findIndex((o) => o >= target);
    return i >= 0 ? i : c.length - 1;
  });
  const inFor = (o: number) => (g.padding === 'same' ? o + 2 * sameHalo(g) : inputForOutput(o, g)!);
  const inputs = () => idx.map((i, a) => inFor(cands[a]![i]!));
  for (;;) {
    const ins = inputs();
    const vox = ins[0]! * ins[1]! * ins[2]!;
    if (vox <= maxInputVoxels) break;
    // shrink the axis with the largest input
    let best = -1;
    for (let a = 0; a < 3; a++) if (idx[a]! > 0 && (best < 0 || ins[a]! > ins[best]!)) best = a;
    if (best < 0) break; // smallest tile already: use it even if over budget
    idx[best]!--;
  }
  const out = idx.map((i, a) => cands[a]![i]!) as Vec3;
  const inShape = out.map(inFor) as Vec3;
  const before = inShape.map((n, a) => (n - out[a]!) / 2) as Vec3;
  const starts = region.map((r, a) => {
    const s: number[] = [];
    for (let p = 0; p < r; p += out[a]!) s.push(p);
    return s;
  }) as [number[], number[], number[]];
  return { out, in: inShape, before, starts, count: starts[0].length * starts[1].length * starts[2].length };
}

export { contextSize, minValidOutput };
