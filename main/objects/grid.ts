/**
 * Grid helpers shared by the objects algorithms: one 3D volume, x fastest (index = (z * Y + y) * X + x), the
 * layout of main/common/volume.ts for one channel. Spacing is in µm (z, y, x may differ: anisotropic stacks).
 */
export interface Dims {
  x: number;
  y: number;
  z: number;
}

export interface Microns {
  x: number;
  y: number;
  z: number;
}

export type Connectivity = 6 | 18 | 26;

/** Neighbour offsets [dz, dy, dx] of a connectivity, the 6 faces first, then 12 edges, then 8 corners. */
export function neighbourOffsets(conn: Connectivity): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let order = 1; order <= 3; order++) {
    for (let dz = -1; dz <= 1; dz++)
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const n = Math.abs(dz) + Math.abs(dy) + Math.abs(dx);
          if (n !== order) continue;
          if (conn === 6 && n > 1) continue;
          if (conn === 18 && n > 2) continue;
          out.push([dz, dy, dx]);
        }
  }
  return out;
}

/** The offsets that come before a voxel in raster order (z, then y, then x): half of the neighbourhood. */
export function backwardOffsets(conn: Connectivity): [number, number, number][] {
  return neighbourOffsets(conn).filter(([dz, dy, dx]) => dz < 0 || (dz === 0 && (dy < 0 || (dy === 0 && dx < 0))));
}

export function checkDims(d: Dims, length: number, what: string): void {
  if (!(d.x >= 1 && d.y >= 1 && d.z >= 1) || d.x * d.y * d.z !== length) {
    throw new RangeError(`${what}: ${length} voxels do not fit ${d.x}x${d.y}x${d.z}`);
  }
}

/** Union-find over integers 1..n (0 unused), path halving, union by smaller root (keeps first-seen order). */
export class UnionFind {
  parent: Int32Array;
  constructor(capacity: number) {
    this.parent = new Int32Array(Math.max(capacity, 16));
  }
  /** make sure ids up to n exist (each its own root) */
  grow(n: number): void {
    if (n < this.parent.length) {
      if (this.parent[n] === 0) this.parent[n] = n;
      return;
    }
    let cap = this.parent.length;
    while (cap <= n) cap *= 2;
    const p = new Int32Array(cap);
    p.set(this.parent);
    this.parent = p;
    this.parent[n] = n;
  }
  find(a: number): number {
    const p = this.parent;
    while (p[a] !== a) {
      p[a] = p[p[a]!]!;
      a = p[a]!;
    }
    return a;
  }
  union(a: number, b: number): number {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return ra;
    if (ra < rb) {
      this.parent[rb] = ra;
      return ra;
    }
    this.parent[ra] = rb;
    return rb;
  }
}
