/**
 * OME-NGFF image metadata (0.4: Zarr v2 `.zattrs` "multiscales"; 0.5: Zarr v3 `zarr.json` attributes under
 * "ome"), reduced to what a Sliceform volume needs: which array is which level, which array axis is t, c,
 * z, y, x, and the voxel size in µm. Raw arrays without NGFF metadata get axes from their v3
 * dimension_names or from their rank (yx, zyx, czyx, tczyx).
 */

export type AxisRole = 't' | 'c' | 'z' | 'y' | 'x';

export interface NgffAxis {
  name: string;
  type?: string;
  unit?: string;
}

export interface NgffDataset {
  path: string;
  /** per array axis; 1 where the metadata says nothing */
  scale: number[];
  translation?: number[];
}

export interface NgffImage {
  /** '0.4', '0.5', ... or null for a raw array */
  version: string | null;
  name?: string;
  axes: NgffAxis[];
  datasets: NgffDataset[];
  /** image-label metadata present (a label image) */
  imageLabel?: Record<string, unknown>;
  /** omero channel labels, when given */
  channelLabels?: string[];
}

/** Where each role sits among the array's axes (-1 when absent). */
export type AxisMap = Record<AxisRole, number>;

/** µm per unit, for the NGFF (UDUNITS-2) space units and their usual abbreviations */
const UNIT_UM: Record<string, number> = {
  angstrom: 1e-4,
  picometer: 1e-6,
  nanometer: 1e-3,
  nm: 1e-3,
  micrometer: 1,
  micron: 1,
  um: 1,
  µm: 1,
  'μm': 1,
  millimeter: 1e3,
  mm: 1e3,
  centimeter: 1e4,
  cm: 1e4,
  meter: 1e6,
  m: 1e6,
};

export function unitToMicrons(unit: string | undefined): number | undefined {
  if (unit === undefined) return undefined;
  return UNIT_UM[unit.trim().toLowerCase()] ?? UNIT_UM[unit.trim()];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function scaleOf(transforms: unknown, ndim: number, where: string): { scale: number[]; translation?: number[] } {
  const scale = new Array<number>(ndim).fill(1);
  let translation: number[] | undefined;
  if (transforms === undefined) return { scale };
  if (!Array.isArray(transforms)) throw new Error(`${where}: coordinateTransformations is not a list`);
  for (const t of transforms) {
    if (!isRecord(t)) continue;
    const v = t.type === 'scale' ? t.scale : t.type === 'translation' ? t.translation : undefined;
    if (v === undefined) {
      if ((t.type === 'scale' || t.type === 'translation') && typeof t.path === 'string')
        throw new Error(`${where}: ${t.type} stored in a file (path "${t.path}") is not supported`);
      continue;
    }
    if (!Array.isArray(v) || v.length !== ndim || v.some((n) => typeof n !== 'number' || !Number.isFinite(n)))
      throw new Error(`${where}: ${String(t.type)} ${JSON.stringify(v)} is not ${ndim} numbers (one per axis)`);
    if (t.type === 'scale') for (let i = 0; i < ndim; i++) scale[i]! *= v[i] as number;
    else translation = (v as number[]).slice();
  }
  return { scale, translation };
}

/** The NGFF image described by a group's attributes, or undefined when they hold no multiscales. */
export function parseNgff(attrs: Record<string, unknown>, where: string): NgffImage | undefined {
  const ome = isRecord(attrs.ome) ? attrs.ome : undefined;
  const holder = ome && Array.isArray(ome.multiscales) ? ome : attrs;
  const ms = holder.multiscales;
  if (ms === undefined) return undefined;
  if (!Array.isArray(ms) || ms.length === 0 || !isRecord(ms[0]))
    throw new Error(`${where}: "multiscales" is not a non-empty list of objects`);
  const m = ms[0];
  const version = typeof ome?.version === 'string' ? ome.version : typeof m.version === 'string' ? m.version : '0.4';
  let axes: NgffAxis[];
  if (Array.isArray(m.axes)) {
    axes = m.axes.map((a, i) => {
      if (typeof a === 'string') return { name: a }; // NGFF 0.3 wrote bare names
      if (!isRecord(a) || typeof a.name !== 'string') throw new Error(`${where}: axis ${i} has no name`);
      return {
        name: a.name,
        ...(typeof a.type === 'string' ? { type: a.type } : {}),
        ...(typeof a.unit === 'string' ? { unit: a.unit } : {}),
      };
    });
  } else {
    // NGFF 0.1/0.2: always 5D tczyx
    axes = ['t', 'c', 'z', 'y', 'x'].map((name) => ({ name }));
  }
  const nd = axes.length;
  if (!Array.isArray(m.datasets) || m.datasets.length === 0)
    throw new Error(`${where}: multiscales[0] has no "datasets" (the resolution levels)`);
  const global = scaleOf(m.coordinateTransformations, nd, `${where} multiscales[0]`);
  const datasets = m.datasets.map((d, i) => {
    if (!isRecord(d) || typeof d.path !== 'string') throw new Error(`${where}: datasets[${i}] has no "path"`);
    const own = scaleOf(d.coordinateTransformations, nd, `${where} datasets[${i}] ("${d.path}")`);
    return {
      path: d.path,
      scale: own.scale.map((s, k) => s * global.scale[k]!),
      ...(own.translation ? { translation: own.translation } : {}),
    };
  });
  const omero = isRecord(holder.omero) ? holder.omero : isRecord(attrs.omero) ? attrs.omero : undefined;
  const channelLabels =
    omero && Array.isArray(omero.channels)
      ? omero.channels.map((c, i) => (isRecord(c) && typeof c.label === 'string' ? c.label : `C${i + 1}`))
      : undefined;
  const il = holder['image-label'] ?? attrs['image-label'];
  return {
    version,
    ...(typeof m.name === 'string' ? { name: m.name } : {}),
    axes,
    datasets,
    ...(isRecord(il) ? { imageLabel: il } : {}),
    ...(channelLabels ? { channelLabels } : {}),
  };
}

/** The label names listed by a `labels` group (0.4 attrs.labels, 0.5 attrs.ome.labels). */
export function labelNames(attrs: Record<string, unknown>): string[] | undefined {
  const ome = isRecord(attrs.ome) ? attrs.ome : undefined;
  const l = ome?.labels ?? attrs.labels;
  return Array.isArray(l) && l.every((s) => typeof s === 'string') ? (l as string[]) : undefined;
}

const BY_RANK: Record<number, AxisRole[]> = { 2: ['y', 'x'], 3: ['z', 'y', 'x'], 4: ['c', 'z', 'y', 'x'], 5: ['t', 'c', 'z', 'y', 'x'] };

/** Axes of a raw array: its v3 dimension_names when they name t/c/z/y/x, else by rank. */
export function rawAxes(ndim: number, dimensionNames: (string | null)[] | undefined, where: string): NgffAxis[] {
  const names = dimensionNames?.map((n) => (n ?? '').toLowerCase());
  if (names && names.length === ndim && names.every((n) => ['t', 'c', 'z', 'y', 'x'].includes(n)) && new Set(names).size === ndim)
    return names.map((name) => ({ name }));
  const r = BY_RANK[ndim];
  if (!r) throw new Error(`${where}: a ${ndim}-dimensional array without NGFF axes (expected 2 to 5 dimensions: yx, zyx, czyx, tczyx)`);
  return r.map((name) => ({ name }));
}

/**
 * Which array axis plays which role. Space axes named x/y/z are taken by name; other space axes fill the
 * remaining of z, y, x in order (NGFF allows any names). Axes of another type must have size 1.
 */
export function mapAxes(axes: NgffAxis[], shape: number[], where: string): AxisMap {
  const map: AxisMap = { t: -1, c: -1, z: -1, y: -1, x: -1 };
  const unnamedSpace: number[] = [];
  axes.forEach((a, i) => {
    const n = a.name.toLowerCase();
    const type = a.type?.toLowerCase();
    let role: AxisRole | undefined;
    if (type === 'time' || (type === undefined && n === 't')) role = 't';
    else if (type === 'channel' || (type === undefined && n === 'c')) role = 'c';
    else if (type === 'space' || type === undefined) {
      if (n === 'x' || n === 'y' || n === 'z') role = n;
      else if (type === 'space') unnamedSpace.push(i);
    }
    if (role) {
      if (map[role] !== -1) throw new Error(`${where}: two axes play the role "${role}" (${axes[map[role]]!.name}, ${a.name})`);
      map[role] = i;
    } else if (!(type === 'space' && unnamedSpace.includes(i)) && shape[i] !== 1) {
      throw new Error(`${where}: axis "${a.name}"${a.type ? ` of type "${a.type}"` : ''} (size ${shape[i]}) is not time, channel or space`);
    }
  });
  const free = (['z', 'y', 'x'] as const).filter((r) => map[r] === -1);
  // unnamed space axes fill the last free roles: 2 unnamed axes are y, x
  const roles = free.slice(free.length - unnamedSpace.length);
  if (unnamedSpace.length > free.length) throw new Error(`${where}: more than three space axes`);
  unnamedSpace.forEach((i, k) => (map[roles[k]!] = i));
  if (map.x === -1 || map.y === -1) throw new Error(`${where}: no y and x axes among ${axes.map((a) => a.name).join(', ')}`);
  return map;
}
