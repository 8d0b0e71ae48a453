#!/usr/bin/env node
// `npm run bench`: runs every bench/*.bench.mjs in name order, each in its own Node process, passing arguments
// through (e.g. `npm run bench -- --quick`). Exit code 1 when any bench fails. Add a bench by adding a file.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.env.SF_BENCH_ONLY; // substring filter on file names
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs') && (!only || f.includes(only)))
  .sort();
if (files.length === 0) {
  console.error('bench: no bench/*.bench.mjs found');
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f} ===`);
  const r = spawnSync(process.execPath, [join(here, f), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`bench: ${f} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed ? 1 : 0);
