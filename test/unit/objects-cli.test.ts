/**
 * `sliceform objects` and `sliceform evaluate --instances` end to end on the real plant-nuclei ground truth
 * (1135: 54 nuclei, several touching) and the real ovule membranes (50 cells), plus the bad inputs the issue
 * names (labels of another shape, a float label file, an empty mask), which must exit 2 naming the file.
 * The few synthetic files are bad inputs no real file provides, written with our TIFF writer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile, DEBIAN_PYTHON } from '../helpers/paths.js';
import { readVolume, writeImageJTiff } from '../../main/io/index.js';
import { main } from '../../main/cli/index.js';

let dir: string;
const NUC = dataFile('plantseg_nuclei_mini', '1135_mini.h5');

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s), isTTY: false });
  let json = null;
  try {
    json = out.length ? JSON.parse(out.join('')) : null;
  } catch {
    /* not JSON */
  }
  return { code, json, err: err.join('\n') };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-objects-cli-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('sliceform objects on the plant-nuclei ground truth taken as a semantic mask', () => {
  let res: Awaited<ReturnType<typeof run>>;
  const csv = () => join(dir, 'gt.csv');
  const inst = () => join(dir, 'gt-inst.tif');
  beforeAll(async () => {
    res = await run(['objects', '--labels', NUC, '--labels-dataset', 'label', '--labels-mode', 'foreground', '--image', NUC, '--dataset', 'raw', '--out', csv(), '--instances', inst()]);
  }, 120_000);

  it('counts within ±10 % of the 54 true nuclei where connected components alone merge touching ones', async () => {
    expect(res.code).toBe(0);
    expect(res.json.objects).toBeGreaterThanOrEqual(49);
    expect(res.json.objects).toBeLessThanOrEqual(59);
    expect(res.json.splitByWatershed).toBeGreaterThan(0);
    const cc = await run(['objects', '--labels', NUC, '--labels-dataset', 'label', '--labels-mode', 'foreground', '--split', 'none', '--json', join(dir, 'cc.json')]);
    expect(cc.code).toBe(0);
    expect(cc.json.objects).toBe(44); // 26-connected components (48 with 6-connectivity: the figure)
  }, 120_000);

  it('writes a CSV with the listed columns in µm, one row per object, volumes adding up to the mask', async () => {
    const text = await readFile(csv(), 'utf8');
    const lines = text.trim().split('\n');
    const head = lines[0]!.split(',');
    for (const c of ['id', 'class', 'volume_um3', 'centroid_z_um', 'centroid_y_um', 'centroid_x_um', 'bbox_z0_vox', 'bbox_x1_vox', 'equivalent_diameter_um', 'sphericity']) expect(head).toContain(c);
    expect(head.some((h) => h.startsWith('mean_intensity_'))).toBe(true);
    expect(head.some((h) => h.startsWith('max_intensity_'))).toBe(true);
    expect(lines.length - 1).toBe(res.json.objects);
    const col = (name: string) => lines.slice(1).map((l) => Number(l.split(',')[head.indexOf(name)]));
    const gt = await readVolume(NUC, { dataset: 'label' });
    let fg = 0;
    for (let i = 0; i < gt.data.length; i++) if (gt.data[i]! > 0) fg++;
    const voxUm3 = gt.spacing.x * gt.spacing.y * gt.spacing.z;
    const total = col('volume_um3').reduce((a, b) => a + b, 0);
    expect(total).toBeCloseTo(fg * voxUm3, 1);
    // every object is class 2, every centroid inside the volume (µm), diameters of nuclei (1..8 µm)
    expect(new Set(col('class'))).toEqual(new Set([2]));
    for (const z of col('centroid_z_um')) expect(z).toBeLessThanOrEqual(100 * gt.spacing.z);
    const big = col('equivalent_diameter_um').filter((v) => v > 2);
    expect(big.length).toBeGreaterThan(30);
    for (const v of col('equivalent_diameter_um')) expect(v).toBeLessThan(8);
    const json = JSON.parse(await readFile(join(dir, 'gt.json'), 'utf8'));
    expect(json.objects.length).toBe(res.json.objects);
    expect(json.spacing_um.z).toBeCloseTo(gt.spacing.z, 6);
  });

  it('exports the instances as a calibrated uint16 ImageJ TIFF (tifffile reads the ids and the spacing)', () => {
    const py = `import tifffile, numpy as np\nt = tifffile.TiffFile(${JSON.stringify(inst())})\na = t.asarray()\nprint(a.dtype, a.shape, int(a.max()), len(np.unique(a)) - 1, t.imagej_metadata.get('spacing'), t.imagej_metadata.get('unit'))`;
    const out = execFileSync(DEBIAN_PYTHON, ['-c', py], { encoding: 'utf8' }).trim().split(' ');
    expect(out[0]).toBe('uint16');
    expect(out.slice(1, 4).join(' ')).toBe('(100, 100, 100)');
    expect(Number(out[4])).toBe(res.json.objects);
    expect(Number(out[5])).toBe(res.json.objects);
    expect(Number(out[6])).toBeCloseTo(0.2837, 3);
    expect(out[7]).toBe('micron');
  });

  it('writes an OME-Zarr with the image and the ids as labels/objects (python3-zarr reads both and the scale)', async () => {
    const z = join(dir, 'gt.zarr');
    const r = await run(['objects', '--labels', NUC, '--labels-dataset', 'label', '--labels-mode', 'foreground', '--image', NUC, '--dataset', 'raw', '--zarr', z, '--json', join(dir, 'z.json')]);
    expect(r.code).toBe(0);
    const py = `import zarr, numpy as np, h5py, tifffile, json
g = zarr.open_group(${JSON.stringify(z)}, mode='r')
lab = g['labels/objects/0'][...]; img = g['0'][...]
raw = h5py.File(${JSON.stringify(NUC)}, 'r')['raw'][...]
tif = tifffile.imread(${JSON.stringify(inst())})
print(json.dumps(dict(labels=g['labels'].attrs['labels'], dtype=str(lab.dtype), shape=list(lab.shape), same_ids=bool((lab == tif).all()), same_img=bool((img == raw).all()),
  scale=g['labels/objects'].attrs['multiscales'][0]['datasets'][0]['coordinateTransformations'][0]['scale'], axes=[a['name'] for a in g.attrs['multiscales'][0]['axes']],
  image_label='image-label' in g['labels/objects'].attrs)))`;
    const j = JSON.parse(execFileSync(DEBIAN_PYTHON, ['-c', py], { encoding: 'utf8' }));
    expect(j).toMatchObject({ labels: ['objects'], dtype: 'uint16', shape: [100, 100, 100], same_ids: true, same_img: true, axes: ['z', 'y', 'x'], image_label: true });
    expect(j.scale[0]).toBeCloseTo(0.2837, 3);
    expect(j.scale[2]).toBeCloseTo(0.1268, 3);
  }, 120_000);

  it('evaluate --instances: AP@0.5 of the split mask against the true instances, count error', async () => {
    const r = await run(['evaluate', '--instances', '--pred', inst(), '--truth', NUC, '--truth-dataset', 'label']);
    expect(r.code).toBe(0);
    expect(r.json.trueObjects).toBe(54);
    expect(r.json.predObjects).toBe(res.json.objects);
    expect(r.json.countError).toBe(res.json.objects - 54);
    const ap50 = r.json.thresholds.find((t: { threshold: number }) => t.threshold === 0.5);
    expect(ap50.ap).toBeGreaterThan(0.85);
    expect(ap50.tp + ap50.fn).toBe(54);
    // the same pipeline in one step from the semantic mask (--pred-semantic) gives the same scores
    const sem = join(dir, 'sem.tif');
    const gt = await readVolume(NUC, { dataset: 'label' });
    await writeImageJTiff(sem, { data: Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1)), dtype: 'uint8', shape: gt.shape, spacing: gt.spacing });
    const r2 = await run(['evaluate', '--instances', '--pred-semantic', '--pred', sem, '--truth', NUC, '--truth-dataset', 'label']);
    expect(r2.code).toBe(0);
    expect(r2.json.thresholds).toEqual(r.json.thresholds);
  }, 120_000);
});

describe('sliceform objects --boundary-class on the ovule membranes (cells enclosed by membrane)', () => {
  it('finds most of the 50 cells of the real ovule crop from its membrane truth', async () => {
    const m = await readVolume(dataFile('plantseg_ovule_membrane', 'sample_ovule_membrane_truth.tif'));
    const gt = await readVolume(dataFile('plantseg_ovule_membrane', 'sample_ovule.h5'), { dataset: 'label' });
    // derived semantic task of the data README: membrane -> class 2, interior -> class 1, with the truth's voxel size
    const seg = join(dir, 'ovule-seg.tif');
    await writeImageJTiff(seg, { data: Uint8Array.from(m.data, (v) => (v > 0 ? 2 : 1)), dtype: 'uint8', shape: m.shape, spacing: gt.spacing });
    const inst = join(dir, 'ovule-inst.tif');
    const r = await run(['objects', '--labels', seg, '--boundary-class', '2', '--instances', inst, '--json', join(dir, 'ovule.json')]);
    expect(r.code).toBe(0);
    expect(r.json.objects).toBeGreaterThanOrEqual(40);
    expect(r.json.objects).toBeLessThanOrEqual(55);
    const e = await run(['evaluate', '--instances', '--pred', inst, '--truth', dataFile('plantseg_ovule_membrane', 'sample_ovule.h5'), '--truth-dataset', 'label']);
    expect(e.json.trueObjects).toBe(50);
    expect(e.json.thresholds[0].ap).toBeGreaterThan(0.7);
    // every voxel, membrane included, belongs to a cell: the volumes add up to the whole stack
    const j = JSON.parse(await readFile(join(dir, 'ovule.json'), 'utf8'));
    const vox = j.objects.reduce((a: number, o: { voxels: number }) => a + o.voxels, 0);
    expect(vox).toBe(m.data.length);
  }, 120_000);
});

describe('bad input exits 2 naming the file and the problem', () => {
  it('labels of another shape than the image', async () => {
    const small = join(dir, 'small.tif');
    await writeImageJTiff(small, { data: new Uint8Array(8).fill(2), dtype: 'uint8', shape: { x: 2, y: 2, z: 2, c: 1, t: 1 }, spacing: { x: 1, y: 1, z: 1, unit: 'µm' } });
    const r = await run(['objects', '--labels', small, '--image', NUC, '--out', join(dir, 'x.csv')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(small);
    expect(r.err).toMatch(/2x2x2.*100x100x100/);
  });

  it('a float label file (a probability map)', async () => {
    const f = join(dir, 'float.tif');
    await writeImageJTiff(f, { data: new Float32Array(8).fill(0.5), dtype: 'float32', shape: { x: 2, y: 2, z: 2, c: 1, t: 1 }, spacing: { x: 1, y: 1, z: 1, unit: 'µm' } });
    const r = await run(['objects', '--labels', f, '--out', join(dir, 'x.csv')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(f);
    expect(r.err).toMatch(/integers.*float32/);
  });

  it('an empty mask (no voxel of an object class)', async () => {
    const f = join(dir, 'empty.tif');
    await writeImageJTiff(f, { data: new Uint8Array(8).fill(1), dtype: 'uint8', shape: { x: 2, y: 2, z: 2, c: 1, t: 1 }, spacing: { x: 1, y: 1, z: 1, unit: 'µm' } });
    const r = await run(['objects', '--labels', f, '--out', join(dir, 'x.csv')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(f);
    expect(r.err).toMatch(/empty mask/);
    const e = await run(['evaluate', '--instances', '--pred', f, '--truth', join(dir, 'empty0.tif')]);
    expect(e.code).toBe(2);
  });
});
