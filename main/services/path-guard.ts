/**
 * Path checks at the service entry, shared by the CLI, the API and the web shell (issue 14 items 12, 15, 21):
 * - an output that resolves to an input (same path after realpath, or the same file through a hard link:
 *   same device + inode) is refused before any work starts, so a typo cannot replace the user's image;
 * - a volume path must name a regular file: a FIFO, socket or device would block a reader (and a thread of
 *   the file-I/O pool) forever; `stat` answers without opening it;
 * - in the web shell's --allow-remote mode every path a call names must lie inside the folders given with
 *   --root (default: the working folder).
 * Errors are SliceformError 'bad-input' (exit 2 in the CLI, code bad-input over the API) naming the file.
 */
import { realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { SliceformError } from '../common/errors.js';
import { isZarrStore } from './big-volume.js';

export interface NamedPath {
  /** how the user named it: "--image", "the volume being exported" */
  label: string;
  path: string;
}

async function statOrNull(p: string): Promise<Stats | null> {
  try {
    return await stat(p);
  } catch {
    return null;
  }
}

/** realpath of p, or of its nearest existing parent joined with the rest (an output often does not exist yet). */
export async function resolveReal(p: string): Promise<string> {
  const abs = resolve(p);
  try {
    return await realpath(abs);
  } catch {
    const parent = dirname(abs);
    if (parent === abs) return abs;
    return join(await resolveReal(parent), basename(abs));
  }
}

/** true when a and b name the same file: the same real path, or the same device + inode (hard links). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  if ((await resolveReal(a)) === (await resolveReal(b))) return true;
  const [sa, sb] = await Promise.all([statOrNull(a), statOrNull(b)]);
  return Boolean(sa && sb && sa.dev === sb.dev && sa.ino === sb.ino);
}

/**
 * Refuses any output that is one of the inputs (or another output): call it before reading or training.
 * Undefined paths are skipped, so callers can pass optional options as they are.
 */
export async function refuseOutputOverInput(outputs: Array<{ label: string; path?: string }>, inputs: Array<{ label: string; path?: string }>): Promise<void> {
  const outs = outputs.filter((o): o is NamedPath => typeof o.path === 'string' && o.path !== '');
  const ins = inputs.filter((i): i is NamedPath => typeof i.path === 'string' && i.path !== '');
  for (const o of outs) {
    for (const i of ins) {
      if (await sameFile(o.path, i.path)) {
        const how = resolve(o.path) === resolve(i.path) ? '' : ' (the same file through a link)';
        throw new SliceformError('bad-input', `${o.label} is the input ${i.label} ${i.path}${how}: refusing to overwrite an input; choose another output path`, { file: o.path });
      }
    }
  }
  for (let a = 0; a < outs.length; a++)
    for (let b = a + 1; b < outs.length; b++)
      if (await sameFile(outs[a]!.path, outs[b]!.path))
        throw new SliceformError('bad-input', `${outs[a]!.label} and ${outs[b]!.label} name the same file: give each output its own path`, { file: outs[a]!.path });
}

/** What a non-regular file is, in words. */
export function fileKind(s: Stats): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * A path that will be read as a volume (or ground truth) must be a regular file. Missing files pass through
 * (the reader's "no such file" is clearer in context) unless `mustExist`.
 */
export async function requireRegularFile(path: string, opts: { label?: string; mustExist?: boolean } = {}): Promise<void> {
  const s = await statOrNull(path);
  if (!s) {
    if (opts.mustExist) throw new SliceformError('bad-input', `${opts.label ? `${opts.label}: ` : ''}no such file`, { file: path });
    return;
  }
  if (!s.isFile()) {
    // an OME-Zarr / Zarr store is a folder that reads as one volume (opened out of core when big)
    if (s.isDirectory() && (await isZarrStore(path))) return;
    throw new SliceformError('bad-input', `${opts.label ? `${opts.label}: ` : ''}is ${fileKind(s)}, not a regular file: give an image file (TIFF, OME-TIFF, LSM, HDF5) or an OME-Zarr store`, { file: path });
  }
}

/** `--out` that exists as a folder, or `--model DIR` that exists as a file: refused before any work. */
export async function refuseExistingKind(label: string, path: string | undefined, refuse: 'dir' | 'file'): Promise<void> {
  if (!path) return;
  const s = await statOrNull(path);
  if (!s) return;
  if (refuse === 'dir' && s.isDirectory()) throw new SliceformError('bad-input', `${label} is an existing folder; give a file name (e.g. ${join(path, 'segmentation.tif')})`, { file: path });
  if (refuse === 'file' && !s.isDirectory()) throw new SliceformError('bad-input', `${label} is an existing file, expected a folder for the model`, { file: path });
}

/** Folders a remote web shell may read and write (the --root options); everything else is refused. */
export class PathRoots {
  private constructor(
    readonly roots: string[],
    private readonly own: string[] = [],
  ) {}

  /**
   * @param dirs the user's folders (must exist; the first is what listDirectory shows by default)
   * @param own the server's own folders (scratch/imports, recovery), allowed too; they need not exist yet
   */
  static async create(dirs: string[], own: string[] = []): Promise<PathRoots> {
    const roots: string[] = [];
    for (const d of dirs) {
      const s = await statOrNull(d);
      if (!s?.isDirectory()) throw new SliceformError('bad-input', `--root: not a folder`, { file: d });
      roots.push(await realpath(resolve(d)));
    }
    if (roots.length === 0) throw new SliceformError('bad-input', '--root: at least one folder is needed');
    return new PathRoots(roots, await Promise.all(own.map((d) => resolveReal(d))));
  }

  /** the real path when it lies inside a root (symlinks resolved, so a link out of a root is refused) */
  async check(path: string, what: string): Promise<string> {
    const real = await resolveReal(path);
    for (const r of [...this.roots, ...this.own]) if (real === r || real.startsWith(r.endsWith(sep) ? r : r + sep)) return real;
    throw new SliceformError('bad-input', `${what} is outside the folders this remote web shell may use (${this.roots.join(', ')}; see --root)`, { file: path });
  }
}
