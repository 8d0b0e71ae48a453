import { COMMANDS } from './commands.js';
import './registry.js';
import { parseCommandArgs, type CliIO } from './command.js';
import { isSliceformError } from '../common/errors.js';

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
    "Run 'sliceform <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[], io?: Partial<CliIO>): Promise<number> {
  const cio: CliIO = {
    out: io?.out ?? ((s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n')),
    err: io?.err ?? ((s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n')),
    isTTY: io?.isTTY ?? Boolean(process.stderr.isTTY),
  };
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
