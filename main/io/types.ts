import type { CancelSignal, ProgressCallback } from '../common/progress.js';
import type { Volume } from '../common/volume.js';

export interface ReadOptions {
  /** HDF5: dataset path (default: the first 3D/4D image dataset, preferring `raw`) */
  dataset?: string;
  /** time series: which time point to load (default 0, with a warning naming --timepoint) */
  timepoint?: number;
  onProgress?: ProgressCallback;
  signal?: CancelSignal;
  /** refuse volumes whose voxel data exceed this many bytes (default: the memory available now) */
  maxBytes?: number;
  /** called once per warning (they are also kept in volume.metadata.warnings) */
  onWarning?: (message: string) => void;
}

/** Everything about a volume except its voxels: what `probeVolume` returns. */
export type VolumeInfo = Omit<Volume, 'data'>;
