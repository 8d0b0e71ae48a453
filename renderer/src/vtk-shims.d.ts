// Minimal typings for the vtk.js modules that ship without .d.ts files (v37).
declare module '@kitware/vtk.js/Filters/General/PaintFilter' {
  import type vtkImageData from '@kitware/vtk.js/Common/DataModel/ImageData';
  type vtkImage = ReturnType<typeof vtkImageData.newInstance>;
  export interface vtkPaintFilter {
    setLabelMap(img: vtkImage): boolean;
    getLabelMap(): vtkImage | null;
    setBackgroundImage(img: vtkImage): boolean;
    setLabel(label: number): boolean;
    setRadius(r: number): boolean;
    setSlicingMode(mode: number | null): boolean;
    startStroke(): void;
    addPoint(world: number[]): void;
    /** resolves with the stroke's full-volume uint8 mask after it has been applied to the label map */
    endStroke(): Promise<ArrayBuffer> | undefined;
    undo(): void;
    redo(): void;
    canUndo(): boolean;
    canRedo(): boolean;
    delete(): void;
  }
  const vtkPaintFilter: { newInstance(initial?: Record<string, unknown>): vtkPaintFilter };
  export default vtkPaintFilter;
}

declare module '@kitware/vtk.js/Widgets/Widgets3D/PaintWidget' {
  import type { vtkAbstractWidgetFactory } from '@kitware/vtk.js/Widgets/Core/AbstractWidgetFactory';
  import type vtkPlaneManipulator from '@kitware/vtk.js/Widgets/Manipulators/PlaneManipulator';
  export interface vtkPaintWidget extends vtkAbstractWidgetFactory<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    setRadius(r: number): boolean;
    getRadius(): number;
    getManipulator(): vtkPlaneManipulator;
    getWidgetState(): import('@kitware/vtk.js/Widgets/Core/WidgetState').default & { getTrueOrigin(): number[] };
    delete(): void;
  }
  const vtkPaintWidget: { newInstance(initial?: Record<string, unknown>): vtkPaintWidget };
  export default vtkPaintWidget;
}
