// The native checkpoint format (weights.pt of a model folder) byte by byte, as docs/engine.md states it:
//   magic[16] u32 version | i32 dims inCh classes levels base padSame batchNorm bnBatch |
//   u8 adam | f64 lr momentum weightDecay | i64 step | u32 n | n x (u32 len, name, u32 ndim, i64 dims.., f32 data)
// Guards the split of native-models/src/model.cc (checkpoint.cc): a file written by the addon parses with this
// reader, its SHA-256 equals the one the pre-split addon wrote for the same weights, and a checkpoint written
// here by hand loads. Weights are synthetic (set by importParams): the format, not the maths, is under test.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NamedTensor } from '../../main/common/engine.js';
import { nativeEngine, net, prod, randomInput } from './engine-native-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'sf-ckpt-format-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MAGIC = 'SLICEFORM-CKPT\n\0';
const cfg = net({ levels: 2, baseFilters: 2, numClasses: 3, batchNorm: true });
const sgd = { optimizer: 'sgd' as const, lr: 0.0125, momentum: 0.9, weightDecay: 0.001 };

interface Parsed {
  version: number;
  config: number[];
  adam: number;
  optim: number[];
  step: bigint;
  tensors: NamedTensor[];
}

function parse(buf: Buffer): Parsed {
  let o = 0;
  const magic = buf.subarray(0, 16).toString('latin1');
  if (magic !== MAGIC) throw new Error(`bad magic ${JSON.stringify(magic)}`);
  o = 16;
  const version = buf.readUInt32LE(o);
  o += 4;
  const config = Array.from({ length: 8 }, (_, i) => buf.readInt32LE(o + 4 * i));
  o += 32;
  const adam = buf.readUInt8(o);
  o += 1;
  const optim = [0, 1, 2].map((i) => buf.readDoubleLE(o + 8 * i));
  o += 24;
  const step = buf.readBigInt64LE(o);
  o += 8;
  const n = buf.readUInt32LE(o);
  o += 4;
  const tensors: NamedTensor[] = [];
  for (let i = 0; i < n; i++) {
    const len = buf.readUInt32LE(o);
    o += 4;
    const name = buf.subarray(o, o + len).toString('utf8');
    o += len;
    const nd = buf.readUInt32LE(o);
    o += 4;
    const shape: number[] = [];
    for (let d = 0; d < nd; d++, o += 8) shape.push(Number(buf.readBigInt64LE(o)));
    const count = prod(shape);
    const data = new Float32Array(count);
    for (let k = 0; k < count; k++, o += 4) data[k] = buf.readFloatLE(o);
    tensors.push({ name, shape, data });
  }
  if (o !== buf.length) throw new Error(`${buf.length - o} trailing bytes`);
  return { version, config, adam, optim, step, tensors };
}

function write(p: Omit<Parsed, 'version'> & { version?: number }): Buffer {
  const parts: Buffer[] = [Buffer.from(MAGIC, 'latin1')];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  parts.push(u32(p.version ?? 1));
  const c = Buffer.alloc(32);
  p.config.forEach((v, i) => c.writeInt32LE(v, 4 * i));
  parts.push(c, Buffer.from([p.adam]));
  const d = Buffer.alloc(24);
  p.optim.forEach((v, i) => d.writeDoubleLE(v, 8 * i));
  parts.push(d);
  const s = Buffer.alloc(8);
  s.writeBigInt64LE(p.step);
  parts.push(s, u32(p.tensors.length));
  for (const t of p.tensors) {
    const name = Buffer.from(t.name, 'utf8');
    parts.push(u32(name.length), name, u32(t.shape.length));
    for (const x of t.shape) { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(x)); parts.push(b); }
    parts.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return Buffer.concat(parts);
}

/** The model's tensors with deterministic values (index-based, exact in float32). */
function fill(like: NamedTensor[]): NamedTensor[] {
  return like.map((t, j) => ({ name: t.name, shape: t.shape, data: Float32Array.from({ length: t.data.length }, (_, i) => ((i * 7 + j * 13) % 97) / 128 - 0.375) }));
}

describe('native checkpoint format', () => {
  it('a saved checkpoint parses with the documented layout and equals the pre-split bytes', async () => {
    const e = await nativeEngine();
    const m = await e.createModel(cfg, sgd, { seed: 3 });
    const values = fill(await m.exportParams());
    await m.importParams(values);
    const path = join(tmp, 'a.pt');
    await m.save(path);
    const buf = readFileSync(path);
    const p = parse(buf);
    expect(p.version).toBe(1);
    expect(p.config).toEqual([3, 1, 3, 2, 2, 0, 1, 0]); // dims inCh classes levels base padSame batchNorm bnBatch
    expect(p.adam).toBe(0);
    expect(p.optim).toEqual([0.0125, 0.9, 0.001]);
    expect(p.step).toBe(0n);
    // no optimiser state before the first step: exactly the model's tensors, in the model's order
    expect(p.tensors.map((t) => t.name)).toEqual(values.map((t) => t.name));
    expect(p.tensors.map((t) => t.name).slice(0, 6)).toEqual([
      'enc0.conv1.weight', 'enc0.conv1.bias', 'enc0.bn1.weight', 'enc0.bn1.bias', 'enc0.conv2.weight', 'enc0.conv2.bias',
    ]);
    for (let i = 0; i < values.length; i++) {
      expect(p.tensors[i]!.shape, values[i]!.name).toEqual(values[i]!.shape);
      expect(Array.from(p.tensors[i]!.data), values[i]!.name).toEqual(Array.from(values[i]!.data));
    }
    expect(buf.length).toBe(17_415);
    // written by the addon before model.cc was split (same weights, same config): the format did not move
    expect(createHash('sha256').update(buf).digest('hex')).toBe('23b9dd4e2dfa267d99af57a49763c0d7d1c77c7b7c70dee937648bb16ef1d76c');
    m.dispose();
  });

  it('after a step the optimiser state follows as optim.buf.<param>, and the step count is saved', async () => {
    const e = await nativeEngine();
    const m = await e.createModel(cfg, sgd, { seed: 3 });
    const sp = [20, 20, 20];
    const out = m.outputShape(sp);
    const labels = new Uint8Array(prod(out)).map((_, i) => (i % 3) + 1);
    await m.trainStep({ input: randomInput(prod(sp), 5), inputShape: [1, 1, ...sp], labels });
    const path = join(tmp, 'b.pt');
    await m.save(path);
    const p = parse(readFileSync(path));
    expect(p.step).toBe(1n);
    const params = (await m.exportParams()).filter((t) => !/running_/.test(t.name));
    const optim = p.tensors.filter((t) => t.name.startsWith('optim.'));
    expect(optim.map((t) => t.name).sort()).toEqual(params.map((t) => `optim.buf.${t.name}`).sort());
    m.dispose();
  });

  it('loads a checkpoint written by hand: weights, BN statistics and the step count take effect', async () => {
    const e = await nativeEngine();
    const ref = await e.createModel(cfg, sgd, { seed: 3 });
    const values = fill(await ref.exportParams());
    await ref.importParams(values);
    const path = join(tmp, 'c.pt');
    writeFileSync(path, write({ config: [3, 1, 3, 2, 2, 0, 1, 0], adam: 0, optim: [0.0125, 0.9, 0.001], step: 41n, tensors: values }));
    const m = await e.createModel(cfg, sgd, { seed: 11 });
    await m.load(path);
    const sp = [20, 20, 20];
    const x = randomInput(prod(sp), 9);
    expect(Array.from(await m.predict(x, [1, 1, ...sp]))).toEqual(Array.from(await ref.predict(x, [1, 1, ...sp])));
    const again = join(tmp, 'd.pt');
    await m.save(again);
    expect(parse(readFileSync(again)).step).toBe(41n); // same optimiser: the step count is kept
    // a checkpoint for another network is refused with both configs named
    writeFileSync(path, write({ config: [3, 1, 3, 2, 4, 0, 1, 0], adam: 0, optim: [0.0125, 0.9, 0.001], step: 0n, tensors: values }));
    await expect(m.load(path)).rejects.toThrow(/saved for network config \{dims: 3, inChannels: 1, numClasses: 3, levels: 2, baseFilters: 4.*but this model is .*baseFilters: 2/);
    writeFileSync(path, write({ version: 2, config: [3, 1, 3, 2, 2, 0, 1, 0], adam: 0, optim: [0.0125, 0.9, 0.001], step: 0n, tensors: values }));
    await expect(m.load(path)).rejects.toThrow(/unsupported checkpoint format version 2/);
    writeFileSync(path, write({ config: [3, 1, 3, 2, 2, 0, 1, 0], adam: 0, optim: [0.0125, 0.9, 0.001], step: 0n, tensors: values }).subarray(0, 500));
    await expect(m.load(path)).rejects.toThrow(/truncated checkpoint/);
    ref.dispose();
    m.dispose();
  });
});
