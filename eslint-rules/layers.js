/**
 * The layering table: every folder names what it may import (an allow-list, in the style of VS Code's
 * .eslint-plugin-local/code-layering.ts). Read top-down: a row may import only rows above it (and itself).
 * DEVELOPERS.md shows the same table; change both together. Enforced by eslint-rules/code-layering.js.
 *
 * layer   a folder (ends with '/') or one file, relative to the repository root; the longest match wins.
 * allow   repository paths the layer may import besides itself: folders end with '/', files are named without
 *         their extension being significant. '*' means any path except native-models/, which must be named.
 * runtime 'pure' (no Node built-ins, no electron), 'browser' (the same), 'node' (default: Node built-ins, no
 *         electron), 'electron' (may import electron).
 * unlisted a catch-all: files here whose folder is in no row are refused ("add the folder to the table").
 */

/** @typedef {{ layer: string, allow: string[], runtime?: 'pure' | 'browser' | 'node' | 'electron', unlisted?: boolean, why?: string }} Layer */

/** @type {Layer[]} */
export const LAYERS = [
  { layer: 'main/common/', allow: [], runtime: 'pure', why: 'the contract: volume model, Engine/Model, API, errors' },
  { layer: 'main/io/', allow: ['main/common/'], why: 'readers and writers know files, not models' },
  { layer: 'main/volume/', allow: ['main/common/'], why: 'shared volume maths below training and inference' },
  { layer: 'main/objects/', allow: ['main/common/', 'main/io/', 'main/volume/'], why: 'objects (instances) in label volumes' },
  { layer: 'main/classical/', allow: ['main/common/', 'main/io/', 'main/volume/'], why: 'classical (feature + forest) segmentation' },
  { layer: 'main/engine/', allow: ['main/common/', 'native-models/'], why: 'the only loader of native-models and TF.js' },
  { layer: 'main/inference/', allow: ['main/common/', 'main/io/', 'main/volume/'], why: 'model folders, segment a stack' },
  {
    layer: 'main/training/',
    allow: ['main/common/', 'main/io/', 'main/volume/', 'main/inference/model-dir'],
    why: 'sampling, augmentation, trainer; its summary is the model folder\'s (model-dir) type',
  },
  {
    layer: 'main/pipeline/',
    allow: ['main/common/', 'main/io/', 'main/volume/', 'main/objects/', 'main/classical/', 'main/engine/', 'main/inference/', 'main/training/'],
    why: 'the one recipe: train from sparse labels, densify, their options',
  },
  {
    layer: 'main/evaluation/',
    allow: ['main/common/', 'main/io/', 'main/volume/', 'main/objects/', 'main/classical/', 'main/engine/', 'main/inference/', 'main/training/', 'main/pipeline/'],
    why: 'IoU/Dice and the paper\'s protocols over the recipe',
  },
  {
    layer: 'main/batch/',
    allow: ['main/common/', 'main/io/', 'main/volume/', 'main/objects/', 'main/classical/', 'main/engine/', 'main/inference/', 'main/pipeline/'],
    why: 'the folder runner; its command sits in main/cli',
  },
  {
    layer: 'main/services/',
    allow: ['main/common/', 'main/io/', 'main/volume/', 'main/objects/', 'main/classical/', 'main/engine/', 'main/inference/', 'main/training/', 'main/pipeline/', 'main/evaluation/', 'main/batch/'],
    why: 'API handlers, jobs, the compute process, the web shell',
  },
  {
    layer: 'main/cli/',
    allow: ['main/common/', 'main/io/', 'main/volume/', 'main/objects/', 'main/classical/', 'main/engine/', 'main/inference/', 'main/training/', 'main/pipeline/', 'main/evaluation/', 'main/batch/', 'main/services/'],
    why: 'argv -> services; a peer entry of electron/',
  },
  { layer: 'main/', allow: [], unlisted: true },
  { layer: 'electron/', allow: ['main/common/', 'main/services/'], runtime: 'electron', why: 'lifecycle, windows, preload, IPC wiring' },
  { layer: 'renderer/src/', allow: ['main/common/', 'renderer/styles/'], runtime: 'browser', why: 'the UI talks to the app only through window.sliceform' },
  { layer: 'renderer/', allow: [], why: 'build configuration (vite) and styles of the renderer' },
  { layer: 'native-models/', allow: [], why: 'the addon imports nothing from the app' },
  { layer: 'test/unit/engine-native.test.ts', allow: ['*', 'native-models/'], why: 'the addon\'s own test reads its raw binding' },
  { layer: 'bench/engine.bench.mjs', allow: ['*', 'native-models/'], why: 'the addon\'s benchmark' },
  { layer: '', allow: ['*'], why: 'tests, benchmarks, scripts, configuration: anything but native-models/' },
];

/** Packages that belong to one layer (a prefix of the package name -> the layers that may import it). */
export const PACKAGE_OWNERS = {
  '@tensorflow/tfjs': ['main/engine/'],
};
