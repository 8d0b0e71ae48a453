/**
 * Label storage for the annotation editor (annotation.ts LabelEditor) and the compute process's copy of it.
 *
 * Two implementations of one small interface: `DenseLabels` (a Uint8Array of the whole volume, what every
 * in-memory volume uses) and `SparseLabels` (only painted 64³ blocks are allocated, in a Map keyed by block
 * index) for out-of-core volumes (big-volume.ts): a 1024×1024×512 stack needs 512 MiB as a dense uint8 layer,
 * while a few painted slices touch a few hundred blocks of 256 KiB. A block whose last label is erased (or
 * undone) is freed, so memory follows what is painted now, not what was ever painted.
 *
 * Voxel indices are ((z * Y) + y) * X + x in float64 (exact below 2^53): volumes past 2^32 voxels work.
 */
import { ApiError, planeDims, type Box, type Plane } from '../common/api.js';

export interface Dims {
  x: number;
  y: number;
  z: number;
}

export interface LabelStore {
  readonly dims: Dims;
  /** voxels of the volume */
  readonly length: number;
  get(i: number): number;
  set(i: number, v: number): void;
  /** calls fn for every labelled voxel (value > 0), in increasing index order within each block */
  forEachNonzero(fn: (i: number, v: number) => void): void;
  /** the contents of a box, x fastest (what a label delta carries) */
  box(b: Box): Uint8Array;
  /** writes a box's contents (x fastest) */
  writeBox(b: Box, data: Uint8Array): void;
  /** a 2D slice (u fastest, see planeDims) */
  slice(plane: Plane, index: number): { width: number; height: number; data: Uint8Array };
  /** bytes of label memory held */
  readonly bytes: number;
}

function checkBox(b: Box, d: Dims, what: string): void {
  const [x0, y0, z0] = b.min;
  const [x1, y1, z1] = b.max;
  if (!(x0 >= 0 && y0 >= 0 && z0 >= 0 && x0 < x1 && y0 < y1 && z0 < z1 && x1 <= d.x && y1 <= d.y && z1 <= d.z))
    throw new ApiError('bad-request', `${what} box ${b.min.join(',')}..${b.max.join(',')} is outside the volume ${d.x}×${d.y}×${d.z}`);
}

function checkSlice(d: Dims, plane: Plane, index: number): { width: number; height: number } {
  const { width, height, depth } = planeDims(d, plane);
  if (!Number.isInteger(index) || index < 0 || index >= depth) throw new ApiError('bad-request', `slice ${index} is outside the ${plane} range 0..${depth - 1}`);
  return { width, height };
}

/** The whole label volume in one Uint8Array. */
export class DenseLabels implements LabelStore {
  readonly length: number;
  constructor(
    readonly dims: Dims,
    readonly data: Uint8Array = new Uint8Array(dims.x * dims.y * dims.z),
  ) {
    this.length = dims.x * dims.y * dims.z;
    if (data.length !== this.length) throw new ApiError('bad-input', `label volume has ${data.length} voxels, expected ${this.length}`);
  }
  get bytes(): number {
    return this.data.byteLength;
  }
  get(i: number): number {
    return this.data[i]!;
  }
  set(i: number, v: number): void {
    this.data[i] = v;
  }
  forEachNonzero(fn: (i: number, v: number) => void): void {
    const d = this.data;
    for (let i = 0; i < d.length; i++) if (d[i]) fn(i, d[i]!);
  }
  box(b: Box): Uint8Array {
    checkBox(b, this.dims, 'label');
    const { x: X, y: Y } = this.dims;
    const [x0, y0, z0] = b.min;
    const [x1, y1, z1] = b.max;
    const w = x1 - x0;
    const out = new Uint8Array(w * (y1 - y0) * (z1 - z0));
    let i = 0;
    for (let z = z0; z < z1; z++)
      for (let y = y0; y < y1; y++, i += w) {
        const row = (z * Y + y) * X;
        out.set(this.data.subarray(row + x0, row + x1), i);
      }
    return out;
  }
  writeBox(b: Box, data: Uint8Array): void {
    checkBox(b, this.dims, 'label delta');
    const { x: X, y: Y } = this.dims;
    const [x0, y0, z0] = b.min;
    const [x1, y1, z1] = b.max;
    const w = x1 - x0;
    if (data.length !== w * (y1 - y0) * (z1 - z0)) throw new ApiError('bad-request', `label delta has ${data.length} values, its box holds ${w * (y1 - y0) * (z1 - z0)}`);
    let i = 0;
    for (let z = z0; z < z1; z++)
      for (let y = y0; y < y1; y++, i += w) this.data.set(data.subarray(i, i + w), (z * Y + y) * X + x0);
  }
  slice(plane: Plane, index: number): { width: number; height: number; data: Uint8Array } {
    const { width, height } = checkSlice(this.dims, plane, index);
    const out = new Uint8Array(width * height);
    const L = this.data;
    const X = this.dims.x,
      XY = this.dims.x * this.dims.y;
    if (plane === 'xy') out.set(L.subarray(index * XY, (index + 1) * XY));
    else if (plane === 'xz') for (let z = 0; z < height; z++) out.set(L.subarray(z * XY + index * X, z * XY + index * X + X), z * width);
    else for (let z = 0; z < height; z++) for (let y = 0; y < width; y++) out[z * width + y] = L[z * XY + y * X + index]!;
    return { width, height, data: out };
  }
}

/** edge of a sparse block (voxels): 64³ uint8 = 256 KiB */
export const BLOCK = 64;
const B3 = BLOCK * BLOCK * BLOCK;

/** Only painted 64³ blocks allocated; a block is freed when its last label goes. */
export class SparseLabels implements LabelStore {
  readonly length: number;
  /** blocks along x, y, z */
  readonly grid: [number, number, number];
  private readonly blocks = new Map<number, Uint8Array>();
  /** labelled voxels per allocated block */
  private readonly counts = new Map<number, number>();

  constructor(readonly dims: Dims) {
    this.length = dims.x * dims.y * dims.z;
    this.grid = [Math.ceil(dims.x / BLOCK), Math.ceil(dims.y / BLOCK), Math.ceil(dims.z / BLOCK)];
  }

  get bytes(): number {
    return this.blocks.size * B3;
  }

  /** allocated blocks */
  get blockCount(): number {
    return this.blocks.size;
  }

  /** block key of voxel (x, y, z) and the offset inside the block */
  private locate(x: number, y: number, z: number): [number, number] {
    const bx = Math.floor(x / BLOCK),
      by = Math.floor(y / BLOCK),
      bz = Math.floor(z / BLOCK);
    const key = (bz * this.grid[1] + by) * this.grid[0] + bx;
    return [key, ((z - bz * BLOCK) * BLOCK + (y - by * BLOCK)) * BLOCK + (x - bx * BLOCK)];
  }

  private coords(i: number): [number, number, number] {
    const X = this.dims.x,
      XY = X * this.dims.y;
    const z = Math.floor(i / XY);
    const r = i - z * XY;
    const y = Math.floor(r / X);
    return [r - y * X, y, z];
  }

  getXYZ(x: number, y: number, z: number): number {
    const [k, o] = this.locate(x, y, z);
    const b = this.blocks.get(k);
    return b ? b[o]! : 0;
  }

  setXYZ(x: number, y: number, z: number, v: number): void {
    const [k, o] = this.locate(x, y, z);
    let b = this.blocks.get(k);
    if (!b) {
      if (!v) return;
      b = new Uint8Array(B3);
      this.blocks.set(k, b);
      this.counts.set(k, 0);
    }
    const old = b[o]!;
    if (old === v) return;
    b[o] = v;
    if ((old === 0) !== (v === 0)) {
      const n = this.counts.get(k)! + (v ? 1 : -1);
      if (n === 0) {
        this.blocks.delete(k);
        this.counts.delete(k);
      } else this.counts.set(k, n);
    }
  }

  get(i: number): number {
    const [x, y, z] = this.coords(i);
    return this.getXYZ(x, y, z);
  }

  set(i: number, v: number): void {
    const [x, y, z] = this.coords(i);
    this.setXYZ(x, y, z, v);
  }

  /** The allocated blocks as voxel boxes (half-open, clipped to the volume), for samplers and exports. */
  paintedBlocks(): Box[] {
    const [gx, gy] = this.grid;
    return [...this.blocks.keys()]
      .sort((a, b) => a - b)
      .map((k) => {
        const bx = k % gx,
          by = Math.floor(k / gx) % gy,
          bz = Math.floor(k / (gx * gy));
        const min: [number, number, number] = [bx * BLOCK, by * BLOCK, bz * BLOCK];
        return { min, max: [Math.min(this.dims.x, min[0] + BLOCK), Math.min(this.dims.y, min[1] + BLOCK), Math.min(this.dims.z, min[2] + BLOCK)] };
      });
  }

  forEachNonzero(fn: (i: number, v: number) => void): void {
    const X = this.dims.x,
      XY = X * this.dims.y;
    for (const bb of this.paintedBlocks()) {
      const b = this.blocks.get(this.locate(bb.min[0], bb.min[1], bb.min[2])[0])!;
      for (let z = bb.min[2]; z < bb.max[2]; z++)
        for (let y = bb.min[1]; y < bb.max[1]; y++) {
          const o = ((z - bb.min[2]) * BLOCK + (y - bb.min[1])) * BLOCK;
          for (let x = bb.min[0]; x < bb.max[0]; x++) {
            const v = b[o + x - bb.min[0]]!;
            if (v) fn(z * XY + y * X + x, v);
          }
        }
    }
  }

  box(b: Box): Uint8Array {
    checkBox(b, this.dims, 'label');
    const [x0, y0, z0] = b.min;
    const [x1, y1, z1] = b.max;
    const out = new Uint8Array((x1 - x0) * (y1 - y0) * (z1 - z0));
    let i = 0;
    for (let z = z0; z < z1; z++)
      for (let y = y0; y < y1; y++)
        for (let x = x0; x < x1; ) {
          // one block row at a time: unallocated rows stay zero
          const [k, o] = this.locate(x, y, z);
          const end = Math.min(x1, (Math.floor(x / BLOCK) + 1) * BLOCK);
          const blk = this.blocks.get(k);
          if (blk) out.set(blk.subarray(o, o + end - x), i);
          i += end - x;
          x = end;
        }
    return out;
  }

  writeBox(b: Box, data: Uint8Array): void {
    checkBox(b, this.dims, 'label delta');
    const [x0, y0, z0] = b.min;
    const [x1, y1, z1] = b.max;
    const n = (x1 - x0) * (y1 - y0) * (z1 - z0);
    if (data.length !== n) throw new ApiError('bad-request', `label delta has ${data.length} values, its box holds ${n}`);
    let i = 0;
    for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) this.setXYZ(x, y, z, data[i++]!);
  }

  slice(plane: Plane, index: number): { width: number; height: number; data: Uint8Array } {
    const { width, height } = checkSlice(this.dims, plane, index);
    const { x: X, y: Y, z: Z } = this.dims;
    if (plane === 'xy') return { width, height, data: this.box({ min: [0, 0, index], max: [X, Y, index + 1] }) };
    if (plane === 'xz') return { width, height, data: this.box({ min: [0, index, 0], max: [X, index + 1, Z] }) };
    // yz: u = y, v = z; the box x = index is z-major, y fastest: the same order
    return { width, height, data: this.box({ min: [index, 0, 0], max: [index + 1, Y, Z] }) };
  }

  /**
   * Every `step`-th voxel (x, y, z multiples of step) as a dense array of ceil(dims / step) voxels, x fastest:
   * the layer at an out-of-core volume's 3D level. Only painted blocks are visited.
   */
  sample(step: number): { size: [number, number, number]; data: Uint8Array } {
    const size: [number, number, number] = [Math.ceil(this.dims.x / step), Math.ceil(this.dims.y / step), Math.ceil(this.dims.z / step)];
    const out = new Uint8Array(size[0] * size[1] * size[2]);
    for (const bb of this.paintedBlocks()) {
      const b = this.blocks.get(this.locate(bb.min[0], bb.min[1], bb.min[2])[0])!;
      const first = (v: number) => Math.ceil(v / step) * step;
      for (let z = first(bb.min[2]); z < bb.max[2]; z += step)
        for (let y = first(bb.min[1]); y < bb.max[1]; y += step) {
          const o = ((z - bb.min[2]) * BLOCK + (y - bb.min[1])) * BLOCK - bb.min[0];
          const row = ((z / step) * size[1] + y / step) * size[0];
          for (let x = first(bb.min[0]); x < bb.max[0]; x += step) out[row + x / step] = b[o + x]!;
        }
    }
    return { size, data: out };
  }

  /** A copy (a project save snapshots the layer while editing goes on). */
  clone(): SparseLabels {
    const c = new SparseLabels(this.dims);
    for (const [k, b] of this.blocks) c.blocks.set(k, b.slice());
    for (const [k, n] of this.counts) c.counts.set(k, n);
    return c;
  }

  /**
   * The layer as bytes for a project file: a JSON header line ({ dims, block, keys }) and then each allocated
   * block's BLOCK³ bytes in the order of `keys` (blocks at the border are stored whole, their outside zero).
   */
  serialize(): Uint8Array {
    const keys = [...this.blocks.keys()].sort((a, b) => a - b);
    const head = new TextEncoder().encode(JSON.stringify({ format: 'sliceform-sparse-labels', dims: this.dims, block: BLOCK, keys }) + '\n');
    const out = new Uint8Array(head.length + keys.length * B3);
    out.set(head);
    keys.forEach((k, i) => out.set(this.blocks.get(k)!, head.length + i * B3));
    return out;
  }

  /** Reads what serialize() wrote; `where` names the file in errors. */
  static deserialize(bytes: Uint8Array, dims: Dims, where: string): SparseLabels {
    const nl = bytes.indexOf(10);
    let head: { format?: string; dims?: Dims; block?: number; keys?: number[] };
    try {
      head = JSON.parse(new TextDecoder().decode(bytes.subarray(0, nl < 0 ? 0 : nl))) as typeof head;
    } catch {
      throw new ApiError('bad-input', `${where}: not a sparse label file (no header)`, { file: where });
    }
    const s = new SparseLabels(dims);
    const keys = head.keys ?? [];
    const n = s.grid[0] * s.grid[1] * s.grid[2];
    if (head.format !== 'sliceform-sparse-labels' || head.block !== BLOCK || !head.dims || head.dims.x !== dims.x || head.dims.y !== dims.y || head.dims.z !== dims.z)
      throw new ApiError('bad-input', `${where}: sparse labels of ${head.dims?.x}×${head.dims?.y}×${head.dims?.z} in ${head.block}³ blocks, the volume is ${dims.x}×${dims.y}×${dims.z}`, { file: where });
    if (bytes.length !== nl + 1 + keys.length * B3 || !keys.every((k) => Number.isInteger(k) && k >= 0 && k < n))
      throw new ApiError('bad-input', `${where}: sparse label file is truncated or names blocks outside the volume`, { file: where });
    keys.forEach((k, i) => {
      const b = bytes.slice(nl + 1 + i * B3, nl + 1 + (i + 1) * B3);
      let c = 0;
      for (let j = 0; j < b.length; j++) if (b[j]) c++;
      if (c) {
        s.blocks.set(k, b);
        s.counts.set(k, c);
      }
    });
    return s;
  }

  /** The whole layer as one dense array (exports of small volumes, tests). */
  toDense(): Uint8Array {
    if (this.length > 2 ** 31) throw new ApiError('not-available', `a dense label layer of ${this.length} voxels does not fit one array`);
    const out = new Uint8Array(this.length);
    this.forEachNonzero((i, v) => (out[i] = v));
    return out;
  }
}
