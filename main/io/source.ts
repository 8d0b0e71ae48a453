/**
 * Random access to a file with bounds checks. Every read past the end of the file becomes a
 * VolumeReadError that names the offset, so a corrupt offset never turns into garbage voxels.
 */
import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { VolumeReadError } from '../common/errors.js';

function openError(path: string, e: unknown): VolumeReadError {
  const code = (e as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'is a directory'
          : `cannot open (${(e as Error).message})`;
  return new VolumeReadError(path, reason, { cause: e });
}

/** What a stat says the path is, in words, when it is not a regular file. */
function notRegular(st: Stats): string | null {
  if (st.isFile()) return null;
  if (st.isDirectory()) return 'is a directory';
  const what = st.isFIFO()
    ? 'a named pipe (FIFO)'
    : st.isSocket()
      ? 'a socket'
      : st.isCharacterDevice()
        ? 'a character device'
        : st.isBlockDevice()
          ? 'a block device'
          : 'a special file';
  return `is ${what}, not a regular file; volumes are read from regular files only`;
}

/**
 * Refuses anything but a regular file before it is opened: opening a FIFO with no writer blocks forever
 * (and holds one of libuv's few file-I/O threads, so a handful of them freeze every later open).
 */
export async function assertRegularFile(path: string): Promise<number> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (e) {
    throw openError(path, e);
  }
  const why = notRegular(st);
  if (why) throw new VolumeReadError(path, why);
  return st.size;
}

/**
 * Opens a volume file for reading: regular files only (checked before the open, and again on the handle,
 * which is opened non-blocking so a path swapped for a FIFO in between cannot block either).
 */
export async function openRegular(path: string): Promise<{ fh: FileHandle; size: number }> {
  await assertRegularFile(path);
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw openError(path, e);
  }
  const st = await fh.stat();
  const why = notRegular(st);
  if (why) {
    await fh.close().catch(() => undefined);
    throw new VolumeReadError(path, why);
  }
  return { fh, size: st.size };
}

export class FileSource {
  private cache: { offset: number; bytes: Buffer } | null = null;
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<FileSource> {
    const { fh, size } = await openRegular(path);
    return new FileSource(path, fh, size);
  }

  fail(message: string): never {
    throw new VolumeReadError(this.path, message);
  }

  check(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      this.fail(`${what}: invalid offset ${offset} or length ${length}`);
    }
    if (offset + length > this.size) {
      this.fail(
        offset >= this.size
          ? `${what} at offset ${offset} points past the end of the file (${this.size} bytes)`
          : `truncated ${what} at offset ${offset}: needs ${length} bytes, file ends after ${this.size - offset}`,
      );
    }
  }

  /** Small reads (headers, IFDs, tag values) go through a 64 KiB window cache. */
  async read(offset: number, length: number, what: string): Promise<Buffer> {
    this.check(offset, length, what);
    const c = this.cache;
    if (c && offset >= c.offset && offset + length <= c.offset + c.bytes.length) {
      return c.bytes.subarray(offset - c.offset, offset - c.offset + length);
    }
    if (length > 65536) return this.readFresh(offset, length);
    const n = Math.min(65536, this.size - offset);
    const bytes = Buffer.allocUnsafe(n);
    await this.readInto(bytes, 0, n, offset);
    this.cache = { offset, bytes };
    return bytes.subarray(0, length);
  }

  /** A read that is not cached (strip data). */
  async readFresh(offset: number, length: number, what = 'data'): Promise<Buffer> {
    this.check(offset, length, what);
    const b = Buffer.allocUnsafe(length);
    await this.readInto(b, 0, length, offset);
    return b;
  }

  /** Reads straight into a caller's buffer (used to fill the output volume without a copy). */
  async readInto(target: Uint8Array, targetOffset: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const chunk = Math.min(length - done, 1 << 30);
      const { bytesRead } = await this.fh.read(target, targetOffset + done, chunk, position + done);
      if (bytesRead === 0) this.fail(`unexpected end of file at offset ${position + done}`);
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
