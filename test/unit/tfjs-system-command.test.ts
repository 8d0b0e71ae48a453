/** `sliceform system`: which engine loads here, and the TF.js engine's backend report. */
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../main/cli/index.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s), isTTY: false });
  return { code, out: out.join(''), err: err.join('') };
}

const saved = process.env.SLICEFORM_ENGINE;
afterEach(() => {
  if (saved === undefined) delete process.env.SLICEFORM_ENGINE;
  else process.env.SLICEFORM_ENGINE = saved;
});

describe('sliceform system', () => {
  it('reports both engines; the TF.js one runs on the cpu backend here and says why tfjs-node is not used', async () => {
    delete process.env.SLICEFORM_ENGINE;
    const r = await run(['system']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(Object.keys(j.engines).sort()).toEqual(['native', 'tfjs']);
    expect(j.engines.tfjs).toMatchObject({ ok: true, backend: 'cpu', devices: ['cpu'], threads: 1 });
    expect(j.engines.tfjs.version).toMatch(/^@tensorflow\/tfjs@4\.22\./);
    // neither optional package is installed in this checkout
    expect(j.engines.tfjs.notes).toEqual(['@tensorflow/tfjs-node-gpu: not installed', '@tensorflow/tfjs-node: not installed']);
    // the default is native exactly when the addon loads
    expect(j.default).toBe(j.engines.native.ok ? 'native' : 'tfjs');
    if (!j.engines.native.ok) expect(j.engines.native.error).toMatch(/native/i);
  });
  it('SLICEFORM_ENGINE=tfjs makes TF.js the default', async () => {
    process.env.SLICEFORM_ENGINE = 'tfjs';
    const j = JSON.parse((await run(['system'])).out);
    expect(j.override).toBe('tfjs');
    expect(j.default).toBe('tfjs');
  });
  it('rejects an unknown --engine with exit code 2', async () => {
    const r = await run(['system', '--engine', 'cuda']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--engine must be native or tfjs, got "cuda"/);
  });
});
