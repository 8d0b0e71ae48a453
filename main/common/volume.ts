/**
 * The in-memory volume model shared by I/O, training, inference and the UI.
 *
 * Layout: one time point, channel-planar, x fastest: index = ((c * Z + z) * Y + y) * X + x.
 * This is exactly PyTorch/libtorch NCDHW order (D = z, H = y, W = x) for one sample, so a
 * channel block can be handed to the engine without reordering.
 */
export type DType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';

export type TypedArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

export interface Shape {
  x: number;
  y: number;
  z: number;
  /** channels */
  c: number;
  /** time points in the source file; only one is held in `data` */
  t: number;
}

export interface Spacing {
  x: number;
  y: number;
  z: number;
  /** 'µm' when the file says so or gives metres; 'pixel' when uncalibrated */
  unit: string;
}

export interface Volume {
  data: TypedArray;
  dtype: DType;
  shape: Shape;
  spacing: Spacing;
  channelNames: string[];
  /** reader id, e.g. 'tiff', 'imagej', 'ome-tiff', 'lsm', 'hdf5' */
  format: string;
  /** path or name it came from */
  source: string;
  /** which time point `data` holds */
  timepoint: number;
  /** header fields the reader found (ImageJ description, OME-XML summary, HDF5 attributes, ...) */
  metadata: Record<string, unknown>;
}

export const DTYPE_BYTES: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
};

export function allocTyped(dtype: DType, length: number): TypedArray {
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(length);
    case 'int8':
      return new Int8Array(length);
    case 'uint16':
      return new Uint16Array(length);
    case 'int16':
      return new Int16Array(length);
    case 'uint32':
      return new Uint32Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'float32':
      return new Float32Array(length);
    case 'float64':
      return new Float64Array(length);
  }
}

export function dtypeOf(a: TypedArray): DType {
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint16Array) return 'uint16';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint32Array) return 'uint32';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Float32Array) return 'float32';
  return 'float64';
}

export function voxelCount(s: Pick<Shape, 'x' | 'y' | 'z'>): number {
  return s.x * s.y * s.z;
}

export function voxelIndex(s: Pick<Shape, 'x' | 'y' | 'z'>, x: number, y: number, z: number, c = 0): number {
  return ((c * s.z + z) * s.y + y) * s.x + x;
}

/** A label volume: 0 = unannotated, 1..K = classes (1 conventionally background). Always c = 1. */
export interface LabelVolume extends Volume {
  dtype: 'uint8' | 'uint16';
  classNames?: string[];
}
