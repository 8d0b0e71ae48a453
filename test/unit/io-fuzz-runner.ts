/**
 * Child process of io-fuzz.test.ts: runs the planned fuzz cases from a start index and reports each on its
 * own stdout line ("start <i>" before, "result <json>" after, "done" at the end). The parent kills it when a
 * case hangs and restarts it after the case that crashed or hung, so one bad case is reported, not fatal.
 *
 *   node --import tsx test/unit/io-fuzz-runner.ts MANIFEST.json START
 */
import { readFileSync } from 'node:fs';
import { probeVolume, readVolume } from '../../main/io/index.js';
import { planCases, runCase, type Manifest } from './io-fuzz-cases.js';
import { sha } from './io-helpers.js';

const [manifestPath, startArg] = process.argv.slice(2);
const manifest = JSON.parse(readFileSync(manifestPath!, 'utf8')) as Manifest;
const start = Number(startArg ?? 0);
const inject = new Map(
  (process.env.IO_FUZZ_INJECT ?? '')
    .split(',')
    .filter(Boolean)
    .map((x) => {
      const [what, at] = x.split('@');
      return [Number(at), what] as const;
    }),
);

// load h5wasm before the timed cases (compiling its module takes seconds on a busy machine)
if (manifest.checkFile) {
  await probeVolume(manifest.checkFile);
  process.stdout.write('warm\n');
}
for await (const c of planCases(manifest)) {
  if (c.index < start) continue;
  process.stdout.write(`start ${c.index}\n`);
  // the supervisor's own test: IO_FUZZ_INJECT="crash@1,hang@3" makes those cases exit (134) or spin
  if (inject.get(c.index) === 'crash') process.exit(134); // what V8 does when the heap runs out
  if (inject.get(c.index) === 'hang') for (;;);
  const r = await runCase(c, manifest.workDir);
  process.stdout.write(`result ${JSON.stringify(r)}\n`);
}
// a wasm abort would leave h5wasm unusable and turn every later HDF5 file into a "clean" error: the real
// file must still read identically after the cases
if (manifest.checkFile) process.stdout.write(`check ${sha((await readVolume(manifest.checkFile)).data)}\n`);
process.stdout.write('done\n');
