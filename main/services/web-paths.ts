/**
 * The paths an API call names, checked by the web shell before the call runs (issue 14 items 15 and 21):
 * - a path that will be read as a volume or ground truth must be a regular file (a FIFO blocks the reader, and
 *   six of them blocked every thread of the file-I/O pool, freezing the server); a project folder must not hold
 *   FIFOs, sockets or devices either;
 * - in --allow-remote mode (`roots` given) every path read or written must lie inside a root folder, and
 *   listDirectory without a path lists the first root instead of the home folder.
 * `stat` is used throughout: it answers for a FIFO without opening it.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SliceformError } from '../common/errors.js';
import { fileKind, requireRegularFile, type PathRoots } from './path-guard.js';

type Access = 'read-file' | 'read-dir' | 'read-project' | 'write';

/** method -> the payload fields that are paths, and how each is used */
export const PATH_FIELDS: Record<string, Array<{ field: string; access: Access; what: string }>> = {
  openVolume: [{ field: 'path', access: 'read-file', what: 'the volume' }],
  relocateVolume: [{ field: 'newPath', access: 'read-file', what: 'the volume' }],
  evaluate: [{ field: 'truthPath', access: 'read-file', what: 'the ground truth' }],
  startBatch: [
    { field: 'inputDir', access: 'read-dir', what: 'the input folder' },
    { field: 'outputDir', access: 'write', what: 'the output folder' },
  ],
  exportLabels: [{ field: 'path', access: 'write', what: 'the export path' }],
  saveSnapshot: [{ field: 'path', access: 'write', what: 'the snapshot path' }],
  saveProject: [{ field: 'path', access: 'write', what: 'the project folder' }],
  openProject: [{ field: 'path', access: 'read-project', what: 'the project folder' }],
  listDirectory: [{ field: 'path', access: 'read-dir', what: 'the folder' }],
  // the web shell has no native dialog (it answers null): its defaultPath is never opened
  showDialog: [],
  exportObjects: [
    { field: 'path', access: 'write', what: 'the export path' },
    { field: 'csvPath', access: 'write', what: 'the table path' },
  ],
};

/** a payload field that names a file or folder (fail closed: in remote mode an unlisted one is confined too) */
const PATH_LIKE = /^(path|.*Path|.*Dir)$/;

/** No FIFO, socket or device in a project folder or its direct subfolders (annotations, predictions, models). */
async function checkProjectFolder(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return; // missing or not a folder: openProject says so itself
  }
  const check = async (p: string, isDir: boolean, depth: number) => {
    const s = await stat(p).catch(() => null);
    if (!s) return;
    if (s.isDirectory()) {
      if (depth > 0 || !isDir) return;
      for (const e of await readdir(p, { withFileTypes: true }).catch(() => []))
        await check(join(p, e.name), e.isDirectory(), depth + 1);
    } else if (!s.isFile())
      throw new SliceformError(
        'bad-input',
        `the project folder holds ${fileKind(s)}, not a regular file: refusing to open it`,
        { file: p },
      );
  };
  for (const e of entries) await check(join(dir, e.name), e.isDirectory(), 0);
}

/** Remote mode: the volumes a project refers to must lie inside the roots too (a project.json names any path). */
async function checkProjectVolumes(dir: string, roots: PathRoots): Promise<void> {
  const file = join(dir, 'project.json');
  const s = await stat(file).catch(() => null);
  if (!s?.isFile() || s.size > 64 * 1024 ** 2) return; // missing or odd: openProject explains it
  let refs: unknown;
  try {
    refs = (JSON.parse(await readFile(file, 'utf8')) as { volumes?: unknown }).volumes;
  } catch {
    return; // not JSON: openProject explains it
  }
  if (!Array.isArray(refs)) return;
  for (const r of refs) {
    const p = (r as { path?: unknown })?.path;
    if (typeof p === 'string') await roots.check(p, `a volume of the project ${dir}`);
  }
}

/**
 * Checks (and, for listDirectory in remote mode, completes) the paths of one call. Returns the payload to run.
 * Throws SliceformError 'bad-input' naming the path.
 */
export async function checkCallPaths(
  method: unknown,
  payload: unknown,
  roots: PathRoots | null,
): Promise<unknown> {
  if (typeof method !== 'string') return payload;
  let p = payload && typeof payload === 'object' ? (payload as Record<string, unknown>) : undefined;
  const fields = PATH_FIELDS[method] ?? [];
  if (roots && p && !(method in PATH_FIELDS)) {
    // a method added later with a path field is confined even before it is listed above
    for (const [k, val] of Object.entries(p))
      if (PATH_LIKE.test(k) && typeof val === 'string' && !fields.some((f) => f.field === k)) await roots.check(val, `the ${k}`);
  }
  if (method === 'listDirectory' && roots && typeof p?.path !== 'string')
    p = { ...(p ?? {}), path: roots.roots[0] };
  if (!p) return payload;
  for (const { field, access, what } of fields) {
    const path = p[field];
    if (typeof path !== 'string') continue;
    if (roots) await roots.check(path, what);
    if (access === 'read-file') await requireRegularFile(path, { label: what });
    if (access === 'read-project') {
      await checkProjectFolder(path);
      if (roots) await checkProjectVolumes(path, roots);
    }
  }
  return p;
}
