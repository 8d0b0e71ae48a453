/**
 * Shared helpers for the io-* tests: Debian python (tifffile, h5py, numpy, PIL) as the independent
 * reference reader and synthetic-file generator, and hashing of voxel data.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEBIAN_PYTHON } from '../helpers/paths.js';
import type { TypedArray } from '../../main/common/volume.js';

export function py<T = unknown>(script: string, args: string[] = [], timeout = 60_000): T {
  const out = execFileSync(DEBIAN_PYTHON, ['-c', script, ...args], {
    encoding: 'utf8',
    timeout,
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

export function sha(a: TypedArray | Uint8Array): string {
  return createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');
}

export function tempDir(prefix = 'sliceform-io-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  // also on exit: a failure while collecting a spec file skips its afterAll hooks
  process.once('exit', cleanup);
  return { dir, cleanup };
}

/** Python prelude: `czyx_sha(arr)` = sha256 of the array's bytes, little-endian, C order. */
export const PY_PRELUDE = `
import sys, json, hashlib
import numpy as np
def le(a):
    a = np.ascontiguousarray(a)
    return a.astype(a.dtype.newbyteorder('<'), copy=False) if a.dtype.itemsize > 1 else a
def czyx_sha(a):
    return hashlib.sha256(np.ascontiguousarray(le(a)).tobytes()).hexdigest()
`;
