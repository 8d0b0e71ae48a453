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
