import { afterEach, describe, expect, it } from 'vitest';
import { main, takeEngineOption } from '../../main/cli/index.js';

describe('global --engine option', () => {
  const saved = process.env.SLICEFORM_ENGINE;
  afterEach(() => {
    if (saved === undefined) delete process.env.SLICEFORM_ENGINE;
    else process.env.SLICEFORM_ENGINE = saved;
  });

  it('is taken out of argv wherever it stands', () => {
    expect(takeEngineOption(['--engine', 'tfjs', 'densify', '--image', 'a.tif'])).toEqual({
      argv: ['densify', '--image', 'a.tif'],
      engine: 'tfjs',
    });
    expect(takeEngineOption(['segment', '--engine=native', '--model', 'm'])).toEqual({
      argv: ['segment', '--model', 'm'],
      engine: 'native',
    });
    expect(takeEngineOption(['info', 'x.tif'])).toEqual({ argv: ['info', 'x.tif'], engine: undefined });
  });

  it('rejects unknown engines and a missing value with exit code 2', async () => {
    const err: string[] = [];
    expect(await main(['--engine', 'cuda', 'system'], { out: () => {}, err: (s) => err.push(s) })).toBe(2);
    expect(err.join('')).toMatch(/--engine must be native or tfjs, got "cuda"/);
    expect(await main(['system', '--engine'], { out: () => {}, err: (s) => err.push(s) })).toBe(2);
    expect(err.join('')).toMatch(/--engine needs a value/);
  });

  it('selects the engine that `system` reports as the override', async () => {
    delete process.env.SLICEFORM_ENGINE;
    const out: string[] = [];
    expect(await main(['system', '--engine', 'tfjs'], { out: (s) => out.push(s), err: () => {} })).toBe(0);
    expect(JSON.parse(out.join('')).override).toBe('tfjs');
  });
});
