/**
 * The live loop's read side in the page: which planes the slice views show (told to the server with
 * setVisiblePlanes whenever a slider or view changes), the newest preview of each of them (fetched with
 * getPreview when an onPreview event names a plane a view shows), the coarse 3D preview (getPreviewVolume,
 * throttled) and the "annotate here next" suggestions (getSuggestions after densify and, throttled, on previews).
 * The views draw what this holds; nothing here writes data.
 */
import type { PreviewEvent, PreviewSliceData, PreviewVolumeData, SliceSuggestions } from '../../../main/common/api.js';
import type { App } from '../app.js';
import { PLANE_AXIS, PLANES, type Plane } from '../render/composite.js';
import { deleteImage, makeLabelImage, setLabelValues, type LabelImage } from '../render/labels.js';

/** one preview that reached the page (for the panel, tests and the console) */
export interface PreviewLogEntry {
  plane: Plane;
  index: number;
  iteration: number;
  revision: number;
  /** stroke -> preview event (server's figure), when a stroke triggered it */
  latencyMs?: number;
  /** performance.now() when the data arrived */
  at: number;
}

const VISIBLE_DEBOUNCE_MS = 120;
const VOLUME_EVERY_MS = 4000;
const SUGGEST_EVERY_MS = 5000;

export class LivePreview {
  readonly previews: Record<Plane, PreviewSliceData | null> = { xy: null, xz: null, yz: null };
  volume: PreviewVolumeData | null = null;
  /** the coarse 3D preview as a label image (spacing = voxel spacing x step), or null */
  volumeImg: LabelImage | null = null;
  /** true once a densify result arrived after the last coarse preview: 3D shows the result again */
  predictionNewer = false;
  suggestions: SliceSuggestions | null = null;
  readonly log: PreviewLogEntry[] = [];
  private visibleTimer: ReturnType<typeof setTimeout> | null = null;
  private lastVisible = '';
  private inflight = new Map<Plane, boolean>();
  private again = new Set<Plane>();
  private volumeAt = 0;
  private volumeTimer: ReturnType<typeof setTimeout> | null = null;
  private suggestAt = 0;
  private suggestTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly app: App) {}

  wire(): void {
    const { api, store } = this.app;
    this.unsubscribe.push(api.onPreview((e) => this.onPreview(e)));
    this.unsubscribe.push(store.on('cursor', () => this.planesChanged()));
    // a maximised view hides the other two: only what is visible is predicted
    const layoutChanged = this.app.layout.onChange;
    this.app.layout.onChange = () => {
      layoutChanged();
      this.planesChanged();
    };
    this.unsubscribe.push(
      store.on('volume', () => {
        this.clear();
        this.planesChanged(true);
        this.requestSuggestions(true);
      }),
    );
    this.unsubscribe.push(
      store.on('labels', (layer) => {
        if (layer !== 'prediction') return;
        this.predictionNewer = true;
        this.app.view3d.setLabels(this.app.labels3D());
        this.requestSuggestions(true);
      }),
    );
  }

  /** the slices the three views show now */
  visiblePlanes(): { plane: Plane; index: number }[] {
    const c = this.app.store.cursor;
    const max = this.app.layout.maximised;
    const planes = max && max !== '3d' ? [max] : max === '3d' ? [] : PLANES;
    return planes.map((plane) => ({ plane, index: c[PLANE_AXIS[plane]] }));
  }

  /** the preview of this plane when it is the slice the view shows, else null */
  shownPreview(plane: Plane): PreviewSliceData | null {
    const p = this.previews[plane];
    const v = this.app.store.volume;
    if (!p || !v || p.volumeId !== v.id) return null;
    return p.index === this.app.store.cursor[PLANE_AXIS[plane]] ? p : null;
  }

  /** a slider or view changed: tell the server (debounced), and fetch a preview it may already have */
  private planesChanged(now = false): void {
    if (this.visibleTimer) clearTimeout(this.visibleTimer);
    const go = () => {
      this.visibleTimer = null;
      const v = this.app.store.volume;
      if (!v) return;
      const planes = this.visiblePlanes();
      const key = `${v.id}:${planes.map((p) => `${p.plane}${p.index}`).join(',')}`;
      if (key === this.lastVisible) return;
      this.lastVisible = key;
      void this.app.api.setVisiblePlanes({ volumeId: v.id, planes }).catch(() => {
        /* no live backend (or an older server): the views just show no preview */
      });
      for (const { plane, index } of planes) if (this.previews[plane]?.index !== index) void this.fetch(plane);
      // a view shown again after a maximised one may hold an old preview: fetch it too
      for (const plane of PLANES)
        if (!planes.some((p) => p.plane === plane) && this.previews[plane]) {
          this.previews[plane] = null;
          this.app.store.emit('preview', plane);
        }
    };
    if (now) go();
    else this.visibleTimer = setTimeout(go, VISIBLE_DEBOUNCE_MS);
  }

  private onPreview(e: PreviewEvent): void {
    const v = this.app.store.volume;
    if (!v || e.volumeId !== v.id) return;
    if (e.index === this.app.store.cursor[PLANE_AXIS[e.plane]]) void this.fetch(e.plane, e.latencyMs);
    this.requestVolume();
    this.requestSuggestions();
  }

  /** getPreview for a plane's shown slice; one request per plane at a time, the newest wins */
  private async fetch(plane: Plane, latencyMs?: number): Promise<void> {
    if (this.inflight.get(plane)) {
      this.again.add(plane);
      return;
    }
    this.inflight.set(plane, true);
    try {
      do {
        this.again.delete(plane);
        const v = this.app.store.volume;
        if (!v) return;
        const index = this.app.store.cursor[PLANE_AXIS[plane]];
        let data: PreviewSliceData | null = null;
        try {
          data = await this.app.api.getPreview({ volumeId: v.id, plane, index });
        } catch {
          data = null; // 'not-found': no preview of this slice yet
        }
        if (this.app.store.volume !== v) return;
        const old = this.previews[plane];
        if (data && old && old.index === data.index && old.iteration === data.iteration && old.revision === data.revision && old.modelTime === data.modelTime) continue;
        if (!data && (!old || old.index !== index)) {
          if (old) {
            this.previews[plane] = null;
            this.app.store.emit('preview', plane);
          }
          continue;
        }
        if (!data) continue;
        this.previews[plane] = data;
        this.log.push({ plane, index: data.index, iteration: data.iteration, revision: data.revision, latencyMs, at: performance.now() });
        if (this.log.length > 500) this.log.splice(0, 250);
        this.app.store.emit('preview', plane);
      } while (this.again.has(plane));
    } finally {
      this.inflight.set(plane, false);
    }
  }

  private requestVolume(): void {
    if (this.volumeTimer) return;
    const wait = Math.max(0, this.volumeAt + VOLUME_EVERY_MS - performance.now());
    this.volumeTimer = setTimeout(() => {
      this.volumeTimer = null;
      this.volumeAt = performance.now();
      void this.fetchVolume();
    }, wait);
  }

  private async fetchVolume(): Promise<void> {
    const v = this.app.store.volume;
    if (!v) return;
    let data: PreviewVolumeData | null = null;
    try {
      data = await this.app.api.getPreviewVolume({ volumeId: v.id });
    } catch {
      return;
    }
    if (this.app.store.volume !== v || data.volumeId !== v.id) return;
    const n = data.dims.x * data.dims.y * data.dims.z;
    if (data.labels.length !== n) return;
    this.volume = data;
    this.predictionNewer = false;
    const old = this.volumeImg;
    const d = old?.getDimensions();
    if (old && d && d[0] === data.dims.x && d[1] === data.dims.y && d[2] === data.dims.z) setLabelValues(old, data.labels);
    else {
      const s = v.spacing;
      // the coarse voxel j covers the full-size voxel j * step: the same origin, step times the spacing
      this.volumeImg = makeLabelImage(data.dims, [s.x * data.step, s.y * data.step, s.z * data.step], data.labels.slice());
    }
    this.app.view3d.setLabels(this.app.labels3D());
    if (old && old !== this.volumeImg) deleteImage(old);
    this.app.store.emit('preview', '3d');
  }

  /** fetch suggestions now (after densify) or throttled (on previews) */
  requestSuggestions(now = false): void {
    if (now) {
      if (this.suggestTimer) clearTimeout(this.suggestTimer);
      this.suggestTimer = null;
      this.suggestAt = performance.now();
      void this.fetchSuggestions();
      return;
    }
    if (this.suggestTimer) return;
    const wait = Math.max(0, this.suggestAt + SUGGEST_EVERY_MS - performance.now());
    this.suggestTimer = setTimeout(() => {
      this.suggestTimer = null;
      this.suggestAt = performance.now();
      void this.fetchSuggestions();
    }, wait);
  }

  private async fetchSuggestions(): Promise<void> {
    const v = this.app.store.volume;
    if (!v) return;
    let s: SliceSuggestions | null = null;
    try {
      s = await this.app.api.getSuggestions({ volumeId: v.id });
    } catch {
      s = null; // no prediction or preview yet, or no suggestions backend
    }
    if (this.app.store.volume !== v) return;
    if (s && s.volumeId !== v.id) return;
    if (!s && !this.suggestions) return;
    this.suggestions = s;
    this.app.store.emit('suggestions', undefined);
  }

  /** another volume (or none): forget every preview; the 3D view lets go of the coarse image before it is deleted */
  clear(): void {
    for (const p of PLANES) this.previews[p] = null;
    this.volume = null;
    this.suggestions = null;
    this.lastVisible = '';
    this.predictionNewer = false;
    const old = this.volumeImg;
    this.volumeImg = null;
    if (old) {
      this.app.view3d.setLabels(this.app.labels3D());
      deleteImage(old);
    }
    for (const p of PLANES) this.app.store.emit('preview', p);
    this.app.store.emit('suggestions', undefined);
  }

  dispose(): void {
    for (const u of this.unsubscribe) u();
    for (const t of [this.visibleTimer, this.volumeTimer, this.suggestTimer]) if (t) clearTimeout(t);
    const old = this.volumeImg;
    this.volumeImg = null;
    deleteImage(old);
  }
}
