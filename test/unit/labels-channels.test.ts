// Issue 18 item 6: a 3D label array written by tifffile's imwrite(imagej=True) carries channels=N in its
// ImageJ metadata. When the image has N slices and the same x/y, the labels are read as N slices (with a
// warning saying why); otherwise the error says the planes are marked as channels and names the fix.
// The file is the real ground truth of 1136 on its middle slices, written by Debian's tifffile as a user would.
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, DEBIAN_PYTHON, dataFile } from '../helpers/paths.js';
import { readLabels } from '../../main/inference/files.js';
import { readVolume } from '../../main/io/index.js';
import type { Volume } from '../../main/common/volume.js';

const OUT = join(ARTIFACTS, 'labels-channels');
const FILE = join(OUT, 'labels-imagej-3d.tif');

beforeAll(() => {
  mkdirSync(OUT, { recursive: true });
  execFileSync(DEBIAN_PYTHON, [
    '-c',
    `import h5py, numpy as np, tifffile
g = np.asarray(h5py.File('${dataFile('plantseg_nuclei_mini', '1136_mini.h5')}')['label'])[:, :40, :50]
s = np.zeros(g.shape, np.uint8)
s[5] = np.where(g[5] > 0, 2, 1)
tifffile.imwrite('${FILE}', s, imagej=True)
t = tifffile.TiffFile('${FILE}')
assert 'channels=100' in t.pages[0].description, t.pages[0].description`,
  ]);
});

describe('labels whose metadata says channels where the image has slices', () => {
  it('reads them as slices when the image has that many slices, with a warning', async () => {
    const raw = await readVolume(FILE);
    const image = { ...raw, shape: { x: 50, y: 40, z: 100, c: 1, t: 1 }, source: 'image.h5' } as Volume;
    const warnings: string[] = [];
    expect(raw.shape).toMatchObject({ c: 100, z: 1 }); // the premise: tifffile marked the planes as channels
    const v = await readLabels(FILE, image, undefined, (w) => warnings.push(w));
    expect(v.shape).toMatchObject({ x: 50, y: 40, z: 100, c: 1 });
    // slice 5 holds the painted plane, the others are unannotated
    const plane = 50 * 40;
    let painted = 0;
    for (let i = 0; i < v.data.length; i++) if (v.data[i]) painted++;
    expect(painted).toBe(plane);
    for (let i = 5 * plane; i < 6 * plane; i++) expect(v.data[i]).toBeGreaterThan(0);
    expect(warnings.join()).toMatch(/metadata says 100 channels of one slice; read as 100 slices/);
  });

  it('says the planes are marked as channels and names the fix when the image does not match', async () => {
    const raw = await readVolume(FILE);
    const image = { ...raw, shape: { x: 50, y: 40, z: 60, c: 1, t: 1 }, source: 'image.h5' } as Volume;
    await expect(readLabels(FILE, image)).rejects.toThrow(/its 100 planes are marked as channels, and the image has 60 slices.*metadata=\{'axes': 'ZYX'\}/);
  });
});
