#!/usr/bin/env node
// Memory benchmark for the volume reader (issue 2): builds a 1 GiB uint16 multi-page TIFF
// (1024 x 1024 x 512, uncompressed, 64-row strips) in a temp dir, loads it with readVolume in a fresh
// Node process, and prints peak RSS / voxel bytes (target <= 1.3). Writes bench/out/io-memory.json.
//   node bench/io-memory.mjs [--planes N] [--deflate] [--keep]
// --deflate writes Deflate-compressed strips (level 1) to measure the decode path instead of direct reads.
// Uses dist/main/io/index.js when built (npm run build:ts), else the TypeScript sources through tsx.
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const pi = args.indexOf('--planes');
const Z = pi >= 0 ? Number(args[pi + 1]) : 512;
const X = 1024;
const Y = 1024;
const RPS = 64;
const DEFLATE = args.includes('--deflate');

/** Streams a little-endian classic TIFF, one IFD before each plane. Independent of main/io/writer.ts. */
function writeStack(path) {
  const fd = openSync(path, 'w');
  let pos = 0;
  const w = (b) => {
    writeSync(fd, b, 0, b.length, pos);
    pos += b.length;
  };
  const hdr = Buffer.alloc(8);
  hdr.write('II');
  hdr.writeUInt16LE(42, 2);
  hdr.writeUInt32LE(8, 4);
  w(hdr);
  const strips = Math.ceil(Y / RPS);
  const stripBytes = X * RPS * 2;
  const plane = new Uint16Array(X * Y);
  const planeBytes = new Uint8Array(plane.buffer);
  for (let z = 0; z < Z; z++) {
    for (let i = 0; i < plane.length; i++) plane[i] = (i * 7 + z * 131 + ((i >> 10) % 13) * 977) & 0xffff;
    const chunks = [];
    for (let s = 0; s < strips; s++) {
      const raw = planeBytes.subarray(s * stripBytes, Math.min(planeBytes.length, (s + 1) * stripBytes));
      chunks.push(DEFLATE ? deflateSync(raw, { level: 1 }) : raw);
    }
    const nTags = 10;
    const ifdLen = 2 + nTags * 12 + 4;
    const offArr = pos + ifdLen; // offsets array, then counts array, then strip data
    const cntArr = offArr + strips * 4;
    const data = cntArr + strips * 4;
    const dataLen = chunks.reduce((a, c) => a + c.length, 0);
    const next = z + 1 < Z ? data + dataLen : 0;
    const b = Buffer.alloc(ifdLen + strips * 8);
    b.writeUInt16LE(nTags, 0);
    let p = 2;
    const e = (tag, type, count, value) => {
      b.writeUInt16LE(tag, p);
      b.writeUInt16LE(type, p + 2);
      b.writeUInt32LE(count, p + 4);
      if (type === 3 && count === 1) b.writeUInt16LE(value, p + 8);
      else b.writeUInt32LE(value, p + 8);
      p += 12;
    };
    e(256, 4, 1, X);
    e(257, 4, 1, Y);
    e(258, 3, 1, 16);
    e(259, 3, 1, DEFLATE ? 8 : 1);
    e(262, 3, 1, 1);
    e(273, 4, strips, offArr);
    e(277, 3, 1, 1);
    e(278, 4, 1, RPS);
    e(279, 4, strips, cntArr);
    e(339, 3, 1, 1);
    b.writeUInt32LE(next, p);
    let at = data;
    chunks.forEach((c, s) => {
      b.writeUInt32LE(at, ifdLen + s * 4);
      b.writeUInt32LE(c.length, ifdLen + strips * 4 + s * 4);
      at += c.length;
    });
    w(b);
    for (const c of chunks) w(c);
  }
  closeSync(fd);
  return pos;
}

const dir = mkdtempSync(join(tmpdir(), 'sliceform-iomem-'));
const file = join(dir, 'stack.tif');
try {
  const t0 = Date.now();
  const size = writeStack(file);
  console.error(
    `built ${file}: ${(size / 2 ** 30).toFixed(3)} GiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  const dist = join(repo, 'dist', 'main', 'io', 'index.js');
  const useDist = existsSync(dist);
  const entry = useDist ? pathToFileURL(dist).href : pathToFileURL(join(repo, 'main', 'io', 'index.ts')).href;
  const child = `
    const { readVolume } = await import(${JSON.stringify(entry)});
    const before = process.memoryUsage().rss;
    const t0 = Date.now();
    const v = await readVolume(${JSON.stringify(file)});
    const seconds = (Date.now() - t0) / 1000;
    let s = 0; for (let i = 0; i < v.data.length; i += 4099) s += v.data[i];
    const peak = process.resourceUsage().maxRSS * 1024;
    process.stdout.write(JSON.stringify({ voxelBytes: v.data.byteLength, peakRss: peak, rssBeforeRead: before, seconds, shape: v.shape, dtype: v.dtype, probe: s }));
  `;
  const nodeArgs = useDist
    ? ['--input-type=module', '-e', child]
    : ['--import', 'tsx', '--input-type=module', '-e', child];
  const r = spawnSync(process.execPath, nodeArgs, { cwd: repo, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    console.error(r.stderr);
    process.exit(1);
  }
  const m = JSON.parse(r.stdout);
  const ratio = m.peakRss / m.voxelBytes;
  const result = {
    ...m,
    ratio: Number(ratio.toFixed(3)),
    target: 1.3,
    pass: ratio <= 1.3,
    loader: useDist ? 'dist' : 'tsx',
    compression: DEFLATE ? 'deflate' : 'none',
    fileBytes: size,
    machine: `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`,
    date: new Date().toISOString(),
  };
  mkdirSync(join(repo, 'bench', 'out'), { recursive: true });
  writeFileSync(
    join(repo, 'bench', 'out', DEFLATE ? 'io-memory-deflate.json' : 'io-memory.json'),
    JSON.stringify(result, null, 2) + '\n',
  );
  console.log(
    `voxels ${(m.voxelBytes / 2 ** 30).toFixed(3)} GiB, peak RSS ${(m.peakRss / 2 ** 30).toFixed(3)} GiB, ratio ${ratio.toFixed(3)} (target <= 1.3), ` +
      `read ${m.seconds.toFixed(1)} s (${(m.voxelBytes / 2 ** 20 / m.seconds).toFixed(0)} MiB/s), ${result.compression}, ${result.loader}; ${result.machine}`,
  );
  if (!result.pass) process.exitCode = 1;
} finally {
  if (!args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
}
