/**
 * One slice numbering for everything the user reads: Fiji's 1-based slice numbers (slider labels, the
 * position readout, tick titles, ranked slice lists). The API, the label volumes and data-* attributes stay
 * 0-based; convert only at the point where a number becomes text.
 */
import { PLANE_AXIS, type Plane } from './composite.js';

/** 0-based index -> the number shown */
export function shownSlice(index: number): number {
  return index + 1;
}

/** a number the user typed or read -> 0-based index */
export function sliceIndex(shown: number): number {
  return shown - 1;
}

const AXIS_NAME = ['x', 'y', 'z'] as const;

/** "xz y 38": the plane and its slice as the user names it (slice 37 of the xz plane, 0-based) */
export function planeSliceLabel(plane: Plane, index: number): string {
  return `${plane} ${AXIS_NAME[PLANE_AXIS[plane]]} ${shownSlice(index)}`;
}

/** "x 31  y 91  z 23" for a 0-based voxel position */
export function voxelLabel(vox: readonly [number, number, number]): string {
  return vox.map((v, i) => `${AXIS_NAME[i]} ${shownSlice(v)}`).join('  ');
}
