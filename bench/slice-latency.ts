/**
 * Full-resolution slice latency of an out-of-core volume (main/services/big-volume.ts), what the app's slice
 * views wait for: the first slice of each plane, then consecutive slices (scrolling), in the compute
 * process's code path (BigVolume over the source with its chunk cache).
 *
 *   node --import tsx bench/slice-latency.ts STORE.ome.zarr [STORE2 ...]
 *
 * Prints one JSON line per store: milliseconds per slice, chunk reads (cache misses) and peak RSS. Run it on a
 * quiet machine; `uptime` is printed with it because the shared machine's load decides the figures.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BigVolume, SOURCE_CACHE_BYTES } from '../main/services/big-volume.js';
import { openZarrSource } from '../main/io/zarr/reader.js';

const stores = process.argv.slice(2);
if (!stores.length) {
  console.error('usage: node --import tsx bench/slice-latency.ts STORE.ome.zarr [...]');
  process.exit(2);
}
const hwm = () => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
};
for (const path of stores) {
  const src = await openZarrSource(path, { cacheBytes: SOURCE_CACHE_BYTES });
  const t0 = performance.now();
  const big = await BigVolume.open(src);
  const openMs = Math.round(performance.now() - t0);
  const { x: X, y: Y, z: Z } = big.shape;
  const out: Record<string, number[]> = {};
  const reads: Record<string, number> = {};
  for (const [plane, mid] of [
    ['xy', Math.floor(Z / 2) + 3],
    ['xz', Math.floor(Y / 2) + 3],
    ['yz', Math.floor(X / 2) + 3],
  ] as const) {
    const before = src.chunkReads;
    const ms: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      await big.slice(plane, mid + k);
      ms.push(Math.round(performance.now() - t));
    }
    out[plane] = ms;
    reads[plane] = src.chunkReads - before;
  }
  console.log(
    JSON.stringify({ store: path, shape: [X, Y, Z, big.shape.c], chunk: src.chunk, openMs, msPerSlice: out, chunkReads: reads, peakRssMiB: hwm(), uptime: execFileSync('uptime', { encoding: 'utf8' }).trim() }),
  );
  await big.close();
}
