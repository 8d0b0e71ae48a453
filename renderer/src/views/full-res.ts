/**
 * Full-resolution slices of an out-of-core volume (VolumeInfo.outOfCore) for the slice views.
 *
 * The page holds such a volume only at its 3D level (1/step on every axis). A slice view shows the file's own
 * slice instead, fetched on demand with getSlice (and its labels with getLabelSlice, from the app process's
 * sparse store): until it arrives the level's slice is shown upscaled (and marked so), then replaced. One image
 * request per view is in flight at a time; an answer for a slice the view has left is kept in the small cache
 * but never drawn, and the next request is for the slice shown then (scrolling skips what it passed). When the
 * shown slice is in, its neighbours are prefetched, in the scrolling direction first.
 *
 * Pure scheduling and geometry: no vtk objects here (the view owns those), so it is unit-tested in Node.
 */
import type { LabelSliceData, Plane, SliceData, SliceformApi } from '../../../main/common/api.js';
import type { Dims } from '../render/composite.js';
import type { LoadedVolume } from '../state.js';

/** What a slice view draws for a slice: the file's slice (in hand), the level's (upscaled) or the page's own voxels. */
export type SliceSource = { kind: 'memory' } | { kind: 'full'; slice: SliceData } | { kind: 'level'; index: number; step: number };

/**
 * The source of slice `index` (file voxels) of `plane`: in-memory volumes draw from their voxels; an
 * out-of-core one draws its full-resolution slice when the view has it, else the 3D level's nearest slice.
 */
export function sliceSource(v: LoadedVolume, plane: Plane, index: number, have: SliceData | null): SliceSource {
  if (!v.held) return { kind: 'memory' };
  if (have && have.plane === plane && have.index === index) return { kind: 'full', slice: have };
  const step = v.held.step;
  return { kind: 'level', index: levelIndex(index, step, planeDepthOf(plane, v.held.dims)), step };
}

/** The 3D level's slice holding file slice `index` (level voxel j stands for file voxels j·step … j·step + step − 1). */
export function levelIndex(index: number, step: number, levelDepth: number): number {
  return Math.max(0, Math.min(levelDepth - 1, Math.floor(index / step)));
}

function planeDepthOf(plane: Plane, d: Dims): number {
  return plane === 'xy' ? d.z : plane === 'xz' ? d.y : d.x;
}

/**
 * A one-voxel-thick volume holding one plane's pixels in the Volume layout (x fastest): the layout of
 * SliceData / LabelSliceData (u fastest), so compositePlane and cropPlaneMask read a slice as slice 0 of it.
 */
export function thinDims(plane: Plane, width: number, height: number): Dims {
  return plane === 'xy' ? { x: width, y: height, z: 1 } : plane === 'xz' ? { x: width, y: 1, z: height } : { x: 1, y: width, z: height };
}

/** One channel of a slice (channel-planar data) as its own array view. */
export function sliceChannel(s: SliceData, c: number): SliceData['data'] {
  const n = s.width * s.height;
  return s.data.subarray(c * n, (c + 1) * n) as SliceData['data'];
}

/** A stroke's mask on one plane: top-left [u, v] in file voxels of the plane, width × height pixels. */
export interface PlaneMask {
  origin: [number, number];
  width: number;
  height: number;
  mask: Uint8Array;
}

/**
 * The voxels (x fastest indices) of the 3D level (every `step`-th file voxel, `dims` voxels) that a stroke
 * painted at full resolution on file slice `index` covers: none unless the slice is on the level's grid, then
 * the masked pixels whose file u and v are multiples of the step. (What SparseLabels.sample gives back.)
 */
export function heldStrokeVoxels(plane: Plane, index: number, crop: PlaneMask, held: { dims: Dims; step: number }): number[] {
  const { dims: d, step: k } = held;
  const out: number[] = [];
  if (index % k !== 0) return out;
  for (let b = 0; b < crop.height; b++) {
    const fv = crop.origin[1] + b;
    if (fv % k) continue;
    for (let a = 0; a < crop.width; a++) {
      const fu = crop.origin[0] + a;
      if (fu % k || !crop.mask[b * crop.width + a]) continue;
      const [x, y, z] = plane === 'xy' ? [fu / k, fv / k, index / k] : plane === 'xz' ? [fu / k, index / k, fv / k] : [index / k, fu / k, fv / k];
      if (x < d.x && y < d.y && z < d.z) out.push((z * d.y + y) * d.x + x);
    }
  }
  return out;
}

export interface FullResEvents {
  /** the full-resolution image of `index` arrived (drawn if the view still shows it) */
  image: (index: number) => void;
  /** the labels of `index` arrived (annotation, and the prediction when asked) */
  labels: (index: number, annotation: LabelSliceData, prediction: LabelSliceData | null) => void;
  error: (e: unknown) => void;
}

/** Fetches the full-resolution slices (and label slices) of one view of an out-of-core volume. */
export class FullResLoader {
  private readonly cache = new Map<number, SliceData>();
  private want: number | null = null;
  private busy = false;
  private last = -1;
  private direction = 1;
  private labelSeq = 0;
  private closed = false;
  /** requests sent (image slices), for tests: stale ones are skipped, not sent */
  readonly sent: number[] = [];

  constructor(
    private readonly api: Pick<SliceformApi, 'getSlice' | 'getLabelSlice'>,
    readonly volumeId: string,
    readonly plane: Plane,
    readonly depth: number,
    private readonly on: FullResEvents,
    /** slices kept by this view (the app process and the compute process keep more) */
    private readonly keep = 6,
  ) {}

  /** the full-resolution slice when this view has it */
  get(index: number): SliceData | null {
    const s = this.cache.get(index);
    if (!s) return null;
    this.cache.delete(index); // most recent last
    this.cache.set(index, s);
    return s;
  }

  /** The view shows slice `index` now: fetch it unless in hand (then prefetch its neighbours). */
  show(index: number): void {
    if (this.closed) return;
    if (this.last >= 0 && index !== this.last) this.direction = index > this.last ? 1 : -1;
    this.last = index;
    this.want = index;
    void this.pump();
  }

  /** Fetch the labels of `index` (after a move, a stroke, undo/redo); only the newest answer is delivered. */
  labels(index: number, withPrediction: boolean): void {
    if (this.closed) return;
    const seq = ++this.labelSeq;
    const req = { volumeId: this.volumeId, plane: this.plane, index };
    void Promise.all([
      this.api.getLabelSlice({ ...req, layer: 'annotation' }),
      withPrediction ? this.api.getLabelSlice({ ...req, layer: 'prediction' }).catch(() => null) : Promise.resolve(null),
    ]).then(
      ([a, p]) => {
        if (!this.closed && seq === this.labelSeq) this.on.labels(index, a, p);
      },
      (e) => {
        if (!this.closed && seq === this.labelSeq) this.on.error(e);
      },
    );
  }

  private next(): number | null {
    const w = this.want;
    if (w === null) return null;
    if (!this.cache.has(w)) return w;
    // the shown slice is in: its neighbours, the scrolling direction first
    for (const d of [this.direction, -this.direction]) {
      const n = w + d;
      if (n >= 0 && n < this.depth && !this.cache.has(n)) return n;
    }
    return null;
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let i = this.next(); i !== null && !this.closed; i = this.next()) {
        this.sent.push(i);
        let s: SliceData;
        try {
          s = await this.api.getSlice({ volumeId: this.volumeId, plane: this.plane, index: i });
        } catch (e) {
          if (!this.closed) this.on.error(e);
          return;
        }
        if (this.closed) return;
        this.cache.set(i, s);
        for (const k of this.cache.keys()) {
          if (this.cache.size <= this.keep) break;
          if (k !== this.want) this.cache.delete(k);
        }
        if (i === this.want) this.on.image(i);
      }
    } finally {
      this.busy = false;
    }
  }

  /** The view left this volume: answers still on the way are dropped. */
  close(): void {
    this.closed = true;
    this.cache.clear();
  }
}
