/**
 * The 3D view: GPU ray-cast volume rendering of up to four channels (vtk.js VolumeMapper with independent
 * components, one colour and opacity transfer function per channel), the label volume as a second vtkVolume
 * (label colours, per-class opacity, hidden classes fully transparent), and optionally the three slice planes.
 */
import vtkGenericRenderWindow from '@kitware/vtk.js/Rendering/Misc/GenericRenderWindow';
import vtkImageData from '@kitware/vtk.js/Common/DataModel/ImageData';
import vtkDataArray from '@kitware/vtk.js/Common/Core/DataArray';
import vtkVolume from '@kitware/vtk.js/Rendering/Core/Volume';
import vtkVolumeMapper from '@kitware/vtk.js/Rendering/Core/VolumeMapper';
import vtkColorTransferFunction from '@kitware/vtk.js/Rendering/Core/ColorTransferFunction';
import vtkPiecewiseFunction from '@kitware/vtk.js/Common/DataModel/PiecewiseFunction';
import vtkImageMapper from '@kitware/vtk.js/Rendering/Core/ImageMapper';
import vtkImageSlice from '@kitware/vtk.js/Rendering/Core/ImageSlice';
import { SlicingMode } from '@kitware/vtk.js/Rendering/Core/ImageMapper/Constants';

import type { ChannelDisplay, Plane } from '../render/composite.js';
import { deleteImage, type LabelImage, type LabelLuts } from '../render/labels.js';
import { deleteGenericRenderWindow } from '../render/vtk-dispose.js';
import { heldGrid, type Store } from '../state.js';

const MAX_COMPONENTS = 4;
const SLICING: Record<Plane, number> = { xy: SlicingMode.K, xz: SlicingMode.J, yz: SlicingMode.I };

export class VolumeView {
  readonly grw: ReturnType<typeof vtkGenericRenderWindow.newInstance>;
  readonly renderer;
  readonly renderWindow;
  private readonly image = vtkImageData.newInstance();
  private readonly mapper = vtkVolumeMapper.newInstance();
  private readonly volume = vtkVolume.newInstance();
  private readonly labelMapper = vtkVolumeMapper.newInstance();
  private readonly labelVolume = vtkVolume.newInstance();
  private readonly ctfs: ReturnType<typeof vtkColorTransferFunction.newInstance>[] = [];
  private readonly ofs: ReturnType<typeof vtkPiecewiseFunction.newInstance>[] = [];
  private readonly planeActors: Array<{ actor: ReturnType<typeof vtkImageSlice.newInstance>; mapper: ReturnType<typeof vtkImageMapper.newInstance> }> = [];
  /** which store channel feeds each component */
  private componentChannel: number[] = [];
  private labelSource: LabelImage | null = null;
  private renderTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly ro: ResizeObserver;
  lastRenderMs = 0;

  constructor(
    readonly container: HTMLElement,
    private readonly store: Store,
    luts: LabelLuts,
  ) {
    this.grw = vtkGenericRenderWindow.newInstance({ background: [0.05, 0.05, 0.08], listenWindowResize: false });
    this.grw.setContainer(container);
    this.renderer = this.grw.getRenderer();
    this.renderWindow = this.grw.getRenderWindow();
    this.volume.setMapper(this.mapper);
    this.mapper.setInputData(this.image);
    this.mapper.setSampleDistance(1);
    this.labelVolume.setMapper(this.labelMapper);
    const lp = this.labelVolume.getProperty();
    lp.setRGBTransferFunction(0, luts.color);
    lp.setScalarOpacity(0, luts.volumeOpacity);
    lp.setInterpolationTypeToNearest();
    // no gradient shading: on software WebGL it multiplies the ray-casting cost several times
    lp.setShade(false);
    for (let i = 0; i < MAX_COMPONENTS; i++) {
      this.ctfs.push(vtkColorTransferFunction.newInstance());
      this.ofs.push(vtkPiecewiseFunction.newInstance());
    }
    this.volume.setVisibility(false);
    this.labelVolume.setVisibility(false);
    this.renderer.addVolume(this.volume);
    this.renderer.addVolume(this.labelVolume);
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(container);
  }

  /** Build the multi-component image from the loaded channels (first four). */
  setVolume(): void {
    const vol = this.store.volume;
    if (!vol) return;
    // the voxels the page holds: an out-of-core volume's 3D level (heldGrid), else the whole volume
    const v = { ...heldGrid(vol), channels: vol.channels };
    const n = v.dims.x * v.dims.y * v.dims.z;
    const comps = Math.min(MAX_COMPONENTS, v.channels.length);
    this.componentChannel = Array.from({ length: comps }, (_, i) => i);
    const first = v.channels[0];
    const Ctor = first.constructor as { new (n: number): typeof first };
    const inter = new Ctor(n * comps);
    for (let c = 0; c < comps; c++) {
      const src = v.channels[c];
      for (let i = 0, j = c; i < n; i++, j += comps) inter[j] = src[i];
    }
    this.image.setDimensions(v.dims.x, v.dims.y, v.dims.z);
    this.image.setSpacing([v.spacing.x, v.spacing.y, v.spacing.z]);
    this.image.setOrigin([0, 0, 0]);
    // replace-and-delete: the previous volume's voxels go once the image holds the new ones
    const pd = this.image.getPointData();
    const old = pd.getScalars();
    pd.setScalars(vtkDataArray.newInstance({ name: 'channels', numberOfComponents: comps, values: inter }));
    if (old && old !== pd.getScalars()) old.delete();
    this.image.modified();
    const prop = this.volume.getProperty();
    prop.setIndependentComponents(true);
    prop.setInterpolationTypeToLinear();
    prop.setShade(false);
    for (let c = 0; c < comps; c++) {
      prop.setRGBTransferFunction(c, this.ctfs[c]);
      prop.setScalarOpacity(c, this.ofs[c]);
      prop.setScalarOpacityUnitDistance(c, Math.max(v.spacing.x, v.spacing.y, v.spacing.z) * 2);
    }
    // two samples per voxel pitch is plenty for a preview and halves the ray-casting cost
    const s = Math.min(v.spacing.x, v.spacing.y, v.spacing.z);
    this.mapper.setSampleDistance(s * 2);
    this.labelMapper.setSampleDistance(s * 2);
    this.updateVisibility();
    this.updateChannels(this.store.channels);
    this.resetCamera();
  }

  /** Transfer functions from the channel display settings: black->colour ramp over the window. */
  updateChannels(channels: ChannelDisplay[]): void {
    const prop = this.volume.getProperty();
    this.componentChannel.forEach((ch, c) => {
      const d = channels[ch];
      if (!d) return;
      const ctf = this.ctfs[c];
      const of = this.ofs[c];
      ctf.removeAllPoints();
      ctf.addRGBPoint(d.min, 0, 0, 0);
      ctf.addRGBPoint(d.max, ...d.color);
      of.removeAllPoints();
      of.addPoint(d.rangeMin, 0);
      of.addPoint(d.min, 0);
      of.addPoint(d.max, d.visible ? 0.6 : 0);
      of.addPoint(Math.max(d.max, d.rangeMax), d.visible ? 0.6 : 0);
      prop.setComponentWeight(c, d.visible ? 1 : 0);
    });
    this.requestRender();
  }

  /**
   * Show this label image (prediction when present, else annotation) in 3D. With null the mapper lets go of
   * the previous image, which the app deletes next.
   */
  setLabels(img: LabelImage | null): void {
    if (img !== this.labelSource) {
      this.labelSource = img;
      this.labelMapper.setInputData(img as LabelImage);
      this.emptyCheckedAt = -1;
    }
    this.updateVisibility();
  }

  /** What the 3D view draws, for the leak test and the console: channel image size and components, labels' size. */
  shown(): { dims: number[]; components: number; volumeVisible: boolean; labels: number[] | null } {
    const sc = this.image.getPointData().getScalars();
    const l = this.labelSource && !this.labelSource.isDeleted() ? this.labelSource.getDimensions() : null;
    return { dims: this.image.getDimensions(), components: sc ? sc.getNumberOfComponents() : 0, volumeVisible: this.volume.getVisibility(), labels: l };
  }

  /** The app closed the volume: hide everything and let go of the voxels (a one-voxel placeholder stays). */
  clearVolume(): void {
    this.componentChannel = [];
    const pd = this.image.getPointData();
    const old = pd.getScalars();
    this.image.setDimensions(1, 1, 1);
    pd.setScalars(vtkDataArray.newInstance({ name: 'channels', numberOfComponents: 1, values: new Uint8Array(1) }));
    old?.delete();
    this.image.modified();
    this.updateVisibility();
  }

  /** an all-zero label volume is not ray-cast at all */
  private labelsEmpty(): boolean {
    if (!this.labelSource || this.labelSource.isDeleted()) return true;
    const d = this.labelSource.getPointData().getScalars()?.getData() as Uint8Array | undefined;
    if (!d) return true;
    const t = this.labelSource!.getMTime();
    if (t !== this.emptyCheckedAt) {
      this.emptyCheckedAt = t;
      this.emptyCache = !d.some((v) => v !== 0);
    }
    return this.emptyCache;
  }
  private emptyCheckedAt = -1;
  private emptyCache = true;

  /** Slice planes in 3D share the 2D composite images of the slice views. */
  setPlaneImages(images: Record<Plane, ReturnType<typeof vtkImageData.newInstance>>): void {
    for (const p of this.planeActors) this.renderer.removeViewProp(p.actor);
    this.planeActors.length = 0;
    for (const plane of ['xy', 'xz', 'yz'] as Plane[]) {
      const mapper = vtkImageMapper.newInstance();
      mapper.setInputData(images[plane]);
      mapper.setSlicingMode(SLICING[plane]);
      mapper.setSlice(0);
      const actor = vtkImageSlice.newInstance();
      actor.setMapper(mapper);
      actor.getProperty().setColorWindow(255);
      actor.getProperty().setColorLevel(127.5);
      actor.getProperty().setOpacity(0.6); // the volume stays visible through the planes
      this.renderer.addViewProp(actor);
      this.planeActors.push({ actor, mapper });
    }
    this.updateVisibility();
  }

  updateVisibility(): void {
    for (const p of this.planeActors) p.actor.setVisibility(!!this.store.volume && this.store.showPlanesIn3D);
    this.volume.setVisibility(!!this.store.volume && this.store.show3DVolume);
    this.labelVolume.setVisibility(!!this.labelSource && this.store.show3DLabels && !this.labelsEmpty());
    this.requestRender();
  }

  resetCamera(): void {
    const cam = this.renderer.getActiveCamera();
    cam.setParallelProjection(false);
    const v = this.store.volume;
    if (!v) return;
    const c = [(v.dims.x * v.spacing.x) / 2, (v.dims.y * v.spacing.y) / 2, (v.dims.z * v.spacing.z) / 2];
    const r = Math.hypot(c[0], c[1], c[2]);
    cam.setFocalPoint(c[0], c[1], c[2]);
    // oblique view from above-front: z (depth) is visibly thinner when the stack is anisotropic
    cam.setPosition(c[0] + r * 1.6, c[1] - r * 2.2, c[2] - r * 1.8);
    cam.setViewUp(0, 0, -1);
    this.renderer.resetCamera();
    cam.zoom(1.3);
    this.renderer.resetCameraClippingRange();
  }

  resize(): void {
    const rect = this.container.getBoundingClientRect();
    if (rect.width < 2 || rect.height < 2) return;
    this.grw.resize();
    this.requestRender();
  }

  render(): void {
    const t0 = performance.now();
    this.labelVolume.setVisibility(!!this.labelSource && this.store.show3DLabels && !this.labelsEmpty());
    this.renderer.resetCameraClippingRange();
    this.renderWindow.render();
    this.lastRenderMs = performance.now() - t0;
  }

  /**
   * Ray casting on software WebGL costs far more than a slice, so the 3D view renders after input settles
   * (debounced) and never inside a slice step or stroke.
   */
  requestRender(delayMs = 120): void {
    if (this.renderTimer) clearTimeout(this.renderTimer);
    this.renderTimer = setTimeout(() => {
      this.renderTimer = null;
      requestAnimationFrame(() => this.render());
    }, delayMs);
  }

  get renderPending(): boolean {
    return this.renderTimer !== null;
  }

  async snapshot(): Promise<string> {
    this.renderer.resetCameraClippingRange();
    const [url] = await Promise.all(this.renderWindow.captureImages('image/png'));
    return url as string;
  }

  dispose(): void {
    if (this.renderTimer) clearTimeout(this.renderTimer);
    this.ro.disconnect();
    for (const p of this.planeActors) {
      p.actor.delete();
      p.mapper.delete();
    }
    for (const o of [...this.ctfs, ...this.ofs]) o.delete();
    this.volume.delete();
    this.mapper.delete();
    this.labelVolume.delete();
    this.labelMapper.delete();
    deleteImage(this.image);
    deleteGenericRenderWindow(this.grw);
  }
}
