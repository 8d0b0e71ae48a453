/**
 * Objects in batch reports (segment --objects): the runner with a stand-in "model" that writes each real
 * plant-nuclei stack's ground truth as its segmentation (label > 0 -> class 2), so the per-stack object
 * counts are known (54 and 32 nuclei). Inputs are links to the real HDF5 files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, symlink, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBatch, type BatchDeps } from '../../main/batch/runner.js';
import { probeVolume, readVolume, writeImageJTiff } from '../../main/io/index.js';
import { dataFile } from '../helpers/paths.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sf-objects-batch-'));
  await mkdir(join(dir, 'in'));
  for (const s of ['1135', '1136']) await symlink(dataFile('plantseg_nuclei_mini', `${s}_mini.h5`), join(dir, 'in', `${s}.h5`));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const deps: BatchDeps = {
  model: { dir: '/models/truth', fingerprint: 'truth', classNames: ['background', 'nucleus'], inChannels: 1 },
  async probe(path) {
    const i = await probeVolume(path);
    return { x: i.shape.x, y: i.shape.y, z: i.shape.z, c: i.shape.c, spacing: i.spacing };
  },
  async segment(input, _h, out) {
    const gt = await readVolume(input, { dataset: 'label' });
    const data = Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1));
    await writeImageJTiff(out.labelsPath, { data, dtype: 'uint8', shape: gt.shape, spacing: gt.spacing });
    const fg = data.reduce((a, v) => a + (v === 2 ? 1 : 0), 0);
    return { counts: [data.length - fg, fg] };
  },
  async checkOutput() {
    return { ok: false, reason: 'always recompute' };
  },
};

describe('batch reports with objects', () => {
  it('one objects file per stack, a summary per stack in the report, one row per object in objects.csv', async () => {
    const out = join(dir, 'out');
    const res = await runBatch({ inputDir: join(dir, 'in'), outDir: out, objects: true }, deps);
    expect(res.exitCode).toBe(0);
    const byFile = Object.fromEntries(res.report.files.map((r) => [r.file, r]));
    for (const [f, truth] of [['1135.h5', 54], ['1136.h5', 32]] as const) {
      const o = byFile[f]!.objects!;
      expect(o.table).toBe(f.replace('.h5', '_objects.csv'));
      expect(Math.abs(o.count - truth)).toBeLessThanOrEqual(truth * 0.1);
      expect(o.meanVolume_um3).toBeGreaterThan(5);
      const csv = (await readFile(join(out, o.table), 'utf8')).trim().split('\n');
      expect(csv[0]).toMatch(/^id,class,voxels,volume_um3,centroid_z_um/);
      expect(csv.length - 1).toBe(o.count);
    }
    const reportCsv = (await readFile(res.csvPath, 'utf8')).trim().split('\n');
    expect(reportCsv[0]).toContain('objects,objects_table,objects_mean_volume_um3');
    const all = (await readFile(join(out, 'objects.csv'), 'utf8')).trim().split('\n');
    expect(all[0]).toMatch(/^file,id,class,/);
    expect(all.length - 1).toBe(byFile['1135.h5']!.objects!.count + byFile['1136.h5']!.objects!.count);
    expect(all.filter((l) => l.startsWith('1136.h5,')).length).toBe(byFile['1136.h5']!.objects!.count);
  }, 120_000);
});
