import { constants as bufferConstants } from 'node:buffer';
import { freemem, totalmem } from 'node:os';
import { VolumeReadError, CancelledError } from '../common/errors.js';
import { allocTyped, DTYPE_BYTES, type DType, type TypedArray } from '../common/volume.js';
import type { CancelSignal } from '../common/progress.js';

function gib(n: number): string {
  return n >= 1 << 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/** Memory a new volume may take by default: what the OS says is available, less a margin. */
export function defaultMaxBytes(): number {
  return Math.max(0, Math.min(freemem(), totalmem() * 0.9) - 256 * 2 ** 20);
}

/** Most bytes one array may hold in this runtime (Node 20: 4 GiB; later versions allow more). */
export const MAX_TYPED_LENGTH: number = bufferConstants.MAX_LENGTH;

/** Allocates the output volume after checking it fits; never returns a partial array. */
export function allocVolume(file: string, dtype: DType, length: number, maxBytes?: number): TypedArray {
  const bytes = length * DTYPE_BYTES[dtype];
  const limit = maxBytes ?? defaultMaxBytes();
  if (!Number.isSafeInteger(bytes) || bytes > limit) {
    throw new VolumeReadError(
      file,
      `volume needs ${gib(bytes)} of memory but only ${gib(limit)} is available (${maxBytes !== undefined ? 'limit set by caller' : 'free memory'}); crop or downsample it first`,
      { kind: 'too-large' },
    );
  }
  // V8 refuses a single array this long whatever the free memory ("Invalid typed array length: …"): say it
  // in our words, with the figures
  if (bytes > MAX_TYPED_LENGTH) {
    throw new VolumeReadError(
      file,
      `volume needs ${gib(bytes)} in one block, more than this runtime can hold in one array (${gib(MAX_TYPED_LENGTH)}); crop or downsample it first`,
      { kind: 'too-large' },
    );
  }
  try {
    return allocTyped(dtype, length);
  } catch (e) {
    throw new VolumeReadError(file, `cannot allocate ${gib(bytes)} for the volume (out of memory)`, {
      kind: 'too-large',
      cause: e,
    });
  }
}

export function throwIfCancelled(signal: CancelSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError('volume read cancelled');
}
