import type { Command } from './command.js';

/**
 * The command table. Each command lives in its own module under main/cli/commands/ and is
 * loaded lazily, so `sliceform --help` and `info` never pay for the engine or TF.js.
 */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {};

export function registerCommand(name: string, summary: string, load: () => Promise<Command>): void {
  COMMANDS[name] = { summary, load };
}
