// Moved to main/cli/commands/segment-folder.ts (batch keeps the runner; argv parsing belongs to cli/); this shim goes at 11:45 UTC.
export * from '../cli/commands/segment-folder.js';
