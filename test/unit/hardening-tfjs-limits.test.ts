/**
 * Issue 14 item 11: `sliceform system` (and the app's status line, through engineLimitsShort) says plainly
 * what the TF.js fallback can and cannot do. No data needed: the engine is only loaded, not run.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../main/cli/index.js';
import { engineLimits, engineLimitsShort } from '../../main/common/engine-limits.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataFile } from '../helpers/paths.js';

describe('TF.js fallback: its limits in plain words', () => {
  it('sliceform system --engine tfjs prints them in the JSON and on stderr', async () => {
    let out = '';
    let err = '';
    const code = await main(['system', '--engine', 'tfjs'], { out: (s) => (out += s), err: (s) => (err += s), isTTY: false });
    expect(code).toBe(0);
    const j = JSON.parse(out);
    expect(j.engines.tfjs.ok).toBe(true);
    expect(j.engines.tfjs.backend).toBe('cpu');
    expect(j.engines.tfjs.limits).toMatch(/65-140x slower than the native engine for training and 190-310x for prediction/);
    expect(j.engines.tfjs.limits).toMatch(/does not finish in minutes/);
    expect(j.engines.tfjs.limits).toMatch(/--preset tiny --no-flips/);
    expect(j.engines.tfjs.limits).toMatch(/wasm backend is no way out/);
    expect(j.limits).toBe(j.engines.tfjs.limits);
    expect(err).toContain('note: TF.js fallback (cpu backend, pure JavaScript, one thread)');
  }, 60_000);

  it('a command that runs the TF.js engine says so on stderr before it starts', async () => {
    const saved = process.env.SLICEFORM_ENGINE;
    let err = '';
    try {
      // real input; the model folder is missing, so the run stops right after the engine loaded
      const args = ['--engine', 'tfjs', 'segment', '--model', join(tmpdir(), 'no-such-model-dir'), '--input', dataFile('plantseg_nuclei_mini', '1135_mini.h5'), '--out', join(tmpdir(), 'x-seg.tif')];
      const code = await main(args, { out: () => {}, err: (s) => (err += s + '\n'), isTTY: false });
      expect(code).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.SLICEFORM_ENGINE;
      else process.env.SLICEFORM_ENGINE = saved;
    }
    expect(err).toContain("note: the TF.js fallback is 65-310x slower than the native engine: densify small crops only (tiny preset), or build the native addon (see 'sliceform system')");
    expect(err).toMatch(/no-such-model-dir: not a Sliceform model folder/);
  }, 60_000);

  it('the native engine has no such note; the tensorflow backend a mild one', () => {
    expect(engineLimits({ name: 'native', backend: 'cpu' })).toBeNull();
    expect(engineLimitsShort({ name: 'native' })).toBeNull();
    expect(engineLimits({ name: 'tfjs', backend: 'tensorflow' })).toMatch(/libtensorflow speed/);
    expect(engineLimitsShort({ name: 'tfjs', backend: 'tensorflow' })).toBeNull();
    expect(engineLimitsShort({ name: 'tfjs', backend: 'cpu' })).toMatch(/65-310x slower/);
  });
});
