// Triggers from the environment: the `online` event and the page becoming visible (drain
// now), the page being hidden for good or restored from the back-forward cache (leave and
// rejoin the election, so a closing leader hands over at once), and the Network
// Information API's `change`. Works in pages and workers alike: the global scope is the
// event target; visibility and page lifecycle exist only where there is a document.

/** What `listen` reports, by the number passed to its callback. */
const ONLINE = 0;
const VISIBLE = 1;
const HIDDEN = 2;
const RESTORED = 3;

/** Installs the listeners, calling `on(trigger)`; returns the function that removes them. */
export function listen(on) {
  const doc = globalThis.document;
  const listeners = [[globalThis, 'online', () => on(ONLINE)]];
  if (doc) {
    listeners.push(
      [globalThis, 'pagehide', () => on(HIDDEN)],
      [globalThis, 'pageshow', (e) => e.persisted && on(RESTORED)],
      [doc, 'visibilitychange', () => doc.visibilityState === 'visible' && on(VISIBLE)],
    );
  }
  for (const [target, type, f] of listeners) target.addEventListener(type, f);
  return () => {
    for (const [target, type, f] of listeners) target.removeEventListener(type, f);
  };
}

/**
 * Whether the connection is metered or constrained, where the browser says (elsewhere, as
 * in Safari and Firefox, it counts as unmetered): cellular (where `type` is reported), Data
 * Saver on, or an effective type of 3g or slower (desktop browsers report no `type`).
 */
export function metered() {
  const c = globalThis.navigator?.connection;
  if (!c) return false;
  if (c.saveData === true) return true;
  return c.type !== undefined ? c.type === 'cellular' : ['slow-2g', '2g', '3g'].includes(c.effectiveType);
}

/** Calls `on()` when the connection changes; the function that stops it, or null without the API. */
export function watchConnection(on) {
  const c = globalThis.navigator?.connection;
  if (!c) return null;
  const f = () => on(0);
  c.addEventListener('change', f);
  return () => c.removeEventListener('change', f);
}
