/**
 * The renderer's state: what is loaded, how it is shown, which tool is active. Plain objects and a tiny
 * typed event hub (no framework); vtk.js objects stay in the views that own them.
 */
import type { TypedArray } from '../../main/common/volume.js';
import type { ChannelDisplay, Dims, Plane, RGB } from './render/composite.js';

export interface ClassDef {
  /** 1..255 (0 is "unannotated" and never a class) */
  id: number;
  name: string;
  color: RGB;
  visible: boolean;
  /** 0..1, used in 3D */
  opacity: number;
}

/** Label colours, chosen to stay distinguishable from the channel colours (green/magenta/cyan). */
export const CLASS_COLORS: RGB[] = [
  [0.25, 0.45, 1.0],
  [1.0, 0.3, 0.1],
  [1.0, 0.85, 0.0],
  [0.6, 0.2, 1.0],
  [0.0, 0.8, 0.6],
  [1.0, 0.55, 0.75],
  [0.55, 0.35, 0.15],
  [0.9, 0.9, 0.9],
];

export function defaultClasses(n = 2, names?: string[]): ClassDef[] {
  const base = ['background', 'foreground'];
  return Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    name: names?.[i] ?? base[i] ?? `class ${i + 1}`,
    color: CLASS_COLORS[i % CLASS_COLORS.length],
    visible: true,
    opacity: i === 0 ? 0.05 : 0.8,
  }));
}

export interface LoadedVolume {
  id: string;
  name: string;
  source: string;
  /** the file's grid: the cursor, slice numbers, slice views and strokes are in these voxels */
  dims: Dims;
  /** the voxels the page holds, on heldGrid(volume) (the file's grid unless `held` is set) */
  channels: TypedArray[];
  spacing: { x: number; y: number; z: number; unit: string };
  dtype: string;
  /**
   * An out-of-core volume (VolumeInfo.outOfCore): the page holds only its 3D level, `dims` voxels of every
   * `step`-th file voxel (the 3D view, `channels`, the whole-volume label images); the slice views fetch the
   * file's slices at full resolution (views/full-res.ts).
   */
  held?: { dims: Dims; spacing: { x: number; y: number; z: number; unit: string }; step: number };
}

/** The grid of a volume's `channels` and whole-volume label images: the 3D level out of core, else the file's. */
export function heldGrid(v: LoadedVolume): { dims: Dims; spacing: LoadedVolume['spacing']; step: number } {
  return v.held ?? { dims: v.dims, spacing: v.spacing, step: 1 };
}

export type Tool = 'navigate' | 'brush' | 'eraser';

export interface StrokeRecord {
  plane: Plane;
  index: number;
}

export interface Events {
  volume: LoadedVolume | null;
  cursor: [number, number, number];
  channels: ChannelDisplay[];
  classes: ClassDef[];
  /** which label volume changed ('annotation' after strokes/undo, 'prediction' after densify) */
  labels: 'annotation' | 'prediction';
  tool: Tool;
  overlay: void;
  painted: void;
  /** the server's annotation revision of the shown volume changed (a stroke, undo, redo, a reload) */
  revision: number;
  /** a live preview arrived or went (the plane it belongs to, '3d' for the coarse volume) */
  preview: Plane | '3d';
  /** new "annotate here next" suggestions */
  suggestions: void;
  /** detail: the technical message behind an error, shown on demand */
  status: { level: 'info' | 'error'; text: string; detail?: string };
  layout: void;
}

type Handler<T> = (v: T) => void;

export class Store {
  volume: LoadedVolume | null = null;
  cursor: [number, number, number] = [0, 0, 0];
  channels: ChannelDisplay[] = [];
  classes: ClassDef[] = defaultClasses();
  activeClass = 2;
  tool: Tool = 'navigate';
  /** brush radius in xy pixels */
  brushRadius = 4;
  labelOpacity = 0.5;
  outline = false;
  showAnnotation = true;
  showPrediction = true;
  showPlanesIn3D = true;
  show3DVolume = true;
  show3DLabels = true;
  /** user annotation, x fastest, 0 = unannotated */
  annotation: Uint8Array | null = null;
  /** dense result of the last densify (class ids), or null */
  prediction: Uint8Array | null = null;
  /** the stroke log mirrored from the server's undo stack: done strokes then undone ones */
  strokes: StrokeRecord[] = [];
  strokeCursor = 0;
  /** the server's annotation revision of the shown volume (EditResult / AnnotationSummary.revision) */
  revision = 0;
  /** draw the live session's preview layer in the slice views (and the coarse preview in 3D) */
  showPreview = true;
  private handlers = new Map<keyof Events, Set<Handler<never>>>();

  on<K extends keyof Events>(ev: K, fn: Handler<Events[K]>): () => void {
    let set = this.handlers.get(ev);
    if (!set) this.handlers.set(ev, (set = new Set()));
    set.add(fn as Handler<never>);
    return () => set.delete(fn as Handler<never>);
  }

  emit<K extends keyof Events>(ev: K, value: Events[K]): void {
    const set = this.handlers.get(ev);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Handler<Events[K]>)(value);
      } catch (e) {
        console.error(`handler for ${ev} failed`, e);
      }
    }
  }

  setCursor(c: [number, number, number]): void {
    const v = this.volume;
    if (!v) return;
    const clamp = (n: number, hi: number) => Math.max(0, Math.min(hi - 1, Math.round(n)));
    const next: [number, number, number] = [clamp(c[0], v.dims.x), clamp(c[1], v.dims.y), clamp(c[2], v.dims.z)];
    if (next[0] === this.cursor[0] && next[1] === this.cursor[1] && next[2] === this.cursor[2]) return;
    this.cursor = next;
    this.emit('cursor', next);
  }

  /** Slices of each plane carrying at least one stroke that is not undone. */
  paintedSlices(plane: Plane): Set<number> {
    const s = new Set<number>();
    for (let i = 0; i < this.strokeCursor; i++) if (this.strokes[i].plane === plane) s.add(this.strokes[i].index);
    return s;
  }

  classById(id: number): ClassDef | undefined {
    return this.classes.find((c) => c.id === id);
  }

  status(text: string, level: 'info' | 'error' = 'info', detail?: string): void {
    this.emit('status', { level, text, detail });
  }
}
