/**
 * Augmentation worker: holds the normalised training volumes (shared memory) and renders samples on request,
 * so the JS thread stays free while the engine computes the previous step.
 * Protocol: {type:'init', volumes} then {type:'render', id, spec} -> {id, input, labels} | {id, error}.
 */
import { parentPort } from 'node:worker_threads';
import { renderSample, type SampleSpec, type TrainVolumeData } from './augment.js';
import { Rng } from './rng.js';

let volumes: TrainVolumeData[] = [];

parentPort?.on('message', (msg: { type: 'init'; volumes: TrainVolumeData[] } | { type: 'render'; id: number; spec: SampleSpec }) => {
  if (msg.type === 'init') {
    volumes = msg.volumes;
    return;
  }
  try {
    const vol = volumes[msg.spec.volume];
    if (!vol) throw new Error(`no volume ${msg.spec.volume}`);
    const s = renderSample(vol, msg.spec, (seed) => new Rng(seed));
    parentPort!.postMessage({ id: msg.id, input: s.input, labels: s.labels }, [s.input.buffer as ArrayBuffer, s.labels.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: (e as Error).message });
  }
});
