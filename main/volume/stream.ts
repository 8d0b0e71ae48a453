/**
 * Streamed overlap-tile prediction: the same tile plan, tiles, flips, mixing and decision as predictRegion
 * (./predict.ts), but the image is read window by window (one row of tiles along x with its halo) from an
 * async reader instead of being held whole, and each tile is decided as soon as its flips are averaged. So the
 * working set is one input window (two while the next is prefetched) plus one z-slab of labels, and the labels
 * equal the in-memory path's voxel for voxel: every tile sees the same mirrored input, and every voxel's
 * probabilities are summed, averaged, mixed and decided with the same float operations in the same order.
 *
 * `zRange` restricts the output to whole z-planes [z0, z1) (a shard of one volume): the global plan is kept, so
 * a shard computes exactly the tiles of a single run that touch its planes (those straddling a boundary are
 * computed by both neighbours, each keeping its own planes). Pure maths over an injected reader: main/inference
 * connects it to a RegionSource.
 */
import type { Model } from '../common/engine.js';
import { CancelledError, SliceformError } from '../common/errors.js';
import { EtaEstimator } from '../common/progress.js';
import { mirroredRange } from './mirror.js';
import {
  addTilePrediction,
  decideInto,
  FLIPS,
  type ImageSource,
  type PredictOptions,
  type PredictResult,
  type Slab,
} from './predict.js';
import { planTiles, type TilePlan, type Vec3 } from './tiling.js';

/** A half-open voxel box (the field names of main/io/region.ts RegionBox, so a RegionSource's read fits). */
export interface WindowBox {
  x0: number;
  y0: number;
  z0: number;
  x1: number;
  y1: number;
  z1: number;
}

/** All channels of `box`, channel-planar over the box, x fastest (the RegionSource layout). */
export type WindowReader = (box: WindowBox) => Promise<ArrayLike<number>>;

export interface StreamPredictOptions extends Omit<PredictOptions, 'mix'> {
  /** output planes [z0, z1) to produce (default: all); slabs handed to onSlab are clipped to it */
  zRange?: [number, number];
  /**
   * a second learner mixed in before the decision (p = (1 - weight) p_network + weight p_mix), asked once per
   * z-row of tiles for its class-planar K x depth*Y*X probabilities of planes [z0, z0 + depth)
   */
  mix?: { weight: number; slab(z0: number, depth: number): Promise<Float32Array> };
}

/** The plan predictRegion uses for a whole volume of this shape (streamed and in-memory paths share it). */
export function streamPlan(shape: Vec3, o: Pick<PredictOptions, 'levels' | 'padding' | 'maxTileInputVoxels' | 'maxTileOutput'>): TilePlan {
  return planTiles(shape, { levels: o.levels, padding: o.padding }, o.maxTileInputVoxels ?? 3_000_000, o.maxTileOutput);
}

/** The input window of the tile row starting at output (z0, y0): every x tile of the row with its halo. */
export function rowWindow(plan: TilePlan, shape: Vec3, z0: number, y0: number): WindowBox {
  const [Z, Y, X] = shape;
  const xs = plan.starts[2];
  const [za, zb] = mirroredRange(z0 - plan.before[0], plan.in[0], Z);
  const [ya, yb] = mirroredRange(y0 - plan.before[1], plan.in[1], Y);
  const [xa, xb] = mirroredRange(-plan.before[2], xs[xs.length - 1]! + plan.in[2], X);
  return { z0: za, z1: zb, y0: ya, y1: yb, x0: xa, x1: xb };
}

/** Voxels of the largest input window of a plan (for the fit check). */
export function maxWindowVoxels(plan: TilePlan, shape: Vec3): number {
  const [Z, Y, X] = shape;
  return Math.min(Z, plan.in[0]) * Math.min(Y, plan.in[1]) * X;
}

/**
 * Predicts a volume of `shape` ([Z, Y, X], `channels` channels) read through `read`, normalised by
 * v = data * scale[c] + offset[c], calling onSlab for every finished z-row of tiles (in order, clipped to zRange).
 */
export async function predictStreamed(
  model: Model,
  read: WindowReader,
  shape: Vec3,
  channels: number,
  affine: { scale: number[]; offset: number[] },
  opts: StreamPredictOptions,
  onSlab: (slab: Slab) => void | Promise<void>,
): Promise<PredictResult> {
  const K = opts.numClasses;
  const C = channels;
  const plan = streamPlan(shape, opts);
  const [Z, Y, X] = shape;
  const plane = Y * X;
  const [oD, oH, oW] = plan.out;
  const [bD, bH, bW] = plan.before;
  const [zr0, zr1] = opts.zRange ?? [0, Z];
  if (!(Number.isInteger(zr0) && Number.isInteger(zr1) && zr0 >= 0 && zr1 <= Z && zr0 < zr1))
    throw new RangeError(`z range ${zr0}..${zr1} is not inside 0..${Z}`);
  const flips = opts.testTimeFlips ? FLIPS : FLIPS.slice(0, 1);
  const ys = plan.starts[1];
  const xs = plan.starts[2];
  const rows: { z0: number; y0: number }[] = [];
  for (const z0 of plan.starts[0]) {
    if (z0 + oD <= zr0 || z0 >= zr1) continue;
    for (const y0 of ys) rows.push({ z0, y0 });
  }
  const eta = new EtaEstimator();
  const counts = new Array<number>(K + 1).fill(0);
  const total = rows.length * xs.length * flips.length;
  let done = 0;
  const windowData = (i: number) => {
    const box = rowWindow(plan, shape, rows[i]!.z0, rows[i]!.y0);
    return read(box).then((data) => ({ box, data }));
  };
  let next = rows.length ? windowData(0) : null;
  // the current z-row's slab
  let labels: Uint8Array | Uint16Array = new Uint8Array(0);
  let probs: Float32Array | undefined;
  let mixData: Float32Array | undefined;
  let depth = 0;
  for (let ri = 0; ri < rows.length; ri++) {
    const { z0, y0 } = rows[ri]!;
    const { box, data } = await next!;
    // prefetch: the next window is read while this row's tiles are predicted
    next = ri + 1 < rows.length ? windowData(ri + 1) : null;
    next?.catch(() => undefined); // a failure surfaces when it is awaited
    const wn = (box.z1 - box.z0) * (box.y1 - box.y0) * (box.x1 - box.x0);
    if (data.length !== C * wn)
      throw new SliceformError('internal', `window read gave ${data.length} values, expected ${C}x${wn}`);
    if (y0 === ys[0]) {
      depth = Math.min(oD, Z - z0);
      const slabN = depth * plane;
      labels = K > 255 ? new Uint16Array(slabN) : new Uint8Array(slabN);
      probs = opts.probabilities ? new Float32Array(K * slabN) : undefined;
      mixData = opts.mix && opts.mix.weight > 0 ? await opts.mix.slab(z0, depth) : undefined;
      if (mixData && mixData.length !== K * slabN)
        throw new SliceformError('internal', `the second learner gave ${mixData.length} probabilities for ${K * slabN}`);
    }
    const slabN = depth * plane;
    const src: ImageSource = {
      shape,
      channels: C,
      data,
      scale: affine.scale,
      offset: affine.offset,
      window: { origin: [box.z0, box.y0, box.x0], shape: [box.z1 - box.z0, box.y1 - box.y0, box.x1 - box.x0] },
    };
    const h = Math.min(oH, Y - y0);
    for (const x0 of xs) {
      const w = Math.min(oW, X - x0);
      const tn = depth * h * w;
      const tp = new Float32Array(K * tn);
      const tileOrigin: Vec3 = [z0 - bD, y0 - bH, x0 - bW];
      for (const flip of flips) {
        if (opts.signal?.aborted) throw new CancelledError('prediction cancelled');
        await addTilePrediction(model, src, tileOrigin, plan, flip, K, [z0, y0, x0], [depth, h, w], { data: tp, k: tn, z: h * w, y: w, base: 0 });
        done++;
        const fraction = done / total;
        opts.onProgress?.({ fraction, etaSeconds: eta.eta(fraction), stage: 'predicting', details: { tile: done, tiles: total } });
      }
      if (flips.length > 1) {
        const s = 1 / flips.length;
        for (let i = 0; i < tp.length; i++) tp[i]! *= s;
      }
      if (mixData) {
        const mw = opts.mix!.weight;
        for (let k = 0; k < K; k++)
          for (let z = 0; z < depth; z++)
            for (let y = 0; y < h; y++) {
              const ob = k * tn + (z * h + y) * w;
              const mb = k * slabN + (z * Y + y0 + y) * X + x0;
              for (let x = 0; x < w; x++) tp[ob + x] = (1 - mw) * tp[ob + x]! + mw * mixData[mb + x]!;
            }
      }
      const tl = K > 255 ? new Uint16Array(tn) : new Uint8Array(tn);
      decideInto(tp, tn, K, opts.decisionWeights, tl);
      for (let z = 0; z < depth; z++) {
        const inside = z0 + z >= zr0 && z0 + z < zr1;
        for (let y = 0; y < h; y++) {
          const tb = (z * h + y) * w;
          const sb = (z * Y + y0 + y) * X + x0;
          for (let x = 0; x < w; x++) {
            const l = tl[tb + x]!;
            labels[sb + x] = l;
            if (inside) counts[l]!++;
          }
          if (probs) for (let k = 0; k < K; k++) probs.set(tp.subarray(k * tn + tb, k * tn + tb + w), k * slabN + sb);
        }
      }
    }
    if (ri + 1 === rows.length || rows[ri + 1]!.z0 !== z0) {
      const zs = Math.max(z0, zr0);
      const ze = Math.min(z0 + depth, zr1);
      if (zs === z0 && ze === z0 + depth) await onSlab({ z0, depth, labels, ...(probs ? { probabilities: probs } : {}) });
      else {
        const n = (ze - zs) * plane;
        const a = (zs - z0) * plane;
        let p: Float32Array | undefined;
        if (probs) {
          p = new Float32Array(K * n);
          for (let k = 0; k < K; k++) p.set(probs.subarray(k * slabN + a, k * slabN + a + n), k * n);
        }
        await onSlab({ z0: zs, depth: ze - zs, labels: labels.slice(a, a + n), ...(p ? { probabilities: p } : {}) });
      }
    }
  }
  return { plan, classCounts: counts, seconds: eta.elapsedSeconds(), tilesPredicted: done };
}
