/** `sliceform info FILE` through the CLI's main(): the README's values for every real file; exit 2 on bad input. */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../main/cli/index.js';
import { dataFile } from '../helpers/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'sliceform-info-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['info', ...argv], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    isTTY: false,
  });
  return { code, out: out.join(''), err: err.join('') };
}

describe('sliceform info', () => {
  it.each([
    [
      'formats/imagej_hyperstack/xyzc_16bit__dna_conf_wf.tif',
      'imagej',
      { x: 133, y: 130, z: 45, c: 2, t: 1 },
      'uint16',
      [0.512, 0.512, 0.4994],
    ],
    [
      'formats/ome_tiff/multi-channel-z-series.ome.tif',
      'ome-tiff',
      { x: 439, y: 167, z: 5, c: 3, t: 1 },
      'int8',
      null,
    ],
    [
      'formats/lsm/jefferislab_jimpipeline_test.lsm',
      'lsm',
      { x: 512, y: 512, z: 1, c: 1, t: 1 },
      'uint16',
      [0.692, 0.692],
    ],
    ['formats/lsm/nytra_test.lsm', 'lsm', { x: 512, y: 512, z: 1, c: 3, t: 1 }, 'uint8', [0.415, 0.415]],
    [
      'plantseg_nuclei_mini/1135_mini.h5',
      'hdf5',
      { x: 100, y: 100, z: 100, c: 1, t: 1 },
      'uint8',
      [0.127, 0.127, 0.2837],
    ],
    [
      'plantseg_nuclei_mini/1136_mini.h5',
      'hdf5',
      { x: 100, y: 100, z: 100, c: 1, t: 1 },
      'uint8',
      [0.1276, 0.1276, 0.2837],
    ],
  ] as const)('%s', async (rel, format, shape, dtype, spacing) => {
    const r = await run(dataFile(rel));
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(r.out);
    expect(j.format).toBe(format);
    expect(j.shape).toEqual(shape);
    expect(j.dtype).toBe(dtype);
    expect(j.channels).toHaveLength(shape.c);
    if (spacing) {
      expect(j.spacing.unit).toBe('µm');
      expect(j.spacing.x).toBeCloseTo(spacing[0], 3);
      expect(j.spacing.y).toBeCloseTo(spacing[1], 3);
      if (spacing[2] !== undefined) expect(j.spacing.z).toBeCloseTo(spacing[2], 4);
    } else expect(j.spacing).toEqual({ x: 1, y: 1, z: 1, unit: 'pixel' });
    if (rel.includes('nytra')) expect(j.channels).toEqual(['DAPI', 'FITC', 'Rhodamine B']);
  });

  it('--dataset picks an HDF5 dataset', async () => {
    const r = await run(dataFile('plantseg_nuclei_mini/1135_mini.h5'), '--dataset', 'label');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ dataset: 'label', dtype: expect.stringMatching(/int/) });
  });

  it('unreadable files: exit 2 and one line naming the file and the reason', async () => {
    const bad = join(tmp, 'bad.tif');
    writeFileSync(bad, 'definitely not a tiff');
    for (const [f, reason] of [
      [bad, /not a TIFF/],
      [join(tmp, 'missing.tif'), /no such file/],
    ] as const) {
      const r = await run(f);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(f);
      expect(lines[0]).toMatch(reason);
    }
    const tp = await run(dataFile('plantseg_nuclei_mini/1135_mini.h5'), '--timepoint', '1');
    expect(tp.code).toBe(2);
    expect(tp.err).toMatch(/time point 1 out of range/);
  });

  it('issue 14: an OME-TIFF claiming SizeZ=16777216 SizeT=64 exits 2 at once (it used to die of heap exhaustion)', async () => {
    // the real OME fixture, edited in place: 8 characters of its XML comment make room for the larger sizes
    const b = readFileSync(dataFile('formats/ome_tiff/multi-channel-z-series.ome.tif'));
    const at = b.indexOf('Warning: this comment');
    const z = b.indexOf('SizeZ="5"');
    const t = b.indexOf('SizeT="1"');
    expect(at > 0 && z > at && t > at).toBe(true);
    let text = b.toString('latin1', at, z + 9);
    text = text
      .replace('Warning:', '')
      .replace('SizeT="1"', 'SizeT="64"')
      .replace('SizeZ="5"', 'SizeZ="16777216"');
    expect(text.length).toBe(z + 9 - at);
    b.write(text, at, 'latin1');
    const f = join(tmp, 'bomb.ome.tif');
    writeFileSync(f, b);
    const t0 = performance.now();
    const r = await run(f);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toContain(f);
    expect(r.err).toMatch(/OME-XML describes 3221225472 planes .* but the file holds only 15 images/);
  });

  it('usage errors exit 2; --help exits 0', async () => {
    expect((await run()).code).toBe(2);
    expect((await run('a.tif', 'b.tif')).code).toBe(2);
    expect((await run('--timepoint', 'x', 'a.tif')).code).toBe(2);
    const h = await run('--help');
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Usage: sliceform info FILE/);
  });
});
