import type { Command } from '../command.js';
import { numOpt, strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import {
  PRESETS,
  unetOutputSize,
  validInputSize,
  type NetConfig,
  type PresetName,
} from '../../common/engine.js';
import { loadEngine } from '../../engine/index.js';

const usage = `Usage: sliceform model-info [--preset paper|desktop|tiny] [overrides] [--input X,Y,Z]

Builds the network and prints one JSON object:
  {"preset", "config", "params" (conv + up-conv weights and biases), "bnParams" (BN gamma + beta),
   "input": [x,y,z], "output": [x,y,z], "engine"}
Shapes are in x,y,z order (2D: x,y). The paper preset: 19,069,955 params, 132x132x116 -> 44x44x28.

Options:
  --preset NAME     paper (default), desktop or tiny
  --levels N        resolution levels including the bottom one
  --base N          filters of the first conv (doubled before each pooling)
  --in N            input channels
  --classes N       output classes
  --padding P       valid or same
  --dims D          3 (default) or 2
  --no-bn           without batch normalisation
  --input X,Y,Z     input tile (default: the paper's 132,132,116, or the nearest valid tile for other depths)
  --engine E        native (default when built) or tfjs
  -h, --help        show this help

Exit codes: 0 ok, 2 bad option or invalid input tile (the message names the nearest valid tile), 1 engine failure.`;

const intOpt = (values: Record<string, unknown>, name: string, min: number): number | undefined => {
  const n = numOpt(values, name);
  if (n !== undefined && !(Number.isInteger(n) && n >= min)) {
    throw new SliceformError('bad-input', `--${name} must be an integer >= ${min}, got ${n}`);
  }
  return n;
};

const modelInfo: Command = {
  name: 'model-info',
  summary: "print a network configuration's parameter count and tile shapes as JSON",
  usage,
  options: {
    preset: { type: 'string' },
    levels: { type: 'string' },
    base: { type: 'string' },
    in: { type: 'string' },
    classes: { type: 'string' },
    padding: { type: 'string' },
    dims: { type: 'string' },
    'no-bn': { type: 'boolean' },
    input: { type: 'string' },
    engine: { type: 'string' },
  },
  async run(args, io) {
    const v = args.values;
    const preset = (strOpt(v, 'preset') ?? 'paper') as PresetName;
    if (!(preset in PRESETS)) {
      throw new SliceformError(
        'bad-input',
        `--preset must be one of ${Object.keys(PRESETS).join(', ')}, got "${preset}"`,
      );
    }
    const config: NetConfig = { ...PRESETS[preset] };
    config.levels = intOpt(v, 'levels', 1) ?? config.levels;
    config.baseFilters = intOpt(v, 'base', 1) ?? config.baseFilters;
    config.inChannels = intOpt(v, 'in', 1) ?? config.inChannels;
    config.numClasses = intOpt(v, 'classes', 2) ?? config.numClasses;
    const dims = intOpt(v, 'dims', 2) ?? config.dims;
    if (dims !== 2 && dims !== 3) throw new SliceformError('bad-input', `--dims must be 2 or 3, got ${dims}`);
    config.dims = dims;
    const padding = strOpt(v, 'padding') ?? config.padding;
    if (padding !== 'valid' && padding !== 'same') {
      throw new SliceformError('bad-input', `--padding must be valid or same, got "${padding}"`);
    }
    config.padding = padding;
    if (v['no-bn']) config.batchNorm = false;

    // x,y,z order on the command line; [D,H,W] = [z,y,x] for the engine
    let xyz: number[];
    const inputStr = strOpt(v, 'input');
    if (inputStr !== undefined) {
      xyz = inputStr.split(',').map((s) => Number(s.trim()));
      if (xyz.length !== dims || xyz.some((n) => !Number.isInteger(n) || n < 1)) {
        throw new SliceformError(
          'bad-input',
          `--input must be ${dims} positive integers ${dims === 3 ? 'X,Y,Z' : 'X,Y'}, got "${inputStr}"`,
        );
      }
      const bad = xyz.some((n) => unetOutputSize(n, config.levels, config.padding) === null);
      if (bad) {
        const near = xyz.map((n) => validInputSize(n, config.levels, config.padding));
        throw new SliceformError(
          'bad-input',
          `--input ${xyz.join(',')} is not a valid tile for a ${config.levels}-level ${config.padding} U-Net; nearest valid: ${near.join(',')}`,
        );
      }
    } else {
      xyz = [132, 132, 116].slice(0, dims).map((n) => validInputSize(n, config.levels, config.padding));
    }
    const engineName = strOpt(v, 'engine');
    if (engineName !== undefined && engineName !== 'native' && engineName !== 'tfjs') {
      throw new SliceformError('bad-input', `--engine must be native or tfjs, got "${engineName}"`);
    }
    const engine = await loadEngine({ engine: engineName as 'native' | 'tfjs' | undefined });
    const model = await engine.createModel(
      config,
      { optimizer: 'sgd', lr: 1e-4, momentum: 0.99 },
      { threads: 1 },
    );
    try {
      const outZyx = model.outputShape([...xyz].reverse());
      io.out(
        JSON.stringify({
          preset,
          config,
          params: model.paramCount,
          bnParams: model.bnParamCount,
          input: xyz,
          output: [...outZyx].reverse(),
          engine: `${engine.info.name} (${engine.info.version})`,
        }),
      );
    } finally {
      model.dispose();
    }
    return 0;
  },
};

export default modelInfo;
