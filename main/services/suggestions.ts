/**
 * "Annotate here next" for the API (getSuggestions): the compute process keeps the newest per-slice
 * uncertainty of each volume (its densify, or the live session's preview: compute-store.ts), a few numbers per
 * slice; this process ranks them against the painted-slice record of its annotation editor, so the ranking
 * always sees the paint as it is now, also while a job runs. The scoring is main/pipeline/suggest.ts.
 */
import { ApiError, type Plane, type SliceSuggestions } from '../common/api.js';
import { suggestSlices } from '../pipeline/suggest.js';
import type { UncertaintyRecord } from './compute-protocol.js';

export function suggestionsFor(volumeId: string, rec: UncertaintyRecord | null, painted: Record<Plane, number[]>): SliceSuggestions {
  if (!rec) throw new ApiError('not-found', `volume ${volumeId} has no prediction to rank slices by yet: densify it (or run a live session) first`);
  const u = { xy: Float64Array.from(rec.perAxis.xy), xz: Float64Array.from(rec.perAxis.xz), yz: Float64Array.from(rec.perAxis.yz) };
  const s = suggestSlices(u, painted);
  return { volumeId, from: rec.from, ...(rec.iteration !== undefined ? { iteration: rec.iteration } : {}), perAxis: s.perAxis, ranked: s.ranked };
}
