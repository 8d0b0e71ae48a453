/** loadEngine() falls back to the TF.js engine when the native addon cannot be loaded (issue 7 contract). */
import { describe, expect, it, vi } from 'vitest';

vi.mock('../../main/engine/native.js', () => ({
  createNativeEngine: async () => {
    throw new Error('native-models/lib/index.js not found next to the application (simulated)');
  },
}));

describe('engine fallback', () => {
  it('uses TF.js when the native engine does not load, and the TF.js model works through the contract', async () => {
    delete process.env.SLICEFORM_ENGINE;
    const { loadEngine } = await import('../../main/engine/index.js');
    const engine = await loadEngine();
    expect(engine.info.name).toBe('tfjs');
    expect(engine.info.backend).toBe('cpu');
    const m = await engine.createModel(
      { dims: 2, inChannels: 1, numClasses: 2, levels: 2, baseFilters: 2, padding: 'same', batchNorm: true, bnAtTest: 'running' },
      { optimizer: 'adam', lr: 0.01 },
    );
    const input = Float32Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 1 : -1));
    const labels = Uint8Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 2 : 1));
    const r = await m.trainStep({ input, inputShape: [1, 1, 8, 8], labels });
    expect(r.annotatedVoxels).toBe(64);
    expect(r.loss).toBeGreaterThan(0);
    expect((await m.predict(input, [1, 1, 8, 8])).length).toBe(2 * 64);
    m.dispose();
    await expect(loadEngine({ engine: 'native' })).rejects.toThrow(/not found next to the application/);
  });
});
