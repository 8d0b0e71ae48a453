/**
 * The workstation: owns the store, the shared label images, the four views and the annotator, and wires
 * user input to them. Talks to the application only through `window.sliceform` (SliceformApi).
 */
import '@kitware/vtk.js/Rendering/Profiles/All';
import type { LabelClass, SliceformApi, VolumeInfo } from '../../main/common/api.js';
import type { TypedArray } from '../../main/common/volume.js';
import { Annotator } from './annotate/annotator.js';
import { explainError } from './panels/errors.js';
import { openProgressText, readFileWithProgress, withOpenProgress, type OpenProgress } from './panels/open-progress.js';
import { Layout } from './layout.js';
import {
  CHANNEL_COLORS,
  hexToRgb,
  intensityLut,
  autoWindow,
  dataRange,
  PLANE_AXIS,
  PLANES,
  rgbToHex,
  type ChannelDisplay,
  type CompositeChannel,
  type Plane,
} from './render/composite.js';
import { deleteImage, LabelLuts, makeLabelImage, setLabelValues, type LabelImage } from './render/labels.js';
import { CLASS_COLORS, heldGrid, Store, type ClassDef, type LoadedVolume } from './state.js';
import { LivePreview } from './live/preview.js';
import { SliceView } from './views/slice-view.js';
import { VolumeView } from './views/volume-view.js';
import { heldStrokeVoxels, type PlaneMask } from './views/full-res.js';

export interface PerfLog {
  /** plane render times (ms) */
  renders: Array<{ plane: Plane; ms: number; at: number }>;
  /** where the last load spent its time (ms): reading the dropped file, the open call, fetching voxels and labels, first render */
  lastLoad?: { readFileMs: number; openMs: number; fetchMs: number; renderMs: number };
}

export class App {
  readonly store = new Store();
  readonly luts = new LabelLuts();
  readonly layout = new Layout();
  views!: Record<Plane, SliceView>;
  view3d!: VolumeView;
  /** the live session's previews of the shown planes, its coarse 3D preview and the suggestions */
  preview!: LivePreview;
  readonly annotator: Annotator;
  annotationImg: LabelImage | null = null;
  predictionImg: LabelImage | null = null;
  /** the Objects panel's "colour objects": object ids as display values 2..255 (panels/objects.ts), shown instead of the prediction */
  objectsImg: LabelImage | null = null;
  /** the classes the label lookup tables show while objectsImg is on (a palette), else null */
  objectClasses: ClassDef[] | null = null;
  private composite: CompositeChannel[] = [];
  activePlane: Plane = 'xy';
  readonly perf: PerfLog = { renders: [] };
  /** slices with annotation per plane according to the server (used when no strokes were made this session) */
  serverPainted: Record<Plane, number[]> = { xy: [], xz: [], yz: [] };
  private refreshInFlight = new Map<string, Promise<void>>();
  loading = false;
  /** measurement mode: slice renders wait for the GPU (see SliceViewDeps.syncTiming) */
  syncTiming = false;
  /** listeners for "a model was trained" (batch panel refreshes its model list) */
  readonly onModelsChanged: Array<() => void> = [];
  /** set by the panels: show the voxel under the pointer */
  readout?: (vox: [number, number, number]) => void;

  constructor(readonly api: SliceformApi) {
    this.annotator = new Annotator(
      this.store,
      api,
      () => {
        this.renderSlices();
        // the annotation is what 3D shows until there is a densify result
        if (!this.predictionImg) this.view3d.setLabels(this.labels3D());
      },
      (e) => this.error(e, 'Saving the stroke'),
    );
    this.annotator.onFullResStroke = (plane, index, crop, label) => this.paintHeld(plane, index, crop, label);
    this.luts.update(this.store.classes);
  }

  /** Create the vtk.js views inside the layout cells (after the layout is in the document). */
  mountViews(): void {
    const deps = (plane: Plane) => ({
      store: this.store,
      luts: this.luts,
      channels: () => this.composite,
      annotation: () => this.annotationImg,
      prediction: () => this.objectsImg ?? this.predictionImg,
      preview: () => this.preview?.shownPreview(plane) ?? null,
      onRendered: (p: Plane, ms: number) => {
        this.perf.renders.push({ plane: p, ms, at: performance.now() });
        if (this.perf.renders.length > 2000) this.perf.renders.splice(0, 1000);
      },
      syncTiming: () => this.syncTiming,
      api: this.api,
      onFullRes: () => {
        if (this.store.showPlanesIn3D) this.view3d.requestRender(400);
      },
      onError: (e: unknown) => this.error(e, 'Reading the slice'),
      stroke: {
        start: (p: Plane, index: number, w: [number, number, number]) => {
          this.activePlane = p;
          this.annotator.start(p, index, w, this.views[p].paintTarget());
        },
        move: (w: [number, number, number]) => this.annotator.move(w),
        end: () => void this.annotator.end(),
      },
      plane,
    });
    this.views = {
      xy: new SliceView('xy', this.layout.cells.xy.canvasHost, deps('xy')),
      xz: new SliceView('xz', this.layout.cells.xz.canvasHost, deps('xz')),
      yz: new SliceView('yz', this.layout.cells.yz.canvasHost, deps('yz')),
    };
    this.view3d = new VolumeView(this.layout.cells['3d'].canvasHost, this.store, this.luts);
    this.view3d.setPlaneImages({ xy: this.views.xy.planeImage, xz: this.views.xz.planeImage, yz: this.views.yz.planeImage });
    this.layout.onChange = () => {
      for (const v of Object.values(this.views)) v.resize();
      this.view3d.resize();
    };
    this.store.on('cursor', () => this.onCursor());
    this.store.on('channels', () => {
      this.rebuildComposite();
      for (const v of Object.values(this.views)) v.updatePlane();
      this.renderSlices();
      this.view3d.updateChannels(this.store.channels);
    });
    this.store.on('classes', () => this.restyleLabels());
    this.store.on('overlay', () => {
      for (const v of Object.values(this.views)) v.updateOverlayProps();
      this.view3d.setLabels(this.labels3D());
      this.view3d.updateVisibility();
      this.renderSlices();
    });
    this.store.on('tool', () => this.applyTool());
    // out of core: a stroke (or undo/redo) reached the server: the slice views' full-resolution labels again
    // (a stroke on one plane crosses the other two views)
    this.store.on('painted', () => {
      if (this.store.volume?.held) for (const v of Object.values(this.views)) v.refreshLabels();
    });
    this.preview = new LivePreview(this);
    this.preview.wire();
    this.store.on('preview', (p) => {
      if (p === '3d') return this.view3d.requestRender(250);
      this.views[p].updatePreview();
      this.views[p].requestRender();
    });
    this.api.onLabelsChanged((e) => {
      if (e.volumeId !== this.store.volume?.id) return;
      if (e.cause === 'edit') return; // our own strokes are already applied locally
      void this.refreshLayer(e.layer);
    });
  }

  // ------------------------------------------------------------------ loading

  /** the stages and fractions the last open reported (panels/open-progress.ts), for the status bar and tests */
  openProgress: OpenProgress[] = [];

  private showOpenProgress(name: string): (p: OpenProgress) => void {
    this.openProgress = [];
    return (p) => {
      this.openProgress.push(p);
      this.store.status(openProgressText(name, p));
    };
  }

  async openPath(path: string): Promise<VolumeInfo | null> {
    return this.guardLoad(`Opening ${path}`, () => withOpenProgress(this.api, path, null, this.showOpenProgress(path), () => this.api.openVolume({ path })));
  }

  async openFile(file: File): Promise<VolumeInfo | null> {
    const p = this.api.getPathForFile?.(file);
    if (p) return this.openPath(p);
    return this.guardLoad(`Opening ${file.name}`, async () => {
      const report = this.showOpenProgress(file.name);
      const t0 = performance.now();
      const bytes = await readFileWithProgress(file, (fraction) => report({ stage: 'reading', fraction }));
      this.readFileMs = performance.now() - t0;
      const queued = (this.api as { bytesQueued?: () => number }).bytesQueued;
      return withOpenProgress(this.api, file.name, { bytes: bytes.length, bytesQueued: queued }, report, () => this.api.openVolumeBytes({ name: file.name, bytes }));
    });
  }

  private async guardLoad(what: string, open: () => Promise<VolumeInfo>): Promise<VolumeInfo | null> {
    this.loading = true;
    this.store.status(`${what}…`);
    try {
      this.readFileMs = 0;
      const t0 = performance.now();
      const info = await open();
      const t1 = performance.now();
      await this.showVolume(info);
      this.perf.lastLoad = { readFileMs: this.readFileMs, openMs: t1 - t0 - this.readFileMs, fetchMs: this.fetchMs, renderMs: performance.now() - t1 - this.fetchMs };
      this.store.status(
        `${info.name}: ${info.shape.x}×${info.shape.y}×${info.shape.z}, ${info.shape.c} channel(s), ${info.dtype}` +
          (info.outOfCore ? ` · big volume (out of core): slices at full resolution, 3D at 1/${info.outOfCore.step}` : ''),
      );
      return info;
    } catch (e) {
      this.error(e, what);
      return null;
    } finally {
      this.loading = false;
    }
  }

  /** Fetch everything the views need for an open volume and show it. */
  private readFileMs = 0;
  private fetchMs = 0;

  /** bumped by every showVolume: a slower, older open that finishes later must not overwrite a newer one */
  private loadGeneration = 0;

  async showVolume(info: VolumeInfo): Promise<void> {
    const generation = ++this.loadGeneration;
    const tFetch = performance.now();
    const [brick, classes, ann, pred, summary] = await Promise.all([
      // out of core: the 3D level (the whole stack would not fit the page), see VolumeInfo.outOfCore
      this.api.getBrick(info.outOfCore ? { volumeId: info.id, step: info.outOfCore.step } : { volumeId: info.id }),
      this.api.getClasses().catch(() => null),
      this.api.getLabelVolume({ volumeId: info.id, layer: 'annotation' }),
      this.api.getLabelVolume({ volumeId: info.id, layer: 'prediction' }).catch(() => null),
      this.api.getAnnotationSummary({ volumeId: info.id }).catch(() => null),
    ]);
    if (generation !== this.loadGeneration) return;
    this.fetchMs = performance.now() - tFetch;
    // out of core the page holds the 3D level (heldGrid); the cursor and the slice views are in file voxels
    const ooc = info.outOfCore;
    const step = ooc?.step ?? 1;
    const dims = { x: info.shape.x, y: info.shape.y, z: info.shape.z };
    const heldDims = ooc ? { x: ooc.size[0], y: ooc.size[1], z: ooc.size[2] } : dims;
    const n = heldDims.x * heldDims.y * heldDims.z;
    const channels: TypedArray[] = [];
    for (let c = 0; c < brick.channels; c++) channels.push(brick.data.subarray(c * n, (c + 1) * n) as TypedArray);
    const vol: LoadedVolume = {
      id: info.id,
      name: info.name,
      source: info.source,
      dims,
      channels,
      spacing: { ...info.spacing },
      dtype: info.dtype,
      ...(ooc ? { held: { dims: heldDims, step, spacing: { ...info.spacing, x: info.spacing.x * step, y: info.spacing.y * step, z: info.spacing.z * step } } } : {}),
    };
    const st = this.store;
    const channelDisplays = channels.map((data, c) => {
      const stats = info.channelStats[c];
      const [lo, hi] = autoWindow(data);
      const [rmin, rmax] = stats ? [stats.min, stats.max] : dataRange(data);
      return {
        name: info.channelNames[c] || `channel ${c + 1}`,
        color: CHANNEL_COLORS[channels.length === 1 ? 6 : c % CHANNEL_COLORS.length],
        visible: true,
        min: lo,
        max: hi,
        rangeMin: Math.min(rmin, lo),
        rangeMax: Math.max(rmax, rmin + 1, hi),
      } satisfies ChannelDisplay;
    });
    if (classes && classes.length) this.setClassesFromApi(classes);
    const held = heldGrid(vol);
    const spacing: [number, number, number] = [held.spacing.x, held.spacing.y, held.spacing.z];
    // Replace, then delete (VolView's habit): the new label images go to every holder (paint filter, slice
    // mappers, 3D) before the old ones are deleted, so no view ever holds a deleted vtk object.
    const oldImages = [this.annotationImg, this.predictionImg];
    this.annotationImg = makeLabelImage(held.dims, spacing, ann.data.slice());
    const predData = pred?.data;
    this.predictionImg = predData && predData.some((v) => v !== 0) ? makeLabelImage(held.dims, spacing, predData.slice()) : null;
    st.volume = vol;
    st.channels = channelDisplays;
    st.strokes = [];
    st.strokeCursor = 0;
    st.prediction = this.predictionImg ? (this.predictionImg.getPointData().getScalars().getData() as Uint8Array) : null;
    st.annotation = this.annotationImg.getPointData().getScalars().getData() as Uint8Array;
    this.annotator.setLabelMap(this.annotationImg);
    this.annotator.canUndo = summary?.canUndo ?? false;
    this.annotator.canRedo = summary?.canRedo ?? false;
    this.serverPainted = summary?.paintedSlices ?? { xy: [], xz: [], yz: [] };
    st.revision = typeof summary?.revision === 'number' ? summary.revision : 0;
    st.cursor = [Math.floor(vol.dims.x / 2), Math.floor(vol.dims.y / 2), Math.floor(vol.dims.z / 2)];
    this.rebuildComposite();
    this.view3d.setLabels(this.labels3D());
    for (const v of Object.values(this.views)) v.setVolume();
    this.view3d.setVolume();
    for (const img of oldImages) deleteImage(img);
    this.applyTool();
    st.emit('volume', vol);
    st.emit('channels', st.channels);
    st.emit('cursor', st.cursor);
    st.emit('painted', undefined);
    st.emit('revision', st.revision);
    this.renderAll();
  }

  /**
   * Forget the shown volume in this page (the server keeps it): the views go blank and the label images are
   * deleted. Opening another stack does this implicitly (replace-and-delete); the leak test uses it directly.
   */
  closeVolume(): void {
    this.loadGeneration++;
    const st = this.store;
    const oldImages = [this.annotationImg, this.predictionImg, this.objectsImg];
    this.annotationImg = null;
    this.predictionImg = null;
    this.objectsImg = null;
    this.objectClasses = null;
    st.volume = null;
    st.annotation = null;
    st.prediction = null;
    st.channels = [];
    st.strokes = [];
    st.strokeCursor = 0;
    this.composite = [];
    this.serverPainted = { xy: [], xz: [], yz: [] };
    this.annotator.setLabelMap(null);
    this.view3d.setLabels(null);
    for (const v of Object.values(this.views)) v.clearVolume();
    this.view3d.clearVolume();
    for (const img of oldImages) deleteImage(img);
    this.applyTool();
    st.emit('volume', null);
    st.emit('channels', st.channels);
    st.emit('painted', undefined);
    this.renderAll();
  }

  /** Delete every vtk object this page owns (views, label images, lookup tables, paint filter). */
  dispose(): void {
    this.closeVolume();
    for (const v of Object.values(this.views)) v.dispose();
    this.preview.dispose();
    this.view3d.dispose();
    this.annotator.dispose();
    this.luts.dispose();
  }

  setClassesFromApi(classes: LabelClass[]): void {
    const prev = new Map(this.store.classes.map((c) => [c.id, c]));
    this.store.classes = classes.map((c, i) => {
      let color = CLASS_COLORS[i % CLASS_COLORS.length];
      try {
        color = hexToRgb(c.color);
      } catch {
        /* keep the palette colour */
      }
      const old = prev.get(c.id);
      return { id: c.id, name: c.name, color, visible: old?.visible ?? true, opacity: old?.opacity ?? (c.id === 1 ? 0.05 : 0.8) };
    });
    if (!this.store.classById(this.store.activeClass)) this.store.activeClass = this.store.classes[this.store.classes.length - 1]?.id ?? 1;
    this.store.emit('classes', this.store.classes);
  }

  async pushClasses(classes: ClassDef[]): Promise<void> {
    this.store.classes = classes;
    this.store.emit('classes', classes);
    try {
      await this.api.setClasses({ classes: classes.map((c) => ({ id: c.id, name: c.name, color: rgbToHex(c.color) })) });
    } catch (e) {
      this.error(e, 'Saving the class list');
    }
  }

  /** Class colours / visibility / opacity changed: new lookup tables everywhere. */
  restyleLabels(): void {
    this.luts.update(this.objectClasses ?? this.store.classes);
    for (const v of Object.values(this.views)) v.updateOverlayProps();
    this.renderSlices();
    this.view3d.requestRender();
  }

  /** Re-read one label layer from the server (after undo/redo, densify, project load). Coalesced. */
  refreshLayer(layer: 'annotation' | 'prediction'): Promise<void> {
    const vol = this.store.volume;
    if (!vol) return Promise.resolve();
    const key = `${vol.id}:${layer}`;
    const inflight = this.refreshInFlight.get(key);
    if (inflight) return inflight.then(() => this.refreshLayer(layer));
    const p = (async () => {
      try {
        const data = await this.api.getLabelVolume({ volumeId: vol.id, layer });
        if (this.store.volume !== vol) return;
        const held = heldGrid(vol);
        const spacing: [number, number, number] = [held.spacing.x, held.spacing.y, held.spacing.z];
        if (layer === 'annotation') {
          if (this.annotationImg) setLabelValues(this.annotationImg, data.data);
          else this.annotationImg = makeLabelImage(held.dims, spacing, data.data.slice());
        }
        let retired: LabelImage | null = null;
        if (layer === 'prediction') {
          const any = data.data.some((v) => v !== 0);
          if (!any) {
            // an empty result: detach it everywhere below, then delete it
            retired = this.predictionImg;
            this.predictionImg = null;
          } else if (this.predictionImg) setLabelValues(this.predictionImg, data.data);
          else this.predictionImg = makeLabelImage(held.dims, spacing, data.data.slice());
          this.store.prediction = this.predictionImg ? (this.predictionImg.getPointData().getScalars().getData() as Uint8Array) : null;
        }
        for (const v of Object.values(this.views)) {
          v.attachLabels();
          v.refreshLabels(); // out of core: the shown file slices' labels at full resolution
        }
        this.view3d.setLabels(this.labels3D());
        deleteImage(retired);
        this.store.emit('labels', layer);
        this.renderSlices();
      } catch (e) {
        this.error(e, `Reloading the ${layer}`);
      } finally {
        this.refreshInFlight.delete(key);
      }
    })();
    this.refreshInFlight.set(key, p);
    return p;
  }

  async undoRedo(kind: 'undo' | 'redo'): Promise<void> {
    try {
      const res = await this.annotator.step(kind);
      if (res) await this.refreshLayer('annotation');
    } catch (e) {
      this.error(e, kind === 'undo' ? 'Undo' : 'Redo');
    }
  }

  /** the live preview layer on or off (panel checkbox, P): slice views and the coarse 3D preview */
  setShowPreview(on: boolean): void {
    this.store.showPreview = on;
    for (const p of PLANES) this.store.emit('preview', p);
    this.view3d.setLabels(this.labels3D());
    this.store.emit('overlay', undefined);
  }

  /** "annotate here next": show the best suggested slice (G) */
  goToSuggestion(rank = 0): boolean {
    const r = this.preview.suggestions?.ranked[rank];
    if (!r) return false;
    this.activePlane = r.plane;
    this.setSlice(r.plane, r.index);
    return true;
  }

  /** the label image shown in 3D: the dense prediction when there is one, else the annotation */
  labels3D(): LabelImage | null {
    // the live session's coarse preview while it is newer than the densified result (and the preview is on)
    const preview = this.store.showPreview && this.preview && !this.preview.predictionNewer ? this.preview.volumeImg : null;
    return this.objectsImg ?? preview ?? this.predictionImg ?? this.annotationImg;
  }

  /**
   * Objects panel: show per-object display values (2..255, 1 = no object) with their palette instead of the
   * prediction in the slices and in 3D, or go back to the classes (null).
   */
  setObjectsDisplay(values: Uint8Array | null, palette: ClassDef[] | null): void {
    const vol = this.store.volume;
    const retired = values ? null : this.objectsImg;
    if (values && vol) {
      const held = heldGrid(vol);
      if (this.objectsImg) setLabelValues(this.objectsImg, values);
      else this.objectsImg = makeLabelImage(held.dims, [held.spacing.x, held.spacing.y, held.spacing.z], values);
      this.objectClasses = palette;
    } else {
      this.objectsImg = null;
      this.objectClasses = null;
    }
    for (const v of Object.values(this.views)) v.attachLabels();
    this.view3d.setLabels(this.labels3D());
    deleteImage(retired);
    this.restyleLabels();
  }

  // ------------------------------------------------------------------ display

  rebuildComposite(): void {
    const v = this.store.volume;
    if (!v) return;
    this.composite = v.channels.map((data, c) => {
      const display = this.store.channels[c];
      return { data, display, lut: intensityLut(data, display.min, display.max) };
    });
  }

  /** set while setSlice emits 'cursor': it has already updated and rendered the views */
  private cursorHandled = false;

  private onCursor(): void {
    if (this.cursorHandled) return;
    for (const v of Object.values(this.views)) v.updatePlane();
    this.renderSlices();
    if (this.store.showPlanesIn3D) this.view3d.requestRender(250);
  }

  /** Step the slice of a plane (wheel, keys, slider). Renders that view synchronously, the others next frame. */
  stepSlice(plane: Plane, delta: number): void {
    const c = [...this.store.cursor] as [number, number, number];
    c[PLANE_AXIS[plane]] += delta;
    this.setSlice(plane, c[PLANE_AXIS[plane]]);
  }

  setSlice(plane: Plane, index: number): void {
    const c = [...this.store.cursor] as [number, number, number];
    c[PLANE_AXIS[plane]] = index;
    const before = this.store.cursor[PLANE_AXIS[plane]];
    this.store.cursor = this.clampCursor(c);
    if (this.store.cursor[PLANE_AXIS[plane]] === before) return;
    // the stepped view first and synchronously: that is the frame the user is waiting for
    this.views[plane].updatePlane();
    this.views[plane].render();
    for (const p of PLANES) if (p !== plane) {
      this.views[p].updatePlane();
      this.views[p].requestRender();
    }
    if (this.store.showPlanesIn3D) this.view3d.requestRender(400);
    this.cursorHandled = true;
    try {
      this.store.emit('cursor', this.store.cursor);
    } finally {
      this.cursorHandled = false;
    }
  }

  private clampCursor(c: [number, number, number]): [number, number, number] {
    const d = this.store.volume?.dims;
    if (!d) return c;
    const cl = (n: number, hi: number) => Math.max(0, Math.min(hi - 1, Math.round(n)));
    return [cl(c[0], d.x), cl(c[1], d.y), cl(c[2], d.z)];
  }

  renderSlices(): void {
    for (const v of Object.values(this.views ?? {})) v.requestRender();
  }

  renderAll(): void {
    for (const v of Object.values(this.views)) v.render();
    this.view3d.render();
  }

  applyTool(): void {
    const painting = this.store.tool !== 'navigate' && !!this.store.volume;
    for (const v of Object.values(this.views)) v.setPainting(painting, this.annotator.radiusWorld());
    document.body.dataset.tool = this.store.tool;
  }

  setBrushRadius(r: number): void {
    this.store.brushRadius = Math.max(0.5, Math.min(100, r));
    for (const v of Object.values(this.views)) v.setBrushRadius(this.annotator.radiusWorld());
    this.store.emit('tool', this.store.tool);
  }

  /**
   * Out of core: a stroke painted at full resolution on file slice `index` also lands on the page's 3D-level
   * annotation (what 3D shows): the level holds every step-th file voxel, so the stroke's voxels on that grid.
   */
  paintHeld(plane: Plane, index: number, crop: PlaneMask, label: number): void {
    const v = this.store.volume;
    const img = this.annotationImg;
    if (!v?.held || !img) return;
    const at = heldStrokeVoxels(plane, index, crop, v.held);
    if (!at.length) return;
    const data = img.getPointData().getScalars().getData() as Uint8Array;
    for (const i of at) data[i] = label;
    img.getPointData().getScalars().modified();
    img.modified();
    this.view3d.setLabels(this.labels3D());
  }

  /** Voxel values under a voxel position: per channel, plus labels. */
  valuesAt(x: number, y: number, z: number): { channels: number[]; annotation: number; prediction: number | null } | null {
    const v = this.store.volume;
    if (!v) return null;
    if (x < 0 || y < 0 || z < 0 || x >= v.dims.x || y >= v.dims.y || z >= v.dims.z) return null;
    if (v.held) {
      // out of core: from a slice view holding that voxel's slice at full resolution, else the 3D level's voxel
      for (const p of PLANES) {
        const got = this.views[p].fullValuesAt([x, y, z]);
        if (got) return got;
      }
      const { dims: d, step: k } = v.held;
      const j = (Math.min(d.z - 1, Math.floor(z / k)) * d.y + Math.min(d.y - 1, Math.floor(y / k))) * d.x + Math.min(d.x - 1, Math.floor(x / k));
      return { channels: v.channels.map((c) => c[j]), annotation: this.store.annotation?.[j] ?? 0, prediction: this.store.prediction ? this.store.prediction[j] : null };
    }
    const i = (z * v.dims.y + y) * v.dims.x + x;
    return {
      channels: v.channels.map((c) => c[i]),
      annotation: this.store.annotation?.[i] ?? 0,
      prediction: this.store.prediction ? this.store.prediction[i] : null,
    };
  }

  emitModelsChanged(): void {
    for (const f of this.onModelsChanged) f();
  }

  error(e: unknown, action: string): void {
    console.error(action, e);
    const { text, detail } = explainError(e, action);
    this.store.status(text, 'error', detail);
  }
}
