/**
 * Deleting vtk.js objects that own other vtk.js objects: vtk.js does not cascade delete(), so an owner's
 * dispose() deletes the parts it created through a parent too (the leak test in
 * test/e2e/ui-lifetimes.test.ts counts what is left).
 */
import type vtkGenericRenderWindow from '@kitware/vtk.js/Rendering/Misc/GenericRenderWindow';

interface Deletable {
  isDeleted(): boolean;
  delete(): void;
}

/** delete each object that is not deleted yet (in order; null/undefined skipped) */
export function deleteAll(objects: Array<Deletable | null | undefined>): void {
  for (const o of objects) if (o && !o.isDeleted()) o.delete();
}

/**
 * A GenericRenderWindow deletes its OpenGL window and interactor but leaves the renderer, the render window,
 * the camera, the lights and the interactor style: delete those too.
 */
export function deleteGenericRenderWindow(grw: ReturnType<typeof vtkGenericRenderWindow.newInstance>): void {
  const renderer = grw.getRenderer();
  const renderWindow = grw.getRenderWindow();
  const interactor = grw.getInteractor();
  const style = interactor.getInteractorStyle() as unknown as Deletable | null;
  const camera = renderer.getActiveCamera() as unknown as Deletable;
  const lights = renderer.getLights() as unknown as Deletable[];
  grw.delete();
  deleteAll([style, camera, ...lights, renderer as unknown as Deletable, renderWindow as unknown as Deletable, interactor as unknown as Deletable]);
}
