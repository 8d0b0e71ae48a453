/**
 * The live panel's text and plot helpers that need no browser (renderer/src/render/loss-plot.ts,
 * renderer/src/panels/jobs.ts): the progress line never reads "iteration 0 · loss NaN", the loss plot's axes
 * get sensible ticks, and suggested slices are named with Fiji's 1-based numbers. Synthetic progress events:
 * these are formatting rules, no data file covers them.
 */
import { describe, expect, it } from 'vitest';
import type { TrainProgress } from '../../main/common/api.js';
import { linearTicks, logTicks, progressText, tickLabel } from '../../renderer/src/render/loss-plot.js';
import { suggestionLabel } from '../../renderer/src/panels/jobs.js';

const base: TrainProgress = { jobId: 'j', iteration: 0, loss: Number.NaN, voxelsPerSecond: 0, elapsedSeconds: 0, fraction: 0 };

describe('training progress text', () => {
  it('says "starting…" before the first step, never "iteration 0" or "NaN"', () => {
    expect(progressText(base)).toBe('starting…');
    expect(progressText({ ...base, iteration: 3, loss: Number.NaN })).toBe('starting…');
    expect(progressText({ ...base, iteration: 0, loss: 0.5 })).toBe('starting…');
    for (const p of [base, { ...base, iteration: 0, loss: 0.4 }, { ...base, iteration: 5, loss: Number.POSITIVE_INFINITY }]) {
      expect(progressText(p)).not.toMatch(/NaN|Infinity|iteration 0/);
    }
  });

  it('shows iteration, loss and speed once steps run, and where a continued session started', () => {
    expect(progressText({ ...base, iteration: 12, totalIterations: 100, loss: 0.43219, voxelsPerSecond: 12345.6 })).toBe(
      `iteration 12 / 100 · loss 0.4322 · ${(12346).toLocaleString()} voxels/s`,
    );
    expect(progressText({ ...base, iteration: 512, loss: 0.2, voxelsPerSecond: 0, startIteration: 500 })).toBe('iteration 512 · loss 0.2000 (continued from 500)');
    expect(progressText({ ...base, iteration: 500, loss: Number.NaN, startIteration: 500 })).toBe('starting… (continued from 500)');
  });
});

describe('loss plot axes', () => {
  it('log ticks are decades when the range spans them, else 1-2-5 steps inside the range', () => {
    expect(logTicks(0.004, 0.6)).toEqual([0.01, 0.1]);
    expect(logTicks(0.0009, 1.2)).toEqual([0.001, 0.01, 0.1, 1]);
    expect(logTicks(0.15, 0.6)).toEqual([0.2, 0.5]);
    // less than one 1-2-5 step inside: the two ends
    expect(logTicks(0.31, 0.45)).toEqual([0.31, 0.45]);
    expect(logTicks(0.3, 0.3)).toEqual([0.3]);
    expect(logTicks(0, 1)).toEqual([]);
    expect(logTicks(Number.NaN, 1)).toEqual([]);
  });

  it('iteration ticks are round numbers inside the range', () => {
    expect(linearTicks(0, 100, 4)).toEqual([0, 50, 100]);
    expect(linearTicks(500, 640, 4)).toEqual([500, 550, 600]);
    expect(linearTicks(1, 9, 4)).toEqual([2, 4, 6, 8]);
    expect(linearTicks(7, 7)).toEqual([7]);
    const t = linearTicks(0, 12345, 4);
    expect(t[0]).toBe(0);
    expect(t.every((v, i) => i === 0 || v > t[i - 1]!)).toBe(true);
    expect(t[t.length - 1]).toBeLessThanOrEqual(12345);
  });

  it('tick labels stay short', () => {
    expect(tickLabel(0)).toBe('0');
    expect(tickLabel(0.1)).toBe('0.1');
    expect(tickLabel(0.001)).toBe('1e-3');
    expect(tickLabel(2500)).toBe('2.5k');
    expect(tickLabel(50)).toBe('50');
  });
});

describe('suggested slices', () => {
  it('are named as the user reads them (1-based, Fiji)', () => {
    expect(suggestionLabel('xz', 37)).toBe('xz y 38');
    expect(suggestionLabel('yz', 0)).toBe('yz x 1');
    expect(suggestionLabel('xy', 99)).toBe('xy z 100');
  });
});
