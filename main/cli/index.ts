import { COMMANDS } from './commands.js';
import './registry.js';
import { parseCommandArgs, type CliIO } from './command.js';
import { isSliceformError, SliceformError } from '../common/errors.js';

function topHelp(): string {
  const names = Object.keys(COMMANDS).sort();
  const w = Math.max(...names.map((n) => n.length), 8);
  return [
    'Usage: sliceform <command> [options]',
    '',
    'Sparse-annotation 3D U-Net segmentation for microscopy stacks.',
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(w)}  ${COMMANDS[n]!.summary}`),
    '',
    'Global options (before or after the command):',
    '  --engine native|tfjs  which engine trains and predicts (default: native libtorch, TF.js when the addon',
    '                        does not load; same as SLICEFORM_ENGINE)',
    '',
    "Run 'sliceform <command> --help' for a command's options.",
  ].join('\n');
}

/**
 * Takes the global `--engine X` / `--engine=X` out of argv (it may stand anywhere) and returns the choice.
 * Every command reaches the engine through loadEngine(), which reads SLICEFORM_ENGINE.
 */
export function takeEngineOption(argv: string[]): { argv: string[]; engine?: string } {
  const rest: string[] = [];
  let engine: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--engine') {
      engine = argv[++i];
      if (engine === undefined) throw new SliceformError('bad-input', '--engine needs a value: native or tfjs');
    } else if (a.startsWith('--engine=')) engine = a.slice('--engine='.length);
    else rest.push(a);
  }
  if (engine !== undefined && engine !== 'native' && engine !== 'tfjs') {
    throw new SliceformError('bad-input', `--engine must be native or tfjs, got "${engine}"`);
  }
  return { argv: rest, engine };
}

export async function main(argv: string[], io?: Partial<CliIO>): Promise<number> {
  const cio: CliIO = {
    out: io?.out ?? ((s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n')),
    err: io?.err ?? ((s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n')),
    isTTY: io?.isTTY ?? Boolean(process.stderr.isTTY),
  };
  let engineChoice: string | undefined;
  try {
    ({ argv, engine: engineChoice } = takeEngineOption(argv));
  } catch (e) {
    cio.err(`sliceform: ${(e as Error).message}`);
    return 2;
  }
  if (engineChoice) process.env.SLICEFORM_ENGINE = engineChoice;
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    cio.out(topHelp());
    return name ? 0 : 2;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    cio.err(`sliceform: unknown command "${name}"\n\n${topHelp()}`);
    return 2;
  }
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    cio.err('\ncancelling (Ctrl+C again to quit now)…');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const cmd = await entry.load();
    const parsed = parseCommandArgs(cmd, rest);
    if (parsed.values.help) {
      cio.out(cmd.usage);
      return 0;
    }
    return await cmd.run(parsed as never, cio, controller.signal);
  } catch (e) {
    if (isSliceformError(e)) {
      cio.err(`sliceform ${name}: ${e.message}`);
      return e.kind === 'cancelled' ? 130 : e.exitCode;
    }
    cio.err(`sliceform ${name}: internal error: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
