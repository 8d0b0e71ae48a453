/** A tiny typed event hub: `on(name, cb)` returns an unsubscribe function; listener errors are isolated. */
export class Emitter<E extends object> {
  private readonly map = new Map<keyof E, Set<(p: never) => void>>();
  on<K extends keyof E>(name: K, cb: (p: E[K]) => void): () => void {
    let set = this.map.get(name);
    if (!set) this.map.set(name, (set = new Set()));
    set.add(cb as (p: never) => void);
    return () => {
      set!.delete(cb as (p: never) => void);
    };
  }
  emit<K extends keyof E>(name: K, payload: E[K]): void {
    for (const cb of [...(this.map.get(name) ?? [])]) {
      try {
        (cb as (p: E[K]) => void)(payload);
      } catch (e) {
        process.emitWarning(`sliceform: ${String(name)} listener threw: ${(e as Error).message}`);
      }
    }
  }
  listenerCount(name: keyof E): number {
    return this.map.get(name)?.size ?? 0;
  }
}
