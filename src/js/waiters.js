// Who waits on `settled(id)`: each promise's settle functions, by transaction id. Kept in
// JS because the engine only ever hands them values; as a Rust map of promise handles it
// was about 4 KB of wasm.
export class Waiters {
  constructor() {
    this.byId = new Map();
  }

  /** A promise that the next `settle` of `id` settles. */
  wait(id) {
    return new Promise((resolve, reject) => {
      const list = this.byId.get(id);
      if (list) list.push([resolve, reject]);
      else this.byId.set(id, [[resolve, reject]]);
    });
  }

  has(id) {
    return this.byId.has(id);
  }

  /** Fulfils (`ok`) or rejects everything waiting on `id` with `value`. */
  settle(id, ok, value) {
    const list = this.byId.get(id);
    if (!list) return;
    this.byId.delete(id);
    for (const [resolve, reject] of list) (ok ? resolve : reject)(value);
  }

  /** What waits on `from` waits on `to` from now on. */
  move(from, to) {
    const list = this.byId.get(from);
    if (!list) return;
    this.byId.delete(from);
    const into = this.byId.get(to);
    if (into) into.push(...list);
    else this.byId.set(to, list);
  }

  ids() {
    return [...this.byId.keys()];
  }

  /**
   * Adds `id` to what the next store read for `settled` calls asks about, so that the
   * calls made before it starts share it (`Promise.all` over many ids): the list when `id`
   * opens it, and the caller is to start that read, which marks it `read` as it starts.
   */
  ask(id) {
    if (this.asking?.read === false) this.asking.push(id);
    else return (this.asking = Object.assign([id], { read: false }));
  }

  /** Rejects what waits on each of `ids` (by default, on any id) with `error`. */
  reject(error, ids = this.ids()) {
    for (const id of ids) this.settle(id, false, error);
  }
}
