/**
 * Binary message framing for the web shell's WebSocket (and any byte-stream transport).
 * Pure: no Node, no DOM (uses only TextEncoder/TextDecoder, present in both).
 *
 * Frame = 'SFW1' | u32 LE json byte length | JSON (utf-8) | zero padding to 8 | binary tail.
 * Every typed array in the message tree is replaced in the JSON by {"$ta": ctorName, "o": byteOffset, "n": length}
 * pointing into the tail, so slices and label volumes travel as raw bytes, never as JSON number arrays.
 */
import type { ApiErrorInfo } from './api.js';

export type WireMessage =
  | { t: 'call'; id: number; method: string; payload?: unknown }
  | { t: 'result'; id: number; ok: true; value?: unknown }
  | { t: 'result'; id: number; ok: false; error: ApiErrorInfo }
  | { t: 'event'; name: string; payload: unknown };

const MAGIC = [0x53, 0x46, 0x57, 0x31]; // 'SFW1'

const CTORS = {
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  Uint8ClampedArray,
} as const;
type CtorName = keyof typeof CTORS;
type AnyTyped = InstanceType<(typeof CTORS)[CtorName]>;

function typedName(v: unknown): CtorName | null {
  if (!ArrayBuffer.isView(v) || v instanceof DataView) return null;
  const n = (v as { constructor: { name: string } }).constructor.name;
  return n in CTORS ? (n as CtorName) : null;
}

const align8 = (n: number) => (n + 7) & ~7;

export function encodeFrame(msg: WireMessage): Uint8Array {
  const parts: AnyTyped[] = [];
  let tail = 0;
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return typeof v === 'number' && !Number.isFinite(v) ? { $num: String(v) } : v;
    const name = typedName(v);
    if (name) {
      const ta = v as AnyTyped;
      const o = tail;
      parts.push(ta);
      tail = align8(tail + ta.byteLength);
      return { $ta: name, o, n: ta.length };
    }
    if (v instanceof ArrayBuffer) return walk(new Uint8Array(v));
    if (Array.isArray(v)) return v.map(walk);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) out[k] = walk(x);
    return out;
  };
  const json = new TextEncoder().encode(JSON.stringify(walk(msg)));
  const head = align8(8 + json.length);
  const buf = new Uint8Array(head + tail);
  buf.set(MAGIC, 0);
  new DataView(buf.buffer).setUint32(4, json.length, true);
  buf.set(json, 8);
  let o = head;
  for (const p of parts) {
    buf.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
    o = align8(o + p.byteLength);
  }
  return buf;
}

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** Decodes a frame; throws WireError on anything malformed (bad magic, lengths, offsets, JSON). */
export function decodeFrame(bytes: Uint8Array): WireMessage {
  if (bytes.length < 8 || MAGIC.some((m, i) => bytes[i] !== m)) throw new WireError('not a Sliceform frame (bad magic)');
  const jlen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (8 + jlen > bytes.length) throw new WireError(`frame truncated: JSON length ${jlen} exceeds frame`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + jlen)));
  } catch (e) {
    throw new WireError(`frame JSON invalid: ${(e as Error).message}`);
  }
  const tailStart = align8(8 + jlen);
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(walk);
    const o = v as Record<string, unknown>;
    if (typeof o.$ta === 'string') {
      const ctor = (CTORS as Record<string, (typeof CTORS)[CtorName]>)[o.$ta];
      const off = o.o,
        n = o.n;
      if (!ctor || !Number.isInteger(off) || !Number.isInteger(n) || (off as number) < 0 || (n as number) < 0)
        throw new WireError(`bad typed-array reference ${JSON.stringify(o)}`);
      const start = tailStart + (off as number);
      const byteLen = (n as number) * ctor.BYTES_PER_ELEMENT;
      if (start + byteLen > bytes.length) throw new WireError(`typed-array reference past end of frame`);
      // copy into a fresh, aligned buffer (the frame's buffer may be shared or unaligned)
      const copy = new Uint8Array(byteLen);
      copy.set(bytes.subarray(start, start + byteLen));
      return new ctor(copy.buffer, 0, n as number);
    }
    if (typeof o.$num === 'string' && Object.keys(o).length === 1) return Number(o.$num);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = walk(x);
    return out;
  };
  const msg = walk(parsed) as WireMessage;
  if (!msg || typeof msg !== 'object' || !['call', 'result', 'event'].includes((msg as { t: string }).t))
    throw new WireError('frame is not a call, result or event');
  return msg;
}
