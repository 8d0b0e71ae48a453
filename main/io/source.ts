/**
 * Random access to a file with bounds checks. Every read past the end of the file becomes a
 * VolumeReadError that names the offset, so a corrupt offset never turns into garbage voxels.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { VolumeReadError } from '../common/errors.js';

export class FileSource {
  private cache: { offset: number; bytes: Buffer } | null = null;
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<FileSource> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const reason =
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'is a directory'
              : `cannot open (${(e as Error).message})`;
      throw new VolumeReadError(path, reason, { cause: e });
    }
    const st = await fh.stat();
    if (st.isDirectory()) {
      await fh.close();
      throw new VolumeReadError(path, 'is a directory');
    }
    return new FileSource(path, fh, st.size);
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
