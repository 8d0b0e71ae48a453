/**
 * Batch acceptance (issue 8) on real files: both plant-nuclei volumes (HDF5), a TIFF copy of one written by
 * Sliceform's own writer, the real 2-channel ImageJ hyperstack and a truncated copy of the TIFF, segmented
 * with a 1-channel model (tiny preset, a few iterations: quality is irrelevant here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';
import { PRESETS } from '../../main/common/engine.js';
import { loadEngine } from '../../main/engine/index.js';
import { probeVolume, readVolume, writeImageJTiff } from '../../main/io/index.js';
import { trainModel } from '../../main/training/trainer.js';
import { saveModelDir } from '../../main/inference/model-dir.js';
import { classesFromTruth, slicesFromTruth, sparseFromSlices } from '../../main/evaluation/slices.js';
import { main } from '../../main/cli/index.js';
import type { BatchReport } from '../../main/batch/report.js';

let dir: string;
let inDir: string;
let modelDir: string;

async function runSegment(outDir: string, extra: string[] = []) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['segment', '--model', modelDir, '--input', inDir, '--out', outDir, '--no-flips', ...extra], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    isTTY: false,
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-batch-accept-'));
  inDir = join(dir, 'in');
  modelDir = join(dir, 'model');
  await import('node:fs/promises').then((fs) => fs.mkdir(inDir));
  const h5 = dataFile('plantseg_nuclei_mini', '1135_mini.h5');
  await copyFile(h5, join(inDir, '1135_mini.h5'));
  await copyFile(dataFile('plantseg_nuclei_mini', '1136_mini.h5'), join(inDir, '1136_mini.h5'));
  await copyFile(dataFile('formats', 'imagej_hyperstack', 'xyzc_16bit__dna_conf_wf.tif'), join(inDir, 'hyperstack_2ch.tif'));
  const image = await readVolume(h5, { dataset: 'raw' });
  await writeImageJTiff(join(inDir, '1135_copy.tif'), image);
  // the corrupt file: the TIFF copy cut in half
  await copyFile(join(inDir, '1135_copy.tif'), join(inDir, 'corrupt.tif'));
  await truncate(join(inDir, 'corrupt.tif'), 500_000);
  await writeFile(join(inDir, 'notes.txt'), 'not a stack, never listed');

  // a 1-channel tiny model, 3 iterations on the middle slice of each axis
  const gt = await readVolume(h5, { dataset: 'label' });
  const dims = { x: 100, y: 100, z: 100 };
  const sparse = sparseFromSlices(classesFromTruth(gt.data, 'instances'), dims, slicesFromTruth(dims, 1));
  const net = { ...PRESETS.tiny };
  const optim = { optimizer: 'adam' as const, lr: 1e-3 };
  const engine = await loadEngine();
  const r = await trainModel(engine, [{ image, labels: { ...gt, data: sparse, dtype: 'uint8' } }], { net, optim, iterations: 3, holdout: 'none', worker: 'inline' });
  await saveModelDir(modelDir, r.model, {
    net,
    optim,
    normalisation: r.normalisation,
    classNames: ['background', 'nucleus'],
    spacing: { z: image.spacing.z, y: image.spacing.y, x: image.spacing.x, unit: image.spacing.unit },
    downsample: [1, 1, 1],
    training: r.summary,
  });
  r.model.dispose();
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('sliceform segment --input FOLDER', () => {
  it('segments the readable 1-channel stacks, reports the corrupt file and the channel mismatch, exits 3, resumes', async () => {
    const outDir = join(dir, 'out');
    const r1 = await runSegment(outDir);
    expect(r1.code).toBe(3);
    const report = JSON.parse(await readFile(join(outDir, 'report.json'), 'utf8')) as BatchReport;
    const rows = Object.fromEntries(report.files.map((f) => [f.file, f]));
    expect(Object.keys(rows).sort()).toEqual(['1135_copy.tif', '1135_mini.h5', '1136_mini.h5', 'corrupt.tif', 'hyperstack_2ch.tif']);
    expect(report.summary).toMatchObject({ total: 5, ok: 3, failed: 2, skipped: 0 });

    // the errors name the file and the problem, in the report and on stderr
    expect(rows['corrupt.tif']!.status).toBe('failed');
    expect(rows['corrupt.tif']!.error).toMatch(/corrupt\.tif: .*(50|truncat|EOF|end of file)/i);
    expect(rows['hyperstack_2ch.tif']!.error).toMatch(/hyperstack_2ch\.tif: has 2 channels but the model .* expects 1/);
    expect(r1.err).toContain('FAILED  corrupt.tif');
    expect(r1.err).toContain('FAILED  hyperstack_2ch.tif');

    // three label volumes whose shapes match their inputs, calibrated like them
    for (const [input, output] of [
      ['1135_mini.h5', '1135_mini.tif'],
      ['1136_mini.h5', '1136_mini.tif'],
      ['1135_copy.tif', '1135_copy.tif'],
    ] as const) {
      const src = await probeVolume(join(inDir, input));
      const seg = await probeVolume(join(outDir, output));
      expect([seg.shape.x, seg.shape.y, seg.shape.z, seg.shape.c]).toEqual([src.shape.x, src.shape.y, src.shape.z, 1]);
      expect(seg.dtype).toBe('uint8');
      expect(seg.spacing.unit).toBe('µm');
      expect(seg.spacing.x).toBeCloseTo(src.spacing.x, 5);
      expect(seg.spacing.z).toBeCloseTo(src.spacing.z, 5);
      const row = rows[input]!;
      expect(row).toMatchObject({ status: 'ok', output, shape: [100, 100, 100, 1] });
      expect(row.voxels.background! + row.voxels.nucleus!).toBe(1_000_000);
      const vox = src.spacing.x * src.spacing.y * src.spacing.z;
      expect(row.volumesUm3!.nucleus).toBeCloseTo(row.voxels.nucleus! * vox, 3);
    }
    // the same data through HDF5 and through our TIFF gives the same segmentation
    expect(rows['1135_copy.tif']!.voxels).toEqual(rows['1135_mini.h5']!.voxels);
    // an independent reader agrees on shape and calibration
    const py = execFileSync(
      DEBIAN_PYTHON,
      ['-c', `import tifffile,sys; t=tifffile.TiffFile(sys.argv[1]); print(t.series[0].shape, t.imagej_metadata.get('spacing'), t.imagej_metadata.get('unit'))`, join(outDir, '1136_mini.tif')],
      { encoding: 'utf8' },
    ).trim();
    expect(py).toMatch(/^\(100, 100, 100\) 0\.2837\d* micron$/);
    const csv = (await readFile(join(outDir, 'report.csv'), 'utf8')).trim().split('\n');
    expect(csv).toHaveLength(6);
    expect(csv.find((l) => l.startsWith('hyperstack_2ch.tif'))).toMatch(/,failed,133,130,45,2,/);

    // rerun: the three finished files are verified and skipped, untouched
    const mtimes = await Promise.all(['1135_mini.tif', '1136_mini.tif', '1135_copy.tif'].map(async (f) => (await stat(join(outDir, f))).mtimeMs));
    const r2 = await runSegment(outDir, ['--json-progress']);
    expect(r2.code).toBe(3);
    const s2 = JSON.parse(r2.out) as { summary: BatchReport['summary'] };
    expect(s2.summary).toMatchObject({ ok: 0, skipped: 3, failed: 2 });
    const events = r2.err.split('\n').map((l) => JSON.parse(l) as { event: string; status?: string });
    expect(events.filter((e) => e.event === 'file-done' && e.status === 'skipped')).toHaveLength(3);
    expect(await Promise.all(['1135_mini.tif', '1136_mini.tif', '1135_copy.tif'].map(async (f) => (await stat(join(outDir, f))).mtimeMs))).toEqual(mtimes);

    // a damaged output (cut short) is detected and redone; the others are still skipped
    await truncate(join(outDir, '1136_mini.tif'), 300_000);
    const r3 = await runSegment(outDir);
    expect(r3.code).toBe(3);
    const rep3 = JSON.parse(await readFile(join(outDir, 'report.json'), 'utf8')) as BatchReport;
    expect(rep3.files.find((f) => f.file === '1136_mini.h5')!.status).toBe('ok');
    expect(rep3.summary).toMatchObject({ ok: 1, skipped: 2, failed: 2 });
    expect((await probeVolume(join(outDir, '1136_mini.tif'))).shape.z).toBe(100);
  });

  it('exits 2 when nothing can run: a folder that is not a model', async () => {
    const r = await main(['segment', '--model', inDir, '--input', inDir, '--out', join(dir, 'out2')], { out: () => {}, err: () => {}, isTTY: false });
    expect(r).toBe(2);
  });
});
