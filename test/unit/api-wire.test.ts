import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, WireError } from '../../main/common/wire.js';
import { validateRequest, REQUEST_SCHEMAS } from '../../main/common/api-schema.js';
import { API_METHODS, ApiError, planeDims, planeToVoxel } from '../../main/common/api.js';

describe('wire frames', () => {
  it('round-trips typed arrays as binary with their type, values and alignment', () => {
    const u16 = Uint16Array.from([1, 2, 65535]);
    const f32 = Float32Array.from([0.5, -1.25]);
    const odd = Uint8Array.from([9, 8, 7]);
    const frame = encodeFrame({ t: 'result', id: 3, ok: true, value: { a: odd, nested: [{ b: u16 }, f32], n: NaN, s: 'x', und: undefined } });
    // no JSON number arrays: the voxel values are not in the JSON text
    const jsonLen = new DataView(frame.buffer).getUint32(4, true);
    const json = new TextDecoder().decode(frame.subarray(8, 8 + jsonLen));
    expect(json).not.toContain('65535');
    expect(json).toContain('"$ta":"Uint16Array"');
    const m = decodeFrame(frame) as { value: { a: Uint8Array; nested: [{ b: Uint16Array }, Float32Array]; n: number; s: string } };
    expect(m.value.a).toBeInstanceOf(Uint8Array);
    expect([...m.value.a]).toEqual([9, 8, 7]);
    expect(m.value.nested[0].b).toBeInstanceOf(Uint16Array);
    expect([...m.value.nested[0].b]).toEqual([1, 2, 65535]);
    expect([...m.value.nested[1]]).toEqual([0.5, -1.25]);
    expect(Number.isNaN(m.value.n)).toBe(true);
    expect(m.value.s).toBe('x');
    expect('und' in m.value).toBe(false);
  });

  it('carries a subarray view without its surrounding buffer', () => {
    const big = Uint8Array.from({ length: 100 }, (_, i) => i);
    const m = decodeFrame(encodeFrame({ t: 'event', name: 'e', payload: big.subarray(10, 13) })) as { payload: Uint8Array };
    expect([...m.payload]).toEqual([10, 11, 12]);
  });

  it('rejects malformed frames with WireError', () => {
    expect(() => decodeFrame(new Uint8Array([1, 2, 3]))).toThrow(WireError);
    expect(() => decodeFrame(new TextEncoder().encode('SFW1\xff\xff\xff\x7f'))).toThrow(/truncated/);
    const good = encodeFrame({ t: 'call', id: 1, method: 'getProject' });
    const bad = good.slice();
    bad[10] = 0x7b; // corrupt the JSON
    expect(() => decodeFrame(bad)).toThrow(WireError);
    // a typed-array reference past the end
    const j = new TextEncoder().encode(JSON.stringify({ t: 'event', name: 'x', payload: { $ta: 'Float64Array', o: 0, n: 1000 } }));
    const f = new Uint8Array(8 + j.length);
    f.set([0x53, 0x46, 0x57, 0x31]);
    new DataView(f.buffer).setUint32(4, j.length, true);
    f.set(j, 8);
    expect(() => decodeFrame(f)).toThrow(/past end/);
    const j2 = new TextEncoder().encode(JSON.stringify({ t: 'nope' }));
    const f2 = new Uint8Array(8 + j2.length);
    f2.set([0x53, 0x46, 0x57, 0x31]);
    new DataView(f2.buffer).setUint32(4, j2.length, true);
    f2.set(j2, 8);
    expect(() => decodeFrame(f2)).toThrow(/not a call/);
  });
});

describe('request validation', () => {
  it('has a schema for every API method', () => {
    expect(Object.keys(REQUEST_SCHEMAS).sort()).toEqual([...API_METHODS].sort());
  });

  it('accepts valid payloads and returns them parsed', () => {
    const r = validateRequest('paintStroke', { volumeId: 'v', plane: 'xz', index: 3, classId: 2, radius: 1.5, points: [[1, 2]] });
    expect(r.method).toBe('paintStroke');
    expect(r.payload).toMatchObject({ plane: 'xz', classId: 2 });
    expect(validateRequest('getProject', undefined).method).toBe('getProject');
    expect(validateRequest('startTraining', { preset: 'tiny', iterations: 10 }).payload).toMatchObject({ preset: 'tiny' });
  });

  it('rejects bad payloads with ApiError bad-request naming the field', () => {
    const bad = (m: string, p: unknown) => {
      try {
        validateRequest(m, p);
      } catch (e) {
        expect(e).toBeInstanceOf(ApiError);
        expect((e as ApiError).code).toBe('bad-request');
        return (e as ApiError).message;
      }
      throw new Error(`accepted ${m} ${JSON.stringify(p)}`);
    };
    expect(bad('nope', {})).toContain('unknown method');
    expect(bad('getSlice', { volumeId: 'v', plane: 'xq', index: 0 })).toContain('plane');
    expect(bad('getSlice', { volumeId: 'v', plane: 'xy', index: -1 })).toContain('index');
    expect(bad('getSlice', { volumeId: 'v', plane: 'xy', index: 0, extra: 1 })).toMatch(/extra|unrecognized/i);
    expect(bad('paintRegion', { volumeId: 'v', plane: 'xy', index: 0, classId: 1, origin: [0, 0], width: 2, height: 2, mask: new Uint8Array(3) })).toContain('mask');
    expect(bad('paintRegion', { volumeId: 'v', plane: 'xy', index: 0, classId: 1, origin: [0, 0], width: 2, height: 2, mask: [1, 1, 1, 1] })).toContain('mask');
    expect(bad('startTraining', { preset: 'tiny' })).toContain('minutes or iterations');
    expect(bad('startTraining', { preset: 'huge', minutes: 1 })).toContain('preset');
    expect(bad('openVolume', { path: '' })).toContain('path');
    expect(bad('setClasses', { classes: [{ id: 1, name: 'a', color: 'red' }] })).toContain('color');
  });
});

describe('plane geometry', () => {
  it('maps plane coordinates to voxels consistently with planeDims', () => {
    const s = { x: 5, y: 4, z: 3 };
    expect(planeDims(s, 'xy')).toEqual({ width: 5, height: 4, depth: 3 });
    expect(planeDims(s, 'xz')).toEqual({ width: 5, height: 3, depth: 4 });
    expect(planeDims(s, 'yz')).toEqual({ width: 4, height: 3, depth: 5 });
    expect(planeToVoxel('xy', 2, 4, 3)).toEqual([4, 3, 2]);
    expect(planeToVoxel('xz', 1, 4, 2)).toEqual([4, 1, 2]);
    expect(planeToVoxel('yz', 0, 3, 2)).toEqual([0, 3, 2]);
  });
});
