import { describe, expect, it } from 'vitest';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS } from '../helpers/paths.js';
import { readModelManifest, MODEL_FORMAT } from '../../main/inference/model-dir.js';
import { resolveNet } from '../../main/training/presets.js';

const DIR = join(ARTIFACTS, 'model-dir-unit');

async function manifestDir(name: string, body: unknown): Promise<string> {
  const d = join(DIR, name);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'model.json'), typeof body === 'string' ? body : JSON.stringify(body));
  return d;
}

const good = {
  format: MODEL_FORMAT,
  version: 1,
  net: resolveNet('desktop', 1, 2),
  optim: { optimizer: 'adam', lr: 0.001 },
  normalisation: { method: 'percentile-standardise', percentiles: [1, 99.8], channels: [{ lo: 2, hi: 160, mean: 0.2, std: 0.2 }] },
  classNames: ['background', 'nucleus'],
  spacing: { z: 0.28, y: 0.13, x: 0.13, unit: 'µm' },
  weights: 'weights.pt',
  training: null,
};

describe('model folder manifests', () => {
  it('reads a valid manifest and fills defaults', async () => {
    await rm(DIR, { recursive: true, force: true });
    const m = await readModelManifest(await manifestDir('good', good));
    expect(m.classNames).toEqual(['background', 'nucleus']);
    expect(m.downsample).toEqual([1, 1, 1]);
    expect(m.net.numClasses).toBe(2);
  });
  it('explains what is wrong with a bad folder', async () => {
    await expect(readModelManifest(join(DIR, 'missing'))).rejects.toThrow(/missing: not a Sliceform model folder \(no model\.json\)/);
    await expect(readModelManifest(await manifestDir('badjson', '{"format":'))).rejects.toThrow(/model\.json is not valid JSON/);
    await expect(readModelManifest(await manifestDir('other', { format: 'something' }))).rejects.toThrow(/not a sliceform-model manifest/);
    await expect(readModelManifest(await manifestDir('newer', { ...good, version: 99 }))).rejects.toThrow(/version 99 is newer/);
    const { normalisation: _n, ...noNorm } = good;
    void _n;
    await expect(readModelManifest(await manifestDir('nonorm', noNorm))).rejects.toThrow(/lacks "normalisation"/);
    await expect(readModelManifest(await manifestDir('channels', { ...good, net: resolveNet('desktop', 3, 2) }))).rejects.toThrow(/normalisation has 1 channels, the network 3/);
  });
  it('presets resolve with the data channel and class counts', () => {
    expect(resolveNet('paper', 2, 4)).toMatchObject({ inChannels: 2, numClasses: 4, levels: 4, baseFilters: 32 });
    expect(resolveNet('tiny', 1, 1).numClasses).toBe(2);
    expect(() => resolveNet('huge', 1, 2)).toThrow(/unknown preset "huge"/);
  });
});
