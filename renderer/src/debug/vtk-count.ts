/**
 * A debug counter of vtk.js objects: every vtk.js class builds its instances through `macro.obj` (the base
 * vtkObject), so wrapping that one function counts creations, and wrapping each instance's `delete` counts
 * deletions. `live()` is what was created and not deleted yet, per class. The E2E leak test reads it through
 * `window.__sliceformDebug.vtk` (see main.ts) across open/close cycles: an owner that replaces a vtk object
 * without deleting the old one (VolView's replace-and-delete habit, ../../shared/STYLE.md) shows up as a class
 * whose live count grows with every cycle.
 *
 * Cheap enough to stay on in production: one counter increment per created object and a WeakRef, so the
 * counter itself never keeps an object alive.
 */
import macro from '@kitware/vtk.js/macros';

interface Counted {
  getClassName(): string;
  isDeleted(): boolean;
  delete(): void;
}

export interface VtkCounts {
  created: number;
  deleted: number;
  /** created, not deleted and still reachable, per class name: what the page holds */
  live(): Record<string, number>;
  /** sum of live() */
  liveTotal(): number;
  /**
   * reclaimed by the garbage collector without delete(), per class: vtk.js drops some of its own helpers that
   * way (OpenGL textures it re-creates, cell arrays); for an object of ours it means a missing delete()
   */
  dropped(): Record<string, number>;
}

let installed: VtkCounts | null = null;

/** Wraps vtk.js's base constructor once (idempotent) and returns the counters. */
export function installVtkCounter(): VtkCounts {
  if (installed) return installed;
  const m = macro as unknown as { obj: (publicAPI?: object, model?: object) => unknown };
  const original = m.obj;
  const alive = new Set<WeakRef<Counted>>();
  /** objects reclaimed by the GC before delete(): still counted as live under their class */
  const lost = new Map<string, number>();
  const counts: VtkCounts = {
    created: 0,
    deleted: 0,
    live() {
      const out: Record<string, number> = {};
      for (const ref of alive) {
        const o = ref.deref();
        if (!o) continue;
        let name = 'unknown';
        try {
          name = o.getClassName();
        } catch {
          /* a half-deleted object */
        }
        out[name] = (out[name] ?? 0) + 1;
      }
      return out;
    },
    liveTotal() {
      return Object.values(this.live()).reduce((a, b) => a + b, 0);
    },
    dropped() {
      return Object.fromEntries(lost);
    },
  };
  m.obj = function countedObj(publicAPI: object = {}, model: object = {}) {
    const r = original(publicAPI, model);
    const api = publicAPI as Counted;
    counts.created++;
    const ref = new WeakRef(api);
    alive.add(ref);
    const del = api.delete;
    // an object the GC reclaims without delete() keeps its class name through the hierarchy array (which the
    // subclasses fill after this call), not through the object itself
    const hierarchy = (model as { classHierarchy?: string[] }).classHierarchy;
    leakWatch.register(api, { ref, hierarchy: hierarchy ?? [], alive, lost }, ref);
    api.delete = () => {
      if (api.isDeleted()) return;
      del();
      counts.deleted++;
      alive.delete(ref);
      leakWatch.unregister(ref);
    };
    return r;
  };
  installed = counts;
  return counts;
}

/** When the GC reclaims an object that was never deleted, it is still a leak of its owner: keep it counted. */
const leakWatch = new FinalizationRegistry<{ ref: WeakRef<Counted>; hierarchy: string[]; alive: Set<WeakRef<Counted>>; lost: Map<string, number> }>(
  ({ ref, hierarchy, alive, lost }) => {
    if (!alive.delete(ref)) return;
    const name = hierarchy[hierarchy.length - 1] ?? 'unknown';
    lost.set(name, (lost.get(name) ?? 0) + 1);
  },
);
