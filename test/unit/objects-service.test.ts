/**
 * The app's objects service (main/services/objects-service.ts) on the real 1135 ground truth as the prediction
 * layer (label > 0 -> class 2): compute, the table, id slices, merge / split / undo, export. The volume store
 * is a stand-in holding exactly what the service reads (info and prediction); no compute process needed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readVolume } from '../../main/io/index.js';
import { ObjectsService } from '../../main/services/objects-service.js';
import type { VolumeStore } from '../../main/services/volume-store.js';
import type { ObjectsTable } from '../../main/common/api.js';
import { dataFile, DEBIAN_PYTHON } from '../helpers/paths.js';

let svc: ObjectsService;
let t0: ObjectsTable;

beforeAll(async () => {
  const gt = await readVolume(dataFile('plantseg_nuclei_mini', '1135_mini.h5'), { dataset: 'label' });
  const prediction = Uint8Array.from(gt.data, (v) => (v > 0 ? 2 : 1));
  const ov = { info: { id: 'v1', name: '1135', shape: gt.shape, spacing: gt.spacing }, prediction };
  const store = { get: (id: string) => (id === 'v1' ? ov : (() => { throw new Error('unknown'); })()) } as unknown as VolumeStore;
  svc = new ObjectsService(store);
  t0 = svc.compute({ volumeId: 'v1' });
}, 60_000);

describe('objects service', () => {
  it('computes the table: ~54 nuclei with voxel centroids inside their bounding boxes', () => {
    expect(t0.count).toBeGreaterThanOrEqual(49);
    expect(t0.count).toBeLessThanOrEqual(59);
    for (const o of t0.objects) {
      expect(o.class).toBe(2);
      expect(o.volumeUm3).toBeGreaterThan(0);
      for (let a = 0; a < 3; a++) {
        expect(o.centroid[a]).toBeGreaterThanOrEqual(o.bbox[a]! - 1);
        expect(o.centroid[a]).toBeLessThanOrEqual(o.bbox[a + 3]!);
      }
    }
    expect(() => svc.get('v2')).toThrow(/no objects yet/);
  });

  it('an object slice shows the object at its centroid', () => {
    const big = [...t0.objects].sort((a, b) => b.voxels - a.voxels)[0]!;
    const [x, y, z] = big.centroid;
    const sl = svc.slice({ volumeId: 'v1', plane: 'xy', index: z });
    expect([sl.width, sl.height]).toEqual([100, 100]);
    expect(sl.ids[y * 100 + x]).toBe(big.id);
    const xz = svc.slice({ volumeId: 'v1', plane: 'xz', index: y });
    expect(xz.ids[z * 100 + x]).toBe(big.id);
  });

  it('merge two objects, split one along a line, undo both', () => {
    const [a, b] = t0.objects;
    const m = svc.merge({ volumeId: 'v1', ids: [a!.id, b!.id] });
    expect(m.count).toBe(t0.count - 1);
    expect(m.undoDepth).toBe(1);
    const merged = m.objects.find((o) => o.id === Math.min(a!.id, b!.id))!;
    expect(merged.voxels).toBe(a!.voxels + b!.voxels);
    // split the biggest object by a vertical line through its centroid in its xy slice
    const big = [...m.objects].sort((p, q) => q.voxels - p.voxels)[0]!;
    const [cx, cy, cz] = big.centroid;
    const s = svc.split({ volumeId: 'v1', plane: 'xy', index: cz, line: [[cx, cy - 15], [cx, cy + 15]] });
    expect(s.count).toBe(m.count + 1);
    const parts = s.objects.filter((o) => !m.objects.some((q) => q.id === o.id && q.voxels === o.voxels));
    expect(parts.reduce((acc, o) => acc + o.voxels, 0)).toBe(big.voxels);
    expect(() => svc.split({ volumeId: 'v1', plane: 'xy', index: cz, line: [[0, 0], [0.2, 0.2]] })).toThrow(/longer line/);
    expect(svc.undo('v1').count).toBe(m.count);
    const back = svc.undo('v1');
    expect(back.count).toBe(t0.count);
    expect(back.objects.map((o) => [o.id, o.voxels])).toEqual(t0.objects.map((o) => [o.id, o.voxels]));
    expect(() => svc.undo('v1')).toThrow(/nothing to undo/);
  });

  it('exports the instance labels (uint16 ImageJ TIFF) and the table (CSV)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sf-objsvc-'));
    const r = await svc.export({ volumeId: 'v1', path: join(dir, 'inst.tif'), csvPath: join(dir, 'obj.csv') });
    expect(r.bytes).toBeGreaterThan(2_000_000);
    const out = execFileSync(DEBIAN_PYTHON, ['-c', `import tifffile, numpy as np; a = tifffile.imread(${JSON.stringify(r.path)}); print(a.dtype, len(np.unique(a)) - 1)`], { encoding: 'utf8' }).trim();
    expect(out).toBe(`uint16 ${t0.count}`);
  });
});
