/**
 * Seeded watershed (priority flood): markers grow into the voxels of a mask in order of increasing
 * `landscape` value, ties broken by arrival (first in, first out). A voxel takes the label of the voxel that
 * reached it first, at the moment it is reached: the algorithm of scikit-image's
 * `segmentation.watershed(image, markers, mask=mask, connectivity=1)` (CellProfiler's heap watershed, no
 * compactness, no watershed line), so both give the same partition except where equal values make the
 * order of arrival depend on how each heap breaks ties (measured in test/unit/objects-watershed.test.ts).
 */
import { checkDims, neighbourOffsets, type Connectivity, type Dims } from './grid.js';

/** Binary min-heap of (value, age, index) in parallel typed arrays. */
class FloodHeap {
  private val = new Float64Array(1024);
  private age = new Float64Array(1024);
  private idx = new Int32Array(1024);
  size = 0;
  private less(a: number, b: number): boolean {
    const va = this.val[a]!;
    const vb = this.val[b]!;
    return va !== vb ? va < vb : this.age[a]! < this.age[b]!;
  }
  private swap(a: number, b: number): void {
    const v = this.val[a]!; this.val[a] = this.val[b]!; this.val[b] = v;
    const g = this.age[a]!; this.age[a] = this.age[b]!; this.age[b] = g;
    const i = this.idx[a]!; this.idx[a] = this.idx[b]!; this.idx[b] = i;
  }
  push(value: number, age: number, index: number): void {
    if (this.size === this.val.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T, C: new (n: number) => T): T => {
        const b = new C(a.length * 2);
        b.set(a);
        return b;
      };
      this.val = grow(this.val, Float64Array);
      this.age = grow(this.age, Float64Array);
      this.idx = grow(this.idx, Int32Array);
    }
    let k = this.size++;
    this.val[k] = value;
    this.age[k] = age;
    this.idx[k] = index;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!this.less(k, p)) break;
      this.swap(k, p);
      k = p;
    }
  }
  /** removes the smallest item and returns its voxel index */
  pop(): number {
    const top = this.idx[0]!;
    const last = --this.size;
    if (last > 0) {
      this.val[0] = this.val[last]!;
      this.age[0] = this.age[last]!;
      this.idx[0] = this.idx[last]!;
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        if (l >= last) break;
        const r = l + 1;
        const c = r < last && this.less(r, l) ? r : l;
        if (!this.less(c, k)) break;
        this.swap(c, k);
        k = c;
      }
    }
    return top;
  }
}

export interface WatershedOptions {
  /** voxels that may be flooded (> 0); default every voxel */
  mask?: ArrayLike<number>;
  /** 6 (scikit-image's connectivity=1, the default), 18 or 26 */
  connectivity?: Connectivity;
}

/**
 * Floods `markers` (0 = unlabelled, > 0 = seed id) over `landscape`. Returns a new label array; voxels
 * outside the mask, or not reachable from any marker, stay 0.
 */
export function watershed(landscape: ArrayLike<number>, markers: ArrayLike<number>, d: Dims, opts: WatershedOptions = {}): Int32Array {
  checkDims(d, landscape.length, 'watershed landscape');
  checkDims(d, markers.length, 'watershed markers');
  if (opts.mask) checkDims(d, opts.mask.length, 'watershed mask');
  const mask = opts.mask;
  const out = new Int32Array(markers.length);
  const heap = new FloodHeap();
  const X = d.x;
  const XY = d.x * d.y;
  for (let i = 0; i < markers.length; i++) {
    if (markers[i]! > 0 && (!mask || mask[i]! > 0)) {
      out[i] = markers[i]!;
      heap.push(landscape[i]!, 0, i);
    }
  }
  const offs = neighbourOffsets(opts.connectivity ?? 6);
  let age = 1;
  while (heap.size > 0) {
    const i = heap.pop();
    const z = (i / XY) | 0;
    const rem = i - z * XY;
    const y = (rem / X) | 0;
    const x = rem - y * X;
    const lab = out[i]!;
    for (let k = 0; k < offs.length; k++) {
      const o = offs[k]!;
      const zz = z + o[0];
      const yy = y + o[1];
      const xx = x + o[2];
      if (zz < 0 || zz >= d.z || yy < 0 || yy >= d.y || xx < 0 || xx >= X) continue;
      const j = i + o[0] * XY + o[1] * X + o[2];
      if (out[j] !== 0 || (mask && !(mask[j]! > 0))) continue;
      out[j] = lab;
      heap.push(landscape[j]!, age++, j);
    }
  }
  return out;
}
