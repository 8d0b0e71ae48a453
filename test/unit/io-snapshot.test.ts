/** PNG snapshots: plane geometry, channel composite colours, percentile contrast, label overlay. */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { readVolume, writeSnapshot } from '../../main/io/index.js';
import { dataFile } from '../helpers/paths.js';
import type { Volume } from '../../main/common/volume.js';
import { tempDir } from './io-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function pixels(f: string) {
  const { data, info } = await sharp(f).raw().toBuffer({ resolveWithObject: true });
  return {
    data,
    w: info.width,
    h: info.height,
    ch: info.channels,
    at: (x: number, y: number) => [
      ...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3),
    ],
  };
}

// 2 channels, X=6 Y=5 Z=4; channel 0 bright at (x=1, y=2, z=3), channel 1 bright at (x=4, y=0, z=3)
function twoChannel(): Pick<Volume, 'data' | 'shape'> {
  const shape = { x: 6, y: 5, z: 4, c: 2, t: 1 };
  const data = new Uint16Array(6 * 5 * 4 * 2);
  data[((0 * 4 + 3) * 5 + 2) * 6 + 1] = 1000;
  data[((1 * 4 + 3) * 5 + 0) * 6 + 4] = 500;
  return { data, shape };
}

describe('writeSnapshot', () => {
  it('xy / xz / yz geometry and a green + magenta composite', async () => {
    const v = twoChannel();
    const xy = join(tmp.dir, 'xy.png');
    expect(await writeSnapshot(v, { plane: 'xy', index: 3, out: xy, percentiles: [0, 100] })).toMatchObject({
      width: 6,
      height: 5,
    });
    const p = await pixels(xy);
    expect([p.w, p.h]).toEqual([6, 5]);
    expect(p.at(1, 2)).toEqual([0, 255, 0]); // channel 0 → green
    expect(p.at(4, 0)).toEqual([255, 0, 255]); // channel 1 → magenta
    expect(p.at(0, 0)).toEqual([0, 0, 0]);
    const xz = join(tmp.dir, 'xz.png');
    expect(await writeSnapshot(v, { plane: 'xz', index: 2, out: xz, percentiles: [0, 100] })).toMatchObject({
      width: 6,
      height: 4,
    });
    expect((await pixels(xz)).at(1, 3)).toEqual([0, 255, 0]);
    const yz = join(tmp.dir, 'yz.png');
    expect(await writeSnapshot(v, { plane: 'yz', index: 4, out: yz, percentiles: [0, 100] })).toMatchObject({
      width: 5,
      height: 4,
    });
    expect((await pixels(yz)).at(0, 3)).toEqual([255, 0, 255]);
  });

  it('label overlay blends with alpha and leaves label 0 untouched', async () => {
    const v = twoChannel();
    const labels = { data: new Uint8Array(6 * 5 * 4), shape: { x: 6, y: 5, z: 4, c: 1, t: 1 } };
    labels.data[(3 * 5 + 2) * 6 + 1] = 1;
    labels.data[(3 * 5 + 4) * 6 + 5] = 2;
    const f = join(tmp.dir, 'ov.png');
    await writeSnapshot(v, {
      plane: 'xy',
      index: 3,
      out: f,
      labels,
      alpha: 0.5,
      percentiles: [0, 100],
      labelColors: { 1: [255, 0, 0], 2: [0, 0, 200] },
    });
    const p = await pixels(f);
    expect(p.at(1, 2)).toEqual([128, 128, 0]); // 0.5 * green + 0.5 * red
    expect(p.at(5, 4)).toEqual([0, 0, 100]); // 0.5 * black + 0.5 * (0,0,200)
    expect(p.at(4, 0)).toEqual([255, 0, 255]);
  });

  it('percentile auto-contrast on a real volume with its real labels', async () => {
    const f = dataFile('plantseg_nuclei_mini/1135_mini.h5');
    const raw = await readVolume(f);
    const lab = await readVolume(f, { dataset: 'label' });
    const out = join(tmp.dir, 'real.png');
    await writeSnapshot(raw, { plane: 'xz', out, labels: lab });
    const p = await pixels(out);
    expect([p.w, p.h]).toEqual([100, 100]);
    // grey image (one channel) stretched to the full range: some pixels near black, some saturated
    let min = 255;
    let max = 0;
    for (let i = 0; i < p.data.length; i++) {
      min = Math.min(min, p.data[i]!);
      max = Math.max(max, p.data[i]!);
    }
    expect(min).toBeLessThan(10);
    expect(max).toBeGreaterThan(245);
  });

  it('rejects bad planes, indices and mismatched labels without writing', async () => {
    const v = twoChannel();
    const out = join(tmp.dir, 'never.png');
    await expect(writeSnapshot(v, { plane: 'xy', index: 4, out })).rejects.toThrow(
      /index 4 out of range 0..3/,
    );
    await expect(writeSnapshot(v, { plane: 'ab' as 'xy', out })).rejects.toThrow(
      /plane must be xy, xz or yz/,
    );
    await expect(
      writeSnapshot(v, {
        plane: 'xy',
        out,
        labels: { data: new Uint8Array(8), shape: { x: 2, y: 2, z: 2, c: 1, t: 1 } },
      }),
    ).rejects.toThrow(/does not match/);
    expect(existsSync(out)).toBe(false);
  });
});
