// Native engine (libtorch addon): shapes, parameter count, checkpoints, BN modes, errors, dispose, async.
// Synthetic seeded tiles (see engine-native-helpers.ts); tiny nets so the file runs in seconds on 2 cores.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PRESETS, unetOutputSize, validInputSize } from '../../main/common/engine.js';
import { SliceformError } from '../../main/common/errors.js';
import { loadEngine } from '../../main/engine/index.js';
import { maxAbsDiff, nativeEngine, net, prod, randomInput } from './engine-native-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'sf-engine-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const optim = { optimizer: 'adam' as const, lr: 1e-2 };

describe('native engine: loading', () => {
  it('loadEngine() returns the native engine with libtorch', async () => {
    const e = await loadEngine({ engine: 'native' });
    expect(e.info.name).toBe('native');
    expect(e.info.version).toMatch(/^libtorch \d+\.\d+/);
    expect(e.info.devices).toContain('cpu');
  });
});

describe('native engine: output shape rule', () => {
  it('agrees with unetOutputSize for several depths, both paddings, 2D and 3D', async () => {
    const e = await nativeEngine();
    for (const dims of [2, 3] as const) {
      for (const padding of ['valid', 'same'] as const) {
        for (const levels of [1, 2, 3, 4, 5]) {
          const m = await e.createModel(net({ dims, levels, padding, baseFilters: 1 }), optim);
          for (const n of [16, 20, 44, 60, 64, 92, 100, 132, 140, 188]) {
            const want = unetOutputSize(n, levels, padding);
            const sp = Array(dims).fill(n);
            if (want === null) expect(() => m.outputShape(sp)).toThrow(/not a valid input shape/);
            else expect(m.outputShape(sp)).toEqual(Array(dims).fill(want));
          }
          m.dispose();
        }
      }
    }
  });

  it('predict really produces the computed output shape (2D at 4 levels, 3D at 1-3 levels, anisotropic)', async () => {
    const e = await nativeEngine();
    const cases: [number, number, 'valid' | 'same', number[]][] = [
      [2, 4, 'valid', [92, 108]],
      [2, 3, 'same', [32, 48]],
      [3, 1, 'valid', [7, 9, 11]],
      [3, 2, 'valid', [20, 24, 28]],
      [3, 3, 'valid', [44, 44, 52]],
      [3, 3, 'same', [8, 16, 24]],
    ];
    for (const [dims, levels, padding, sp] of cases) {
      const m = await e.createModel(
        net({ dims: dims as 2 | 3, levels, padding, baseFilters: 2, numClasses: 3 }),
        optim,
      );
      const out = sp.map((n) => unetOutputSize(n, levels, padding)!);
      const r = await m.predictWithShape(randomInput(prod(sp), 1), [1, 1, ...sp]);
      expect(r.shape).toEqual([1, 3, ...out]);
      expect(r.data.length).toBe(3 * prod(out));
      // softmax: the classes sum to 1 at every voxel
      const v = prod(out);
      for (const i of [0, v >> 1, v - 1])
        expect(r.data[i] + r.data[v + i] + r.data[2 * v + i]).toBeCloseTo(1, 5);
      m.dispose();
    }
  });
});

describe('native engine: paper preset', () => {
  it('has 19,069,955 conv + up-conv parameters and maps 132x132x116 to 44x44x28', async () => {
    const e = await nativeEngine();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = performance.now();
    const m = await e.createModel(PRESETS.paper, { optimizer: 'sgd', lr: 1e-4, momentum: 0.99 });
    const ms = performance.now() - t0;
    clearInterval(timer);
    // 19M weights are initialised off the JS thread: the timer kept firing
    if (ms > 100) expect(ticks).toBeGreaterThanOrEqual(Math.floor(ms / 5 / 4));
    expect(m.paramCount).toBe(19_069_955);
    // BN gamma+beta: 2 * (32+64+64+128+128+256+256+512 + 256+256+128+128+64+64)
    expect(m.bnParamCount).toBe(4672);
    // [D, H, W] = [z, y, x]: the paper's 132x132x116 (x, y, z)
    expect(m.outputShape([116, 132, 132])).toEqual([28, 44, 44]);
    const params = await m.exportParams();
    const convCount = params
      .filter((p) => /(conv\d|upconv|^out)\.(weight|bias)$/.test(p.name))
      .reduce((s, p) => s + p.data.length, 0);
    expect(convCount).toBe(19_069_955);
    expect(params.find((p) => p.name === 'dec2.upconv.weight')?.shape).toEqual([512, 512, 2, 2, 2]);
    expect(params.find((p) => p.name === 'dec2.conv1.weight')?.shape).toEqual([256, 768, 3, 3, 3]);
    expect(params.some((p) => p.name === 'dec2.upconv.bias')).toBe(false);
    m.dispose();
  });
});

describe('native engine: checkpoints', () => {
  it('save -> load gives identical predictions and optimizer state; no temp files remain', async () => {
    const e = await nativeEngine();
    const cfg = net();
    const a = await e.createModel(cfg, { optimizer: 'sgd', lr: 0.05, momentum: 0.9 }, { seed: 3 });
    const sp = [20, 20, 20];
    const out = a.outputShape(sp);
    const x = randomInput(prod(sp), 7);
    const labels = new Uint8Array(prod(out)).map((_, i) => (i % 3 === 0 ? 0 : 1 + (i % 2)));
    const batch = { input: x, inputShape: [1, 1, ...sp], labels };
    await a.trainStep(batch);
    await a.trainStep(batch);
    const path = join(tmp, 'a.sfmodel');
    await a.save(path);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp'))).toEqual([]);
    const b = await e.createModel(cfg, { optimizer: 'sgd', lr: 0.05, momentum: 0.9 }, { seed: 99 });
    const before = await b.predict(x, [1, 1, ...sp]);
    await b.load(path);
    const pa = await a.predict(x, [1, 1, ...sp]);
    const pb = await b.predict(x, [1, 1, ...sp]);
    expect(maxAbsDiff(pa, before)).toBeGreaterThan(1e-4); // the load really changed b
    expect(maxAbsDiff(pa, pb)).toBe(0);
    // momentum buffers travelled too: the next step is the same on both
    const ra = await a.trainStep(batch);
    const rb = await b.trainStep(batch);
    expect(rb.loss).toBe(ra.loss);
    expect(maxAbsDiff(await a.predict(x, [1, 1, ...sp]), await b.predict(x, [1, 1, ...sp]))).toBe(0);
    a.dispose();
    b.dispose();
  });

  it('refuses a checkpoint of another config, a missing file and a non-checkpoint, naming the problem', async () => {
    const e = await nativeEngine();
    const a = await e.createModel(net(), optim);
    const path = join(tmp, 'cfg.sfmodel');
    await a.save(path);
    const other = await e.createModel(net({ baseFilters: 8 }), optim);
    await expect(other.load(path)).rejects.toThrow(
      /saved for network config .*baseFilters: 4.* but this model is .*baseFilters: 8/,
    );
    await expect(other.load(join(tmp, 'nope.sfmodel'))).rejects.toThrow(
      /nope\.sfmodel: cannot open checkpoint/,
    );
    const junk = join(tmp, 'junk.sfmodel');
    writeFileSync(junk, 'hello world, not a model');
    await expect(other.load(junk)).rejects.toThrow(/junk\.sfmodel: not a Sliceform checkpoint/);
    await expect(a.save(join(tmp, 'no-such-dir', 'x.sfmodel'))).rejects.toThrow(/cannot write checkpoint/);
    a.dispose();
    other.dispose();
  });

  it('exportParams -> importParams round-trips and rejects wrong names or shapes', async () => {
    const e = await nativeEngine();
    const a = await e.createModel(net(), optim, { seed: 1 });
    const b = await e.createModel(net(), optim, { seed: 2 });
    const sp = [20, 20, 20];
    const x = randomInput(prod(sp), 3);
    await b.importParams(await a.exportParams());
    expect(maxAbsDiff(await a.predict(x, [1, 1, ...sp]), await b.predict(x, [1, 1, ...sp]))).toBe(0);
    const ps = await a.exportParams();
    await expect(b.importParams(ps.slice(1))).rejects.toThrow(/missing 1 tensor\(s\): enc0\.conv1\.weight/);
    const bad = ps.map((p) => (p.name === 'out.bias' ? { ...p, shape: [3], data: new Float32Array(3) } : p));
    await expect(b.importParams(bad)).rejects.toThrow(/out\.bias has shape \[3\], expected \[2\]/);
    a.dispose();
    b.dispose();
  });
});

describe('native engine: batch norm modes', () => {
  it("'running' uses stored statistics (per-sample), 'batch' uses the current batch (samples interact)", async () => {
    const e = await nativeEngine();
    const run = await e.createModel(net({ bnAtTest: 'running' }), optim, { seed: 5 });
    const bat = await e.createModel(net({ bnAtTest: 'batch' }), optim, { seed: 5 });
    const sp = [20, 20, 20];
    const n = prod(sp);
    const out = run.outputShape(sp);
    const x2 = randomInput(2 * n, 11);
    for (let i = n; i < 2 * n; i++) x2[i] = x2[i] * 3 + 1; // a second sample with other statistics
    const x1 = x2.slice(0, n);
    // train a few steps so the running statistics are not the initial (0, 1)
    const labels = new Uint8Array(2 * prod(out)).map((_, i) => 1 + (i % 2));
    for (let i = 0; i < 3; i++) await run.trainStep({ input: x2, inputShape: [2, 1, ...sp], labels });
    await bat.importParams(await run.exportParams());
    const rm = (await run.exportParams()).find((p) => p.name === 'enc0.bn1.running_mean')!;
    expect(Math.max(...rm.data.map(Math.abs))).toBeGreaterThan(1e-3);

    const k = 2 * prod(out);
    const r1 = await run.predict(x1, [1, 1, ...sp]);
    const r2 = (await run.predict(x2, [2, 1, ...sp])).slice(0, k);
    expect(maxAbsDiff(r1, r2)).toBeLessThan(1e-5); // running stats: sample 0 ignores its batch mates
    const b1 = await bat.predict(x1, [1, 1, ...sp]);
    const b2 = (await bat.predict(x2, [2, 1, ...sp])).slice(0, k);
    expect(maxAbsDiff(b1, b2)).toBeGreaterThan(1e-3); // batch stats: it does not
    expect(maxAbsDiff(r1, b1)).toBeGreaterThan(1e-3); // and the two modes differ
    // predict in 'batch' mode does not touch the running statistics
    const before = (await bat.exportParams()).find((p) => p.name === 'enc0.bn1.running_mean')!;
    await bat.predict(x2, [2, 1, ...sp]);
    const after = (await bat.exportParams()).find((p) => p.name === 'enc0.bn1.running_mean')!;
    expect(maxAbsDiff(before.data, after.data)).toBe(0);
    run.dispose();
    bat.dispose();
  });
});

describe('native engine: errors', () => {
  it('invalid configs throw clear errors', async () => {
    const e = await nativeEngine();
    const bad = async (over: object, re: RegExp) => {
      await expect(e.createModel({ ...net(), ...over } as never, optim)).rejects.toThrow(re);
    };
    await bad({ levels: 0 }, /levels must be 1\.\.8, got 0/);
    await bad({ dims: 4 }, /dims must be 2 or 3, got 4/);
    await bad({ numClasses: 1 }, /numClasses must be 2\.\.65535/);
    await bad({ padding: 'full' }, /padding must be 'valid' or 'same', got 'full'/);
    await bad({ bnAtTest: 'x' }, /bnAtTest must be 'running' or 'batch'/);
    await bad({ baseFilters: 2.5 }, /baseFilters must be an integer/);
    await expect(e.createModel(net(), { optimizer: 'rmsprop' as never, lr: 1 })).rejects.toThrow(
      /optimizer must be 'sgd' or 'adam'/,
    );
    await expect(e.createModel(net(), { optimizer: 'sgd', lr: -1 })).rejects.toThrow(
      /learning rate must be > 0/,
    );
    await expect(e.createModel(net(), optim, { device: 'cuda' })).rejects.toThrow(
      /cuda.*(no CUDA device|use device 'cpu')/,
    );
    await expect(e.createModel(net(), optim, { precision: 'bf16' })).rejects.toThrow(
      /only available on CUDA/,
    );
    const err = await e.createModel(net({ levels: 0 }), optim).catch((x) => x);
    expect(err).toBeInstanceOf(SliceformError);
    expect((err as SliceformError).kind).toBe('bad-input');
  });

  it('invalid tiles name the nearest valid shape; wrong sizes, channels and labels are refused', async () => {
    const e = await nativeEngine();
    const m = await e.createModel(net({ numClasses: 3 }), optim);
    const near = validInputSize(21, 2, 'valid');
    await expect(m.predict(new Float32Array(21 * 20 * 20), [1, 1, 21, 20, 20])).rejects.toThrow(
      new RegExp(
        `input tile 21x20x20 .*not a valid input shape.*nearest valid shape is ${near}x20x20 \\(output`,
      ),
    );
    await expect(m.predict(new Float32Array(10), [1, 1, 20, 20, 20])).rejects.toThrow(
      /input buffer has 10 values but inputShape needs 8000/,
    );
    await expect(m.predict(new Float32Array(8000), [1, 20, 20, 20])).rejects.toThrow(
      /inputShape must be \[N, C, D, H, W\]/,
    );
    await expect(m.predict(new Float32Array(16000), [1, 2, 20, 20, 20])).rejects.toThrow(
      /2 channel\(s\) but the network expects 1/,
    );
    const x = new Float32Array(8000);
    const ok = new Uint8Array(64).fill(1);
    await expect(
      m.trainStep({ input: x, inputShape: [1, 1, 20, 20, 20], labels: new Uint8Array(65) }),
    ).rejects.toThrow(/labels have 65 values but the output shape N=1 x 4x4x4 needs 64/);
    await expect(
      m.trainStep({ input: x, inputShape: [1, 1, 20, 20, 20], labels: new Uint8Array(64).fill(4) }),
    ).rejects.toThrow(/label value 4 out of range/);
    await expect(
      m.trainStep({ input: x, inputShape: [1, 1, 20, 20, 20], labels: ok, classWeights: [1, 2] }),
    ).rejects.toThrow(/classWeights has 2 entries but the network has 3 classes/);
    await expect(
      m.trainStep({ input: x, inputShape: [1, 1, 20, 20, 20], labels: ok, classWeights: [1, -2, 1] }),
    ).rejects.toThrow(/classWeights must be finite and >= 0/);
    await expect(m.predict(new Float64Array(8000) as never, [1, 1, 20, 20, 20])).rejects.toThrow(
      /input must be a Float32Array/,
    );
    expect(() => m.setLearningRate(0)).toThrow(/learning rate must be > 0/);
    // a NaN in the input is refused up front; a step whose loss overflows is rejected and changes nothing
    const x3 = randomInput(8000, 3);
    const before = await m.predict(x3, [1, 1, 20, 20, 20]);
    const nan = x3.slice();
    nan[100] = NaN;
    await expect(m.trainStep({ input: nan, inputShape: [1, 1, 20, 20, 20], labels: ok })).rejects.toThrow(
      /input contains a non-finite value \(nan\) at index 100/,
    );
    await expect(m.predict(nan, [1, 1, 20, 20, 20])).rejects.toThrow(/non-finite value/);
    const huge = x3.map((v) => v * 3e38);
    await expect(m.trainStep({ input: huge, inputShape: [1, 1, 20, 20, 20], labels: ok })).rejects.toThrow(
      /loss is not finite/,
    );
    expect(maxAbsDiff(before, await m.predict(x3, [1, 1, 20, 20, 20]))).toBe(0);
    m.dispose();
  });

  it('a tile too large for memory is refused with an out-of-memory error, not a crash', async () => {
    const e = await nativeEngine();
    const m = await e.createModel(net(), optim);
    const n = 2004; // valid for 2 levels; about 8e9 voxels
    const err = await m.predict(new Float32Array(8), [1, 1, n, n, n]).catch((x) => x);
    expect(err).toBeInstanceOf(SliceformError);
    expect(err.kind).toBe('too-large');
    expect(err.message).toMatch(/out of memory: this predict call needs about [\d.]+ GiB/);
    await expect(
      m.trainStep({ input: new Float32Array(8), inputShape: [1, 1, n, n, n], labels: new Uint8Array(1) }),
    ).rejects.toThrow(/out of memory/);
    m.dispose();
  });
});

describe('native engine: lifecycle and async', () => {
  it('dispose frees the handle; later calls fail clearly; a running step still completes', async () => {
    const e = await nativeEngine();
    const m = await e.createModel(net(), optim);
    const sp = [20, 20, 20];
    const running = m.trainStep({
      input: randomInput(8000, 1),
      inputShape: [1, 1, ...sp],
      labels: new Uint8Array(64).fill(1),
    });
    m.dispose();
    m.dispose(); // idempotent
    expect((await running).outputVoxels).toBe(64);
    expect(m.disposed).toBe(true);
    await expect(m.predict(new Float32Array(8000), [1, 1, ...sp])).rejects.toThrow(/model is disposed/);
    expect(() => m.outputShape(sp)).toThrow(/model is disposed/);
  });

  it('keeps freed CPU activations for reuse while a model lives and releases them when the last is disposed', async () => {
    const { binding } = await import('../../native-models/lib/index.js');
    const e = await nativeEngine();
    const m = await e.createModel(net({ levels: 2, baseFilters: 8 }), optim);
    const sp = [44, 44, 44];
    const out = m.outputShape(sp);
    const batch = {
      input: randomInput(prod(sp), 4),
      inputShape: [1, 1, ...sp],
      labels: new Uint8Array(prod(out)).fill(1),
    };
    await m.trainStep(batch);
    const cached = binding().cpuCacheBytes();
    expect(cached).toBeGreaterThan(1 << 20); // 8 x 40^3 floats per activation: blocks of >= 1 MiB were kept
    await m.trainStep(batch);
    expect(binding().cpuCacheBytes()).toBeLessThanOrEqual(cached * 1.25); // the second step reused them
    m.dispose();
    expect(binding().cpuCacheBytes()).toBe(0);
  });

  it('keeps the event loop responsive while a training step runs', async () => {
    const e = await nativeEngine();
    const m = await e.createModel(net({ levels: 3, baseFilters: 8 }), optim);
    const sp = [44, 44, 44];
    const out = m.outputShape(sp);
    const batch = {
      input: randomInput(prod(sp), 2),
      inputShape: [1, 1, ...sp],
      labels: new Uint8Array(prod(out)).fill(1),
    };
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = performance.now();
    const p = m.trainStep(batch);
    expect(ticks).toBe(0); // trainStep returned before doing the work
    await p;
    const ms = performance.now() - t0;
    clearInterval(timer);
    expect(ms).toBeGreaterThan(50); // the step is long enough for the check to mean something
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(ms / 5 / 4));
    m.dispose();
  });
});

describe('native engine: 2D variant', () => {
  it('trains with 2D ops and 2D weights', async () => {
    const e = await nativeEngine();
    const m = await e.createModel(net({ dims: 2, levels: 3, baseFilters: 4 }), optim, { seed: 1 });
    const sp = [60, 60];
    const out = m.outputShape(sp);
    expect(out).toEqual([20, 20]);
    const ps = await m.exportParams();
    expect(ps.find((p) => p.name === 'enc0.conv1.weight')?.shape).toEqual([4, 1, 3, 3]);
    const r = await m.trainStep({
      input: randomInput(3600, 1),
      inputShape: [1, 1, ...sp],
      labels: new Uint8Array(400).fill(2),
    });
    expect(r.annotatedVoxels).toBe(400);
    expect(Number.isFinite(r.loss)).toBe(true);
    m.dispose();
  });
});
