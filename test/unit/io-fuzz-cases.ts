/**
 * The fuzz cases of io-fuzz.test.ts: seeds, seeded mutations and the per-case check, shared by the test
 * (which plans and supervises) and io-fuzz-runner.ts (a child process that runs them, so that a crash or a
 * hang of one case is caught and reported instead of taking the test run down).
 */
import { unlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeVolume, readVolume } from '../../main/io/index.js';
import { VolumeReadError } from '../../main/common/errors.js';
import { FileSource } from '../../main/io/source.js';
import { TAG, TiffFile } from '../../main/io/tiff/ifd.js';

export type Format = 'tiff' | 'imagej' | 'ome-tiff' | 'lsm' | 'hdf5';

export function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface TiffSeed {
  name: string;
  format: Exclude<Format, 'hdf5'>;
  origin: 'real' | 'derived' | 'synthetic';
  ext: string;
  bytes: Buffer;
  le: boolean;
  big: boolean;
  /** byte ranges of IFD entries: [entryStart, entrySize] */
  entries: [number, number][];
  /** positions of next-IFD links */
  links: [number, number][];
  ifdOffsets: number[];
  /** position of IFD 0's ImageDescription entry (classic TIFF), for metadata edits */
  descEntry?: number;
  desc?: string;
  mutations: number;
}

export async function tiffSeed(
  dir: string,
  name: string,
  bytes: Buffer,
  format: TiffSeed['format'],
  origin: TiffSeed['origin'],
  mutations: number,
): Promise<TiffSeed> {
  const f = join(dir, `seed-${name}`);
  writeFileSync(f, bytes);
  const src = await FileSource.open(f);
  const tf = await TiffFile.open(src);
  const big = tf.header.bigTiff;
  const es = big ? 20 : 12;
  const cs = big ? 8 : 2;
  const entries: [number, number][] = [];
  const links: [number, number][] = [];
  let descEntry: number | undefined;
  for (const ifd of tf.ifds) {
    [...ifd.entries.values()].forEach((e, i) => {
      entries.push([ifd.offset + cs + i * es, es]);
      if (ifd.index === 0 && e.tag === TAG.ImageDescription && !big) descEntry = ifd.offset + cs + i * es;
    });
    links.push([ifd.offset + cs + ifd.entries.size * es, big ? 8 : 4]);
  }
  const desc = descEntry !== undefined ? await tf.ascii(tf.ifds[0]!, TAG.ImageDescription) : undefined;
  await src.close();
  unlinkSync(f);
  const ext = name.endsWith('.lsm') ? '.lsm' : name.endsWith('.ome.tif') ? '.ome.tif' : '.tif';
  return {
    name,
    format,
    origin,
    ext,
    bytes,
    le: tf.le,
    big,
    entries,
    links,
    ifdOffsets: tf.ifds.map((i) => i.offset),
    descEntry,
    desc,
    mutations,
  };
}

/** A copy of a real file with one IFD-0 tag id replaced (so the reader sees a plain TIFF). */
export function retag(file: string, tag: number, to: number): Buffer {
  const b = Buffer.from(readFileSync(file));
  const le = b.toString('latin1', 0, 2) === 'II';
  const ifd0 = le ? b.readUInt32LE(4) : b.readUInt32BE(4);
  const n = le ? b.readUInt16LE(ifd0) : b.readUInt16BE(ifd0);
  for (let i = 0; i < n; i++) {
    const p = ifd0 + 2 + i * 12;
    if ((le ? b.readUInt16LE(p) : b.readUInt16BE(p)) === tag) {
      if (le) b.writeUInt16LE(to, p);
      else b.writeUInt16BE(to, p);
      return b;
    }
  }
  throw new Error(`tag ${tag} not in IFD 0 of ${file}`);
}

const EXTREMES = [
  '0',
  '-1',
  '1',
  '2',
  '3',
  '255',
  '65536',
  '16777216',
  '16777217',
  '4294967296',
  '1e400',
  '-1e400',
  'NaN',
  'abc',
  '',
  '1.5',
  '1e-320',
  '999999999999',
];

/** Metadata edits: one value of the OME-XML or ImageJ description replaced by an extreme, or TiffData blown up. */
export function editDescription(d: string, rnd: () => number): string {
  const int = (n: number) => Math.floor(rnd() * n);
  const extreme = () => EXTREMES[int(EXTREMES.length)]!;
  if (d.includes('<OME')) {
    const k = int(4);
    if (k === 0) {
      // many TiffData blocks (linear parsing), some overlapping
      const n = [10, 1000, 30_000][int(3)]!;
      const td = `<TiffData IFD="${int(20)}" PlaneCount="${[1, 15, 1e9][int(3)]}"/>`;
      return d.replace('</Pixels>', `${td.repeat(n)}</Pixels>`);
    }
    if (k === 1)
      return d.replace(
        /DimensionOrder="[^"]*"/,
        `DimensionOrder="${['XYCZT', 'XYZZT', 'XY', 'XYTCZ'][int(4)]}"`,
      );
    const attrsList = [
      'SizeX',
      'SizeY',
      'SizeZ',
      'SizeC',
      'SizeT',
      'PhysicalSizeX',
      'PhysicalSizeZ',
      'IFD',
      'PlaneCount',
      'FirstZ',
      'FirstC',
      'Type',
    ];
    const a = attrsList[int(attrsList.length)]!;
    if (!d.includes(`${a}="`)) return d.replace('<Pixels ', `<Pixels ${a}="${extreme()}" `);
    let seen = 0;
    const which = int(3);
    return d.replace(new RegExp(`${a}="[^"]*"`, 'g'), (m) =>
      seen++ === which || which === 2 ? `${a}="${extreme()}"` : m,
    );
  }
  const keys = ['images', 'channels', 'slices', 'frames', 'spacing', 'unit', 'hyperstack'];
  const key = keys[int(keys.length)]!;
  const v = key === 'unit' ? ['micron', 'nm', 'furlong', '', 'pixel', '\\u00B5m'][int(6)]! : extreme();
  return new RegExp(`^${key}=`, 'm').test(d)
    ? d.replace(new RegExp(`^${key}=.*$`, 'm'), `${key}=${v}`)
    : `${d}\n${key}=${v}`;
}

export function mutateTiff(s: TiffSeed, rnd: () => number): { bytes: Buffer; how: string } {
  const b = Buffer.from(s.bytes);
  const int = (n: number) => Math.floor(rnd() * n);
  const u16 = (v: number, p: number) => (s.le ? b.writeUInt16LE(v, p) : b.writeUInt16BE(v, p));
  const u32 = (v: number, p: number) => (s.le ? b.writeUInt32LE(v >>> 0, p) : b.writeUInt32BE(v >>> 0, p));
  const u64 = (v: number, p: number) =>
    s.le ? b.writeBigUInt64LE(BigInt(v), p) : b.writeBigUInt64BE(BigInt(v), p);
  const extremes = [
    0,
    1,
    2,
    7,
    255,
    65535,
    0x7fffffff,
    0xffffffff,
    b.length - 1,
    b.length,
    b.length + 8,
    s.ifdOffsets[0]!,
  ];
  const pick32 = () => (rnd() < 0.5 ? extremes[int(extremes.length)]! : int(2 ** 32)) >>> 0;
  const k = int(s.desc !== undefined ? 6 : 5);
  if (k === 0) {
    const n = 1 + int(4);
    const region = rnd() < 0.7 ? Math.min(b.length, 4096) : b.length;
    for (let i = 0; i < n; i++) {
      const p = int(region);
      b[p] = b[p]! ^ (1 << int(8));
    }
    return { bytes: b, how: `flip ${n}` };
  }
  if (k === 1) {
    const len = rnd() < 0.5 ? int(Math.min(b.length, 8192)) : int(b.length);
    return { bytes: b.subarray(0, len), how: `truncate ${len}` };
  }
  if (k === 2 || k === 3) {
    const [p, es] = s.entries[int(s.entries.length)]!;
    const big = es === 20;
    const field = int(4);
    // types include FLOAT (11), DOUBLE (12), RATIONAL (5), ASCII (2) for structural tags
    if (field === 0) u16([2, 5, 11, 12, 7, int(20)][int(6)]!, p + 2);
    else if (field === 1 && big) u64(pick32(), p + 4);
    else if (field === 1) u32(pick32(), p + 4);
    else if (field === 2 && big) u64(pick32(), p + 12);
    else if (field === 2) u32(pick32(), p + 8);
    else u16(int(65536), p);
    return { bytes: b, how: `tag field ${field} at ${p}` };
  }
  if (k === 4) {
    const [p, size] = s.links[int(s.links.length)]!;
    const target = rnd() < 0.5 ? s.ifdOffsets[int(s.ifdOffsets.length)]! : pick32();
    if (size === 8) u64(target, p);
    else u32(target, p);
    return { bytes: b, how: `link at ${p} -> ${target}` };
  }
  // metadata edit: the new description goes at the end of the file, IFD 0's entry points at it
  const text = Buffer.from(editDescription(s.desc!, rnd) + '\0', 'latin1');
  const at = b.length + (b.length % 2);
  const out = Buffer.alloc(at + text.length);
  b.copy(out);
  text.copy(out, at);
  const w32 = (v: number, p: number) => (s.le ? out.writeUInt32LE(v, p) : out.writeUInt32BE(v, p));
  w32(text.length, s.descEntry! + 4);
  w32(at, s.descEntry! + 8);
  return { bytes: out, how: `description edit (${text.length} bytes)` };
}

export function mutateHdf5(b0: Buffer, rnd: () => number, i: number): { bytes: Buffer; how: string } {
  const b = Buffer.from(b0);
  const int = (n: number) => Math.floor(rnd() * n);
  const k = i % 4;
  if (k === 0) {
    const len = int(b.length);
    return { bytes: b.subarray(0, len), how: `truncate ${len}` };
  }
  if (k === 3) {
    // zero a run of bytes (a lost sector)
    const p = int(b.length - 64);
    b.fill(0, p, p + 16 + int(48));
    return { bytes: b, how: `zero run at ${p}` };
  }
  const n = 1 + int(4);
  for (let j = 0; j < n; j++) {
    const p = int(k === 1 ? Math.min(8192, b.length) : b.length);
    b[p] = b[p]! ^ (1 << int(8));
  }
  return { bytes: b, how: `flip ${n}${k === 1 ? ' (head)' : ''}` };
}

/** Messages a user must never see: engine internals, placeholders, stack text. */
export const UNCLEAR =
  /Invalid (typed )?array length|Cannot read prop|is not a function|is not iterable|Maximum call stack|(?<![="])\b(undefined|NaN)\b|\[object |RangeError|TypeError/;

export interface SeedSpec {
  name: string;
  /** where the seed's bytes are */
  file: string;
  format: Format;
  origin: 'real' | 'derived' | 'synthetic';
  mutations: number;
}

export interface Manifest {
  seed: number;
  workDir: string;
  specs: SeedSpec[];
  /** a real HDF5 file the runner reads after its cases (its SHA-256 is printed) */
  checkFile?: string;
}

export interface CaseResult {
  index: number;
  key: string;
  label: string;
  outcome: 'decoded' | 'rejected';
  ms: number;
  problem: string | null;
}

export interface PlannedCase {
  index: number;
  key: string;
  label: string;
  ext: string;
  op: 'read' | 'probe';
  bytes: Buffer;
}

/**
 * Every case in a fixed order: TIFF-family seeds with one generator (seed 20261201 + n), HDF5 seeds with
 * another (7 + n). The same manifest always gives the same cases, so a runner restarted at case k continues
 * the very sequence.
 */
export async function* planCases(m: Manifest): AsyncGenerator<PlannedCase> {
  let index = 0;
  const rt = mulberry32(20261201 + m.seed);
  for (const spec of m.specs.filter((s) => s.format !== 'hdf5')) {
    const s = await tiffSeed(
      m.workDir,
      spec.name,
      readFileSync(spec.file),
      spec.format as TiffSeed['format'],
      spec.origin,
      spec.mutations,
    );
    for (let i = 0; i < s.mutations; i++) {
      const { bytes, how } = mutateTiff(s, rt);
      // odd cases probe (what `info` does), even ones read the voxels
      yield {
        index: index++,
        key: `${s.format}:${s.origin}`,
        label: `${s.name} #${i} ${how}`,
        ext: s.ext,
        op: i % 2 ? 'probe' : 'read',
        bytes,
      };
    }
  }
  const rh = mulberry32(7 + m.seed);
  for (const spec of m.specs.filter((s) => s.format === 'hdf5')) {
    const b0 = readFileSync(spec.file);
    for (let i = 0; i < spec.mutations; i++) {
      const { bytes, how } = mutateHdf5(b0, rh, i);
      // two in three probe (what `info` and the web shell's open do first), one in three read the voxels
      yield {
        index: index++,
        key: `hdf5:${spec.origin}`,
        label: `${spec.name} #${i} ${how}`,
        ext: '.h5',
        op: i % 3 === 2 ? 'read' : 'probe',
        bytes,
      };
    }
  }
}

/** Writes one case to disk, runs it, checks the outcome. */
export async function runCase(c: PlannedCase, dir: string): Promise<CaseResult> {
  // a fresh name for each HDF5 case: h5wasm caches open files by inode (docs/io.md, limitations)
  const f = join(dir, c.ext === '.h5' ? `h5m${c.index}.h5` : `m${c.ext}`);
  writeFileSync(f, c.bytes);
  const t0 = performance.now();
  let problem: string | null = null;
  let outcome: CaseResult['outcome'] = 'decoded';
  try {
    const v = c.op === 'read' ? await readVolume(f, { maxBytes: 64 << 20 }) : await probeVolume(f);
    const { x, y, z, c: ch } = v.shape;
    if (!(x > 0 && y > 0 && z > 0 && ch > 0) || ![x, y, z, ch].every(Number.isInteger))
      problem = `bad shape ${JSON.stringify(v.shape)}`;
    else if (c.op === 'read' && (v as { data: ArrayLike<number> }).data.length !== x * y * z * ch)
      problem = 'data length does not match the shape';
    else if (![v.spacing.x, v.spacing.y, v.spacing.z].every((s) => Number.isFinite(s) && s > 0))
      problem = `bad spacing ${JSON.stringify(v.spacing)}`;
    else if (v.channelNames.length !== ch)
      problem = `${v.channelNames.length} channel names for ${ch} channels`;
  } catch (e) {
    outcome = 'rejected';
    if (!(e instanceof VolumeReadError)) problem = `${(e as Error)?.name}: ${(e as Error)?.message}`;
    else if (!e.message.includes(f)) problem = `message does not name the file: ${e.message}`;
    else if (e.message.includes('\n') || e.message.length > 600)
      problem = `message not one short line (${e.message.length} chars)`;
    else if (UNCLEAR.test(e.message)) problem = `unclear message: ${e.message}`;
    else if (e.exitCode !== 2) problem = `exit code ${e.exitCode}`;
  }
  const ms = performance.now() - t0;
  if (c.ext === '.h5') unlinkSync(f);
  return { index: c.index, key: c.key, label: c.label, outcome, ms, problem };
}
