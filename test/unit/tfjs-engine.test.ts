/**
 * TF.js engine (main/engine/tfjs.ts): shapes, parameter counts, gradients against finite differences, the loss
 * definition, optimisers, checkpoints, BN modes, weight export/import. Tiny nets, synthetic tiles (these are
 * numeric checks of the network maths; real-data training is covered by the trainer's tests).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRESETS, unetOutputSize, type Engine, type NetConfig, type TrainBatch } from '../../main/common/engine.js';
import { createTfjsEngine, type TfjsModel } from '../../main/engine/tfjs.js';
import { normalSampler, paramSpecs } from '../../main/engine/tfjs/unet.js';
import { loadTf } from '../../main/engine/tfjs/backend.js';

let engine: Engine;
const dir = mkdtempSync(join(tmpdir(), 'sf-tfjs-'));
beforeAll(async () => {
  engine = await createTfjsEngine({ backend: 'cpu' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tinyCfg = (o: Partial<NetConfig> = {}): NetConfig => ({ ...PRESETS.tiny, baseFilters: 2, ...o });
const sgd = { optimizer: 'sgd' as const, lr: 0.05, momentum: 0.9 };
const randn = (n: number, seed: number) => {
  const r = normalSampler(seed);
  return Float32Array.from({ length: n }, () => r());
};

/** A synthetic tile: a bright sphere on noise, labels 1 (background) / 2 (sphere) on a checker of voxels, 0 elsewhere. */
function tile(cfg: NetConfig, s: number, n = 1, seed = 3): TrainBatch {
  const d = cfg.dims;
  const sp = new Array<number>(d).fill(s);
  const o = unetOutputSize(s, cfg.levels, cfg.padding)!;
  const vox = s ** d;
  const noise = randn(n * cfg.inChannels * vox, seed);
  const input = new Float32Array(n * cfg.inChannels * vox);
  const c = (s - 1) / 2;
  for (let i = 0; i < input.length; i++) {
    const v = i % vox;
    const x = v % s, y = Math.floor(v / s) % s, z = d === 3 ? Math.floor(v / (s * s)) : c;
    const inside = (x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2 < (s / 4) ** 2;
    input[i] = (inside ? 1 : -1) + 0.3 * noise[i]!;
  }
  const ovox = o ** d;
  const labels = new Uint8Array(n * ovox);
  const off = (s - o) / 2;
  for (let i = 0; i < labels.length; i++) {
    const v = i % ovox;
    const x = (v % o) + off, y = (Math.floor(v / o) % o) + off, z = d === 3 ? (Math.floor(v / (o * o)) % o) + off : c;
    if ((x + y + z) % 3 === 0) continue; // unannotated
    labels[i] = (x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2 < (s / 4) ** 2 ? 2 : 1;
  }
  return { input, inputShape: [n, cfg.inChannels, ...sp], labels };
}

describe('TF.js engine: shapes and parameter counts', () => {
  it('paper preset has 19,069,955 conv + up-conv parameters, BN counted separately, and maps 132x132x116 to 44x44x28', async () => {
    const m = await engine.createModel(PRESETS.paper, sgd);
    expect(m.paramCount).toBe(19_069_955);
    // gamma + beta for every 3x3x3 conv: 2 * (32+64+64+128+128+256+256+512 + 256+256+128+128+64+64)
    expect(m.bnParamCount).toBe(4672);
    expect(m.outputShape([132, 132, 116])).toEqual([44, 44, 28]);
    m.dispose();
  });
  it('outputShape follows unetOutputSize for several depths and rejects invalid tiles with a clear error', async () => {
    for (const levels of [1, 2, 3, 4]) {
      const m = await engine.createModel(tinyCfg({ levels }), sgd);
      for (const n of [20, 44, 60, 64, 92, 100]) {
        const want = unetOutputSize(n, levels, 'valid');
        if (want === null) expect(() => m.outputShape([n, n, n])).toThrow(/not valid for a \d-level valid U-Net/);
        else expect(m.outputShape([n, n, n])).toEqual([want, want, want]);
      }
      m.dispose();
    }
  });
  it('predict returns N*K*D\'*H\'*W\' softmax probabilities for valid and same padding, 3D and 2D', async () => {
    for (const cfg of [tinyCfg(), tinyCfg({ padding: 'same' }), tinyCfg({ dims: 2 }), tinyCfg({ dims: 2, padding: 'same', inChannels: 2, numClasses: 3 })]) {
      const s = cfg.padding === 'same' ? 8 : 20;
      const o = unetOutputSize(s, cfg.levels, cfg.padding)!;
      const m = await engine.createModel(cfg, sgd);
      const b = tile(cfg, s, 2);
      const p = await m.predict(b.input, b.inputShape);
      const ov = o ** cfg.dims;
      expect(p.length).toBe(2 * cfg.numClasses * ov);
      for (const v of [0, ov - 1, ov + 5]) {
        let sum = 0;
        for (let k = 0; k < cfg.numClasses; k++) sum += p[Math.floor(v / ov) * cfg.numClasses * ov + k * ov + (v % ov)]!;
        expect(sum).toBeCloseTo(1, 5);
      }
      m.dispose();
    }
  });
  it('rejects bad configs, wrong channel counts, lengths and labels with messages that say what was expected', async () => {
    await expect(engine.createModel({ ...tinyCfg(), levels: 0 }, sgd)).rejects.toThrow(/levels must be an integer/);
    await expect(engine.createModel(tinyCfg(), { optimizer: 'sgd', lr: -1 })).rejects.toThrow(/lr must be a positive/);
    await expect(engine.createModel(tinyCfg(), sgd, { precision: 'bf16' })).rejects.toThrow(/'fp32' only, not 'bf16'/);
    await expect(engine.createModel(tinyCfg(), sgd, { device: 'cuda' })).rejects.toThrow(/no CUDA device/);
    const m = await engine.createModel(tinyCfg(), sgd);
    const b = tile(tinyCfg(), 20);
    await expect(m.predict(b.input, [1, 2, 20, 20, 20])).rejects.toThrow(/2 channels, the network expects 1/);
    await expect(m.predict(b.input.subarray(1), b.inputShape)).rejects.toThrow(/7999 values.*needs 8000/);
    await expect(m.predict(new Float32Array(21 ** 3), [1, 1, 21, 21, 21])).rejects.toThrow(/input size 21 is not valid/);
    await expect(m.trainStep({ ...b, labels: b.labels.subarray(1) })).rejects.toThrow(/labels have 63 values.*needs 64/);
    await expect(m.trainStep({ ...b, labels: new Uint8Array(64).fill(3) })).rejects.toThrow(/label 3 .* exceeds the 2 classes/);
    await expect(m.trainStep({ ...b, classWeights: [1] })).rejects.toThrow(/classWeights must be 2/);
    m.dispose();
  });
});

describe('TF.js engine: gradients and loss', () => {
  it('parameter gradients of a 3D net with BN match central finite differences', async () => {
    const cfg = tinyCfg({ inChannels: 2, numClasses: 3 });
    const m = (await engine.createModel(cfg, sgd, { seed: 5 })) as TfjsModel;
    const b = tile(cfg, 20, 1, 11);
    b.labels = b.labels.map((l, i) => (l === 0 ? 0 : 1 + (i % 3)));
    const { grads } = await m.lossAndGrad(b);
    const base = await m.exportParams();
    const lossWith = async (name: string, idx: number, delta: number) => {
      const ps = base.map((p) => (p.name === name ? { ...p, data: p.data.slice() } : p));
      ps.find((p) => p.name === name)!.data[idx]! += delta;
      await m.importParams(ps);
      return (await m.lossAndGrad(b)).loss;
    };
    let checked = 0;
    for (const name of ['enc0.conv1.weight', 'enc1.bn2.weight', 'dec0.upconv.weight', 'dec0.conv1.weight', 'dec0.bn1.bias', 'out.weight', 'out.bias']) {
      const g = grads.find((x) => x.name === name)!;
      expect(g, name).toBeDefined();
      // the entry with the largest gradient: the best-conditioned finite difference
      let idx = 0;
      for (let i = 0; i < g.data.length; i++) if (Math.abs(g.data[i]!) > Math.abs(g.data[idx]!)) idx = i;
      const h = 2e-3;
      const fd = ((await lossWith(name, idx, h)) - (await lossWith(name, idx, -h))) / (2 * h);
      expect(Math.abs(fd - g.data[idx]!), `${name}[${idx}] analytic ${g.data[idx]} vs fd ${fd}`).toBeLessThan(0.03 * Math.abs(g.data[idx]!) + 2e-4);
      checked++;
    }
    expect(checked).toBe(7);
    m.dispose();
  });

  it('the loss is sum w[label]*CE / annotated: class weights scale it, unannotated voxels change nothing', async () => {
    const cfg = tinyCfg();
    const m = (await engine.createModel(cfg, sgd, { seed: 2 })) as TfjsModel;
    const b = tile(cfg, 20);
    const r1 = await m.lossAndGrad(b);
    const r3 = await m.lossAndGrad({ ...b, classWeights: [3, 3] });
    expect(r3.loss).toBeCloseTo(3 * r1.loss, 5);
    expect(r1.annotatedVoxels).toBe(Array.from(b.labels).filter((l) => l > 0).length);
    expect(r1.outputVoxels).toBe(64);
    // independent loss from predict()'s probabilities (BN in batch mode so predict sees the same statistics)
    const mb = await engine.createModel({ ...cfg, bnAtTest: 'batch' }, sgd, { seed: 2 });
    const p = await mb.predict(b.input, b.inputShape);
    let ce = 0;
    for (let i = 0; i < 64; i++) if (b.labels[i]) ce -= Math.log(p[(b.labels[i]! - 1) * 64 + i]!);
    expect(r1.loss).toBeCloseTo(ce / r1.annotatedVoxels, 4);
    // changing the weight of class 2 only affects voxels labelled 2
    const only1 = { ...b, labels: b.labels.map((l) => (l === 2 ? 0 : l)) };
    const a = await m.lossAndGrad({ ...only1, classWeights: [1, 1] });
    const c = await m.lossAndGrad({ ...only1, classWeights: [1, 50] });
    expect(c.loss).toBeCloseTo(a.loss, 6);
    // nothing annotated: loss 0, zero gradients, no update
    const before = await m.exportParams();
    const z = await m.trainStep({ ...b, labels: new Uint8Array(64) });
    expect(z).toEqual({ loss: 0, annotatedVoxels: 0, outputVoxels: 64 });
    const after = await m.exportParams();
    expect(after.every((t, i) => t.data.every((v, j) => v === before[i]!.data[j]))).toBe(true);
    m.dispose();
    mb.dispose();
  });

  it('a tiny net overfits one labelled tile (SGD momentum and Adam)', async () => {
    const cfg = tinyCfg();
    const b = tile(cfg, 20);
    for (const optim of [{ optimizer: 'sgd' as const, lr: 0.1, momentum: 0.9 }, { optimizer: 'adam' as const, lr: 0.05 }]) {
      const m = await engine.createModel(cfg, optim, { seed: 4 });
      const first = (await m.trainStep(b)).loss;
      let last = first;
      for (let i = 0; i < 11; i++) last = (await m.trainStep(b)).loss;
      expect(first, optim.optimizer).toBeGreaterThan(0.5);
      // 12 steps from ~ln 2 or more to a fifth of it
      expect(last, `${optim.optimizer}: ${first} -> ${last}`).toBeLessThan(0.15);
      m.dispose();
    }
  });
});

describe('TF.js engine: BN modes, checkpoints, weight exchange', () => {
  it("bnAtTest 'batch' normalises with the tile's own statistics (invariant to an affine change of the input), 'running' does not", async () => {
    const b = tile(tinyCfg(), 20);
    const shifted = b.input.map((v) => 2 * v + 1);
    for (const bnAtTest of ['batch', 'running'] as const) {
      const m = await engine.createModel(tinyCfg({ bnAtTest }), sgd, { seed: 9 });
      for (let i = 0; i < 2; i++) await m.trainStep(b);
      const p1 = await m.predict(b.input, b.inputShape);
      const p2 = await m.predict(shifted, b.inputShape);
      const diff = Math.max(...p1.map((v, i) => Math.abs(v - p2[i]!)));
      if (bnAtTest === 'batch') expect(diff).toBeLessThan(1e-3);
      else expect(diff).toBeGreaterThan(1e-2);
      m.dispose();
    }
  });

  it('save -> load gives identical predictions and resumes training identically (optimiser state kept)', async () => {
    const b = tile(tinyCfg(), 20);
    for (const optim of [sgd, { optimizer: 'adam' as const, lr: 0.01 }]) {
      const a = await engine.createModel(tinyCfg(), optim, { seed: 1 });
      await a.trainStep(b);
      await a.trainStep(b);
      const path = join(dir, `ck-${optim.optimizer}.sfm`);
      await a.save(path);
      const c = await engine.createModel(tinyCfg(), optim, { seed: 77 });
      await c.load(path);
      expect(Array.from(await c.predict(b.input, b.inputShape))).toEqual(Array.from(await a.predict(b.input, b.inputShape)));
      const la = (await a.trainStep(b)).loss;
      const lc = (await c.trainStep(b)).loss;
      expect(lc).toBe(la);
      expect(Array.from(await c.predict(b.input, b.inputShape))).toEqual(Array.from(await a.predict(b.input, b.inputShape)));
      a.dispose();
      c.dispose();
    }
  });

  it('loading a checkpoint of another config, or a non-checkpoint, fails naming the file', async () => {
    const a = await engine.createModel(tinyCfg(), sgd);
    const path = join(dir, 'other.sfm');
    await a.save(path);
    const b = await engine.createModel(tinyCfg({ baseFilters: 3 }), sgd);
    await expect(b.load(path)).rejects.toThrow(new RegExp(`${path.replace(/[.]/g, '\\.')}: checkpoint is for a different network .*base=2.*base=3`));
    const junk = join(dir, 'junk.sfm');
    writeFileSync(junk, 'hello');
    await expect(a.load(junk)).rejects.toThrow(/junk\.sfm: not a Sliceform TF\.js checkpoint/);
    await expect(a.load(join(dir, 'missing.sfm'))).rejects.toThrow(/missing\.sfm: cannot read checkpoint/);
    const full = readFileSync(path);
    const cut = join(dir, 'cut.sfm');
    writeFileSync(cut, full.subarray(0, full.length - 100));
    await expect(a.load(cut)).rejects.toThrow(/cut\.sfm: truncated checkpoint: tensor .* runs past the end/);
    // bnAtTest is an inference choice: a checkpoint loads into a model with the other mode
    const other = await engine.createModel(tinyCfg({ bnAtTest: 'batch' }), sgd);
    await expect(other.load(path)).resolves.toBeUndefined();
    other.dispose();
    a.dispose();
    b.dispose();
  });

  it('exportParams -> importParams moves weights losslessly, in the native names and PyTorch layouts', async () => {
    const cfg = tinyCfg({ inChannels: 2, numClasses: 3, levels: 3, padding: 'same' });
    const a = await engine.createModel(cfg, sgd, { seed: 1 });
    const b = tile(cfg, 8);
    await a.trainStep(b);
    const params = await a.exportParams();
    expect(params.map((p) => p.name)).toEqual(paramSpecs(cfg).map((s) => s.name));
    const byName = new Map(params.map((p) => [p.name, p]));
    expect(byName.get('enc0.conv1.weight')!.shape).toEqual([2, 2, 3, 3, 3]); // [Cout, Cin, k, k, k]
    expect(byName.get('dec1.upconv.weight')!.shape).toEqual([16, 16, 2, 2, 2]); // [Cin, Cout, 2, 2, 2]
    expect(byName.get('dec0.conv1.weight')!.shape).toEqual([4, 12, 3, 3, 3]); // skip (4) + up (8) channels
    expect(byName.get('out.weight')!.shape).toEqual([3, 4, 1, 1, 1]);
    expect(byName.get('enc2.bn2.running_var')!.shape).toEqual([16]);
    const c = await engine.createModel(cfg, sgd, { seed: 2 });
    await c.importParams(params);
    const again = await c.exportParams();
    expect(again.every((t, i) => t.data.every((v, j) => Object.is(v, params[i]!.data[j])))).toBe(true);
    expect(Array.from(await c.predict(b.input, b.inputShape))).toEqual(Array.from(await a.predict(b.input, b.inputShape)));
    await expect(c.importParams(params.filter((p) => p.name !== 'out.bias'))).rejects.toThrow(/missing parameter out\.bias/);
    await expect(c.importParams(params.map((p) => (p.name === 'out.weight' ? { ...p, shape: [4, 3, 1, 1, 1] } : p)))).rejects.toThrow(
      /out\.weight has shape \[4, 3, 1, 1, 1\].*expected \[3, 4, 1, 1, 1\]/,
    );
    await expect(c.importParams([...params, { name: 'bogus', shape: [1], data: new Float32Array(1) }])).rejects.toThrow(/unknown parameter.*bogus/);
    a.dispose();
    c.dispose();
  });
});

describe('TF.js engine: resources', () => {
  it('leaks no tensors: train, lossAndGrad, predict, save/load, export/import, errors, then dispose', async () => {
    const { tf } = await loadTf('cpu');
    const before = tf.memory().numTensors;
    for (const optim of [sgd, { optimizer: 'adam' as const, lr: 0.01 }]) {
      const m = (await engine.createModel(tinyCfg(), optim)) as TfjsModel;
      const b = tile(tinyCfg(), 20);
      const afterCreate = tf.memory().numTensors;
      await m.trainStep(b);
      await m.trainStep({ ...b, labels: new Uint8Array(64) });
      await m.lossAndGrad(b);
      await m.predict(b.input, b.inputShape);
      await expect(m.trainStep({ ...b, labels: new Uint8Array(64).fill(9) })).rejects.toThrow(/exceeds/);
      await expect(m.predict(new Float32Array(21 ** 3), [1, 1, 21, 21, 21])).rejects.toThrow(/not valid/);
      const path = join(dir, `leak-${optim.optimizer}.sfm`);
      await m.save(path);
      await m.load(path);
      await m.importParams(await m.exportParams());
      expect(tf.memory().numTensors).toBe(afterCreate);
      m.dispose();
      await expect(m.predict(b.input, b.inputShape)).rejects.toThrow(/after dispose/);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
