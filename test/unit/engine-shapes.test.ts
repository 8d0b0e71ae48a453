import { describe, expect, it } from 'vitest';
import { unetOutputSize, validInputSize } from '../../main/common/engine.js';

describe('U-Net valid-convolution shape rule', () => {
  it('maps the paper tile 132x132x116 to 44x44x28 at 4 levels', () => {
    expect(unetOutputSize(132, 4, 'valid')).toBe(44);
    expect(unetOutputSize(116, 4, 'valid')).toBe(28);
  });
  it('rejects inputs whose pooled sizes are odd', () => {
    expect(unetOutputSize(133, 4, 'valid')).toBeNull();
    expect(unetOutputSize(20, 4, 'valid')).toBeNull();
  });
  it('handles other depths', () => {
    // 3 levels: 60 -> 56 -> 28 -> 24 -> 12 -> 8 -> 16 -> 12 -> 24 -> 20
    expect(unetOutputSize(60, 3, 'valid')).toBe(20);
    expect(unetOutputSize(104, 3, 'valid')).toBe(64);
    expect(unetOutputSize(64, 3, 'same')).toBe(64);
    expect(unetOutputSize(66, 3, 'same')).toBeNull();
  });
  it('finds the nearest valid input size', () => {
    expect(validInputSize(132, 4, 'valid')).toBe(132);
    const n = validInputSize(130, 4, 'valid');
    expect(unetOutputSize(n, 4, 'valid')).not.toBeNull();
    expect(Math.abs(n - 130)).toBeLessThanOrEqual(8);
  });
});

describe('shape helpers', () => {
  it('validInputShape picks the nearest valid size per axis; unetOutputShape maps whole shapes', async () => {
    const { validInputShape, unetOutputShape } = await import('../../main/common/engine.js');
    expect(validInputShape([116, 132, 133], 4, 'valid')).toEqual([116, 132, validInputSize(133, 4, 'valid')]);
    expect(unetOutputShape([116, 132, 132], 4, 'valid')).toEqual([28, 44, 44]);
    expect(unetOutputShape([116, 132, 133], 4, 'valid')).toBeNull();
    expect(unetOutputShape([64, 32], 3, 'same')).toEqual([64, 32]);
  });
});
