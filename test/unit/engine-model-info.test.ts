// `sliceform model-info`: the acceptance JSON for the paper preset, overrides, and bad tiles.
import { describe, expect, it } from 'vitest';
import { main } from '../../main/cli/index.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s), isTTY: false });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('sliceform model-info', () => {
  it('prints the paper preset: 19,069,955 params, 132x132x116 -> 44x44x28 (x,y,z)', async () => {
    const r = await run(['model-info', '--preset', 'paper']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.params).toBe(19069955);
    expect(j.bnParams).toBe(4672);
    expect(j.input).toEqual([132, 132, 116]);
    expect(j.output).toEqual([44, 44, 28]);
    expect(j.engine).toMatch(/^native/);
  });

  it('applies overrides and keeps x,y,z order for anisotropic tiles', async () => {
    const r = await run([
      'model-info',
      '--levels',
      '3',
      '--base',
      '8',
      '--in',
      '1',
      '--classes',
      '2',
      '--input',
      '60,68,44',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.config).toMatchObject({ levels: 3, baseFilters: 8, inChannels: 1, numClasses: 2 });
    expect(j.input).toEqual([60, 68, 44]);
    expect(j.output).toEqual([20, 28, 4]);
    // 3 levels, base 8, 1 in, 2 classes: conv+bias count worked out by hand
    const c = (i: number, o: number) => 27 * i * o + o;
    const want =
      c(1, 8) +
      c(8, 16) +
      c(16, 16) +
      c(16, 32) +
      c(32, 32) +
      c(32, 64) +
      8 * 64 * 64 +
      c(64 + 32, 32) +
      c(32, 32) +
      8 * 32 * 32 +
      c(32 + 16, 16) +
      c(16, 16) +
      (16 * 2 + 2);
    expect(j.params).toBe(want);
    const same = JSON.parse(
      (await run(['model-info', '--preset', 'tiny', '--padding', 'same', '--input', '32,32,16'])).out,
    );
    expect(same.output).toEqual([32, 32, 16]);
  });

  it('refuses an invalid tile with the nearest valid one (exit 2)', async () => {
    const r = await run(['model-info', '--input', '133,132,116']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--input 133,132,116 is not a valid tile .* nearest valid: 132,132,116/);
    expect((await run(['model-info', '--padding', 'full'])).code).toBe(2);
    expect((await run(['model-info', '--preset', 'huge'])).err).toMatch(
      /--preset must be one of paper, desktop, tiny/,
    );
  });
});
