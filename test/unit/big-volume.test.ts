/**
 * Out-of-core volumes in the compute process (main/services/big-volume.ts): slices read from a RegionSource
 * equal the in-memory slices, bricks at the 3D level's step equal the in-memory strided bricks, a pyramid
 * level is used when the source has one, and the compute store opens a Zarr store above its limit out of core
 * (sparse label deltas, jobs refused with the numbers). Real data: the 2-channel uint16 ImageJ hyperstack and
 * 1135_mini's raw channel written as an OME-Zarr store by Debian's python3-zarr (an independent writer).
 * The one synthetic source (a 1024×1024×512 stack of zeros) checks streaming and refusals without 1 GiB of data.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readVolume } from '../../main/io/index.js';
import { assertBoxInside, type RegionBox, type RegionLevel, type RegionReadOptions, type RegionSource } from '../../main/io/region.js';
import { allocTyped, type TypedArray, type Volume } from '../../main/common/volume.js';
import { BigVolume, previewStep, SLICE_BAND_BYTES } from '../../main/services/big-volume.js';
import { ComputeStore } from '../../main/services/compute-store.js';
import { volumeBrick, volumeSlice } from '../../main/services/volume-data.js';
import { DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';

/** A Volume as a RegionSource with optional nearest-sampled pyramid levels; counts the voxels it reads. */
function memorySource(v: Volume, factors: number[] = [], chunk: [number, number, number] = [1, v.shape.y, v.shape.x]) {
  const { data: _data, ...info } = v;
  const levels: RegionLevel[] = [{ factors: [1, 1, 1], shape: { x: v.shape.x, y: v.shape.y, z: v.shape.z } }];
  const arrays: Volume[] = [v];
  for (const f of factors) {
    const b = volumeBrick(v, undefined, undefined, f);
    levels.push({ factors: [f, f, f], shape: { x: b.size[0], y: b.size[1], z: b.size[2] } });
    arrays.push({ ...v, data: b.data, shape: { ...v.shape, x: b.size[0], y: b.size[1], z: b.size[2] } });
  }
  const src = {
    info,
    levels,
    chunk,
    voxelsRead: 0,
    levelsRead: new Set<number>(),
    async read(box: RegionBox, o: RegionReadOptions = {}): Promise<TypedArray> {
      const a = arrays[o.level ?? 0]!;
      assertBoxInside(box, a.shape, 'memory');
      src.levelsRead.add(o.level ?? 0);
      const b = volumeBrick(a, [box.x0, box.y0, box.z0], [box.x1 - box.x0, box.y1 - box.y0, box.z1 - box.z0]);
      const n = b.size[0] * b.size[1] * b.size[2];
      src.voxelsRead += n * (o.channels?.length ?? a.shape.c);
      if (!o.channels) return b.data;
      const out = allocTyped(a.dtype, n * o.channels.length);
      o.channels.forEach((c, k) => out.set(b.data.subarray(c * n, (c + 1) * n) as never, k * n));
      return out;
    },
    async close() {},
  };
  return src satisfies RegionSource;
}

const hyperstack = () => readVolume(dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif'));

describe('BigVolume over a RegionSource', () => {
  it('serves full-resolution slices and 3D-level bricks equal to the in-memory ones (real hyperstack)', async () => {
    const v = await hyperstack();
    expect([v.shape.x, v.shape.y, v.shape.z, v.shape.c, v.dtype]).toEqual([133, 130, 45, 2, 'uint16']);
    const src = memorySource(v);
    const big = await BigVolume.open(src, { previewVoxels: 20_000 });
    const step = previewStep(v.shape, 20_000);
    expect(step).toBe(4); // 34×33×12 = 13464 voxels; step 3 would be 45×44×15 = 29700
    expect(big.level3d).toEqual({ level: 0, step, size: [34, 33, 12] });
    // only the sampled planes were read (a TIFF page is a chunk): 12 of 45
    expect(src.voxelsRead).toBe(12 * 133 * 130 * 2);
    for (const plane of ['xy', 'xz', 'yz'] as const)
      for (const index of [0, 7, 44])
        for (const channel of [undefined, 1]) expect(await big.slice(plane, index, channel)).toEqual(volumeSlice(v, plane, index, channel));
    // the whole 3D level, and a box of it, equal the strided in-memory brick
    expect(await big.brick(undefined, undefined, step)).toEqual(volumeBrick(v, undefined, undefined, step));
    expect(await big.brick([10, 20, 5], [100, 60, 30], step * 2, 0)).toEqual(volumeBrick(v, [10, 20, 5], [100, 60, 30], step * 2, 0));
    // a small brick at another step is read from the source
    expect(await big.brick([3, 4, 5], [40, 30, 20], 3, 1)).toEqual(volumeBrick(v, [3, 4, 5], [40, 30, 20], 3, 1));
    expect(big.stats).toHaveLength(2);
    expect(big.stats[0]!.max).toBeLessThanOrEqual((v.data.subarray(0, 133 * 130 * 45) as Uint16Array).reduce((m, x) => Math.max(m, x), 0));
    await expect(big.slice('xy', 45)).rejects.toThrow(/slice 45 is outside the xy range 0..44/);
    await expect(big.slice('xy', 0, 2)).rejects.toThrow(/channel 2 does not exist \(volume has 2\)/);
    await expect(big.brick([0, 0, 0], [134, 1, 1])).rejects.toThrow(/brick x range 0..133 is outside the volume \(0..132\)/);
    await big.close();
    await expect(big.slice('xy', 0)).rejects.toThrow(/closed/);
  });

  it('reads the pyramid level instead of level 0 when the source has one', async () => {
    const v = await hyperstack();
    const plain = await BigVolume.open(memorySource(v), { previewVoxels: 20_000 });
    const src = memorySource(v, [2, 4], [9, 32, 32]);
    const pyr = await BigVolume.open(src, { previewVoxels: 20_000 });
    // step 4 needed: level 2 (factor 4) is read whole, level 0 not at all
    expect(pyr.level3d).toEqual({ level: 2, step: 4, size: [34, 33, 12] });
    expect([...src.levelsRead]).toEqual([2]);
    expect(await pyr.brick(undefined, undefined, 4)).toEqual(await plain.brick(undefined, undefined, 4));
    expect(pyr.preview.data).toEqual(plain.preview.data);
    // a budget that needs step 6: level 1 (factor 2) at in-level step 3
    const src6 = memorySource(v, [2, 4]);
    const six = await BigVolume.open(src6, { previewVoxels: 5_000 });
    expect(previewStep(v.shape, 5_000)).toBe(6);
    expect(six.level3d).toEqual({ level: 2, step: 8, size: [17, 17, 6] });
    expect(await six.brick(undefined, undefined, 8)).toEqual(volumeBrick(v, undefined, undefined, 8));
  });

  it('streams the 3D level of a 1024×1024×512 source in bounded reads and refuses whole-volume bricks (synthetic zeros)', async () => {
    const shape = { x: 1024, y: 1024, z: 512, c: 3, t: 1 };
    let biggest = 0;
    const src: RegionSource = {
      info: { dtype: 'uint16', shape, spacing: { x: 1, y: 1, z: 1, unit: 'µm' }, channelNames: ['a', 'b', 'c'], format: 'zeros', source: 'zeros', timepoint: 0, metadata: {} },
      levels: [{ factors: [1, 1, 1], shape: { x: 1024, y: 1024, z: 512 } }],
      chunk: [64, 64, 64],
      async read(box, o = {}) {
        const n = (box.x1 - box.x0) * (box.y1 - box.y0) * (box.z1 - box.z0) * (o.channels?.length ?? 3);
        biggest = Math.max(biggest, n);
        return new Uint16Array(n);
      },
      async close() {},
    };
    const big = await BigVolume.open(src);
    expect(big.level3d).toEqual({ level: 0, step: 4, size: [256, 256, 128] });
    expect(big.preview.data.length).toBe(3 * 256 * 256 * 128);
    expect(biggest * 2).toBeLessThanOrEqual(32 * 2 ** 20 + 64 * 1024 * 64 * 3 * 2);
    await expect(big.brick()).rejects.toThrow(/out of core: a brick of 1024×1024×512 voxels at step 1 would read 1610612736 voxels.*ask for step 4/);
    const s = await big.slice('yz', 1023, 2);
    expect([s.width, s.height, s.channels, s.data.length]).toEqual([1024, 512, 1, 1024 * 512]);
  });
});

describe('BigVolume full-resolution slices read in bands (decoded once per band)', () => {
  it('reads consecutive slices sharing a chunk in one band, equal to the in-memory slices (real hyperstack)', async () => {
    const v = await hyperstack();
    // chunks 16 deep, 32×32 in-plane: a band is the slices of one chunk along the slice axis
    const src = memorySource(v, [], [16, 32, 32]);
    const big = await BigVolume.open(src, { previewVoxels: 20_000 });
    const reads = () => big.bandReads;
    const before = src.voxelsRead;
    for (let z = 16; z < 32; z++) expect(await big.slice('xy', z)).toEqual(volumeSlice(v, 'xy', z));
    expect(reads()).toBe(1); // z 16..31: one band
    expect(src.voxelsRead - before).toBe(16 * 133 * 130 * 2);
    expect(big.band('xy', 40, 2)).toEqual([32, 45]); // the last chunk is cut at the volume's end
    expect(await big.slice('xy', 44, 1)).toEqual(volumeSlice(v, 'xy', 44, 1));
    expect(reads()).toBe(2);
    // yz along x (chunk 32): slices 64..95 are one band; answers asked for at once share the read
    const got = await Promise.all([70, 64, 95, 71].map((x) => big.slice('yz', x)));
    expect(got).toEqual([70, 64, 95, 71].map((x) => volumeSlice(v, 'yz', x)));
    expect(reads()).toBe(3);
    expect(await big.slice('xz', 100, 0)).toEqual(volumeSlice(v, 'xz', 100, 0));
    expect(await big.slice('xz', 127)).toEqual(volumeSlice(v, 'xz', 127));
    expect(reads()).toBe(5); // one channel and all channels are separate bands
    // revisiting a slice of a band read before is a cache hit
    expect(await big.slice('xy', 20)).toEqual(volumeSlice(v, 'xy', 20));
    expect(reads()).toBe(5);
  });

  it('keeps a band within SLICE_BAND_BYTES and inside one chunk (the bench stack: 1024×1024×512×3 uint16, chunks 32×256×256)', async () => {
    const shape = { x: 1024, y: 1024, z: 512, c: 3, t: 1 };
    const src: RegionSource = {
      info: { dtype: 'uint16', shape, spacing: { x: 1, y: 1, z: 1, unit: 'µm' }, channelNames: ['a', 'b', 'c'], format: 'zeros', source: 'zeros', timepoint: 0, metadata: {} },
      levels: [{ factors: [1, 1, 1], shape: { x: 1024, y: 1024, z: 512 } }],
      chunk: [32, 256, 256],
      async read(box, o = {}) {
        return new Uint16Array((box.x1 - box.x0) * (box.y1 - box.y0) * (box.z1 - box.z0) * (o.channels?.length ?? 3));
      },
      async close() {},
    };
    const big = await BigVolume.open(src);
    // an xy slice is 6 MiB: 16 of them fit 96 MiB, so the 32-deep chunk is read as two bands
    expect(SLICE_BAND_BYTES).toBe(96 * 2 ** 20);
    expect(big.band('xy', 300, 3)).toEqual([288, 304]);
    expect(big.band('xy', 310, 3)).toEqual([304, 320]);
    // an xz slice is 3 MiB: 32 per band inside the 256-deep chunk; one channel (1 MiB): 96, cut at the chunk's end
    expect(big.band('xz', 500, 3)).toEqual([480, 512]);
    expect(big.band('xz', 500, 1)).toEqual([448, 512]);
    expect(big.band('xz', 300, 1)).toEqual([256, 352]);
    const s = await big.slice('xz', 500);
    expect([s.width, s.height, s.channels, s.index]).toEqual([1024, 512, 3, 500]);
  });
});

describe('ComputeStore: a Zarr store above the limit opens out of core', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sliceform-big-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('opens 1135 as OME-Zarr (written by python3-zarr) out of core: slices, 3D level, sparse deltas, refused jobs', async () => {
    const store = join(dir, '1135.ome.zarr');
    const py = `
import h5py, zarr, numpy as np, sys
raw = h5py.File(sys.argv[1], 'r')['raw'][...]
g = zarr.open_group(sys.argv[2], mode='w')
g.create_dataset('0', data=raw, chunks=(25, 50, 50))
g.attrs['multiscales'] = [{'version': '0.4', 'axes': [{'name': n, 'type': 'space', 'unit': 'micrometer'} for n in 'zyx'],
  'datasets': [{'path': '0', 'coordinateTransformations': [{'type': 'scale', 'scale': [0.2837, 0.127, 0.127]}]}]}]
`;
    execFileSync(DEBIAN_PYTHON, ['-c', py, dataFile('plantseg_nuclei_mini', '1135_mini.h5'), store]);
    const mem = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'raw' });
    const cs = new ComputeStore();
    cs.outOfCoreBytes = 100_000; // 1135 is 10^6 bytes
    const r = await cs.open({ volumeId: 'big', path: store });
    expect(r.outOfCore).toEqual({ level: 0, step: 1, size: [100, 100, 100] });
    expect(r.shape).toEqual(mem.shape);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
    for (const plane of ['xy', 'xz', 'yz'] as const) expect(await cs.slice({ volumeId: 'big', plane, index: 37 })).toEqual(volumeSlice(mem, plane, 37));
    expect(await cs.brick({ volumeId: 'big', origin: [10, 10, 10], size: [50, 40, 30], step: 2 })).toEqual(volumeBrick(mem, [10, 10, 10], [50, 40, 30], 2));
    // label deltas go into blocks; whole layers and jobs are refused with the numbers
    const box = { min: [0, 0, 50] as [number, number, number], max: [100, 100, 51] as [number, number, number] };
    expect(cs.setLabels({ volumeId: 'big', layer: 'annotation', box, data: new Uint8Array(10_000).fill(2) })).toEqual({ voxels: 10_000 });
    expect(cs.resident().volumes).toEqual([{ volumeId: 'big', annotation: true, prediction: false }]);
    expect(() => cs.setLabels({ volumeId: 'big', layer: 'annotation', box: null, data: new Uint8Array(10 ** 6) })).toThrow(/is open out of core: a whole-layer label delta needs the whole image/);
    expect(() => cs.image('big')).toThrow(/1135\.ome\.zarr \(100×100×100×1 uint8, 1 MiB\) is open out of core: this job needs the whole image in memory.*SLICEFORM_OUT_OF_CORE_BYTES/);
    expect(() => cs.labelVolume('big')).toThrow(/open out of core/);
    expect(() => cs.layer('big', 'annotation')).toThrow(/a dense annotation layer/);

    // the checksum is the store's identity, the same where a project relocates it (moved with mv)
    const { volumeChecksum } = await import('../../main/services/big-volume.js');
    expect(await volumeChecksum(store)).toBe(r.sha256);
    const { rename } = await import('node:fs/promises');
    await rename(store, `${store}.moved`);
    expect(await volumeChecksum(`${store}.moved`)).toBe(r.sha256);
    await rename(`${store}.moved`, store);
    const { sha256File } = await import('../../main/services/project.js');
    const h5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
    expect(await volumeChecksum(h5)).toBe(await sha256File(h5)); // 1 MB: below the default limit, hashed by its bytes

    // below the limit the same store is read into memory as before
    const cs2 = new ComputeStore();
    const r2 = await cs2.open({ volumeId: 'small', path: store });
    expect(r2.outOfCore).toBeUndefined();
    expect(cs2.image('small').data).toEqual(mem.data);
  });
});

describe('VolumeStore (app process) for an out-of-core volume', () => {
  it('keeps a sparse editor, sends box deltas (per painted block after a compute restart), serves the 3D level of the labels', async () => {
    const { VolumeStore } = await import('../../main/services/volume-store.js');
    const shape = { x: 1024, y: 1024, z: 512, c: 3, t: 1 }; // the bench stack's shape; no voxels are needed here
    const calls: Array<{ method: string; req: Record<string, unknown> }> = [];
    const compute = {
      generation: 1,
      computePid: 123,
      async call(method: string, req: Record<string, unknown>) {
        calls.push({ method, req });
        if (method === 'openVolume')
          return {
            volumeId: req.volumeId,
            format: 'ome-zarr',
            dtype: 'uint16',
            shape,
            spacing: { x: 1, y: 1, z: 1, unit: 'µm' },
            channelNames: ['a', 'b', 'c'],
            channelStats: [],
            sha256: 'a'.repeat(64),
            timepoint: 0,
            metadata: {},
            outOfCore: { level: 2, step: 4, size: [256, 256, 128] },
            reused: false,
          };
        return { voxels: (req.data as Uint8Array | undefined)?.length ?? 0 };
      },
    };
    const host = { emitLabelsChanged() {}, emitVolumeProgress() {}, checkClass() {} };
    const vs = new VolumeStore(host, compute as never);
    const ov = await vs.read('/data/big.ome.zarr', { id: 'big' });
    expect(ov.info.outOfCore).toEqual({ level: 2, step: 4, size: [256, 256, 128] });
    expect(ov.editor.sparse).toBe(true);
    const r = vs.paintStroke({ volumeId: 'big', plane: 'xy', index: 300, classId: 2, radius: 3, points: [[100, 500], [300, 500]] });
    expect(r.box).toEqual({ min: [97, 497, 300], max: [304, 504, 301] });
    await vs.sync(ov);
    const deltas = calls.filter((c) => c.method === 'setLabels');
    expect(deltas).toHaveLength(1);
    expect(deltas[0]!.req.box).toEqual(r.box);
    expect((deltas[0]!.req.data as Uint8Array).length).toBe(207 * 7);
    // a restarted compute process gets the painted blocks, one delta each, never a whole layer
    compute.generation = 2;
    calls.length = 0;
    await vs.sync(ov);
    const again = calls.filter((c) => c.method === 'setLabels');
    expect(again.map((c) => c.req.box)).toEqual([1, 2, 3, 4].map((bx) => ({ min: [bx * 64, 448, 256], max: [bx * 64 + 64, 512, 320] })));
    expect(again.every((c) => c.req.box !== null)).toBe(true);
    // labels for the page: the 3D level (every 4th voxel)
    const lv = vs.labelVolume({ volumeId: 'big', layer: 'annotation' });
    expect([lv.size, lv.step, lv.data.length]).toEqual([[256, 256, 128], 4, 256 * 256 * 128]);
    expect(lv.data[(75 * 256 + 125) * 256 + 50]).toBe(2); // voxel (200, 500, 300)
    expect(vs.labelSlice({ volumeId: 'big', plane: 'xy', index: 300, layer: 'annotation' }).data[500 * 1024 + 200]).toBe(2);
    await expect(vs.exportLabels({ volumeId: 'big', layer: 'annotation', path: '/tmp/x.tif', format: 'tiff' }, [])).rejects.toThrow(
      /out-of-core volume big\.ome\.zarr is exported as an OME-Zarr label store \(format 'ome-zarr', painted chunks only\); a tiff file would be the size of the stack/,
    );
    // the OME-Zarr export writes the painted chunks only; python3-zarr reads the stroke back
    const out = join(mkdtempSync(join(tmpdir(), 'sliceform-export-')), 'labels.ome.zarr');
    const res = await vs.exportLabels({ volumeId: 'big', layer: 'annotation', path: out, format: 'ome-zarr' }, ['bg', 'nucleus']);
    expect(res.path).toBe(out);
    expect(res.bytes).toBeLessThan(2 * 2 ** 20);
    const py = `
import zarr, json, sys, os
g = zarr.open_group(sys.argv[1], 'r')
ds = g.attrs['multiscales'][0]['datasets'][0]['path']
a = g[ds]
s = a[tuple([0] * (a.ndim - 3)) + (300,)]
chunks = sum(1 for r, d, f in os.walk(os.path.join(sys.argv[1], ds)) for n in f if not n.startswith('.'))
print(json.dumps({'shape': list(a.shape), 'chunks': list(a.chunks), 'painted': int((s == 2).sum()), 'other': int((a[tuple([0] * (a.ndim - 3)) + (301,)] != 0).sum()), 'files': chunks, 'label': 'image-label' in g.attrs}))
`;
    const got = JSON.parse(execFileSync(DEBIAN_PYTHON, ['-c', py, out], { encoding: 'utf8' })) as Record<string, unknown>;
    const want = vs.labelSlice({ volumeId: 'big', plane: 'xy', index: 300, layer: 'annotation' }).data.filter((v) => v === 2).length;
    expect(got).toMatchObject({ painted: want, other: 0, files: 4, label: true });
    expect((got.shape as number[]).slice(-3)).toEqual([512, 1024, 1024]);
    rmSync(dirname(out), { recursive: true, force: true });
    expect(vs.clearAnnotation('big').changed).toBeGreaterThan(1000);
    expect(vs.summary('big').classVoxels).toEqual([1024 * 1024 * 512]);
  });
});
