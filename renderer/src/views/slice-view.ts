/**
 * One orthogonal slice view (xy, xz or yz): the additive channel composite of the current plane, the
 * prediction and annotation overlays, a linked crosshair, and a vtk.js PaintWidget for brushing.
 *
 * Screen orientation follows Fiji's orthogonal views: xy has x right / y down; xz has x right / z down;
 * yz has z right / y down. World coordinates are voxel index * spacing, so anisotropic z looks right.
 */
import vtkGenericRenderWindow from '@kitware/vtk.js/Rendering/Misc/GenericRenderWindow';
import vtkImageData from '@kitware/vtk.js/Common/DataModel/ImageData';
import vtkDataArray from '@kitware/vtk.js/Common/Core/DataArray';
import vtkImageMapper from '@kitware/vtk.js/Rendering/Core/ImageMapper';
import vtkImageSlice from '@kitware/vtk.js/Rendering/Core/ImageSlice';
import vtkPolyData from '@kitware/vtk.js/Common/DataModel/PolyData';
import vtkMapper from '@kitware/vtk.js/Rendering/Core/Mapper';
import vtkActor from '@kitware/vtk.js/Rendering/Core/Actor';
import vtkColorTransferFunction from '@kitware/vtk.js/Rendering/Core/ColorTransferFunction';
import vtkInteractorStyleManipulator from '@kitware/vtk.js/Interaction/Style/InteractorStyleManipulator';
import vtkWidgetManager from '@kitware/vtk.js/Widgets/Core/WidgetManager';
import vtkPaintWidget from '@kitware/vtk.js/Widgets/Widgets3D/PaintWidget';
import { ViewTypes } from '@kitware/vtk.js/Widgets/Core/WidgetManager/Constants';
import type { vtkOpenGLRenderWindow } from '@kitware/vtk.js/Rendering/OpenGL/RenderWindow';
import { SlicingMode } from '@kitware/vtk.js/Rendering/Core/ImageMapper/Constants';

import { compositePlane, PLANE_AXIS, planeDepth, planeSize, type CompositeChannel, type Plane } from '../render/composite.js';
import { deleteImage, makeLabelImage, setLabelValues, type LabelImage, type LabelLuts } from '../render/labels.js';
import { deleteAll, deleteGenericRenderWindow } from '../render/vtk-dispose.js';
import { heldGrid, type LoadedVolume, type Store } from '../state.js';
import type { LabelSliceData, PreviewSliceData, SliceformApi } from '../../../main/common/api.js';
import { FullResLoader, sliceChannel, sliceSource, thinDims } from './full-res.js';

type Vec3 = [number, number, number];

/** Direction of projection and view-up per plane (see the file comment). */
const CAMERA: Record<Plane, { dop: Vec3; up: Vec3 }> = {
  xy: { dop: [0, 0, 1], up: [0, -1, 0] },
  xz: { dop: [0, -1, 0], up: [0, 0, -1] },
  yz: { dop: [-1, 0, 0], up: [0, -1, 0] },
};

const SLICING: Record<Plane, number> = { xy: SlicingMode.K, xz: SlicingMode.J, yz: SlicingMode.I };
/** paint widget colour scalars: the cursor (active handle) and the trail (vtk.js's default state colour) */
const BRUSH_CURSOR = 0.25;
const BRUSH_TRAIL = 0.5;
const ERASER_TRAIL: [number, number, number] = [0.85, 0.85, 0.85];

export interface SliceViewDeps {
  store: Store;
  luts: LabelLuts;
  /** the composite inputs, rebuilt by the app when channels change */
  channels: () => CompositeChannel[];
  annotation: () => LabelImage | null;
  prediction: () => LabelImage | null;
  /** the live session's preview of the slice this view shows, or null (live/preview.ts) */
  preview?: () => PreviewSliceData | null;
  /** called after each render of this view with the time it took (ms) */
  onRendered?: (plane: Plane, ms: number) => void;
  /** when true, each render waits for the GPU so the reported time is the real frame time (measurements) */
  syncTiming?: () => boolean;
  /** out-of-core volumes: where the full-resolution slices and label slices come from (views/full-res.ts) */
  api?: Pick<SliceformApi, 'getSlice' | 'getLabelSlice'>;
  /** a full-resolution slice replaced the level's in this view (the 3D view shows the plane too) */
  onFullRes?: (plane: Plane) => void;
  onError?: (e: unknown) => void;
  /** a brush stroke started / moved / ended on this view (world coordinates) */
  stroke: {
    start: (plane: Plane, index: number, world: Vec3) => void;
    move: (world: Vec3) => void;
    end: () => void;
  };
}

export class SliceView {
  readonly grw: ReturnType<typeof vtkGenericRenderWindow.newInstance>;
  readonly renderer;
  readonly renderWindow;
  /** the composite of the current plane, a one-voxel-thick image positioned at the slice in world space */
  readonly planeImage = vtkImageData.newInstance();
  private planeRGB = new Uint8Array(3);
  private readonly imageMapper = vtkImageMapper.newInstance();
  readonly imageActor = vtkImageSlice.newInstance();
  private readonly annMapper = vtkImageMapper.newInstance();
  private readonly annActor = vtkImageSlice.newInstance();
  private readonly predMapper = vtkImageMapper.newInstance();
  private readonly predActor = vtkImageSlice.newInstance();
  /** the live preview of the shown slice: a one-voxel-thick label image drawn as outlines over a faint fill */
  private readonly previewImage = vtkImageData.newInstance();
  private readonly previewMapper = vtkImageMapper.newInstance();
  private readonly previewActor = vtkImageSlice.newInstance();
  /** iteration of the preview drawn now (null: none), for the badge and tests */
  previewShown: { iteration: number; revision: number; index: number } | null = null;
  private readonly crossPoly = vtkPolyData.newInstance();
  private readonly crossMapper = vtkMapper.newInstance();
  private readonly crossActor = vtkActor.newInstance();
  private readonly widgetManager = vtkWidgetManager.newInstance();
  private readonly paintWidget = vtkPaintWidget.newInstance();
  private paintHandle: ReturnType<ReturnType<typeof vtkWidgetManager.newInstance>['addWidget']> | null = null;
  /** brush cursor (BRUSH_CURSOR) and stroke trail (BRUSH_TRAIL) colours of the paint widget */
  private readonly brushColors = vtkColorTransferFunction.newInstance();
  private readonly disposers: (() => void)[] = [];
  private renderQueued = false;
  private lastAnn: LabelImage | null = null;
  private lastPred: LabelImage | null = null;
  /**
   * Out of core (LoadedVolume.held): the full-resolution slices of this view, and the labels of the shown
   * slice as one-voxel-thick images at full resolution (the annotation one is what strokes paint on).
   */
  private full: FullResLoader | null = null;
  private annThin: LabelImage | null = null;
  private predThin: LabelImage | null = null;
  /** the file slice the thin label images hold (-1: none yet), and the one asked for */
  private thinIndex = -1;
  private thinWant = -1;
  /** what the image shows: the page's voxels, the file's full-resolution slice, or the 3D level's upscaled */
  resolution: 'memory' | 'full' | 'level' = 'memory';

  constructor(
    readonly plane: Plane,
    readonly container: HTMLElement,
    private readonly deps: SliceViewDeps,
  ) {
    this.grw = vtkGenericRenderWindow.newInstance({ background: [0, 0, 0], listenWindowResize: false });
    this.grw.setContainer(container);
    this.renderer = this.grw.getRenderer();
    this.renderWindow = this.grw.getRenderWindow();
    const style = vtkInteractorStyleManipulator.newInstance();
    style.removeAllMouseManipulators();
    style.removeAllKeyboardManipulators();
    this.grw.getInteractor().setInteractorStyle(style);

    this.imageActor.setMapper(this.imageMapper);
    this.imageMapper.setInputData(this.planeImage);
    this.imageMapper.setSlicingMode(SLICING[plane]);
    this.imageMapper.setSlice(0);
    const ip = this.imageActor.getProperty();
    ip.setColorWindow(255);
    ip.setColorLevel(127.5);
    ip.setInterpolationTypeToNearest();
    this.imageActor.setVisibility(false); // until a volume gives it pixels

    for (const [mapper, actor] of [
      [this.predMapper, this.predActor],
      [this.annMapper, this.annActor],
    ] as const) {
      actor.setMapper(mapper);
      mapper.setSlicingMode(SLICING[plane]);
      const p = actor.getProperty();
      p.setRGBTransferFunction(0, deps.luts.color);
      p.setPiecewiseFunction(0, deps.luts.sliceOpacity);
      p.setUseLookupTableScalarRange(true);
      p.setInterpolationTypeToNearest();
      actor.setVisibility(false);
    }
    // the preview: its own thin image, outlined so it never reads as the densified result
    this.previewActor.setMapper(this.previewMapper);
    this.previewMapper.setInputData(this.previewImage);
    this.previewMapper.setSlicingMode(SLICING[plane]);
    this.previewMapper.setSlice(0);
    {
      const p = this.previewActor.getProperty();
      p.setRGBTransferFunction(0, deps.luts.color);
      p.setPiecewiseFunction(0, deps.luts.previewFill);
      p.setUseLookupTableScalarRange(true);
      p.setInterpolationTypeToNearest();
      p.setUseLabelOutline(true);
      p.setLabelOutlineThickness([2]);
      p.setOpacity(0.3);
    }
    this.previewActor.setVisibility(false);

    this.crossMapper.setInputData(this.crossPoly);
    this.crossActor.setMapper(this.crossMapper);
    this.crossActor.getProperty().setColor(1, 0.9, 0.2);
    this.crossActor.getProperty().setOpacity(0.7);
    this.crossActor.getProperty().setLineWidth(1);

    this.renderer.addViewProp(this.imageActor);
    this.renderer.addViewProp(this.predActor);
    this.renderer.addViewProp(this.previewActor);
    this.renderer.addViewProp(this.annActor);
    this.renderer.addActor(this.crossActor);
    const cam = this.renderer.getActiveCamera();
    cam.setParallelProjection(true);

    // Painting: the vtk.js PaintWidget draws the brush and its trail; strokes go to the shared PaintFilter.
    this.widgetManager.setRenderer(this.renderer);
    this.widgetManager.disablePicking();
    this.paintHandle = this.widgetManager.addWidget(this.paintWidget, ViewTypes.SLICE);
    const h = this.paintHandle;
    if (h) {
      h.setVisibility(false);
      // The representation colours its discs by a 0..1 scalar through its mapper's lookup table: the brush
      // cursor (the active handle) is 0.25, the trail of a stroke in progress keeps the state default 0.5.
      // Our table maps 0.25 to yellow and 0.5 to the class being painted (updateBrushColor).
      type Rep = { setActiveColor?(c: number): void; setOpacity?(o: number): void; getMapper?(): { setLookupTable(l: unknown): void; setUseLookupTableScalarRange(on: boolean): void } };
      for (const r of (h as unknown as { getRepresentations(): Rep[] }).getRepresentations()) {
        r.setActiveColor?.(BRUSH_CURSOR);
        r.setOpacity?.(0.45);
        const m = r.getMapper?.();
        m?.setLookupTable(this.brushColors);
        m?.setUseLookupTableScalarRange(true);
      }
      (this.paintWidget.getWidgetState() as unknown as { getHandle(): { setColor?(c: number): void } }).getHandle().setColor?.(BRUSH_CURSOR);
      this.updateBrushColor();
      const trueOrigin = () => this.paintWidget.getWidgetState().getTrueOrigin() as Vec3;
      h.onStartInteractionEvent(() => deps.stroke.start(plane, this.sliceIndex(), trueOrigin()));
      h.onInteractionEvent(() => {
        deps.stroke.move(trueOrigin());
        this.requestRender();
      });
      h.onEndInteractionEvent(() => deps.stroke.end());
    }

    const ro = new ResizeObserver(() => this.resize());
    ro.observe(container);
    this.disposers.push(() => ro.disconnect());
  }

  get store(): Store {
    return this.deps.store;
  }

  sliceIndex(): number {
    return this.store.cursor[PLANE_AXIS[this.plane]];
  }

  depth(): number {
    const v = this.store.volume;
    return v ? planeDepth(this.plane, v.dims) : 0;
  }

  private spacing(): Vec3 {
    const s = this.store.volume?.spacing;
    return s ? [s.x, s.y, s.z] : [1, 1, 1];
  }

  /** Set up data objects and camera for a newly loaded volume. */
  setVolume(): void {
    const v = this.store.volume;
    if (!v) return;
    this.closeFull();
    if (v.held) this.openFull(v);
    const [w, h] = planeSize(this.plane, v.dims);
    this.setPlanePixels(v.held ? planeSize(this.plane, v.held.dims) : [w, h], this.spacing());
    this.imageActor.setVisibility(true);
    this.attachLabels();
    this.resetCamera();
    this.updatePlane();
  }

  /** (Re)allocates the plane image's RGB pixels when its size changes (replace-and-delete of the scalars). */
  private setPlanePixels([w, h]: [number, number], spacing: Vec3): void {
    const dims: Vec3 = this.plane === 'xy' ? [w, h, 1] : this.plane === 'xz' ? [w, 1, h] : [1, w, h];
    const d = this.planeImage.getDimensions();
    const pd = this.planeImage.getPointData();
    const old = pd.getScalars();
    if (!old || d[0] !== dims[0] || d[1] !== dims[1] || d[2] !== dims[2] || this.planeRGB.length !== w * h * 3) {
      this.planeRGB = new Uint8Array(w * h * 3);
      this.planeImage.setDimensions(...dims);
      pd.setScalars(vtkDataArray.newInstance({ name: 'rgb', numberOfComponents: 3, values: this.planeRGB }));
      if (old && old !== pd.getScalars()) old.delete();
    }
    this.planeImage.setSpacing(spacing);
  }

  /** Out of core: a loader for this view's full-resolution slices and thin label images of the file's plane. */
  private openFull(v: LoadedVolume): void {
    const api = this.deps.api;
    if (!api) return;
    const [w, h] = planeSize(this.plane, v.dims);
    this.full = new FullResLoader(api, v.id, this.plane, planeDepth(this.plane, v.dims), {
      image: (index) => {
        if (this.store.volume !== v || index !== this.sliceIndex()) return;
        this.updatePlane();
        this.requestRender();
        this.deps.onFullRes?.(this.plane);
      },
      labels: (index, ann, pred) => this.takeLabels(v, index, ann, pred),
      error: (e) => this.deps.onError?.(e),
    });
    const td = thinDims(this.plane, w, h);
    const s = this.spacing();
    this.annThin = makeLabelImage(td, s, new Uint8Array(w * h));
    this.predThin = makeLabelImage(td, s, new Uint8Array(w * h));
    this.thinIndex = -1;
    this.thinWant = -1;
  }

  private closeFull(): void {
    this.full?.close();
    this.full = null;
    const old = [this.annThin, this.predThin];
    this.annThin = null;
    this.predThin = null;
    this.thinIndex = -1;
    this.thinWant = -1;
    if (old.some((o) => o)) {
      this.attachLabels(); // the mappers let go of them before they are deleted
      for (const o of old) deleteImage(o);
    }
  }

  /** Labels of file slice `index` arrived: into the thin images when the view still shows it. */
  private takeLabels(v: LoadedVolume, index: number, ann: LabelSliceData, pred: LabelSliceData | null): void {
    if (this.store.volume !== v || index !== this.sliceIndex() || !this.annThin || !this.predThin) return;
    if (ann.data.length === this.annThin.getPointData().getScalars().getNumberOfTuples()) setLabelValues(this.annThin, ann.data);
    if (pred && pred.data.length === this.predThin.getPointData().getScalars().getNumberOfTuples()) setLabelValues(this.predThin, pred.data);
    this.thinIndex = index;
    this.requestRender();
  }

  /** Out of core: the image the next stroke on this view paints on (the shown file slice's annotation), else null. */
  paintTarget(): LabelImage | null {
    return this.full ? this.annThin : null;
  }

  /** Out of core: fetch the labels of the shown slice again (after a stroke, undo/redo, a reload). */
  refreshLabels(): void {
    this.full?.labels(this.sliceIndex(), !!this.deps.prediction());
  }

  /** Out of core: channel values and labels at file voxel `vox` when this view holds its slice at full resolution. */
  fullValuesAt(vox: Vec3): { channels: number[]; annotation: number; prediction: number | null } | null {
    const v = this.store.volume;
    const axis = PLANE_AXIS[this.plane];
    if (!this.full || !v || vox[axis] !== this.sliceIndex()) return null;
    const s = this.full.get(vox[axis]);
    if (!s) return null;
    const [u, w] = this.plane === 'xy' ? [vox[0], vox[1]] : this.plane === 'xz' ? [vox[0], vox[2]] : [vox[1], vox[2]];
    const i = w * s.width + u;
    const lab = (img: LabelImage | null) => (this.thinIndex === vox[axis] && img ? ((img.getPointData().getScalars().getData() as Uint8Array)[i] ?? 0) : 0);
    return {
      channels: Array.from({ length: s.channels }, (_, c) => sliceChannel(s, c)[i]!),
      annotation: lab(this.annThin),
      prediction: this.deps.prediction() ? lab(this.predThin) : null,
    };
  }

  /** What this view draws, for the leak test and the console: plane image size, label inputs' sizes. */
  shown(): { plane: number[]; image: boolean; annotation: number[] | null; prediction: number[] | null } {
    const dims = (img: LabelImage | null) => (img && !img.isDeleted() ? img.getDimensions() : null);
    return { plane: this.planeImage.getDimensions(), image: this.imageActor.getVisibility(), annotation: dims(this.lastAnn), prediction: dims(this.lastPred) };
  }

  /** What the image shows (see `resolution`), its pixels and the file slice: for the big-volume test and the console. */
  shownResolution(): { resolution: SliceView['resolution']; plane: number[]; index: number } {
    return { resolution: this.resolution, plane: this.planeImage.getDimensions(), index: this.sliceIndex() };
  }

  /** The app closed the volume: nothing is shown and no label image is held any more. */
  clearVolume(): void {
    this.imageActor.setVisibility(false);
    this.closeFull();
    this.attachLabels();
  }

  /**
   * (Re)attach the annotation / prediction images when the app replaces them. A mapper never keeps an image
   * the app is about to delete: without a replacement its input is cleared.
   */
  attachLabels(): void {
    // out of core: the shown file slice's labels at full resolution (the app's label images are the 3D level)
    const ann = this.full ? this.annThin : this.deps.annotation();
    const pred = this.full ? (this.deps.prediction() ? this.predThin : null) : this.deps.prediction();
    if (ann !== this.lastAnn) {
      this.annMapper.setInputData(ann as LabelImage);
      this.lastAnn = ann;
    }
    if (pred !== this.lastPred) {
      this.predMapper.setInputData(pred as LabelImage);
      this.lastPred = pred;
    }
    this.updateOverlayProps();
  }

  updateOverlayProps(): void {
    const st = this.store;
    this.updateBrushColor(); // a class colour may have changed
    const ann = this.lastAnn;
    const pred = this.lastPred;
    this.annActor.setVisibility(!!ann && st.showAnnotation);
    this.predActor.setVisibility(!!pred && st.showPrediction);
    // annotation drawn a little stronger than the prediction so corrections stand out
    this.annActor.getProperty().setOpacity(Math.min(1, st.labelOpacity + 0.25));
    this.predActor.getProperty().setOpacity(st.labelOpacity);
    for (const a of [this.annActor, this.predActor]) {
      const p = a.getProperty();
      p.setUseLabelOutline(st.outline);
      p.setLabelOutlineThickness([2]);
      // outline mode: borders only (fill opacity 0), hidden classes without a border either
      p.setPiecewiseFunction(0, st.outline ? this.deps.luts.noFill : this.deps.luts.sliceOpacity);
      p.setLabelOutlineOpacity(st.outline ? this.deps.luts.outlineOpacity : 1);
    }
  }

  resetCamera(): void {
    const v = this.store.volume;
    if (!v) return;
    const s = this.spacing();
    const ext: Vec3 = [v.dims.x * s[0], v.dims.y * s[1], v.dims.z * s[2]];
    const centre: Vec3 = [(ext[0] - s[0]) / 2, (ext[1] - s[1]) / 2, (ext[2] - s[2]) / 2];
    const { dop, up } = CAMERA[this.plane];
    const dist = Math.max(...ext) * 4 + 10;
    const cam = this.renderer.getActiveCamera();
    cam.setFocalPoint(...centre);
    cam.setPosition(centre[0] - dop[0] * dist, centre[1] - dop[1] * dist, centre[2] - dop[2] * dist);
    cam.setViewUp(...up);
    cam.setClippingRange(1e-3, dist * 3);
    // fit the plane into the viewport, whichever side is limiting
    const [wAxis, hAxis] = this.plane === 'xy' ? [0, 1] : this.plane === 'xz' ? [0, 2] : [2, 1];
    const rect = this.container.getBoundingClientRect();
    const aspect = rect.width > 0 && rect.height > 0 ? rect.width / rect.height : 1;
    cam.setParallelScale(Math.max(ext[hAxis] / 2, ext[wAxis] / 2 / aspect) * 1.04);
  }

  /** Recompute the composite for the current slice and move planes, overlays, crosshair and brush plane. */
  updatePlane(): void {
    const v = this.store.volume;
    if (!v) return;
    const idx = this.sliceIndex();
    const s = this.spacing();
    const axis = PLANE_AXIS[this.plane];
    const origin: Vec3 = [0, 0, 0];
    origin[axis] = idx * s[axis];
    const imageOrigin: Vec3 = [...origin];
    const src = sliceSource(v, this.plane, idx, this.full?.get(idx) ?? null);
    if (src.kind === 'memory') compositePlane(this.planeRGB, this.deps.channels(), v.dims, this.plane, idx);
    else if (src.kind === 'full') {
      const sl = src.slice;
      this.setPlanePixels([sl.width, sl.height], s);
      const chans = this.deps.channels().map((ch, c) => ({ ...ch, data: sliceChannel(sl, c) }));
      compositePlane(this.planeRGB, chans, thinDims(this.plane, sl.width, sl.height), this.plane, 0);
    } else {
      // the 3D level's slice, upscaled by the step until the file's arrives: level voxel j covers file voxels
      // j·step … j·step + step − 1, so its centre sits (step − 1)/2 file voxels in
      const g = heldGrid(v);
      this.setPlanePixels(planeSize(this.plane, g.dims), [g.spacing.x, g.spacing.y, g.spacing.z]);
      compositePlane(this.planeRGB, this.deps.channels(), g.dims, this.plane, src.index);
      for (let a = 0; a < 3; a++) if (a !== axis) imageOrigin[a] = ((src.step - 1) / 2) * s[a]!;
    }
    this.resolution = src.kind;
    this.container.dataset.resolution = src.kind;
    this.planeImage.setOrigin(imageOrigin);
    this.planeImage.getPointData().getScalars().modified();
    this.planeImage.modified();
    if (this.full) {
      this.full.show(idx);
      // the thin label images sit on the shown slice; another slice's labels are cleared until they arrive
      for (const img of [this.annThin, this.predThin]) img?.setOrigin(origin);
      if (this.thinWant !== idx && this.annThin && this.predThin) {
        for (const img of [this.annThin, this.predThin]) {
          (img.getPointData().getScalars().getData() as Uint8Array).fill(0);
          img.getPointData().getScalars().modified();
          img.modified();
        }
        this.thinIndex = -1;
        this.thinWant = idx;
        this.full.labels(idx, !!this.deps.prediction());
      }
      this.annMapper.setSlice(0);
      this.predMapper.setSlice(0);
    } else {
      this.annMapper.setSlice(idx);
      this.predMapper.setSlice(idx);
    }
    // overlays sit a fraction of a voxel towards the camera so they never z-fight the image
    const { dop } = CAMERA[this.plane];
    const off = (k: number): Vec3 => [-dop[0] * s[0] * k, -dop[1] * s[1] * k, -dop[2] * s[2] * k];
    this.predActor.setPosition(...off(0.1));
    this.previewActor.setPosition(...off(0.15));
    this.annActor.setPosition(...off(0.2));
    this.crossActor.setPosition(...off(0.3));
    this.updateCrosshair();
    this.updatePreview();
    const manip = this.paintWidget.getManipulator();
    manip.setUserOrigin(origin);
    manip.setUserNormal([-dop[0], -dop[1], -dop[2]]);
  }

  /**
   * Draw the live preview when it belongs to the slice shown (another slice's preview is never drawn here),
   * and hide it when there is none or the preview layer is switched off.
   */
  updatePreview(): void {
    const v = this.store.volume;
    const data = this.deps.preview?.() ?? null;
    const [w, h] = v ? planeSize(this.plane, v.dims) : [0, 0];
    if (!v || !data || !this.store.showPreview || data.width !== w || data.height !== h || data.labels.length !== w * h) {
      this.previewActor.setVisibility(false);
      this.previewShown = null;
      return;
    }
    const dims: Vec3 = this.plane === 'xy' ? [w, h, 1] : this.plane === 'xz' ? [w, 1, h] : [1, w, h];
    const img = this.previewImage;
    const d = img.getDimensions();
    const pd = img.getPointData();
    const old = pd.getScalars();
    if (d[0] !== dims[0] || d[1] !== dims[1] || d[2] !== dims[2] || !old) {
      img.setDimensions(...dims);
      pd.setScalars(vtkDataArray.newInstance({ name: 'preview', numberOfComponents: 1, values: data.labels.slice() }));
      if (old && old !== pd.getScalars()) old.delete();
    } else {
      (old.getData() as Uint8Array).set(data.labels);
      old.modified();
    }
    const s = this.spacing();
    img.setSpacing(s);
    const origin: Vec3 = [0, 0, 0];
    origin[PLANE_AXIS[this.plane]] = data.index * s[PLANE_AXIS[this.plane]];
    img.setOrigin(origin);
    img.modified();
    const p = this.previewActor.getProperty();
    p.setLabelOutlineOpacity(this.deps.luts.outlineOpacity);
    this.previewActor.setVisibility(true);
    this.previewShown = { iteration: data.iteration, revision: data.revision, index: data.index };
  }

  private updateCrosshair(): void {
    const v = this.store.volume;
    if (!v) return;
    const s = this.spacing();
    const c = this.store.cursor;
    const axis = PLANE_AXIS[this.plane];
    const others = [0, 1, 2].filter((a) => a !== axis);
    const n = [v.dims.x, v.dims.y, v.dims.z];
    const pts: number[] = [];
    // for each in-plane axis, a line along it through the cursor
    for (const along of others) {
      for (const end of [-0.5, n[along] - 0.5]) {
        const p = [c[0] * s[0], c[1] * s[1], c[2] * s[2]];
        p[along] = end * s[along];
        pts.push(...p);
      }
    }
    this.crossPoly.getPoints().setData(Float32Array.from(pts), 3);
    this.crossPoly.getLines().setData(Uint32Array.from([2, 0, 1, 2, 2, 3]));
    this.crossPoly.modified();
  }

  setCrosshairVisible(on: boolean): void {
    this.crossActor.setVisibility(on);
  }

  /** Tool changed: give the paint widget focus (brush/eraser) or take it away (navigate). */
  setPainting(on: boolean, radiusWorld: number): void {
    const h = this.paintHandle;
    if (!h) return;
    this.paintWidget.setRadius(radiusWorld);
    this.updateBrushColor();
    if (on) {
      this.widgetManager.grabFocus(this.paintWidget);
      // The widget asks the interactor to animate (re-render every frame) while focused. On software
      // WebGL that burns the CPU the other views need, so we render on demand instead.
      this.grw.getInteractor().cancelAnimation(h, true);
      h.setVisibility(true);
    } else {
      this.widgetManager.releaseFocus();
      h.setVisibility(false);
    }
    this.requestRender();
  }

  setBrushRadius(radiusWorld: number): void {
    this.paintWidget.setRadius(radiusWorld);
  }

  /**
   * The trail of a stroke in progress shows what it paints: the active class's colour, or light grey for the
   * eraser. The cursor stays yellow, visible on dark stacks.
   */
  updateBrushColor(): void {
    const st = this.store;
    const c = st.tool === 'eraser' ? ERASER_TRAIL : (st.classById(st.activeClass)?.color ?? ERASER_TRAIL);
    const ctf = this.brushColors;
    ctf.removeAllPoints();
    ctf.addRGBPoint(0, 1, 0.9, 0.2);
    ctf.addRGBPoint(BRUSH_CURSOR, 1, 0.9, 0.2);
    ctf.addRGBPoint(BRUSH_TRAIL, c[0], c[1], c[2]);
    ctf.addRGBPoint(1, c[0], c[1], c[2]);
    ctf.modified();
  }

  /** Display pixel (CSS px relative to the view) -> fractional voxel coordinates on the current plane. */
  displayToVoxel(cssX: number, cssY: number): Vec3 {
    const rect = this.container.getBoundingClientRect();
    const view = (this.grw.getApiSpecificRenderWindow() as vtkOpenGLRenderWindow);
    const [W, H] = view.getSize();
    const x = (cssX / rect.width) * W;
    const y = H - (cssY / rect.height) * H;
    const world = view.displayToWorld(x, y, 0, this.renderer) as Vec3;
    const s = this.spacing();
    const vox: Vec3 = [world[0] / s[0], world[1] / s[1], world[2] / s[2]];
    vox[PLANE_AXIS[this.plane]] = this.sliceIndex();
    return vox;
  }

  /** Zoom by `factor` (> 1 zooms in) keeping the world point under (cssX, cssY) fixed. */
  zoom(factor: number, cssX?: number, cssY?: number): void {
    const cam = this.renderer.getActiveCamera();
    const before = cssX !== undefined && cssY !== undefined ? this.cssToWorld(cssX, cssY) : null;
    cam.setParallelScale(cam.getParallelScale() / factor);
    if (before && cssX !== undefined && cssY !== undefined) {
      const after = this.cssToWorld(cssX, cssY);
      this.panWorld([before[0] - after[0], before[1] - after[1], before[2] - after[2]]);
    }
  }

  /** Pan by a CSS-pixel delta. */
  panCss(dx: number, dy: number): void {
    const a = this.cssToWorld(0, 0);
    const b = this.cssToWorld(dx, dy);
    this.panWorld([a[0] - b[0], a[1] - b[1], a[2] - b[2]]);
  }

  private panWorld(d: Vec3): void {
    const cam = this.renderer.getActiveCamera();
    const f = cam.getFocalPoint();
    const p = cam.getPosition();
    cam.setFocalPoint(f[0] + d[0], f[1] + d[1], f[2] + d[2]);
    cam.setPosition(p[0] + d[0], p[1] + d[1], p[2] + d[2]);
  }

  private cssToWorld(cssX: number, cssY: number): Vec3 {
    const rect = this.container.getBoundingClientRect();
    const view = (this.grw.getApiSpecificRenderWindow() as vtkOpenGLRenderWindow);
    const [W, H] = view.getSize();
    return view.displayToWorld((cssX / rect.width) * W, H - (cssY / rect.height) * H, 0, this.renderer) as Vec3;
  }

  resize(): void {
    const rect = this.container.getBoundingClientRect();
    if (rect.width < 2 || rect.height < 2) return;
    this.grw.resize();
    this.requestRender();
  }

  /** Render now (synchronously) and report the time. */
  render(): void {
    const t0 = performance.now();
    this.renderWindow.render();
    if (this.deps.syncTiming?.()) this.finish();
    this.deps.onRendered?.(this.plane, performance.now() - t0);
  }

  /** Coalesce renders into the next animation frame. */
  requestRender(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  /** PNG of this view as a data: URL. */
  async snapshot(): Promise<string> {
    const [url] = await Promise.all(this.renderWindow.captureImages('image/png'));
    return url as string;
  }

  /** Force the GPU to finish (for honest frame timing): read back one pixel. */
  finish(): void {
    const view = (this.grw.getApiSpecificRenderWindow() as vtkOpenGLRenderWindow);
    view.getPixelData(0, 0, 0, 0);
  }

  dispose(): void {
    for (const d of this.disposers) d();
    // the paint widget's representation (its actor, mapper, glyph source, polydata) and state are vtk objects
    // the widget manager created for us: delete them with it
    type Rep = { getActors(): Array<{ getMapper(): unknown; getProperty(): unknown; delete(): void }>; getGlyph?(): unknown; getOutputData?(): unknown; delete(): void };
    const reps = (this.paintHandle as unknown as { getRepresentations?(): Rep[] } | null)?.getRepresentations?.() ?? [];
    const parts = reps.flatMap((r) => [...r.getActors().flatMap((a) => [a.getMapper(), a.getProperty(), a]), r.getGlyph?.(), r]) as Parameters<typeof deleteAll>[0];
    const glyphs = reps.map((r) => r.getOutputData?.()) as Parameters<typeof deleteImage>[0][];
    const state = this.paintWidget.getWidgetState() as unknown as Parameters<typeof deleteAll>[0][number];
    const manip = this.paintWidget.getManipulator() as unknown as Parameters<typeof deleteAll>[0][number];
    this.widgetManager.releaseFocus();
    this.widgetManager.delete();
    this.paintWidget.delete();
    deleteAll([...parts, state, manip]);
    for (const g of glyphs) deleteImage(g);
    this.brushColors.delete();
    this.closeFull();
    for (const o of [this.imageActor, this.imageMapper, this.annActor, this.annMapper, this.predActor, this.predMapper, this.previewActor, this.previewMapper]) o.delete();
    deleteImage(this.previewImage);
    this.crossActor.delete();
    this.crossMapper.delete();
    deleteImage(this.crossPoly);
    deleteImage(this.planeImage);
    deleteGenericRenderWindow(this.grw);
  }
}
