/**
 * The two label volumes as vtk.js image data (annotation, shared with the paint filter; prediction from
 * densify) and their lookup tables. One instance, shared by every view; each view uploads its own textures.
 */
import vtkImageData from '@kitware/vtk.js/Common/DataModel/ImageData';
import vtkDataArray from '@kitware/vtk.js/Common/Core/DataArray';
import type vtkPolyData from '@kitware/vtk.js/Common/DataModel/PolyData';
import vtkColorTransferFunction from '@kitware/vtk.js/Rendering/Core/ColorTransferFunction';
import vtkPiecewiseFunction from '@kitware/vtk.js/Common/DataModel/PiecewiseFunction';
import type { ClassDef } from '../state.js';
import type { Dims } from './composite.js';

export type LabelImage = ReturnType<typeof vtkImageData.newInstance>;

export function makeLabelImage(dims: Dims, spacing: [number, number, number], values: Uint8Array): LabelImage {
  const img = vtkImageData.newInstance();
  img.setDimensions(dims.x, dims.y, dims.z);
  img.setSpacing(spacing);
  img.setOrigin([0, 0, 0]);
  img.getPointData().setScalars(vtkDataArray.newInstance({ name: 'labels', numberOfComponents: 1, values }));
  return img;
}

/**
 * Delete an image data and what it owns: vtkImageData.delete() leaves its point/cell/field attributes and
 * their arrays to the garbage collector, which the leak test counts as dropped objects.
 */
export function deleteImage(img: ReturnType<typeof vtkImageData.newInstance> | ReturnType<typeof vtkPolyData.newInstance> | null | undefined): void {
  if (!img || img.isDeleted()) return;
  if ('getPoints' in img) for (const part of [img.getPoints(), img.getVerts(), img.getLines(), img.getPolys(), img.getStrips()]) part?.delete();
  for (const attrs of [img.getPointData(), img.getCellData(), img.getFieldData()]) {
    if (!attrs) continue;
    for (let i = attrs.getNumberOfArrays() - 1; i >= 0; i--) attrs.getArrayByIndex(i)?.delete();
    attrs.delete();
  }
  img.delete();
}

/** Replace a label image's voxels in place (same size) and tell vtk.js. */
export function setLabelValues(img: LabelImage, values: Uint8Array): void {
  const scalars = img.getPointData().getScalars();
  const data = scalars.getData() as Uint8Array;
  if (data.length !== values.length) throw new Error(`label volume has ${values.length} voxels, expected ${data.length}`);
  data.set(values);
  scalars.modified();
  img.modified();
}

export class LabelLuts {
  readonly color = vtkColorTransferFunction.newInstance();
  /** 2D overlay: every visible class opaque (the actor's opacity is the overlay opacity) */
  readonly sliceOpacity = vtkPiecewiseFunction.newInstance();
  /** 3D: per-class opacity */
  readonly volumeOpacity = vtkPiecewiseFunction.newInstance();
  /** outline mode: no fill at all, only the border (vtk.js label outline) */
  readonly noFill = vtkPiecewiseFunction.newInstance();
  /** the live preview's fill: every visible class but the first (background), whose outline is enough */
  readonly previewFill = vtkPiecewiseFunction.newInstance();
  /** per label value - 1: border opacity in outline mode (0 for hidden classes) */
  outlineOpacity: number[] = [1];
  maxId = 1;

  update(classes: ClassDef[]): void {
    const maxId = Math.max(1, ...classes.map((c) => c.id));
    this.maxId = maxId;
    this.color.removeAllPoints();
    this.sliceOpacity.removeAllPoints();
    this.volumeOpacity.removeAllPoints();
    this.previewFill.removeAllPoints();
    const firstId = Math.min(...classes.map((c) => c.id));
    // Steps, not ramps: each id owns [id - 0.45, id + 0.45] so nearest-sampled labels never blend.
    for (let id = 0; id <= maxId; id++) {
      const c = classes.find((k) => k.id === id);
      const rgb = c?.color ?? [0, 0, 0];
      const on = c && c.visible ? 1 : 0;
      for (const x of [id - 0.45, id + 0.45]) {
        this.color.addRGBPoint(x, rgb[0], rgb[1], rgb[2]);
        this.sliceOpacity.addPoint(x, id === 0 ? 0 : on);
        this.previewFill.addPoint(x, id === 0 || id === firstId ? 0 : on);
        this.volumeOpacity.addPoint(x, id === 0 ? 0 : on * (c?.opacity ?? 0));
      }
    }
    this.noFill.removeAllPoints();
    this.noFill.addPoint(-0.5, 0);
    this.noFill.addPoint(maxId + 0.5, 0);
    this.outlineOpacity = Array.from({ length: maxId }, (_, i) => (classes.find((k) => k.id === i + 1)?.visible ? 1 : 0));
    this.color.modified();
    this.sliceOpacity.modified();
    this.volumeOpacity.modified();
    this.previewFill.modified();
  }

  dispose(): void {
    this.color.delete();
    this.sliceOpacity.delete();
    this.volumeOpacity.delete();
    this.noFill.delete();
    this.previewFill.delete();
  }
}
