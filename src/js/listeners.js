// The functions `subscribe` registered. Each event goes to every one of them, in the
// order they subscribed; one that throws stops neither the outbox nor the others.
import { OutboxError } from './errors.js';
export class Listeners {
  constructor() {
    this.list = [];
  }

  /** Adds `f`; returns the function that removes it (this subscription only). */
  add(f) {
    const entry = [f];
    this.list.push(entry);
    return () => {
      const i = this.list.indexOf(entry);
      if (i >= 0) this.list.splice(i, 1);
    };
  }

  any() {
    return this.list.length > 0;
  }

  /** Calls those subscribed now, even if one of them unsubscribes another meanwhile. */
  deliver(ev) {
    // An `error` event's error travels as `{ code, message }`: cloned to another context,
    // an OutboxError would keep neither its name nor its code.
    if (ev.type === 'error') ev = { ...ev, error: new OutboxError(ev.error.code, ev.error.message) };
    for (const [f] of [...this.list]) {
      try {
        f(ev);
      } catch {
        // The listener's own failure.
      }
    }
  }
}
