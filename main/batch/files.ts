/**
 * Folder discovery, deterministic sharding and output naming for batch segmentation. Node only (fs, path);
 * the sharding and naming functions are pure so they can be tested without files.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { SliceformError } from '../common/errors.js';

/** Extensions of stacks the batch runner picks up (compared case-insensitively). `.ome.tif` ends in `.tif`. */
export const STACK_EXTENSIONS = ['.ome.tiff', '.ome.tif', '.tiff', '.tif', '.lsm', '.h5', '.hdf5'] as const;

/** The extension of a stack file name (longest match, lower case), or null when it is not a stack. */
export function stackExtension(name: string): string | null {
  const lower = name.toLowerCase();
  for (const ext of STACK_EXTENSIONS) if (lower.endsWith(ext) && lower.length > ext.length) return ext;
  return null;
}

/** A stack found in the input folder. */
export interface InputFile {
  /** absolute (or as given) path */
  path: string;
  /** path relative to the input folder, always with '/' separators: the stable identity used by shards */
  rel: string;
}

/**
 * Lists the stacks in `dir` (and below it with `recursive`), sorted by relative path so every process sees
 * the same order. Hidden files, our own temp files and names without a stack extension are ignored.
 * `exclude` are directories (e.g. the output folder) that are never descended into.
 */
export async function listStacks(dir: string, opts: { recursive?: boolean; exclude?: string | string[] } = {}): Promise<InputFile[]> {
  const excluded = (Array.isArray(opts.exclude) ? opts.exclude : opts.exclude ? [opts.exclude] : []).map((e) => resolve(e));
  let st;
  try {
    st = await stat(dir);
  } catch {
    throw new SliceformError('bad-input', `input folder not found`, { file: dir });
  }
  if (!st.isDirectory()) throw new SliceformError('bad-input', `not a folder`, { file: dir });
  const out: InputFile[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (opts.recursive && !excluded.includes(resolve(p))) await walk(p);
        continue;
      }
      if (!e.isFile() && !e.isSymbolicLink()) continue;
      if (stackExtension(e.name) === null) continue;
      out.push({ path: p, rel: relative(dir, p).split(sep).join('/') });
    }
  };
  await walk(dir);
  out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return out;
}

/** A shard spec "I/N", 1-based: shard I of N. */
export interface Shard {
  index: number;
  count: number;
}

export function parseShard(s: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(s);
  if (!m) throw new SliceformError('bad-input', `--shard must look like I/N (e.g. 2/8), got "${s}"`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new SliceformError('bad-input', `--shard ${s}: N must be at least 1`);
  if (index < 1 || index > count)
    throw new SliceformError('bad-input', `--shard ${s}: I must be between 1 and N (shards are numbered from 1)`);
  return { index, count };
}

/** 32-bit FNV-1a of the UTF-8 bytes of `s`: stable across runs, machines and Node versions. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The shard a file belongs to (1-based), from a stable hash of its relative path. Depends only on the file's
 * own relative path, so shards started at different times agree even if files are added meanwhile, and the
 * shards of one N partition any folder exactly (every file in exactly one shard).
 */
export function shardOfFile(rel: string, count: number): number {
  return (fnv1a(rel) % count) + 1;
}

export function selectShard<T extends { rel: string }>(files: T[], shard: Shard | undefined): T[] {
  if (!shard || shard.count === 1) return files;
  return files.filter((f) => shardOfFile(f.rel, shard.count) === shard.index);
}

/** Strips the stack extension: "a/b/x.ome.tif" -> "a/b/x". */
export function baseName(rel: string): string {
  const ext = stackExtension(rel);
  return ext ? rel.slice(0, rel.length - ext.length) : rel;
}

/**
 * Output names (relative to the output folder, '/' separated) for each input: "<base>.tif", keeping the
 * sub-folder of recursive inputs. When two inputs would share a name (x.tif and x.h5), each of them gets its
 * full file name instead ("x.tif.tif", "x.h5.tif"), so no output is ever overwritten by another input's.
 */
export function outputNames(rels: string[], suffix = '.tif'): Map<string, string> {
  const byBase = new Map<string, string[]>();
  for (const r of rels) {
    const b = baseName(r).toLowerCase();
    byBase.set(b, [...(byBase.get(b) ?? []), r]);
  }
  const out = new Map<string, string>();
  for (const r of rels) {
    const clash = (byBase.get(baseName(r).toLowerCase())?.length ?? 0) > 1;
    out.set(r, (clash ? r : baseName(r)) + suffix);
  }
  return out;
}
