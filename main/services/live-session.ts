/**
 * A live training session in the compute process (runs only there): the app's annotation deltas reach the
 * recipe's sampler at the next step (pipeline/live.ts), and between two steps the planes the slice views show
 * are predicted with the newest weights, stored (getPreview) and announced (a 'preview' message):
 *  - after a stroke: once the sampler has trained one step on it, the volume's visible planes (the painted plane
 *    first), with the stroke -> preview latency;
 *  - every `previewEveryMs` of training, and when the visible planes change;
 *  - with the periodic previews, one z-slab of the coarse 3D preview (a rolling sweep, every `step`-th voxel).
 * Previews run between training steps, never during one: the engine is not re-entrant.
 */
import type { Plane, PreviewEvent } from '../common/api.js';
import type { LiveStep, RecipeLive } from '../pipeline/live.js';
import { SliceUncertaintyAccumulator } from '../pipeline/suggest.js';
import type { AnnotationDelta, ComputeStore } from './compute-store.js';

type Box = NonNullable<AnnotationDelta['box']>;

export interface LiveSessionOptions {
  /** periodic previews of the visible planes (default 3000 ms of training) */
  previewEveryMs?: number;
  /** the coarse 3D preview has at most this many voxels along its longest axis (default 64) */
  coarseMax?: number;
}

interface Stroke {
  volume: number;
  at: number;
  box: Box | null;
  /** the training step after which the sampler had it (set when taken) */
  takenAt?: number;
}

function union(a: Box | null | undefined, b: Box | null): Box | null {
  if (a === undefined) return b;
  if (a === null || b === null) return null;
  return {
    min: [Math.min(a.min[0], b.min[0]), Math.min(a.min[1], b.min[1]), Math.min(a.min[2], b.min[2])],
    max: [Math.max(a.max[0], b.max[0]), Math.max(a.max[1], b.max[1]), Math.max(a.max[2], b.max[2])],
  };
}

/** The plane a delta box lies on (a disc stroke is one voxel thick along the normal), if any. */
function planeOf(box: Box | null): { plane: Plane; index: number } | null {
  if (!box) return null;
  if (box.max[2] - box.min[2] === 1) return { plane: 'xy', index: box.min[2] };
  if (box.max[1] - box.min[1] === 1) return { plane: 'xz', index: box.min[1] };
  if (box.max[0] - box.min[0] === 1) return { plane: 'yz', index: box.min[0] };
  return null;
}

export class LiveSession {
  private readonly index = new Map<string, number>();
  private pending = new Map<number, Box | null>();
  private pendingRevision = new Map<number, number>();
  private strokes: Stroke[] = [];
  private readonly unsubscribe: () => void;
  /** per volume id, the annotation revision the sampler has taken in */
  readonly seenRevision: Record<string, number> = {};
  private lastPreviewAt = 0;
  private lastRoundMs = 0;
  private lastVisibleKey = '';
  private coarse = new Map<
    number,
    {
      data: Uint8Array;
      dims: { x: number; y: number; z: number };
      step: number;
      nextZ: number;
      uncertainty?: SliceUncertaintyAccumulator;
    }
  >();
  private coarseTurn = 0;
  /** stroke -> preview latencies (ms), for tests and the benchmark */
  readonly latencies: number[] = [];
  private readonly previewEveryMs: number;
  private readonly coarseMax: number;

  constructor(
    private readonly store: ComputeStore,
    private readonly volumeIds: string[],
    private readonly emit: (e: PreviewEvent) => void,
    opts: LiveSessionOptions = {},
  ) {
    volumeIds.forEach((id, i) => {
      this.index.set(id, i);
      this.seenRevision[id] = store.revision(id);
    });
    this.previewEveryMs = opts.previewEveryMs ?? 3000;
    this.coarseMax = opts.coarseMax ?? 64;
    this.unsubscribe = store.onAnnotation((d) => this.onDelta(d));
  }

  dispose(): void {
    this.unsubscribe();
  }

  private onDelta(d: AnnotationDelta): void {
    const v = this.index.get(d.volumeId);
    if (v === undefined) return;
    this.pending.set(v, union(this.pending.has(v) ? this.pending.get(v) : undefined, d.box));
    if (d.revision !== undefined) this.pendingRevision.set(v, d.revision);
    if (d.strokeAt !== undefined) this.strokes.push({ volume: v, at: d.strokeAt, box: d.box });
  }

  /** What the recipe's live training asks for (pipeline/live.ts). */
  recipeLive(): RecipeLive {
    return {
      takeChanges: () => {
        const out = [...this.pending].map(([volume, box]) => ({
          volume,
          box,
          labels: this.store.layer(this.volumeIds[volume]!, 'annotation'),
        }));
        for (const [v, r] of this.pendingRevision) this.seenRevision[this.volumeIds[v]!] = r;
        this.pending = new Map();
        this.pendingRevision = new Map();
        return out;
      },
      between: (s) => this.between(s),
    };
  }

  private async between(s: LiveStep): Promise<void> {
    // strokes the sampler took in at this step are previewed after the next one (its weights have seen them)
    for (const st of this.strokes) if (st.takenAt === undefined && s.changed) st.takenAt = s.iteration;
    const ready = this.strokes.filter((st) => st.takenAt !== undefined && st.takenAt < s.iteration);
    if (ready.length) {
      this.strokes = this.strokes.filter((st) => !ready.includes(st));
      for (const v of new Set(ready.map((r) => r.volume))) {
        const mine = ready.filter((r) => r.volume === v);
        const at = Math.min(...mine.map((r) => r.at));
        const painted = mine
          .map((r) => planeOf(r.box))
          .filter((p): p is { plane: Plane; index: number } => p !== null);
        const visible = this.store.visiblePlanes(this.volumeIds[v]!);
        // the painted plane first (when it is shown), then the other visible planes
        const isPainted = (p: { plane: Plane; index: number }) =>
          painted.some((q) => q.plane === p.plane && q.index === p.index);
        const order = [...visible.filter(isPainted), ...visible.filter((p) => !isPainted(p))];
        for (let i = 0; i < order.length; i++)
          await this.previewPlane(s, v, order[i]!.plane, order[i]!.index, at, i === 0);
      }
      this.lastPreviewAt = Date.now();
      return;
    }
    const key = this.volumeIds.map((id) => JSON.stringify(this.store.visiblePlanes(id))).join('|');
    // periodic previews take at most about a quarter of the time (a slow machine trains more between them)
    const every = Math.max(this.previewEveryMs, 3 * this.lastRoundMs);
    if (Date.now() - this.lastPreviewAt < every && key === this.lastVisibleKey) return;
    const t0 = Date.now();
    this.lastVisibleKey = key;
    for (let v = 0; v < this.volumeIds.length; v++)
      for (const p of this.store.visiblePlanes(this.volumeIds[v]!))
        await this.previewPlane(s, v, p.plane, p.index);
    await this.coarseSlab(s);
    this.lastPreviewAt = Date.now();
    this.lastRoundMs = this.lastPreviewAt - t0;
  }

  private async previewPlane(
    s: LiveStep,
    v: number,
    plane: Plane,
    index: number,
    strokeAt?: number,
    record = false,
  ): Promise<void> {
    const volumeId = this.volumeIds[v]!;
    const revision = this.seenRevision[volumeId] ?? 0;
    const pr = await s.predictPlane(v, plane, index);
    this.store.setPreview({
      volumeId,
      plane,
      index,
      width: pr.width,
      height: pr.height,
      labels: pr.labels,
      probabilities: pr.probabilities,
      iteration: s.iteration,
      revision,
      modelTime: new Date().toISOString(),
    });
    const e: PreviewEvent = { volumeId, plane, index, iteration: s.iteration, revision };
    if (strokeAt !== undefined) {
      e.latencyMs = Math.max(0, Date.now() - strokeAt);
      if (record) this.latencies.push(e.latencyMs);
    }
    this.emit(e);
  }

  /** One z-slab of the coarse 3D preview of one volume (volumes take turns). */
  private async coarseSlab(s: LiveStep): Promise<void> {
    const v = this.coarseTurn++ % this.volumeIds.length;
    const volumeId = this.volumeIds[v]!;
    const { x: X, y: Y, z: Z } = this.store.image(volumeId).shape;
    const f = s.factors;
    let c = this.coarse.get(v);
    if (!c) {
      const step = Math.max(1, Math.ceil(Math.max(X, Y, Z) / this.coarseMax));
      const dims = { x: Math.ceil(X / step), y: Math.ceil(Y / step), z: Math.ceil(Z / step) };
      c = { data: new Uint8Array(dims.x * dims.y * dims.z), dims, step, nextZ: 0 };
      this.coarse.set(v, c);
    }
    const lowZ = Math.ceil(Z / f[0]);
    const lowY = Math.ceil(Y / f[1]);
    const lowX = Math.ceil(X / f[2]);
    // an eighth of the volume, at most ~250k working-resolution voxels, per round
    const depth = Math.max(1, Math.min(Math.ceil(lowZ / 8), Math.floor(250_000 / (lowY * lowX))));
    const slab = await s.predictSlab(v, c.nextZ, depth);
    const { step, dims } = c;
    for (let cz = 0; cz < dims.z; cz++) {
      const lz = Math.min(lowZ - 1, Math.floor((cz * step) / f[0]));
      if (lz < slab.z0 || lz >= slab.z0 + slab.depth) continue;
      for (let cy = 0; cy < dims.y; cy++) {
        const ly = Math.min(lowY - 1, Math.floor((cy * step) / f[1]));
        for (let cx = 0; cx < dims.x; cx++) {
          const lx = Math.min(lowX - 1, Math.floor((cx * step) / f[2]));
          c.data[(cz * dims.y + cy) * dims.x + cx] = slab.labels[((lz - slab.z0) * lowY + ly) * lowX + lx]!;
        }
      }
    }
    // per-slice uncertainty of the sweep ("annotate here next", pipeline/suggest.ts), recorded when it is complete
    const K = slab.probabilities.length / Math.max(1, slab.labels.length);
    if (slab.z0 === 0 || !c.uncertainty)
      c.uncertainty = new SliceUncertaintyAccumulator({ x: lowX, y: lowY, z: lowZ }, K);
    c.uncertainty.addSlab(slab.z0, slab.depth, slab.probabilities);
    c.nextZ = slab.z0 + slab.depth >= lowZ ? 0 : slab.z0 + slab.depth;
    if (c.nextZ === 0) {
      const u = c.uncertainty.result();
      // working-resolution slices to the volume's: slice i is working slice floor(i / factor)
      const spread = (a: Float64Array, n: number, fa: number) =>
        Array.from({ length: n }, (_, i) => a[Math.min(a.length - 1, Math.floor(i / fa))] ?? 0);
      this.store.setUncertainty(volumeId, {
        from: 'preview',
        iteration: s.iteration,
        at: Date.now(),
        perAxis: { xy: spread(u.xy, Z, f[0]), xz: spread(u.xz, Y, f[1]), yz: spread(u.yz, X, f[2]) },
      });
      c.uncertainty = undefined;
    }
    this.store.setPreviewVolume({
      volumeId,
      dims: { ...dims },
      step,
      labels: c.data.slice(),
      iteration: s.iteration,
    });
  }
}
