import type { Command } from '../command.js';
import { strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import type { Engine } from '../../common/engine.js';
import { loadEngine } from '../../engine/index.js';
import { engineLimits } from '../../common/engine-limits.js';

const usage = `Usage: sliceform system [--engine native|tfjs]

Says which network engine Sliceform uses here and why, as one JSON object:
  {"default": "native"|"tfjs"|null, "override": SLICEFORM_ENGINE or null,
   "engines": {"native": {"ok", "version", "backend", "devices", "threads"} or {"ok": false, "error"},
               "tfjs":   {... same, plus "notes": why @tensorflow/tfjs-node(-gpu) is not in use,
                          "limits": what the fallback can and cannot do, in plain words}},
   "limits": the default engine's limits (null for the native engine), "node", "platform", "arch"}
When the default is the TF.js fallback, the limits are also printed on stderr: on the pure-JS backend it is
65-140x slower than native for training and 190-310x for prediction (see docs/tfjs.md).
The native libtorch engine is used when its addon loads; otherwise the TF.js engine (pure-JS cpu backend, or
the tensorflow backend when @tensorflow/tfjs-node or -gpu is installed). SLICEFORM_ENGINE=native|tfjs or
--engine on training/inference commands overrides the choice.

Options:
  --engine E   report only this engine (native or tfjs)
  -h, --help   show this help

Exit codes: 0 ok (also when one engine is unavailable: see "ok": false), 1 no engine loads, 2 bad option.`;

async function probe(name: 'native' | 'tfjs'): Promise<Record<string, unknown>> {
  try {
    const e: Engine & { notes?: string[] } = await loadEngine({ engine: name });
    const { version, backend, devices, threads } = e.info;
    const limits = engineLimits(e.info);
    return { ok: true, version, backend, devices, threads, ...(e.notes?.length ? { notes: e.notes } : {}), ...(limits ? { limits } : {}) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

const system: Command = {
  name: 'system',
  summary: 'show which network engine (native libtorch or TF.js) loads here, its backend, devices and threads',
  usage,
  options: { engine: { type: 'string' } },
  async run(args, io) {
    const only = strOpt(args.values, 'engine');
    if (only !== undefined && only !== 'native' && only !== 'tfjs') {
      throw new SliceformError('bad-input', `--engine must be native or tfjs, got "${only}"`);
    }
    const names: ('native' | 'tfjs')[] = only ? [only] : ['native', 'tfjs'];
    const engines: Record<string, Record<string, unknown>> = {};
    for (const n of names) engines[n] = await probe(n);
    const env = process.env.SLICEFORM_ENGINE;
    const override = env === 'native' || env === 'tfjs' ? env : null;
    let def: string | null = null;
    if (override) def = engines[override]?.ok ? override : null;
    else if (engines.native?.ok) def = 'native';
    else if (engines.tfjs?.ok) def = 'tfjs';
    const chosen = def ? engines[def] : only ? engines[only] : undefined;
    const limits = chosen?.ok && typeof chosen.limits === 'string' ? chosen.limits : null;
    if (limits && (def === 'tfjs' || only === 'tfjs')) io.err(`note: ${limits}`);
    io.out(
      JSON.stringify({ default: only ? null : def, override, engines, limits, node: process.versions.node, platform: process.platform, arch: process.arch }),
    );
    return Object.values(engines).some((e) => e.ok) ? 0 : 1;
  },
};

export default system;
