/**
 * TF.js engine checkpoint file: one file, written atomically (temp + rename).
 *   bytes 0..7   magic "SFTFJS01"
 *   bytes 8..11  uint32 LE header length H
 *   then H bytes of UTF-8 JSON header, zero-padded to a multiple of 4
 *   then float32 LE tensor data, at the offsets the header gives (relative to the data start)
 * Tensors are in the exported (PyTorch) layout, named like exportParams(); optimiser state is `optim.<name>.<slot>`.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { SliceformError } from '../../common/errors.js';
import type { NamedTensor, NetConfig, OptimConfig } from '../../common/engine.js';

export const MAGIC = 'SFTFJS01';

export interface CheckpointHeader {
  format: 'sliceform-tfjs-checkpoint';
  version: 1;
  config: NetConfig;
  optim: OptimConfig;
  lr: number;
  step: number;
  tensors: { name: string; shape: number[]; offset: number; length: number }[];
}

export async function writeCheckpoint(
  path: string,
  head: Omit<CheckpointHeader, 'tensors' | 'format' | 'version'>,
  tensors: NamedTensor[],
): Promise<void> {
  let off = 0;
  const entries = tensors.map((t) => {
    const e = { name: t.name, shape: t.shape, offset: off, length: t.data.length };
    off += t.data.length * 4;
    return e;
  });
  const header: CheckpointHeader = { format: 'sliceform-tfjs-checkpoint', version: 1, ...head, tensors: entries };
  let hb = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(hb.length / 4) * 4;
  hb = Buffer.concat([hb, Buffer.alloc(padded - hb.length, 0x20)]);
  const pre = Buffer.alloc(12);
  pre.write(MAGIC, 0, 'latin1');
  pre.writeUInt32LE(hb.length, 8);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(pre);
    await fh.write(hb);
    for (const t of tensors) {
      const le = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      await fh.write(le);
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw new SliceformError('internal', `could not write checkpoint: ${(e as Error).message}`, { file: path, cause: e });
  }
}

export async function readCheckpoint(path: string): Promise<{ header: CheckpointHeader; tensors: Map<string, NamedTensor> }> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new SliceformError('bad-input', `cannot read checkpoint: ${(e as Error).message}`, { file: path, cause: e });
  }
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) {
    throw new SliceformError('bad-input', `not a Sliceform TF.js checkpoint (missing ${MAGIC} magic)`, { file: path });
  }
  const hl = buf.readUInt32LE(8);
  if (12 + hl > buf.length) throw new SliceformError('bad-input', 'truncated checkpoint header', { file: path });
  let header: CheckpointHeader;
  try {
    header = JSON.parse(buf.toString('utf8', 12, 12 + hl)) as CheckpointHeader;
  } catch (e) {
    throw new SliceformError('bad-input', `corrupt checkpoint header: ${(e as Error).message}`, { file: path });
  }
  if (header.format !== 'sliceform-tfjs-checkpoint' || header.version !== 1 || !Array.isArray(header.tensors)) {
    throw new SliceformError('bad-input', `unsupported checkpoint format ${String(header.format)} v${String(header.version)}`, { file: path });
  }
  const base = 12 + hl;
  const tensors = new Map<string, NamedTensor>();
  for (const e of header.tensors) {
    const start = base + e.offset;
    const end = start + e.length * 4;
    if (end > buf.length) throw new SliceformError('bad-input', `truncated checkpoint: tensor ${e.name} runs past the end`, { file: path });
    const data = new Float32Array(e.length);
    Buffer.from(data.buffer).set(buf.subarray(start, end));
    tensors.set(e.name, { name: e.name, shape: e.shape, data });
  }
  return { header, tensors };
}
