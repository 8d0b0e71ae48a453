// Moved to main/cli/commands/segment-folder.ts (batch keeps the runner; argv parsing belongs to cli/); this shim goes at 11:45 UTC.
// eslint-disable-next-line local/code-layering -- temporary shim for callers of the old path (batch must not import cli/)
export * from '../cli/commands/segment-folder.js';
