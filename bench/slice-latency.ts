/**
 * Full-resolution slice latency of an out-of-core volume (main/services/big-volume.ts), what the app's slice
 * views wait for: the first slice of each plane, then consecutive slices (scrolling), in the compute
 * process's code path (BigVolume over the source with its chunk cache).
 *
 *   node --import tsx bench/slice-latency.ts STORE.ome.zarr [STORE2 ...]
 *
 * Prints one JSON line per store and mode: milliseconds per slice for 5 consecutive slices of each plane, chunk
 * reads (cache misses) and peak RSS (of the process so far). Modes (SLICE_MODES, default both): `single` reads
 * each slice's box alone through the chunk cache (what BigVolume.slice did before bands), `band` is
 * BigVolume.slice now. Run it on a quiet machine; `uptime` is printed because the shared machine's load decides
 * the figures.
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
/** the slice's box: what BigVolume.slice read alone before bands (one plane through the chunk cache) */
const sliceBox = (plane: 'xy' | 'xz' | 'yz', i: number, X: number, Y: number, Z: number) =>
  plane === 'xy' ? { x0: 0, x1: X, y0: 0, y1: Y, z0: i, z1: i + 1 } : plane === 'xz' ? { x0: 0, x1: X, y0: i, y1: i + 1, z0: 0, z1: Z } : { x0: i, x1: i + 1, y0: 0, y1: Y, z0: 0, z1: Z };
const modes = (process.env.SLICE_MODES ?? 'single,band').split(',');
for (const path of stores)
  for (const mode of modes) {
    // a fresh source per mode: both start with a cold chunk cache
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
        if (mode === 'single') await src.read(sliceBox(plane, mid + k, X, Y, Z));
        else await big.slice(plane, mid + k);
        ms.push(Math.round(performance.now() - t));
      }
      out[plane] = ms;
      reads[plane] = src.chunkReads - before;
    }
    console.log(
      JSON.stringify({
        store: path,
        mode,
        shape: [X, Y, Z, big.shape.c],
        chunk: src.chunk,
        openMs,
        msPerSlice: out,
        chunkReads: reads,
        peakRssMiB: hwm(),
        uptime: execFileSync('uptime', { encoding: 'utf8' }).trim(),
      }),
    );
    await big.close();
  }
