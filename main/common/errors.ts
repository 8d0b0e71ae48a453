/**
 * Typed errors shared by every layer. `exitCode` is what the CLI returns for them:
 * 2 = bad input (unreadable file, bad arguments, invalid config), 1 = anything else.
 */
export type ErrorKind = 'bad-input' | 'unsupported' | 'too-large' | 'cancelled' | 'engine' | 'internal';

export class SliceformError extends Error {
  readonly kind: ErrorKind;
  readonly file?: string;
  constructor(kind: ErrorKind, message: string, options?: { file?: string; cause?: unknown }) {
    super(options?.file ? `${options.file}: ${message}` : message, { cause: options?.cause });
    this.name = 'SliceformError';
    this.kind = kind;
    this.file = options?.file;
  }
  get exitCode(): number {
    return this.kind === 'bad-input' || this.kind === 'unsupported' || this.kind === 'too-large' ? 2 : 1;
  }
}

/** Error thrown by volume readers for anything wrong with a file (truncated, bad magic, cycles, ...). */
export class VolumeReadError extends SliceformError {
  constructor(file: string, message: string, options?: { cause?: unknown; kind?: ErrorKind }) {
    super(options?.kind ?? 'bad-input', message, { file, cause: options?.cause });
    this.name = 'VolumeReadError';
  }
}

export class CancelledError extends SliceformError {
  constructor(message = 'cancelled') {
    super('cancelled', message);
    this.name = 'CancelledError';
  }
}

export function isSliceformError(e: unknown): e is SliceformError {
  return e instanceof SliceformError;
}
