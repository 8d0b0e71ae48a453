/**
 * Mirror padding shared by augmentation (sources outside the volume) and overlap-tile prediction (tiles at the
 * border): the same reflection on both sides, so a model sees at prediction what it saw in training. Pure.
 */

/** Mirror index without repeating the edge voxel (…2 1 0 1 2 … n-1 n-2 …), periodic for any offset. */
export function mirrorIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}

/**
 * The half-open range [lo, hi) of the indices mirrorIndex gives over [start, start + len): a contiguous range,
 * since mirroring moves by one per step. What a tile with its halo reads from a volume of n voxels.
 */
export function mirroredRange(start: number, len: number, n: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = start; i < start + len; i++) {
    const m = mirrorIndex(i, n);
    if (m < lo) lo = m;
    if (m > hi) hi = m;
    if (lo === 0 && hi === n - 1) break;
  }
  return [lo, hi + 1];
}
