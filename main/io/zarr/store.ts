/**
 * A Zarr store on the local filesystem, the shape zarrita expects (`get`, `getRange`, `set` on absolute keys
 * like "/0/.zarray" or "/labels/cells/0/c/0/1/2").
 *
 * Missing keys answer `undefined` (a sparse store: zarrita fills a missing chunk with the array's
 * fill_value). `set` writes to a temporary name beside the target and renames it, so a chunk is either the
 * old bytes or the new ones, never half-written, and separate processes writing different chunks of one
 * array need no locking (rename within one folder is atomic on POSIX filesystems).
 */
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';

export type StoreKey = `/${string}`;

let seq = 0;

export class FsStore {
  constructor(readonly root: string) {}

  /** the file of a key; refuses keys that leave the store ("..") */
  file(key: string): string {
    const parts = key.split('/').filter((p) => p.length > 0);
    if (parts.some((p) => p === '..' || p.includes(sep)))
      throw new RangeError(`zarr store ${this.root}: key "${key}" leaves the store`);
    return join(this.root, ...parts);
  }

  async get(key: StoreKey): Promise<Uint8Array | undefined> {
    try {
      const b = await readFile(this.file(key));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  async getRange(
    key: StoreKey,
    range: { offset: number; length: number } | { suffixLength: number },
  ): Promise<Uint8Array | undefined> {
    let fh;
    try {
      fh = await open(this.file(key), 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw e;
    }
    try {
      const size = (await fh.stat()).size;
      const [offset, length] =
        'suffixLength' in range
          ? [Math.max(0, size - range.suffixLength), Math.min(size, range.suffixLength)]
          : [range.offset, Math.max(0, Math.min(range.length, size - range.offset))];
      const b = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(b, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return new Uint8Array(b.buffer, b.byteOffset, got);
    } finally {
      await fh.close();
    }
  }

  async set(key: StoreKey, value: Uint8Array): Promise<void> {
    const f = this.file(key);
    await mkdir(dirname(f), { recursive: true });
    const tmp = `${f}.${process.pid}.${++seq}.tmp`;
    try {
      await writeFile(tmp, value);
      await rename(tmp, f);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}
