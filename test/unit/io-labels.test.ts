/**
 * Label volumes as written (issue 14): item 10, a pixel size without a unit survives every label writer;
 * item 13, classes above 255 are never squeezed into uint8 (they wrapped: 281 -> 25, 257 -> 1).
 * Inputs are real fixtures (the ImageJ hyperstack with its unit line removed, a crop of the real nuclei
 * stack); the >255-class model is a stub (synthetic: no trained model has that many classes), since the
 * point is what the writers do with its argmax.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readVolume, writeImageJTiff, writeOmeTiff } from '../../main/io/index.js';
import { labelDType } from '../../main/io/writer.js';
import { SliceformError } from '../../main/common/errors.js';
import type { Model, NetConfig } from '../../main/common/engine.js';
import type { Volume } from '../../main/common/volume.js';
import { SlabTiffWriter } from '../../main/inference/slab-writer.js';
import { segmentToFiles, truthToClasses } from '../../main/inference/files.js';
import { validatePairs } from '../../main/training/trainer.js';
import { FileSource } from '../../main/io/source.js';
import { planTiles } from '../../main/volume/tiling.js';
import { TAG, TiffFile } from '../../main/io/tiff/ifd.js';
import { dataFile } from '../helpers/paths.js';
import { py, tempDir } from './io-helpers.js';

const tmp = tempDir('sliceform-io-labels-');
afterAll(() => tmp.cleanup());

const IMAGEJ = dataFile('formats/imagej_hyperstack/xyzc_16bit__dna_conf_wf.tif');

/** The real hyperstack with `unit=micron` taken out of its description (same length: padded with a comment). */
async function hyperstackWithoutUnit(): Promise<string> {
  const b = readFileSync(IMAGEJ);
  const src = await FileSource.open(IMAGEJ);
  const tf = await TiffFile.open(src);
  const e = tf.entry(tf.ifds[0]!, TAG.ImageDescription)!;
  await src.close();
  const old = b.toString('latin1', e.valueOffset, e.valueOffset + e.count);
  expect(old).toContain('unit=micron\n');
  // same byte count, so nothing else moves: "unit=micron" becomes an unknown key ImageJ ignores
  const edited = old.replace('unit=micron\n', 'xxxx=xxxxxx\n');
  b.write(edited, e.valueOffset, 'latin1');
  const f = join(tmp.dir, 'no-unit.tif');
  writeFileSync(f, b);
  return f;
}

function labelsLike(v: Volume, fill: (i: number) => number): Volume {
  const n = v.shape.x * v.shape.y * v.shape.z;
  return {
    ...v,
    data: new Uint8Array(n).map((_, i) => fill(i)),
    dtype: 'uint8',
    shape: { ...v.shape, c: 1 },
    channelNames: ['labels'],
  };
}

/** tifffile's view of a written label file: XResolution, ResolutionUnit, ImageJ spacing/unit, OME sizes. */
function tifffileCalibration(f: string): {
  xres: number;
  unit: number;
  spacing: number | null;
  ijunit: string | null;
  ome: string | null;
} {
  return py(
    `
import sys, json, re, tifffile
t = tifffile.TiffFile(sys.argv[1]); p = t.pages[0]
xr = p.tags['XResolution'].value if 'XResolution' in p.tags else (0, 1)
ij = t.imagej_metadata or {}
m = re.search(r'PhysicalSizeX="([^"]*)" PhysicalSizeXUnit="([^"]*)"', p.description or '')
print(json.dumps({'xres': xr[0] / xr[1], 'unit': int(p.tags['ResolutionUnit'].value) if 'ResolutionUnit' in p.tags else 0,
  'spacing': ij.get('spacing'), 'ijunit': ij.get('unit'), 'ome': (m.group(1) + ' ' + m.group(2)) if m else None}))`,
    [f],
  );
}

describe('item 10: a pixel size without a unit is kept by every label writer', () => {
  it('ImageJ writer, OME writer and the streaming slab writer keep x/y/z of the unit-less real hyperstack', async () => {
    const input = await readVolume(await hyperstackWithoutUnit());
    // the input: XResolution 1953591/1000000 pixels per (unnamed) unit, spacing=0.4994…, no unit
    expect(input.spacing.unit).toBe('pixel');
    expect(input.spacing.x).toBeCloseTo(1e6 / 1953591, 6);
    expect(input.spacing.z).toBeCloseTo(0.4994126016284111, 9);
    const labels = labelsLike(input, (i) => 1 + (i % 7 === 0 ? 1 : 0));
    const { x: W, y: H, z: D } = labels.shape;

    const ij = join(tmp.dir, 'labels-ij.tif');
    await writeImageJTiff(ij, labels);
    const ome = join(tmp.dir, 'labels.ome.tif');
    await writeOmeTiff(ome, labels);
    const slab = join(tmp.dir, 'labels-slab.tif');
    const w = await SlabTiffWriter.create(slab, {
      width: W,
      height: H,
      depth: D,
      channels: 1,
      dtype: 'uint8',
      spacing: input.spacing,
      displayRange: [0, 2],
    });
    await w.writeSlab(labels.data as Uint8Array, D);
    await w.close();

    for (const f of [ij, ome, slab]) {
      const back = await readVolume(f);
      expect(back.spacing.unit, f).toBe('pixel');
      expect(back.spacing.x, f).toBeCloseTo(input.spacing.x, 5);
      expect(back.spacing.y, f).toBeCloseTo(input.spacing.y, 5);
      expect(back.spacing.z, f).toBeCloseTo(input.spacing.z, 6);
      expect(Array.from(back.data.subarray(0, 50))).toEqual(Array.from(labels.data.subarray(0, 50)));
    }
    // what Fiji (via tifffile) sees: pixels per unit in XResolution, ResolutionUnit none, z in spacing=
    for (const f of [ij, slab]) {
      const c = tifffileCalibration(f);
      expect(c.xres, f).toBeCloseTo(1953591 / 1e6, 4);
      expect(c.unit, f).toBe(1);
      expect(c.spacing, f).toBeCloseTo(0.4994126016284111, 9);
      expect(c.ijunit, f).toBeNull();
    }
    expect(tifffileCalibration(ome).ome).toMatch(/^0\.51\d* pixel$/);
  });

  it('a pixel size in a unit we cannot convert keeps that unit by name (ImageJ)', async () => {
    const input = await readVolume(IMAGEJ);
    const labels = labelsLike({ ...input, spacing: { x: 2, y: 2, z: 3, unit: 'furlong' } }, () => 1);
    const f = join(tmp.dir, 'furlong.tif');
    await writeImageJTiff(f, labels);
    const back = await readVolume(f);
    expect(back.spacing).toEqual({ x: 2, y: 2, z: 3, unit: 'furlong' });
  });

  it('an uncalibrated input (1 pixel) still writes no calibration', async () => {
    const input = await readVolume(IMAGEJ);
    const f = join(tmp.dir, 'plain.tif');
    await writeImageJTiff(
      f,
      labelsLike({ ...input, spacing: { x: 1, y: 1, z: 1, unit: 'pixel' } }, () => 1),
    );
    const c = tifffileCalibration(f);
    expect(c.spacing).toBeNull();
    expect((await readVolume(f)).spacing).toEqual({ x: 1, y: 1, z: 1, unit: 'pixel' });
  });
});

let stubOut: [number, number, number] | null = null;

/** A stand-in model with K classes whose argmax is class 281 where the input is above the tile centre's value, else 257. */
function stubModel(K: number): Model {
  const config: NetConfig = {
    dims: 3,
    inChannels: 1,
    numClasses: K,
    levels: 1,
    baseFilters: 1,
    padding: 'same',
    batchNorm: false,
    bnAtTest: 'running',
  };
  return {
    config,
    paramCount: 0,
    bnParamCount: 0,
    outputShape: (s) => s,
    trainStep: () => Promise.reject(new Error('stub')),
    predict: (input, shape) => {
      // the output is the tile's centre, (in - out) / 2 voxels in from each side, as the tile plan says
      const [iD, iH, iW] = shape.slice(2) as [number, number, number];
      const [oD, oH, oW] = stubOut!;
      const [bz, by, bx] = [(iD - oD) / 2, (iH - oH) / 2, (iW - oW) / 2];
      const n = oD * oH * oW;
      const out = new Float32Array(K * n);
      const pivot = input[((bz + (oD >> 1)) * iH + by + (oH >> 1)) * iW + bx + (oW >> 1)]!;
      for (let z = 0; z < oD; z++)
        for (let y = 0; y < oH; y++)
          for (let x = 0; x < oW; x++) {
            const i = (z * oH + y) * oW + x;
            // class 281 where the normalised input is above the tile's centre value, else 257
            const v = input[((z + bz) * iH + y + by) * iW + x + bx]!;
            out[(v > pivot ? 280 : 256) * n + i] = 1;
          }
      return Promise.resolve(out);
    },
    setLearningRate: () => undefined,
    save: () => Promise.reject(new Error('stub')),
    load: () => Promise.reject(new Error('stub')),
    dispose: () => undefined,
  } as Model;
}

describe('item 13: classes above 255 never wrap', () => {
  it('segmentToFiles with a 300-class model writes uint16 labels holding 257 and 281 (tifffile agrees)', async () => {
    const full = await readVolume(dataFile('plantseg_nuclei_mini/1135_mini.h5'), { dataset: 'raw' });
    // a 24 x 20 x 6 crop of the real stack keeps the stub's K x voxels probabilities small
    const [X, Y, Z] = [24, 20, 6];
    const data = new Uint8Array(X * Y * Z);
    for (let z = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++)
          data[(z * Y + y) * X + x] = full.data[((40 + z) * 100 + 30 + y) * 100 + 30 + x]!;
    const image: Volume = { ...full, data, shape: { x: X, y: Y, z: Z, c: 1, t: 1 } };
    let mean = 0;
    for (const v of data) mean += v / data.length;
    stubOut = planTiles([Z, Y, X], { levels: 1, padding: 'same' }, 3_000_000).out;
    const out = join(tmp.dir, 'seg300.tif');
    const res = await segmentToFiles(stubModel(300), image, {
      normalisation: {
        method: 'percentile-standardise',
        percentiles: [0, 100],
        channels: [{ lo: 0, hi: 255, mean, std: 1 }],
      },
      out,
    });
    expect(res.classCounts[281]! + res.classCounts[257]!).toBe(X * Y * Z);
    const back = await readVolume(out);
    expect(back.dtype).toBe('uint16');
    const seen = new Set(back.data);
    expect([...seen].sort((a, b) => a - b)).toEqual([257, 281]);
    let n281 = 0;
    for (const v of back.data) if (v === 281) n281++;
    expect(n281).toBe(res.classCounts[281]);
    const t = py<{ dtype: string; values: number[] }>(
      `
import sys, json, tifffile, numpy as np
a = tifffile.imread(sys.argv[1]); print(json.dumps({'dtype': str(a.dtype), 'values': sorted(int(v) for v in np.unique(a))}))`,
      [out],
    );
    expect(t).toEqual({ dtype: 'uint16', values: [257, 281] });
    // spacing of the real stack carried over
    expect(back.spacing.z).toBeCloseTo(full.spacing.z, 5);
  });

  it('the label dtype follows the class count; writers refuse data whose array does not match the dtype', async () => {
    expect(labelDType(2)).toBe('uint8');
    expect(labelDType(255)).toBe('uint8');
    expect(labelDType(256)).toBe('uint16');
    expect(labelDType(281)).toBe('uint16');
    expect(() => labelDType(70_000)).toThrow(/70000 classes do not fit a uint16 label volume/);
    const input = await readVolume(IMAGEJ);
    const n = input.shape.x * input.shape.y * input.shape.z;
    const wide = {
      ...input,
      data: new Uint16Array(n).fill(281),
      dtype: 'uint8' as const,
      shape: { ...input.shape, c: 1 },
    };
    await expect(writeImageJTiff(join(tmp.dir, 'bad.tif'), wide)).rejects.toThrow(
      /dtype says uint8 but the data is uint16/,
    );
    const w = await SlabTiffWriter.create(join(tmp.dir, 'bad-slab.tif'), {
      width: 2,
      height: 2,
      depth: 1,
      channels: 1,
      dtype: 'uint8',
      spacing: input.spacing,
      displayRange: [0, 1],
    });
    await expect(w.writeSlab(new Uint16Array(4).fill(281), 1)).rejects.toThrow(
      /slab is Uint16Array, the file is uint8/,
    );
    await w.abort();
  });

  it('training and ground-truth conversion refuse classes above 255 instead of wrapping them', async () => {
    const input = await readVolume(IMAGEJ);
    const image: Volume = {
      ...input,
      shape: { ...input.shape, c: 1 },
      data: input.data.subarray(0, input.shape.x * input.shape.y * input.shape.z),
    };
    const n = image.data.length;
    const labels: Volume = {
      ...image,
      dtype: 'uint16',
      data: new Uint16Array(n).map((_, i) => (i % 2 ? 281 : 0)),
      source: 'painted.tif',
    };
    const net = stubModel(281).config;
    expect(() => validatePairs([{ image, labels }], net)).toThrow(SliceformError);
    expect(() => validatePairs([{ image, labels }], net)).toThrow(
      /painted\.tif: labels go up to class 281; training supports at most 255 classes/,
    );
    expect(() => truthToClasses(labels.data, 300, 'classes')).toThrow(
      /the ground truth holds class 281; at most 255 classes/,
    );
    // instance labels above 255 are fine: they become nucleus / background
    expect(Array.from(truthToClasses(labels.data, 2, 'instances').classes.subarray(0, 4))).toEqual([
      1, 2, 1, 2,
    ]);
  });
});
