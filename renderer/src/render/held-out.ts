/**
 * The training panel's line about the held-out estimate (TrainProgress / TrainResult): the IoU the user can
 * expect, measured on painted blocks the model had not trained on at that iteration (pipeline/recipe.ts 'early'
 * self-validation; the final model trains on them too, so it is usually better), or why there is none. Pure.
 */
export interface HeldOutFields {
  heldOutIoU?: number;
  heldOutIteration?: number;
  heldOutNote?: string;
}

export function heldOutText(p: HeldOutFields): string {
  if (p.heldOutIoU !== undefined && Number.isFinite(p.heldOutIoU)) {
    const at = p.heldOutIteration !== undefined ? ` (measured at iteration ${p.heldOutIteration}; the final model is usually better)` : '';
    return `held-out IoU estimate ${p.heldOutIoU.toFixed(3)}${at}`;
  }
  return p.heldOutNote ? `No held-out estimate: ${p.heldOutNote}.` : '';
}
