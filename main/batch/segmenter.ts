/**
 * The real `BatchDeps` for the batch runner: a model folder (main/inference/model-dir.ts) loaded once, the
 * volume readers (main/io) and segmentToFiles (main/inference/files.ts: overlap-tile prediction streamed to
 * ImageJ TIFFs slab by slab).
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import type { Device, Model } from '../common/engine.js';
import { SliceformError } from '../common/errors.js';
import { loadEngine } from '../engine/index.js';
import { probeVolume, readVolume } from '../io/index.js';
import { readModelManifest, type ModelManifest } from '../inference/model-dir.js';
import { loadRecipeModel } from '../pipeline/recipe.js';
import { segmentSourceToFiles } from '../inference/stream.js';
import { openRegionSource } from '../io/regions.js';
import type { BatchDeps, StackHeader } from './runner.js';

/** sha256 of model.json and the weights file: any retraining changes it. */
export async function modelFingerprint(dir: string, manifest: ModelManifest): Promise<string> {
  const h = createHash('sha256');
  h.update(await readFile(join(dir, 'model.json')));
  const fh = await open(join(dir, manifest.weights), 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex').slice(0, 16);
}

export interface SegmenterOptions {
  device?: Device;
  threads?: number;
  /** HDF5 dataset of the inputs (default: the reader's choice) */
  dataset?: string;
  /** test-time flip averaging (as single-file segment: on unless --no-flips) */
  testTimeFlips?: boolean;
  onWarning?: (message: string) => void;
}

export interface LoadedSegmenter {
  deps: BatchDeps;
  manifest: ModelManifest;
  dispose(): void;
}

/**
 * Loads the model once; the returned deps segment one file at a time. A model that cannot be loaded throws
 * (the CLI turns that into exit code 2: nothing could run).
 */
export async function createSegmenter(modelDir: string, opts: SegmenterOptions = {}): Promise<LoadedSegmenter> {
  const manifest = await readModelManifest(modelDir);
  if (manifest.net.dims !== 3) throw new SliceformError('unsupported', `batch segmentation needs a 3D model, ${modelDir} is ${manifest.net.dims}D`, { file: modelDir });
  const engine = await loadEngine();
  const { model, segment: segmentOpts } = await loadRecipeModel(modelDir, engine, { device: opts.device, threads: opts.threads ?? availableParallelism() });
  const fingerprint = await modelFingerprint(modelDir, manifest);
  const K = manifest.net.numClasses;
  const classNames = Array.from({ length: K }, (_, i) => manifest.classNames[i] ?? `class${i + 1}`);
  const warn = opts.onWarning;

  const probe = async (path: string): Promise<StackHeader> => {
    const info = await probeVolume(path, { dataset: opts.dataset, onWarning: warn });
    return { x: info.shape.x, y: info.shape.y, z: info.shape.z, c: info.shape.c, spacing: { ...info.spacing } };
  };

  const deps: BatchDeps = {
    model: { dir: modelDir, fingerprint, classNames, inChannels: manifest.net.inChannels },
    probe,
    async segment(input, header, out, ctx) {
      // the stack is read region by region and the labels (and probabilities) stream to disk slab by slab:
      // memory is bounded by the tile plan, not by the stack (main/inference/stream.ts)
      const src = await openRegionSource(input, { dataset: opts.dataset, signal: ctx.signal });
      try {
        const { x: X, y: Y, z: Z } = src.info.shape;
        if (X !== header.x || Y !== header.y || Z !== header.z) throw new SliceformError('bad-input', 'the file changed while the batch was running', { file: input });
        const res = await segmentSourceToFiles(model as Model, src, {
          ...segmentOpts,
          out: out.labelsPath,
          probabilitiesOut: out.probabilitiesPath,
          testTimeFlips: opts.testTimeFlips,
          signal: ctx.signal,
          onProgress: (p) => ctx.onVoxels?.(p.fraction * X * Y * Z),
        });
        return { counts: res.classCounts.slice(1) };
      } finally {
        await src.close();
      }
    },
    async checkOutput(path, expect) {
      const info = await probeVolume(path);
      if (info.shape.x !== expect.x || info.shape.y !== expect.y || info.shape.z !== expect.z || info.shape.c !== 1)
        return { ok: false, reason: `shape ${info.shape.x}x${info.shape.y}x${info.shape.z}x${info.shape.c} differs from the input's` };
      if (info.dtype !== 'uint8' && info.dtype !== 'uint16') return { ok: false, reason: `dtype ${info.dtype} is not a label type` };
      // Reading it whole proves every plane is there (a truncated file fails) and gives the class counts.
      const v = await readVolume(path);
      const counts = new Array<number>(K).fill(0);
      for (let i = 0; i < v.data.length; i++) {
        const l = v.data[i]!;
        if (l < 1 || l > K) return { ok: false, reason: `voxel value ${l} is not a class 1..${K}` };
        counts[l - 1]!++;
      }
      return { ok: true, counts };
    },
  };
  return { deps, manifest, dispose: () => model.dispose() };
}
