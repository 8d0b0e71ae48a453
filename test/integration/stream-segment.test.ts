/**
 * Out-of-core segment (issue 16 item 1): RegionSources for TIFF and HDF5 read the same voxels as the in-memory
 * readers, and streamed segment (tiles read window by window from a RegionSource) gives the same labels as
 * segmentVolume, voxel for voxel: with flips, calibrated weights, the forest member, downsampling, and as
 * disjoint z shards. Real data: plant nuclei 1135 (the whole HDF5, gzip chunks 25³, straight from
 * ../shared/data, for the region reads), a 40x64x64 crop of it written by h5py (gzip chunks 16³), as an ImageJ
 * TIFF and as a tiled deflate TIFF by tifffile (the segment comparisons: small so that they stay short), and
 * the 2-channel big-endian ImageJ hyperstack fixture. A 1344³ uint8 OME-Zarr (2.43e9 voxels, past 2^31) with
 * only its last chunk present (synthetic sparse store: that chunk holds a 64³ crop of 1135) is read, the chunk
 * segmented and its labels written into a label store of the full shape at the right indices (python3-zarr
 * checks them). The fit check's error names its numbers.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import { cropRegionSource, openRegionSource, volumeRegionSource } from '../../main/io/regions.js';
import { ZarrArrayWriter, createOmeZarrImage } from '../../main/io/zarr/writer.js';
import type { RegionSource } from '../../main/io/region.js';
import { loadEngine } from '../../main/engine/index.js';
import type { Engine, Model } from '../../main/common/engine.js';
import type { Volume } from '../../main/common/volume.js';
import { trainModel } from '../../main/training/trainer.js';
import { resolveNet } from '../../main/training/presets.js';
import { segmentVolume, type SegmentOptions } from '../../main/inference/segment.js';
import { estimateStreamMemory, fitCheck, segmentSource } from '../../main/inference/stream.js';
import { normaliseVolume } from '../../main/volume/preprocess.js';
import { ENSEMBLE_FEATURES, featureHalo, fitEnsembleForest, forestProbabilities } from '../../main/pipeline/ensemble.js';
import { SliceformError } from '../../main/common/errors.js';

const H5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
const HYPER = dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif');
const OUT = join(ARTIFACTS, 'stream-segment');
const TIF = join(OUT, '1135.tif');
const TILED = join(OUT, '1135_tiled_deflate.tif');
const CROP_H5 = join(OUT, '1135_crop.h5');
const CROP_TIF = join(OUT, '1135_crop.tif');
const CROP_TILED = join(OUT, '1135_crop_tiled_deflate.tif');
const [CZ, CY, CX] = [40, 64, 64];

let engine: Engine;
let whole: Volume;
let image: Volume;
let model: Model;
let norm: SegmentOptions['normalisation'];

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function withSource<T>(path: string, fn: (s: RegionSource) => Promise<T>, dataset?: string): Promise<T> {
  const s = await openRegionSource(path, dataset ? { dataset } : {});
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

beforeAll(async () => {
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  whole = await readVolume(H5, { dataset: 'raw' });
  await writeImageJTiff(TIF, whole);
  // tiled, deflate-compressed TIFFs of the same voxels by an independent writer (page decode path), and the crop
  execFileSync(DEBIAN_PYTHON, [
    '-c',
    [
      'import h5py, tifffile',
      `f = h5py.File(${JSON.stringify(H5)}, 'r')`,
      `d = f['raw'][...]; c = d[30:70, 18:82, 18:82]; l = f['label'][30:70, 18:82, 18:82]`,
      `tifffile.imwrite(${JSON.stringify(TILED)}, d, tile=(32, 48), compression='zlib')`,
      `tifffile.imwrite(${JSON.stringify(CROP_TILED)}, c, tile=(16, 32), compression='zlib')`,
      `tifffile.imwrite(${JSON.stringify(CROP_TIF)}, c, imagej=True, metadata={'axes': 'ZYX'})`,
      `g = h5py.File(${JSON.stringify(CROP_H5)}, 'w'); g.create_dataset('raw', data=c, chunks=(16, 16, 16), compression='gzip'); g.create_dataset('label', data=l, chunks=(16, 16, 16), compression='gzip'); g.close()`,
    ].join('\n'),
  ]);
  image = await readVolume(CROP_H5, { dataset: 'raw' });
  engine = await loadEngine({ engine: 'native' });
  const lab = await readVolume(CROP_H5, { dataset: 'label' });
  // sparse: three middle planes of the truth (label > 0 -> nucleus 2, else 1)
  const { x: X, y: Y, z: Z } = image.shape;
  const d = new Uint8Array(X * Y * Z);
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const i = (z * Y + y) * X + x;
        if (z === 20 || y === 32 || x === 32) d[i] = lab.data[i]! > 0 ? 2 : 1;
      }
  const r = await trainModel(engine, [{ image, labels: { ...lab, dtype: 'uint8', data: d } }], {
    net: resolveNet('tiny', 1, 2),
    optim: { optimizer: 'adam', lr: 3e-3 },
    modelOptions: { threads: 2, seed: 5 },
    seed: 5,
    planeOut: 32,
    cubeOut: 16,
    worker: 'inline',
    iterations: 12,
  });
  model = r.model;
  norm = r.normalisation;
}, 240_000);

describe('region sources read what the volume readers read', () => {
  const boxes = [
    { x0: 0, y0: 0, z0: 0, x1: 100, y1: 100, z1: 100 },
    { x0: 7, y0: 31, z0: 24, x1: 61, y1: 33, z1: 77 },
    { x0: 99, y0: 0, z0: 99, x1: 100, y1: 100, z1: 100 },
  ];
  for (const [name, path, dataset] of [
    ['HDF5 (gzip chunks)', H5, 'raw'],
    ['ImageJ TIFF (strips)', TIF, undefined],
    ['tiled deflate TIFF', TILED, undefined],
  ] as const) {
    it(`${name}: boxes equal the crop of the whole volume`, async () => {
      await withSource(
        path,
        async (s) => {
          expect(s.info.shape).toMatchObject({ x: 100, y: 100, z: 100, c: 1 });
          expect(s.info.dtype).toBe('uint8');
          const mem = volumeRegionSource(whole);
          for (const b of boxes) {
            const got = await s.read(b);
            expect(got.length).toBe((b.x1 - b.x0) * (b.y1 - b.y0) * (b.z1 - b.z0));
            expect(firstDiff(got, await mem.read(b))).toBe(-1);
          }
          await expect(s.read({ x0: 0, y0: 0, z0: 90, x1: 10, y1: 10, z1: 101 })).rejects.toThrow(/z 90\.\.101 is not inside 100×100×100/);
        },
        dataset,
      );
    });
  }

  it('a 2-channel big-endian ImageJ hyperstack: each channel and box as readVolume gives it', async () => {
    const v = await readVolume(HYPER);
    await withSource(HYPER, async (s) => {
      expect(s.info.shape).toMatchObject({ x: 133, y: 130, z: 45, c: 2 });
      const b = { x0: 10, y0: 100, z0: 40, x1: 133, y1: 130, z1: 45 };
      expect(firstDiff(await s.read(b), await volumeRegionSource(v).read(b))).toBe(-1);
      const one = await s.read(b, { channels: [1] });
      expect(firstDiff(one, await volumeRegionSource(v).read(b, { channels: [1] }))).toBe(-1);
      expect(one[0]).toBe(v.data[((1 * 45 + 40) * 130 + 100) * 133 + 10]);
    });
  });
});

describe('streamed segment == in-memory segment (voxel-identical labels)', () => {
  // small tiles: several tiles on every axis, mirrored borders, a last tile running past the volume
  const base = (): SegmentOptions => ({ normalisation: norm, maxTileInputVoxels: 40_000, testTimeFlips: false, decisionWeights: [1, 1.3] });
  const N = CZ * CY * CX;
  let reference: Uint8Array;
  beforeAll(async () => {
    const r = await segmentVolume(model, image, base());
    reference = r.labels!;
    expect(r.plan.count).toBeGreaterThanOrEqual(8);
    expect(r.plan.starts.every((s) => s.length >= 2)).toBe(true);
  }, 240_000);

  it('both classes are predicted (the comparison is not of a constant)', () => {
    const nucleus = reference.reduce((s, v) => s + (v === 2 ? 1 : 0), 0);
    expect(nucleus).toBeGreaterThan(0.02 * reference.length);
    expect(nucleus).toBeLessThan(0.98 * reference.length);
  });

  for (const [name, path, dataset] of [
    ['HDF5', CROP_H5, 'raw'],
    ['ImageJ TIFF', CROP_TIF, undefined],
    ['tiled deflate TIFF', CROP_TILED, undefined],
  ] as const) {
    it(`${name} input`, async () => {
      const res = await withSource(path, (s) => segmentSource(model, s, { ...base(), collect: true }), dataset);
      expect(firstDiff(res.labels!, reference)).toBe(-1);
      expect(res.classCounts[1]! + res.classCounts[2]!).toBe(N);
    }, 240_000);
  }

  it('with test-time flips (HDF5 input)', async () => {
    const o = { ...base(), testTimeFlips: true };
    const mem = await segmentVolume(model, image, o);
    const res = await withSource(CROP_H5, (s) => segmentSource(model, s, { ...o, collect: true }), 'raw');
    expect(firstDiff(res.labels!, mem.labels!)).toBe(-1);
  }, 240_000);

  it('three z shards, each only its planes, assemble to the single run', async () => {
    const got = new Uint8Array(reference.length);
    const bounds = [0, 13, 27, CZ];
    let total = 0;
    for (let i = 0; i < 3; i++) {
      const planes: number[] = [];
      const res = await withSource(CROP_H5, (s) =>
        segmentSource(model, s, {
          ...base(),
          zRange: [bounds[i]!, bounds[i + 1]!],
          onSlab: (slab) => {
            got.set(slab.labels, slab.z0 * CY * CX);
            for (let z = slab.z0; z < slab.z0 + slab.depth; z++) planes.push(z);
          },
        }), 'raw');
      expect(planes).toEqual(Array.from({ length: bounds[i + 1]! - bounds[i]! }, (_, k) => bounds[i]! + k));
      total += res.classCounts[1]! + res.classCounts[2]!;
    }
    expect(total).toBe(N);
    expect(firstDiff(got, reference)).toBe(-1);
  }, 240_000);

  it('with the forest member fed z-slabs with its feature halo', async () => {
    const lab = await readVolume(CROP_H5, { dataset: 'label' });
    const sparse = new Uint8Array(lab.data.length);
    for (let i = 0; i < sparse.length; i++) if (Math.floor(i / (CY * CX)) === 20) sparse[i] = lab.data[i]! > 0 ? 2 : 1;
    const nimg = (v: Volume) => ({ data: normaliseVolume(v, norm), shape: [v.shape.z, v.shape.y, v.shape.x] as [number, number, number], channels: 1 });
    const forest = fitEnsembleForest([nimg(image)], [sparse], 2, 1);
    const mixer = { weight: 0.5, halo: featureHalo(ENSEMBLE_FEATURES), probabilities: (v: Volume) => forestProbabilities(nimg(v), forest) };
    const o = { ...base(), testTimeFlips: false, mixer };
    const mem = await segmentVolume(model, image, o);
    const res = await withSource(CROP_TIF, (s) => segmentSource(model, s, { ...o, collect: true }));
    expect(firstDiff(res.labels!, mem.labels!)).toBe(-1);
  }, 240_000);

  it('downsampled [1, 2, 2]: the low-resolution image built region by region', async () => {
    const o: SegmentOptions = { ...base(), testTimeFlips: false, downsample: [1, 2, 2] };
    const mem = await segmentVolume(model, image, o);
    const res = await withSource(CROP_TILED, (s) => segmentSource(model, s, { ...o, collect: true }));
    expect(firstDiff(res.labels!, mem.labels!)).toBe(-1);
  }, 240_000);

  it('refuses a stack with the wrong channel count, naming the file', async () => {
    await withSource(HYPER, async (s) => {
      await expect(segmentSource(model, s, base())).rejects.toThrow(/expects 1 channel\(s\), the stack has 2/);
    });
  });
});

describe('fit check', () => {
  it('names the disk numbers', async () => {
    const est = estimateStreamMemory(model.config, { ...image, shape: { x: 1024, y: 1024, z: 512, c: 3, t: 1 } }, {});
    const e = await fitCheck({
      outputs: [{ path: '/data/out/seg.tif', bytes: 512 * 2 ** 20 }],
      memory: est,
      env: { freeDisk: async () => 100 * 2 ** 20, freeMemory: () => 64 * 2 ** 30 },
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SliceformError);
    expect((e as SliceformError).kind).toBe('too-large');
    expect((e as Error).message).toBe('/data/out/seg.tif: not enough disk space: the output needs 512 MiB, /data/out has 100 MiB free');
  });

  it('names the memory numbers of the tile plan', async () => {
    const est = estimateStreamMemory(model.config, { ...image, shape: { x: 1024, y: 1024, z: 512, c: 3, t: 1 } }, { maxTileInputVoxels: 3_000_000 });
    expect(est.memoryBytes).toBeGreaterThan(100 * 2 ** 20);
    // bounded by the plan, not the volume (3 GiB of uint16 voxels)
    expect(est.memoryBytes).toBeLessThan(2 ** 32);
    const small = estimateStreamMemory(model.config, { ...image, shape: { x: 1024, y: 1024, z: 512, c: 3, t: 1 } }, { maxTileInputVoxels: 1_000_000 });
    expect(small.memoryBytes).toBeLessThan(est.memoryBytes);
    const e = await fitCheck({ outputs: [], memory: est, env: { freeMemory: () => 50 * 2 ** 20 } }).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(
      new RegExp(`^not enough memory: the tile plan \\(input tile ${est.plan.in.join('x')}, output ${est.plan.out.join('x')}\\) needs [\\d.]+ [MG]iB \\(network [\\d.]+ [MG]iB, .*input windows [\\d.]+ [MG]iB.*\\), 50 MiB is available; lower the tile size`),
    );
    await expect(fitCheck({ outputs: [{ path: join(OUT, 'x.tif'), bytes: 1000 }], memory: est, env: { freeMemory: () => 2 ** 40 } })).resolves.toBeUndefined();
  });
});

describe('a volume past 2^31 voxels (sparse OME-Zarr)', () => {
  it('its last chunk is read at the right indices, segmented, and written back at the right indices', async () => {
    const S = 1344; // 21 chunks of 64 per axis: 2.43e9 voxels
    const store = join(OUT, 'huge.ome.zarr');
    const labelsStore = join(OUT, 'huge-labels.ome.zarr');
    const w = await createOmeZarrImage(store, '', { shape: { x: S, y: S, z: S, c: 1 }, dtype: 'uint8', spacing: image.spacing, chunks: [64, 64, 64] });
    const block = cropVolume(whole, 18, 64);
    await w.writeChunk([20, 20, 20], block.data);
    const last = { x0: 1280, y0: 1280, z0: 1280, x1: S, y1: S, z1: S };
    const src = await openRegionSource(store);
    try {
      expect(src.info.shape).toMatchObject({ x: S, y: S, z: S, c: 1 });
      expect(S ** 3).toBeGreaterThan(2 ** 31);
      const got = await src.read(last);
      expect(firstDiff(got, block.data)).toBe(-1);
      // the voxel with the largest linear index, 2.43e9 - 1
      const corner = await src.read({ x0: S - 1, y0: S - 1, z0: S - 1, x1: S, y1: S, z1: S });
      expect(corner[0]).toBe(block.data[64 ** 3 - 1]);
      // a box across the chunk border: missing chunks read as the fill value 0
      const across = await src.read({ x0: 1279, y0: 1280, z0: 1280, x1: 1281, y1: 1281, z1: 1281 });
      expect(Array.from(across)).toEqual([0, block.data[0]]);
      const res = await segmentSource(model, cropRegionSource(src, last), { normalisation: norm, testTimeFlips: false, collect: true });
      const mem = await segmentVolume(model, block, { normalisation: norm, testTimeFlips: false });
      expect(firstDiff(res.labels!, mem.labels!)).toBe(-1);
      const lw = await createOmeZarrImage(labelsStore, '', { shape: { x: S, y: S, z: S, c: 1 }, dtype: 'uint8', spacing: image.spacing, chunks: [64, 64, 64], label: { source: null } });
      await lw.writeRegion(last, res.labels!);
      expect((await ZarrArrayWriter.open(labelsStore, '0')).shape).toEqual([S, S, S]);
      const back = await openRegionSource(labelsStore);
      try {
        expect(firstDiff(await back.read(last), res.labels!)).toBe(-1);
      } finally {
        await back.close();
      }
      const nucleus = res.labels!.reduce((t, v) => t + (v === 2 ? 1 : 0), 0);
      const py = execFileSync(
        DEBIAN_PYTHON,
        ['-c', 'import zarr, sys; a = zarr.open(sys.argv[1] + "/0", mode="r"); print(a.shape, int((a[1280:, 1280:, 1280:] == 2).sum()), int(a[1279, 1279, 1279]), int(a[1343, 1343, 1343]))', labelsStore],
        { encoding: 'utf8' },
      ).trim();
      expect(py).toBe(`(${S}, ${S}, ${S}) ${nucleus} 0 ${res.labels![64 ** 3 - 1]}`);
    } finally {
      await src.close();
    }
  }, 240_000);
});

function cropVolume(v: Volume, o: number, n: number): Volume {
  const data = new Uint8Array(n ** 3);
  for (let z = 0; z < n; z++)
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) data[(z * n + y) * n + x] = v.data[((o + z) * v.shape.y + o + y) * v.shape.x + o + x]!;
  return { ...v, data, shape: { ...v.shape, x: n, y: n, z: n } };
}
