/**
 * Brush and eraser strokes. The vtk.js PaintWidget in each slice view reports the brush path (world
 * coordinates); one shared vtkPaintFilter rasterises it onto the annotation label map (its web worker paints
 * discs of the brush radius on the stroke's slice only), and the changed plane region is sent to the API as a
 * RegionEdit so the label volume and its undo stack live server-side. Strokes are serialised so a quick
 * second stroke never races the first one's worker.
 */
import vtkPaintFilter from '@kitware/vtk.js/Filters/General/PaintFilter';
import { SlicingMode } from '@kitware/vtk.js/Rendering/Core/ImageMapper/Constants';
import type { EditResult, SliceformApi } from '../../../main/common/api.js';
import { cropPlaneMask, type Plane } from '../render/composite.js';
import type { LabelImage } from '../render/labels.js';
import type { Store } from '../state.js';

type Vec3 = [number, number, number];
const SLICING: Record<Plane, number> = { xy: SlicingMode.K, xz: SlicingMode.J, yz: SlicingMode.I };

export interface StrokeTiming {
  /** pointer release -> label map updated locally (ms) */
  applyMs: number;
  /** pointer release -> server acknowledged (ms) */
  serverMs: number;
}

export class Annotator {
  readonly filter = vtkPaintFilter.newInstance();
  private chain: Promise<unknown> = Promise.resolve();
  private current: { plane: Plane; index: number; label: number; radius: number; points: Vec3[] } | null = null;
  readonly timings: StrokeTiming[] = [];
  canUndo = false;
  canRedo = false;

  constructor(
    private readonly store: Store,
    private readonly api: SliceformApi,
    private readonly onLocalChange: () => void,
    private readonly onError: (e: unknown) => void,
  ) {}

  setLabelMap(img: LabelImage | null): void {
    if (img) this.filter.setLabelMap(img);
  }

  /** brush radius in world units: the xy pixel radius times the x spacing (so it is round in µm) */
  radiusWorld(): number {
    const s = this.store.volume?.spacing;
    return this.store.brushRadius * (s?.x ?? 1);
  }

  start(plane: Plane, index: number, world: Vec3): void {
    if (!this.store.volume || this.store.tool === 'navigate') return;
    const label = this.store.tool === 'eraser' ? 0 : this.store.activeClass;
    this.current = { plane, index, label, radius: this.radiusWorld(), points: [[...world]] };
  }

  move(world: Vec3): void {
    this.current?.points.push([...world]);
  }

  /** Rasterise the finished stroke with the paint filter, then send it to the API. */
  end(): Promise<void> {
    const s = this.current;
    this.current = null;
    if (!s) return Promise.resolve();
    const released = performance.now();
    // the stroke belongs to the stack it was drawn on: if another stack is opened before its turn comes, it is
    // dropped rather than painted onto the new one
    const drawnOn = this.store.volume;
    const run = async () => {
      const vol = this.store.volume;
      if (!vol || vol !== drawnOn) return;
      const f = this.filter;
      f.setSlicingMode(SLICING[s.plane]);
      f.setLabel(s.label);
      f.setRadius(s.radius);
      f.startStroke();
      for (const p of s.points) f.addPoint(p);
      const buf = (await f.endStroke()) as ArrayBuffer | undefined;
      // the filter's own .then (registered first) has applied the mask to the label map by now
      if (!buf) return;
      const applied = performance.now();
      this.onLocalChange();
      const shown = cropPlaneMask(new Uint8Array(buf), vol.dims, s.plane, s.index);
      if (!shown) return;
      // an out-of-core volume is shown at 1/step: each painted pixel is a step×step square of the file's slice
      const k = vol.step ?? 1;
      const crop = k > 1 ? scaleMask(shown, k) : shown;
      const res: EditResult = await this.api.paintRegion({
        volumeId: vol.id,
        plane: s.plane,
        index: s.index * k,
        classId: s.label,
        origin: crop.origin,
        width: crop.width,
        height: crop.height,
        mask: crop.mask,
      });
      this.timings.push({ applyMs: applied - released, serverMs: performance.now() - released });
      this.canUndo = res.canUndo;
      this.canRedo = res.canRedo;
      this.noteRevision(res);
      const st = this.store;
      st.strokes.splice(st.strokeCursor);
      st.strokes.push({ plane: s.plane, index: s.index });
      st.strokeCursor = st.strokes.length;
      st.emit('painted', undefined);
    };
    const p = this.chain.then(run).catch((e) => this.onError(e));
    this.chain = p;
    return p;
  }

  /** Undo/redo on the server (across planes), then the caller refreshes the label map. */
  step(kind: 'undo' | 'redo'): Promise<EditResult | null> {
    const run = async () => {
      const vol = this.store.volume;
      if (!vol) return null;
      const res = await (kind === 'undo' ? this.api.undo({ volumeId: vol.id }) : this.api.redo({ volumeId: vol.id }));
      this.canUndo = res.canUndo;
      this.canRedo = res.canRedo;
      this.noteRevision(res);
      const st = this.store;
      if (res.changed > 0 || res.box) {
        if (kind === 'undo' && st.strokeCursor > 0) st.strokeCursor--;
        if (kind === 'redo' && st.strokeCursor < st.strokes.length) st.strokeCursor++;
      }
      st.emit('painted', undefined);
      return res;
    };
    const p = this.chain.then(run);
    this.chain = p.catch((e) => this.onError(e));
    return p;
  }

  /** the server's annotation revision after an edit: what the live panel compares with the model's */
  private noteRevision(res: EditResult): void {
    if (typeof res.revision === 'number' && res.revision !== this.store.revision) {
      this.store.revision = res.revision;
      this.store.emit('revision', res.revision);
    }
  }

  /** resolves when every queued stroke has reached the server */
  idle(): Promise<unknown> {
    return this.chain;
  }

  dispose(): void {
    this.filter.delete();
  }
}

/** A plane mask scaled up k times (nearest): origin, size and every pixel (out-of-core volumes, see end()). */
export function scaleMask(m: { origin: [number, number]; width: number; height: number; mask: Uint8Array }, k: number) {
  const width = m.width * k,
    height = m.height * k;
  const mask = new Uint8Array(width * height);
  for (let v = 0; v < height; v++) {
    const src = Math.floor(v / k) * m.width;
    for (let u = 0; u < width; u++) mask[v * width + u] = m.mask[src + Math.floor(u / k)]!;
  }
  return { origin: [m.origin[0] * k, m.origin[1] * k] as [number, number], width, height, mask };
}
