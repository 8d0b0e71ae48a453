import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SliceformError } from '../common/errors.js';

/**
 * A CLI command: a name, help text, option spec (node:util parseArgs) and a handler.
 * Handlers return the process exit code (0 ok, 1 failure, 2 bad input, 3 partial failure).
 * Write machine-readable results to `io.out` as JSON; progress and messages to `io.err`.
 */
export interface CliIO {
  out: (s: string) => void;
  err: (s: string) => void;
  /** true when stderr is a TTY (draw progress bars) */
  isTTY: boolean;
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  name: string;
  summary: string;
  /** full help: usage line and one line per option */
  usage: string;
  options: OptionSpec;
  allowPositionals?: boolean;
  run(
    args: { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] },
    io: CliIO,
    signal: AbortSignal,
  ): Promise<number>;
}

/**
 * `--opt -5` becomes `--opt=-5` for string options, so a negative number reaches the option's own range check
 * ("--plane-tile must be an integer 4..512, got -5") instead of parseArgs' "argument is ambiguous".
 */
export function joinNegativeValues(options: OptionSpec, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : null;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d|Infinity|inf)/i.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

export function parseCommandArgs(cmd: Command, argv: string[]) {
  try {
    return parseArgs({
      args: joinNegativeValues(cmd.options, argv),
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: cmd.allowPositionals ?? false,
      strict: true,
    });
  } catch (e) {
    throw new SliceformError('bad-input', `${cmd.name}: ${(e as Error).message}\n\n${cmd.usage}`);
  }
}

/** Helpers for reading parsed values with clear errors. */
export function strOpt(values: Record<string, unknown>, name: string, required: true): string;
export function strOpt(values: Record<string, unknown>, name: string, required?: false): string | undefined;
export function strOpt(values: Record<string, unknown>, name: string, required = false): string | undefined {
  const v = values[name];
  if (v === undefined) {
    if (required) throw new SliceformError('bad-input', `missing required option --${name}`);
    return undefined;
  }
  return String(Array.isArray(v) ? v[v.length - 1] : v);
}

export function numOpt(values: Record<string, unknown>, name: string, fallback?: number): number | undefined {
  const s = strOpt(values, name);
  if (s === undefined) return fallback;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new SliceformError('bad-input', `--${name} must be a number, got "${s}"`);
  return n;
}
