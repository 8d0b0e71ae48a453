#!/usr/bin/env node
// Thin launcher: the CLI lives in main/cli (compiled to dist/). Never loads electron.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'main', 'cli', 'index.js');
if (!existsSync(entry)) {
  process.stderr.write(`sliceform: not built yet (${entry} missing). Run: npm run build\n`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
