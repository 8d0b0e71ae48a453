/**
 * Deterministic fuzzing of the readers (issue 14's acceptance: >= 1,000 mutated real files per run across
 * TIFF, ImageJ, OME-TIFF, LSM and HDF5, seeded and bounded in time, no crash, hang or unclear message).
 *
 * Seeds, all from ../shared/data unless marked:
 *  - lsm: the two real Zeiss LSMs;
 *  - imagej: the real ImageJ hyperstack (big-endian, 90 pages); plus the ovule membrane truth TIFF
 *    (an ImageJ TIFF derived from the real ovule labels: counted separately, not as "real");
 *  - ome-tiff: the real OME-TIFF (big-endian, 15 pages);
 *  - tiff: plain-TIFF views of the real ImageJ and LSM files (the ImageDescription / CZ_LSMINFO tag id changed
 *    to an unknown private tag, every other byte as in the real file);
 *  - hdf5: the three real PlantSeg HDF5 files;
 *  - synthetic (small files made by our writers, tifffile and libtiff): the codecs and layouts no real fixture
 *    has (LZW, PackBits, Deflate + predictor, tiles, BigTIFF, RGB).
 * Mutations: bit flips (mostly in the structural head), truncations, IFD entry corruption (type, count, value,
 * tag id, in the file's byte order), IFD-link corruption, and metadata edits (OME-XML sizes / units / TiffData,
 * ImageJ images= channels= slices= frames= spacing= unit=). Each case must decode to a consistent volume or
 * throw a one-line VolumeReadError that names the file and says nothing of JS internals, within 2 s.
 *
 * The cases run in a child process (io-fuzz-runner.ts, heap capped at 1 GiB) supervised from here: a case
 * that crashes the process (V8 out of memory, a wasm abort) or makes no progress for 20 s is reported by
 * name, and the runner restarts after it, so the run always ends and says which case broke.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { readVolume, writeImageJTiff, writeOmeTiff } from '../../main/io/index.js';
import { TAG } from '../../main/io/tiff/ifd.js';
import { REPO, dataFile } from '../helpers/paths.js';
import { retag, type CaseResult, type Manifest, type SeedSpec } from './io-fuzz-cases.js';
import { PY_PRELUDE, py, sha, tempDir } from './io-helpers.js';

const tmp = tempDir('sliceform-io-fuzz-');
afterAll(() => tmp.cleanup());
/** Fixed seeds (the run is reproducible); IO_FUZZ_SEED=n explores another sequence. */
const SEED = Number(process.env.IO_FUZZ_SEED ?? 0);
/** A case that prints nothing for this long is a hang (the first one also loads tsx and the wasm module). */
const HANG_MS = 20_000;
const FIRST_MS = 90_000;
const CHECK_H5 = dataFile('plantseg_nuclei_mini/1136_mini.h5');

const manifestPath = () => join(tmp.dir, 'manifest.json');

beforeAll(async () => {
  const d = tmp.dir;
  const IJ = dataFile('formats/imagej_hyperstack/xyzc_16bit__dna_conf_wf.tif');
  const OME = dataFile('formats/ome_tiff/multi-channel-z-series.ome.tif');
  const JEF = dataFile('formats/lsm/jefferislab_jimpipeline_test.lsm');
  const NYT = dataFile('formats/lsm/nytra_test.lsm');
  writeFileSync(join(d, 'plain-from-imagej.tif'), retag(IJ, TAG.ImageDescription, 65000));
  writeFileSync(join(d, 'plain-from-nytra.tif'), retag(NYT, TAG.CzLsmInfo, 65001));
  const specs: SeedSpec[] = [
    { name: 'jefferislab.lsm', file: JEF, format: 'lsm', origin: 'real', mutations: 150 },
    { name: 'nytra.lsm', file: NYT, format: 'lsm', origin: 'real', mutations: 150 },
    { name: 'imagej-hyperstack.tif', file: IJ, format: 'imagej', origin: 'real', mutations: 180 },
    { name: 'ome-real.ome.tif', file: OME, format: 'ome-tiff', origin: 'real', mutations: 200 },
    {
      name: 'plain-from-imagej.tif',
      file: join(d, 'plain-from-imagej.tif'),
      format: 'tiff',
      origin: 'real',
      mutations: 90,
    },
    {
      name: 'plain-from-nytra.tif',
      file: join(d, 'plain-from-nytra.tif'),
      format: 'tiff',
      origin: 'real',
      mutations: 70,
    },
    {
      name: 'ovule-truth.tif',
      file: dataFile('plantseg_ovule_membrane/sample_ovule_membrane_truth.tif'),
      format: 'imagej',
      origin: 'derived',
      mutations: 60,
    },
  ];

  // synthetic seeds for what no real fixture covers
  const mk = (x: number, y: number, z: number, c: number) => {
    const data = new Uint16Array(x * y * z * c).map((_, i) => (i * 2654435761) >>> 20);
    return {
      data,
      dtype: 'uint16' as const,
      shape: { x, y, z, c, t: 1 },
      spacing: { x: 0.2, y: 0.2, z: 0.5, unit: 'µm' },
      channelNames: ['a', 'b'],
    };
  };
  await writeImageJTiff(join(d, 'ij.tif'), mk(24, 16, 3, 2));
  await writeOmeTiff(join(d, 'ome.ome.tif'), mk(20, 14, 3, 2));
  py(
    PY_PRELUDE +
      `
import os, tifffile
from PIL import Image
d = sys.argv[1]; rng = np.random.default_rng(3)
a = rng.integers(0, 4000, (3, 24, 40), dtype='uint16')
tifffile.imwrite(os.path.join(d, 'tiled_big_be.tif'), a, bigtiff=True, byteorder='>', tile=(16, 16), compression='zlib', photometric='minisblack', metadata=None)
tifffile.imwrite(os.path.join(d, 'deflate_pred.tif'), a, compression='zlib', predictor=True, rowsperstrip=6, photometric='minisblack', metadata=None)
tifffile.imwrite(os.path.join(d, 'rgb.tif'), rng.integers(0, 255, (2, 12, 16, 3), dtype='uint8'), photometric='rgb', metadata=None)
ims = [Image.fromarray(p) for p in (rng.integers(0, 8, (3, 30, 40), dtype='uint8'))]
ims[0].save(os.path.join(d, 'lzw.tif'), save_all=True, append_images=ims[1:], compression='tiff_lzw', tiffinfo={278: 8})
ims[0].save(os.path.join(d, 'packbits.tif'), save_all=True, append_images=ims[1:], compression='packbits')
print('[]')`,
    [d],
  );
  for (const [n, fmt] of [
    ['ij.tif', 'imagej'],
    ['ome.ome.tif', 'ome-tiff'],
    ['tiled_big_be.tif', 'tiff'],
    ['deflate_pred.tif', 'tiff'],
    ['rgb.tif', 'tiff'],
    ['lzw.tif', 'tiff'],
    ['packbits.tif', 'tiff'],
  ] as const) {
    specs.push({ name: n, file: join(d, n), format: fmt, origin: 'synthetic', mutations: 35 });
  }
  for (const f of [
    'plantseg_nuclei_mini/1135_mini.h5',
    'plantseg_nuclei_mini/1136_mini.h5',
    'plantseg_ovule_membrane/sample_ovule.h5',
  ]) {
    specs.push({
      name: f.split('/').pop()!,
      file: dataFile(f),
      format: 'hdf5',
      origin: 'real',
      mutations: 60,
    });
  }
  const m: Manifest = { seed: SEED, workDir: d, specs, checkFile: CHECK_H5 };
  writeFileSync(manifestPath(), JSON.stringify(m));
}, 120_000);

interface RunnerReport {
  results: CaseResult[];
  /** cases that crashed the runner or hung it, by index, with what happened */
  fatal: { index: number; what: string }[];
  checks: string[];
}

/** Runs the runner from `start`; resolves when it ends (done, crash, or killed after a hang). */
function runFrom(
  start: number,
  report: RunnerReport,
  o: { manifest?: string; env?: Record<string, string>; hangMs?: number } = {},
): Promise<{ done: boolean; last: number | null; what: string }> {
  const hangMs = o.hangMs ?? HANG_MS;
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--max-old-space-size=1024',
        join(REPO, 'test/unit/io-fuzz-runner.ts'),
        o.manifest ?? manifestPath(),
        String(start),
      ],
      {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...o.env },
      },
    );
    let last: number | null = null;
    let done = false;
    let hung = false;
    let stderr = '';
    let timer = setTimeout(() => kill(), FIRST_MS);
    const kill = () => {
      hung = true;
      child.kill('SIGKILL');
    };
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      clearTimeout(timer);
      timer = setTimeout(kill, hangMs);
      if (line.startsWith('start ')) last = Number(line.slice(6));
      else if (line.startsWith('result ')) {
        report.results.push(JSON.parse(line.slice(7)) as CaseResult);
        last = null;
      } else if (line.startsWith('check ')) report.checks.push(line.slice(6));
      else if (line === 'done') done = true;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const what = hung
        ? `no progress for ${hangMs / 1000} s (hang)`
        : `runner exited (code ${code}, signal ${signal}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      resolve({ done, last, what });
    });
  });
}

/** Runs every case, restarting the runner after a case that crashed or hung it. */
async function supervise(report: RunnerReport, o: Parameters<typeof runFrom>[2] = {}): Promise<void> {
  let start = 0;
  for (let restarts = 0; restarts < 20; restarts++) {
    const r = await runFrom(start, report, o);
    if (r.done) return;
    // a case started and never reported: that case crashed or hung the runner; go on after it
    const at = r.last ?? (report.results.at(-1)?.index ?? start - 1) + 1;
    report.fatal.push({ index: at, what: r.what });
    start = at + 1;
  }
}

describe('fuzz: mutated real files across TIFF, ImageJ, OME-TIFF, LSM and HDF5', () => {
  const report: RunnerReport = { results: [], fatal: [], checks: [] };

  it('the supervisor names a case that crashes or hangs the runner and carries on after it', async () => {
    // 5 cases of one real LSM; case 1 exits as V8 does on heap exhaustion (134), case 3 spins forever
    const m: Manifest = {
      seed: 0,
      workDir: tmp.dir,
      specs: [
        {
          name: 'nytra.lsm',
          file: dataFile('formats/lsm/nytra_test.lsm'),
          format: 'lsm',
          origin: 'real',
          mutations: 5,
        },
      ],
    };
    const path = join(tmp.dir, 'manifest-selftest.json');
    writeFileSync(path, JSON.stringify(m));
    const r: RunnerReport = { results: [], fatal: [], checks: [] };
    await supervise(r, { manifest: path, env: { IO_FUZZ_INJECT: 'crash@1,hang@3' }, hangMs: 3000 });
    expect(r.results.map((x) => x.index)).toEqual([0, 2, 4]);
    expect(r.fatal.map((f) => f.index)).toEqual([1, 3]);
    expect(r.fatal[0]!.what).toMatch(/runner exited \(code 134, signal null\)/);
    expect(r.fatal[1]!.what).toMatch(/no progress for 3 s \(hang\)/);
  }, 120_000);

  it('every case decodes consistently or is refused in one clear line, within 2 s; no crash, no hang', async () => {
    await supervise(report);
    const problems = [
      ...report.fatal.map((f) => `case ${f.index}: ${f.what}`),
      ...report.results.filter((r) => r.problem).map((r) => `${r.label}: ${r.problem}`),
      ...report.results.filter((r) => r.ms > 2000).map((r) => `${r.label}: took ${r.ms.toFixed(0)} ms`),
    ];
    expect(problems).toEqual([]);
    // the real file read identically after all the HDF5 cases, in the runner's process
    expect(report.checks).toEqual([sha((await readVolume(CHECK_H5)).data)]);
  }, 600_000);

  it('counts: >= 1,000 mutated real files across the five formats, both outcomes exercised', () => {
    const sum = (pred: (k: string) => boolean) => {
      const rs = report.results.filter((r) => pred(r.key));
      return {
        cases: rs.length,
        decoded: rs.filter((r) => r.outcome === 'decoded').length,
        rejected: rs.filter((r) => r.outcome === 'rejected').length,
      };
    };
    const real = sum((k) => k.endsWith(':real'));
    const byFormat = Object.fromEntries(
      (['tiff', 'imagej', 'ome-tiff', 'lsm', 'hdf5'] as const).map((f) => [f, sum((k) => k === `${f}:real`)]),
    );
    const all = sum(() => true);
    const worst = [...report.results].sort((a, b) => b.ms - a.ms)[0];
    // the figures the README's reliability section quotes
    console.log(
      `io-fuzz: ${JSON.stringify({ real, byFormat, all, fatal: report.fatal.length, slowestMs: Math.round(worst?.ms ?? 0), slowestCase: worst?.label })}`,
    );
    expect(real.cases).toBeGreaterThanOrEqual(1000);
    for (const [f, v] of Object.entries(byFormat)) {
      expect(v.cases, f).toBeGreaterThanOrEqual(100);
      expect(v.rejected, f).toBeGreaterThan(10);
    }
    expect(all.decoded).toBeGreaterThan(100);
  });
});
