// The one range table of the recipe's numeric settings (main/pipeline/settings.ts RECIPE_RANGES): the API's
// recipeSettings and the CLI's checks before any file is read (main/cli/validate.ts) refuse the same values
// with the same message (the CLI adds the dashes). Arithmetic on option values: no data involved.
import { describe, expect, it } from 'vitest';
import { RECIPE_RANGES, inRange, rangeMessage, recipeSettings, showRange, type Range } from '../../main/pipeline/settings.js';
import { RANGES, rangeOpt } from '../../main/cli/validate.js';
import { recipeFromValues } from '../../main/pipeline/options.js';

/** the RecipeSettings field of an option name */
const FIELD: Record<keyof typeof RECIPE_RANGES, string> = {
  minutes: 'minutes',
  iterations: 'iterations',
  threads: 'threads',
  seed: 'seed',
  lr: 'lr',
  'plane-tile': 'planeTile',
  balance: 'balance',
  dice: 'dice',
  batch: 'batch',
  average: 'average',
  levels: 'levels',
  'base-filters': 'baseFilters',
  'validation-at': 'validationAt',
};

/** values just inside and just outside a range */
function probes(r: Range): { ok: number[]; bad: number[] } {
  const step = r.integer ? 1 : 1e-3;
  const ok = [r.minExclusive ? r.min + step : r.min];
  const bad = [r.minExclusive ? r.min : r.min - step, Number.NaN];
  if (r.max !== Infinity) {
    ok.push(r.maxExclusive ? r.max - step : r.max);
    bad.push(r.maxExclusive ? r.max : r.max + step);
  }
  if (r.integer) bad.push(ok[0]! + 0.5);
  return { ok, bad };
}

describe('recipe range table', () => {
  it('holds the documented bounds (the ones the two old tables disagreed on, and the rest)', () => {
    expect(RECIPE_RANGES['plane-tile']).toEqual({ min: 4, max: 512, integer: true });
    expect(RECIPE_RANGES.dice).toEqual({ min: 0, max: 10 });
    expect(RECIPE_RANGES.seed).toEqual({ min: 0, max: 4294967295, integer: true });
    expect(RECIPE_RANGES.balance).toEqual({ min: 0, max: 2 });
    expect(RECIPE_RANGES.average).toEqual({ min: 0, max: 1, maxExclusive: true });
    expect(RECIPE_RANGES.minutes).toEqual({ min: 0, max: 10080, minExclusive: true });
    expect(showRange(RECIPE_RANGES.minutes)).toBe('> 0 and <= 10080');
    expect(showRange(RECIPE_RANGES.lr)).toBe('> 0');
    expect(showRange(RECIPE_RANGES.average)).toBe('in [0, 1)');
    expect(showRange(RECIPE_RANGES.levels)).toBe('1..6');
    expect(inRange(Infinity, RECIPE_RANGES.lr)).toBe(false);
  });

  it('the CLI table is the recipe table for every recipe option (same objects), plus command-only options', () => {
    for (const k of Object.keys(RECIPE_RANGES) as (keyof typeof RECIPE_RANGES)[]) expect(RANGES[k]).toBe(RECIPE_RANGES[k]);
    expect(Object.keys(RANGES).filter((k) => !(k in RECIPE_RANGES)).sort()).toEqual(['checkpoint-minutes', 'folds', 'slice-min-fraction']);
  });

  it('API and CLI accept the bounds and refuse just outside with one message (the CLI adds the dashes)', () => {
    for (const [name, r] of Object.entries(RECIPE_RANGES) as [keyof typeof RECIPE_RANGES, Range][]) {
      const { ok, bad } = probes(r);
      const base = name === 'minutes' || name === 'iterations' ? {} : { iterations: 1 };
      for (const v of ok) {
        expect(() => recipeSettings({ ...base, [FIELD[name]]: v })).not.toThrow();
        expect(rangeOpt({ [name]: String(v) }, name, RANGES[name])).toBe(v);
      }
      for (const v of bad) {
        if (Number.isNaN(v)) {
          expect(() => recipeSettings({ ...base, [FIELD[name]]: v })).toThrow(rangeMessage(name, r, v));
          continue;
        }
        const msg = rangeMessage(name, r, v);
        expect(msg).toMatch(new RegExp(`^${name} must be (an integer|a number) `));
        expect(() => recipeSettings({ ...base, [FIELD[name]]: v })).toThrow(msg);
        expect(() => rangeOpt({ [name]: String(v) }, name, RANGES[name])).toThrow(`--${msg}`);
        // the recipe's CLI parser reports the setting's message with the option's dashes
        if (name !== 'threads') expect(() => recipeFromValues({ ...(base.iterations ? { iterations: '1' } : {}), [name]: String(v) }, 4)).toThrow(`--${msg}`);
      }
    }
  });

  it('spells out the messages the CLI tests expect', () => {
    expect(rangeMessage('plane-tile', RECIPE_RANGES['plane-tile'], -5)).toBe('plane-tile must be an integer 4..512, got -5');
    expect(rangeMessage('dice', RECIPE_RANGES.dice, -1)).toBe('dice must be a number 0..10, got -1');
    expect(rangeMessage('seed', RECIPE_RANGES.seed, -1)).toBe('seed must be an integer 0..4294967295, got -1');
    expect(rangeMessage('average', RECIPE_RANGES.average, 1)).toBe('average must be a number in [0, 1), got 1');
    expect(rangeMessage('lr', RECIPE_RANGES.lr, -1)).toBe('lr must be a number > 0, got -1');
    expect(rangeMessage('minutes', RECIPE_RANGES.minutes, 0)).toBe('minutes must be a number > 0 and <= 10080, got 0');
  });
});
