/** Progress and cancellation primitives for long jobs (I/O, training, densify, batch). Pure. */
export interface Progress {
  /** 0..1 */
  fraction: number;
  /** seconds remaining, when it can be estimated */
  etaSeconds?: number;
  /** short human label: 'reading planes', 'training', 'densify' */
  stage?: string;
  message?: string;
  /** stage-specific figures (iteration, loss, voxelsPerSecond, heldOutIoU, ...) */
  details?: Record<string, number | string | undefined>;
}

export type ProgressCallback = (p: Progress) => void;

/** Cancellation token, the same shape as AbortSignal so either can be passed. */
export interface CancelSignal {
  readonly aborted: boolean;
}

/** Estimates ETA from elapsed time and fraction done. */
export class EtaEstimator {
  private readonly start: number;
  constructor(private readonly now: () => number = () => Date.now()) {
    this.start = now();
  }
  eta(fraction: number): number | undefined {
    if (fraction <= 0) return undefined;
    const elapsed = (this.now() - this.start) / 1000;
    return (elapsed * (1 - fraction)) / fraction;
  }
  elapsedSeconds(): number {
    return (this.now() - this.start) / 1000;
  }
}
