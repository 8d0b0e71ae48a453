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
  private current: { plane: Plane; index: number; label: number; radius: number; points: Vec3[]; target: LabelImage | null } | null = null;
  readonly timings: StrokeTiming[] = [];
  canUndo = false;
  canRedo = false;
  /** out of core: a stroke painted at full resolution (mask in file voxels of the plane), for the 3D level's labels */
  onFullResStroke?: (plane: Plane, index: number, crop: { origin: [number, number]; width: number; height: number; mask: Uint8Array }, label: number) => void;

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

  /**
   * `target`: the label image to paint on when it is not the whole-volume annotation: an out-of-core volume's
   * slice views paint on their one-voxel-thick full-resolution image of the shown file slice (views/full-res.ts).
   */
  start(plane: Plane, index: number, world: Vec3, target: LabelImage | null = null): void {
    if (!this.store.volume || this.store.tool === 'navigate') return;
    const label = this.store.tool === 'eraser' ? 0 : this.store.activeClass;
    this.current = { plane, index, label, radius: this.radiusWorld(), points: [[...world]], target };
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
      // out of core the filter paints the view's thin full-resolution image of the file slice (its world
      // transform follows the image's origin, which sits on the slice); otherwise the whole annotation
      if (s.target) {
        if (s.target.isDeleted()) return;
        f.setLabelMap(s.target);
      }
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
      // the stroke's mask in file voxels of the plane: slice 0 of the thin image, or the stroke's slice
      const td = s.target?.getDimensions();
      const crop = td ? cropPlaneMask(new Uint8Array(buf), { x: td[0]!, y: td[1]!, z: td[2]! }, s.plane, 0) : cropPlaneMask(new Uint8Array(buf), vol.dims, s.plane, s.index);
      if (!crop) return;
      // the page's whole-volume annotation of an out-of-core volume is its 3D level: the stroke's voxels on it
      if (s.target) this.onFullResStroke?.(s.plane, s.index, crop, s.label);
      const res: EditResult = await this.api.paintRegion({
        volumeId: vol.id,
        plane: s.plane,
        index: s.index,
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
