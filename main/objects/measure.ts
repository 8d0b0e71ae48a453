/**
 * Per-object measurements in µm: volume, centroid, bounding box, equivalent diameter, surface, sphericity,
 * and mean/max intensity per image channel. One pass over the label volume (and one per channel).
 *
 * Surface: the area of the voxel faces between the object and anything else, times 2/3. Counting faces
 * overestimates a smooth surface by the mean of |n_x| + |n_y| + |n_z| over its normals, which is exactly 3/2
 * for a sphere (Cauchy's projection formula), so sphericity = π^(1/3) (6V)^(2/3) / A reads ≈ 1 for a
 * digital ball and less for elongated or rough objects; a box aligned with the axes reads 2/3 of its area.
 */
import type { Dims, Microns } from './grid.js';

export interface ObjectRow {
  id: number;
  class: number;
  voxels: number;
  volume_um3: number;
  centroid_z_um: number;
  centroid_y_um: number;
  centroid_x_um: number;
  /** bounding box in voxels, start inclusive, end exclusive (scikit-image's bbox) */
  bbox_z0: number;
  bbox_y0: number;
  bbox_x0: number;
  bbox_z1: number;
  bbox_y1: number;
  bbox_x1: number;
  equivalent_diameter_um: number;
  surface_um2: number;
  sphericity: number;
  /** per channel name: mean and max intensity */
  intensity: { channel: string; mean: number; max: number }[];
}

export interface ChannelData {
  name: string;
  /** one channel, x fastest, same dims as the labels */
  data: ArrayLike<number>;
}

export function measureObjects(labels: ArrayLike<number>, d: Dims, spacing: Microns, classOf: ArrayLike<number>, channels: ChannelData[] = []): ObjectRow[] {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > n) n = labels[i]!;
  const cnt = new Float64Array(n + 1);
  const sz = new Float64Array(n + 1);
  const sy = new Float64Array(n + 1);
  const sx = new Float64Array(n + 1);
  const bb = new Int32Array(6 * (n + 1));
  for (let l = 0; l <= n; l++) {
    bb[6 * l] = bb[6 * l + 1] = bb[6 * l + 2] = 2 ** 30;
    bb[6 * l + 3] = bb[6 * l + 4] = bb[6 * l + 5] = -1;
  }
  const faces = new Float64Array(n + 1);
  const ax = spacing.y * spacing.z; // area of a face normal to x
  const ay = spacing.x * spacing.z;
  const az = spacing.x * spacing.y;
  const X = d.x;
  const XY = d.x * d.y;
  for (let z = 0, i = 0; z < d.z; z++)
    for (let y = 0; y < d.y; y++)
      for (let x = 0; x < X; x++, i++) {
        const l = labels[i]!;
        if (!l) continue;
        cnt[l]!++;
        sz[l]! += z;
        sy[l]! += y;
        sx[l]! += x;
        const b = 6 * l;
        if (z < bb[b]!) bb[b] = z;
        if (y < bb[b + 1]!) bb[b + 1] = y;
        if (x < bb[b + 2]!) bb[b + 2] = x;
        if (z > bb[b + 3]!) bb[b + 3] = z;
        if (y > bb[b + 4]!) bb[b + 4] = y;
        if (x > bb[b + 5]!) bb[b + 5] = x;
        let f = 0;
        if (x === 0 || labels[i - 1] !== l) f += ax;
        if (x === X - 1 || labels[i + 1] !== l) f += ax;
        if (y === 0 || labels[i - X] !== l) f += ay;
        if (y === d.y - 1 || labels[i + X] !== l) f += ay;
        if (z === 0 || labels[i - XY] !== l) f += az;
        if (z === d.z - 1 || labels[i + XY] !== l) f += az;
        faces[l]! += f;
      }
  const sums = channels.map(() => new Float64Array(n + 1));
  const maxs = channels.map(() => new Float64Array(n + 1).fill(-Infinity));
  channels.forEach((ch, c) => {
    const s = sums[c]!;
    const m = maxs[c]!;
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      if (!l) continue;
      const v = ch.data[i]!;
      s[l]! += v;
      if (v > m[l]!) m[l] = v;
    }
  });
  const vox = spacing.x * spacing.y * spacing.z;
  const rows: ObjectRow[] = [];
  for (let l = 1; l <= n; l++) {
    const c = cnt[l]!;
    if (!c) continue;
    const V = c * vox;
    const A = (faces[l]! * 2) / 3;
    const b = 6 * l;
    rows.push({
      id: l,
      class: classOf[l] ?? 0,
      voxels: c,
      volume_um3: V,
      centroid_z_um: (sz[l]! / c) * spacing.z,
      centroid_y_um: (sy[l]! / c) * spacing.y,
      centroid_x_um: (sx[l]! / c) * spacing.x,
      bbox_z0: bb[b]!,
      bbox_y0: bb[b + 1]!,
      bbox_x0: bb[b + 2]!,
      bbox_z1: bb[b + 3]! + 1,
      bbox_y1: bb[b + 4]! + 1,
      bbox_x1: bb[b + 5]! + 1,
      equivalent_diameter_um: Math.cbrt((6 * V) / Math.PI),
      surface_um2: A,
      sphericity: A > 0 ? (Math.cbrt(Math.PI) * Math.pow(6 * V, 2 / 3)) / A : 0,
      intensity: channels.map((ch, k) => ({ channel: ch.name, mean: sums[k]![l]! / c, max: maxs[k]![l]! })),
    });
  }
  return rows;
}

/** CSV column names (units in the names); intensity columns per channel name. */
export function csvHeader(channels: string[]): string[] {
  const base = ['id', 'class', 'voxels', 'volume_um3', 'centroid_z_um', 'centroid_y_um', 'centroid_x_um', 'bbox_z0_vox', 'bbox_y0_vox', 'bbox_x0_vox', 'bbox_z1_vox', 'bbox_y1_vox', 'bbox_x1_vox', 'equivalent_diameter_um', 'surface_um2', 'sphericity'];
  for (const c of channels) base.push(`mean_intensity_${c}`, `max_intensity_${c}`);
  return base;
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, '').replace(/\.?0+e/, 'e'));

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV text (header + one row per object), with an optional leading column (e.g. the stack in a batch). */
export function objectsCsv(rows: ObjectRow[], channels: string[], lead?: { name: string; value: string }): string {
  const head = csvHeader(channels);
  const lines = [(lead ? [lead.name, ...head] : head).map(csvCell).join(',')];
  for (const r of rows) {
    const cells = [r.id, r.class, r.voxels, r.volume_um3, r.centroid_z_um, r.centroid_y_um, r.centroid_x_um, r.bbox_z0, r.bbox_y0, r.bbox_x0, r.bbox_z1, r.bbox_y1, r.bbox_x1, r.equivalent_diameter_um, r.surface_um2, r.sphericity].map(num);
    for (const it of r.intensity) cells.push(num(it.mean), num(it.max));
    lines.push((lead ? [csvCell(lead.value), ...cells] : cells).join(','));
  }
  return lines.join('\n') + '\n';
}

/** Count and size summary of a table (per stack in batch reports). */
export function summarise(rows: ObjectRow[]): { count: number; perClass: Record<string, number>; meanVolume_um3: number; medianVolume_um3: number; meanEquivalentDiameter_um: number } {
  const perClass: Record<string, number> = {};
  for (const r of rows) perClass[String(r.class)] = (perClass[String(r.class)] ?? 0) + 1;
  const vols = rows.map((r) => r.volume_um3).sort((a, b) => a - b);
  const mid = vols.length ? (vols.length % 2 ? vols[(vols.length - 1) / 2]! : (vols[vols.length / 2 - 1]! + vols[vols.length / 2]!) / 2) : 0;
  return {
    count: rows.length,
    perClass,
    meanVolume_um3: vols.length ? vols.reduce((a, b) => a + b, 0) / vols.length : 0,
    medianVolume_um3: mid,
    meanEquivalentDiameter_um: rows.length ? rows.reduce((a, r) => a + r.equivalent_diameter_um, 0) / rows.length : 0,
  };
}
