#!/usr/bin/env node
// Memory of the web shell with a large stack (issue 12 item 3): writes a synthetic uint16 stack
// (1024 x 1024 x Z, default Z = 200: 400 MiB of voxels, uncompressed TIFF) in /tmp, starts `sliceform serve`,
// drives it over its WebSocket like the page does (open the file, paint one xy and one xz slice, train once),
// and samples the RSS of the server and of every process under it (the compute process) every 200 ms.
// Prints JSON figures: the summed RSS peak per phase, each process's peak, and the training's own working set
// (compute RSS during training minus its RSS just before), so the acceptance "summed peak < 2 x voxel bytes +
// the engine's working set" can be read off. Needs `npm run build:ts`. Heavy on a 2-core machine: run it rarely.
//   node bench/app-memory.mjs [--planes Z] [--iterations N] [--preset tiny|desktop] [--upload] [--keep]
// --upload opens the stack the way a dropped file is (POST /upload, streamed) instead of by path.
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, d) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : d;
};
const Z = Number(opt('--planes', 200));
const ITER = Number(opt('--iterations', 10));
const PRESET = opt('--preset', 'tiny');
const UPLOAD = args.includes('--upload');
const X = 1024;
const Y = 1024;
const { encodeFrame, decodeFrame } = await import(pathToFileURL(join(repo, 'dist', 'main', 'common', 'wire.js')).href);

/** Streams a little-endian classic TIFF, one strip per plane; a smooth blob pattern so training has something. */
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
  const plane = new Uint16Array(X * Y);
  for (let z = 0; z < Z; z++) {
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const inside = ((x >> 5) + (y >> 5) + (z >> 4)) % 3 === 0;
        plane[y * X + x] = (inside ? 3000 : 600) + ((x * 31 + y * 17 + z * 7) % 200);
      }
    const nTags = 9;
    const ifdLen = 2 + nTags * 12 + 4;
    const data = pos + ifdLen;
    const next = z + 1 < Z ? data + plane.byteLength : 0;
    const b = Buffer.alloc(ifdLen);
    b.writeUInt16LE(nTags, 0);
    let p = 2;
    const e = (tag, type, value) => {
      b.writeUInt16LE(tag, p);
      b.writeUInt16LE(type, p + 2);
      b.writeUInt32LE(1, p + 4);
      if (type === 3) b.writeUInt16LE(value, p + 8);
      else b.writeUInt32LE(value, p + 8);
      p += 12;
    };
    e(256, 4, X);
    e(257, 4, Y);
    e(258, 3, 16);
    e(259, 3, 1);
    e(262, 3, 1);
    e(273, 4, data);
    e(277, 3, 1);
    e(278, 4, Y);
    e(279, 4, plane.byteLength);
    b.writeUInt32LE(next, p);
    w(b);
    w(new Uint8Array(plane.buffer));
  }
  closeSync(fd);
  return pos;
}

// ---------------------------------------------------------------------------------------------- RSS sampling
function status(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}
function tree(root) {
  const kids = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch {
      // gone
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) ?? []));
  return out;
}
const MiB = (b) => Math.round(b / 2 ** 20);
const peaks = {}; // phase -> peak summed RSS
const procPeak = new Map(); // pid -> { role, hwm }
let phase = 'start';
let last = { sum: 0, byPid: {} };
let serverPid = 0;
function sample() {
  if (!serverPid) return;
  const byPid = {};
  let sum = 0;
  for (const pid of tree(serverPid)) {
    const s = status(pid);
    if (!s) continue;
    byPid[pid] = s.rss;
    sum += s.rss;
    const role = pid === serverPid ? 'web shell' : 'compute';
    procPeak.set(pid, { role, hwm: Math.max(procPeak.get(pid)?.hwm ?? 0, s.hwm) });
  }
  last = { sum, byPid };
  peaks[phase] = Math.max(peaks[phase] ?? 0, sum);
}
const computeRss = () => Object.entries(last.byPid).filter(([p]) => Number(p) !== serverPid).reduce((a, [, r]) => a + r, 0);
const enter = (p) => {
  sample();
  phase = p;
  sample();
};

// ---------------------------------------------------------------------------------------------- the run
const dir = '/tmp/sliceform-app-memory';
mkdirSync(dir, { recursive: true });
const file = join(dir, `stack-${X}x${Y}x${Z}.tif`);
const t0 = Date.now();
if (!existsSync(file)) {
  const size = writeStack(file);
  console.error(`built ${file}: ${MiB(size)} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const voxelBytes = X * Y * Z * 2;
rmSync(join(dir, 'work'), { recursive: true, force: true });
const proc = spawn(process.execPath, [join(repo, 'bin', 'sliceform.js'), 'serve', '--port', '0', '--work-dir', join(dir, 'work')], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
const info = await new Promise((res, rej) => {
  let out = '';
  proc.stdout.on('data', (d) => {
    out += d;
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (line && out.includes('\n')) res(JSON.parse(line));
  });
  proc.once('exit', (c) => rej(new Error(`serve exited with ${c}`)));
});
serverPid = proc.pid;
const timer = setInterval(sample, 200);
const ws = new WebSocket(`ws://127.0.0.1:${info.port}/ws`, { headers: { Authorization: `Bearer ${info.token}` }, maxPayload: 2 ** 31 });
await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
let nextId = 1;
const pending = new Map();
ws.on('message', (data) => {
  const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
  const m = decodeFrame(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  if (m.t !== 'result') return;
  const p = pending.get(m.id);
  pending.delete(m.id);
  if (m.ok) p.res(m.value);
  else p.rej(new Error(`${m.error.code}: ${m.error.message}`));
});
const call = (method, payload) =>
  new Promise((res, rej) => {
    const id = nextId++;
    pending.set(id, { res, rej });
    ws.send(encodeFrame({ t: 'call', id, method, payload }));
  });
/** POST /upload like the page's drop handler: the file is streamed, the answer is a result frame. */
const upload = (path, name) =>
  new Promise((res, rej) => {
    const req = request(
      { host: '127.0.0.1', port: info.port, method: 'POST', path: `/upload?name=${encodeURIComponent(name)}`, headers: { Authorization: `Bearer ${info.token}`, 'Content-Length': statSync(path).size } },
      (r) => {
        const chunks = [];
        r.on('data', (c) => chunks.push(c));
        r.on('end', () => {
          const buf = Buffer.concat(chunks);
          const m = decodeFrame(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
          if (m.ok) res(m.value);
          else rej(new Error(`upload: ${m.error.code}: ${m.error.message}`));
        });
      },
    );
    req.on('error', rej);
    createReadStream(path).pipe(req);
  });
const secs = {};
const timed = async (name, fn) => {
  const t = Date.now();
  enter(name);
  const r = await fn();
  secs[name] = (Date.now() - t) / 1000;
  sample();
  return r;
};

try {
  await timed('idle', async () => new Promise((r) => setTimeout(r, 1000)));
  await timed('engine', () => call('systemInfo'));
  const baseline = last.sum; // both processes up, engine loaded, no volume
  const vol = await timed('open', () => (UPLOAD ? upload(file, 'stack.tif') : call('openVolume', { path: file })));
  await timed('paint', async () => {
    const mask = new Uint8Array(X * Y).map((_, i) => (((i % X) >> 5) + ((i / X) >> 5)) % 3 === 0 ? 1 : 0);
    const inv = mask.map((m) => 1 - m);
    await call('paintRegion', { volumeId: vol.id, plane: 'xy', index: Z >> 1, classId: 2, origin: [0, 0], width: X, height: Y, mask });
    await call('paintRegion', { volumeId: vol.id, plane: 'xy', index: Z >> 1, classId: 1, origin: [0, 0], width: X, height: Y, mask: inv });
    for (let i = 0; i < 4; i++) await call('getSlice', { volumeId: vol.id, plane: ['xy', 'xz', 'yz', 'xy'][i], index: (Z >> 1) - i });
  });
  const beforeTrain = computeRss();
  let trainPeakCompute = 0;
  const watch = setInterval(() => (trainPeakCompute = Math.max(trainPeakCompute, computeRss())), 200);
  const job = await timed('train', async () => {
    const { jobId } = await call('startTraining', { preset: PRESET, iterations: ITER, heldOutFraction: 0 });
    return call('waitJob', { jobId, timeoutMs: 1_800_000 });
  });
  clearInterval(watch);
  await timed('after', async () => new Promise((r) => setTimeout(r, 1000)));
  if (job.state !== 'done') throw new Error(`training ended ${job.state}: ${job.error?.message}`);
  const peakSum = Math.max(...Object.values(peaks));
  const trainWorkingSet = trainPeakCompute - beforeTrain;
  const result = {
    mode: UPLOAD ? 'upload (POST /upload)' : 'path (openVolume)',
    shape: { x: X, y: Y, z: Z, dtype: 'uint16' },
    voxelMiB: MiB(voxelBytes),
    peakSummedRssMiB: MiB(peakSum),
    peakSummedRssByPhaseMiB: Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, MiB(v)])),
    processPeakMiB: [...procPeak.values()].map((p) => ({ role: p.role, peak: MiB(p.hwm) })).filter((p) => p.peak > 0),
    baselineMiB: MiB(baseline),
    computeBeforeTrainMiB: MiB(beforeTrain),
    trainingWorkingSetMiB: MiB(trainWorkingSet),
    // what the volume costs beyond the processes' fixed size (engine loaded) and the training's allocations
    ratioWithoutTraining: Number(((peakSum - baseline - trainWorkingSet) / voxelBytes).toFixed(2)),
    // what the volume costs beyond the processes' fixed size, training allocations included
    ratioAboveBaseline: Number(((peakSum - baseline) / voxelBytes).toFixed(2)),
    ratioTotal: Number((peakSum / voxelBytes).toFixed(2)),
    seconds: secs,
    iterations: job.result?.iterations,
    machine: `${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}, Node ${process.version}`,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  clearInterval(timer);
  ws.close();
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  rmSync(join(dir, 'work'), { recursive: true, force: true });
  if (!args.includes('--keep')) rmSync(file, { force: true });
}
