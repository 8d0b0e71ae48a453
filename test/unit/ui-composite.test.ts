/** Pure pixel logic of the slice views (renderer/src/render/composite.ts) and the stroke mask crop. */
import { describe, expect, it } from 'vitest';
import {
  compositePlane,
  hexToRgb,
  intensityLut,
  nonEmptySlices,
  percentiles,
  planeOfVolume,
  planeSize,
  rgbToHex,
  type ChannelDisplay,
  type CompositeChannel,
} from '../../renderer/src/render/composite.js';

const display = (color: [number, number, number], min: number, max: number, visible = true): ChannelDisplay => ({
  name: 'c',
  color,
  visible,
  min,
  max,
  rangeMin: 0,
  rangeMax: 65535,
});

describe('composite', () => {
  const d = { x: 3, y: 2, z: 4 };
  // value = 50 * z + 10 * y + x (< 256, fits label planes), so every voxel is distinguishable
  const vol = new Uint16Array(d.x * d.y * d.z).map((_, i) => {
    const x = i % d.x;
    const y = Math.floor(i / d.x) % d.y;
    const z = Math.floor(i / (d.x * d.y));
    return 50 * z + 10 * y + x;
  });

  it('extracts planes in the API layout (u fastest)', () => {
    expect(planeSize('xy', d)).toEqual([3, 2]);
    expect(planeSize('xz', d)).toEqual([3, 4]);
    expect(planeSize('yz', d)).toEqual([2, 4]);
    expect([...planeOfVolume(vol, d, 'xy', 2)]).toEqual([100, 101, 102, 110, 111, 112]);
    expect([...planeOfVolume(vol, d, 'xz', 1)]).toEqual([10, 11, 12, 60, 61, 62, 110, 111, 112, 160, 161, 162]);
    expect([...planeOfVolume(vol, d, 'yz', 2)]).toEqual([2, 12, 52, 62, 102, 112, 152, 162]);
  });

  it('maps the window linearly and adds channels with saturation', () => {
    const lutA = intensityLut(vol, 0, 400)!;
    expect(lutA.lut[0]).toBe(0);
    expect(lutA.lut[200]).toBe(128); // round(0.5 * 255)
    expect(lutA.lut[400]).toBe(255);
    expect(lutA.lut[9999]).toBe(255);
    const red: CompositeChannel = { data: vol, display: display([1, 0, 0], 0, 400), lut: lutA };
    const green: CompositeChannel = { data: vol, display: display([0, 1, 0], 0, 200), lut: intensityLut(vol, 0, 200) };
    const out = new Uint8Array(planeSize('xz', d)[0] * planeSize('xz', d)[1] * 3);
    compositePlane(out, [red, green], d, 'xz', 0);
    // pixel (u=2, v=1) = voxel x=2, y=0, z=1 = value 52
    const p = (1 * 3 + 2) * 3;
    expect(out[p]).toBe(Math.round((52 / 400) * 255));
    expect(out[p + 1]).toBe(Math.round((52 / 200) * 255));
    expect(out[p + 2]).toBe(0);
    // hidden channels do not contribute; float data takes the arithmetic path
    green.display.visible = false;
    const f = new Float32Array(vol);
    const blue: CompositeChannel = { data: f, display: display([0, 0, 1], 40, 240), lut: intensityLut(f, 40, 240) };
    expect(blue.lut).toBeNull();
    compositePlane(out, [red, green, blue], d, 'xz', 0);
    expect(out[p + 1]).toBe(0);
    expect(out[p + 2]).toBe(Math.floor(((52 - 40) / 200) * 255));
    // two full-intensity channels of the same colour saturate at 255
    const white: CompositeChannel = { data: vol, display: display([1, 1, 1], 0, 1), lut: intensityLut(vol, 0, 1) };
    compositePlane(out, [white, white], d, 'xy', 3);
    expect(Math.max(...out.subarray(0, 18))).toBe(255);
  });

  it('rejects a too-small output buffer', () => {
    expect(() => compositePlane(new Uint8Array(5), [], d, 'xy', 0)).toThrow(/too small/);
  });

  it('finds window percentiles from a histogram', () => {
    const a = new Uint16Array(1000).map((_, i) => i);
    const [lo, hi] = percentiles(a, 1, 99);
    expect(lo).toBe(10);
    expect(hi).toBe(990);
    const flat = new Uint8Array(10).fill(7);
    expect(percentiles(flat, 1, 99)).toEqual([7, 8]);
  });

  it('lists slices that hold labels, per plane', () => {
    const lab = new Uint8Array(d.x * d.y * d.z);
    lab[(2 * d.y + 1) * d.x + 0] = 3; // x=0, y=1, z=2
    expect(nonEmptySlices(lab, d, 'xy')).toEqual([2]);
    expect(nonEmptySlices(lab, d, 'xz')).toEqual([1]);
    expect(nonEmptySlices(lab, d, 'yz')).toEqual([0]);
  });

  it('converts colours both ways and rejects junk', () => {
    expect(rgbToHex([1, 0.5, 0])).toBe('#ff8000');
    expect(hexToRgb('#ff8000')).toEqual([1, 128 / 255, 0]);
    expect(() => hexToRgb('orange')).toThrow(/not a colour/);
  });
});

describe('cropPlaneMask', () => {
  it('crops a stroke mask to its bounding box on the stroke plane', async () => {
    const { cropPlaneMask } = await import('../../renderer/src/render/composite.js');
    const d = { x: 5, y: 4, z: 3 };
    const mask = new Uint8Array(60);
    // voxels (1,2,1) and (3,2,1): on xz plane y=2 at (u=1,v=1) and (u=3,v=1)
    mask[(1 * 4 + 2) * 5 + 1] = 1;
    mask[(1 * 4 + 2) * 5 + 3] = 1;
    expect(cropPlaneMask(mask, d, 'xz', 2)).toEqual({ origin: [1, 1], width: 3, height: 1, mask: new Uint8Array([1, 0, 1]) });
    expect(cropPlaneMask(mask, d, 'xz', 0)).toBeNull();
    const yz = cropPlaneMask(mask, d, 'yz', 3);
    expect(yz).toEqual({ origin: [2, 1], width: 1, height: 1, mask: new Uint8Array([1]) });
  });
});
