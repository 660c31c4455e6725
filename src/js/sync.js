// Background Sync and the service worker context, feature-detected: where the Sync API is
// missing nothing is registered and the fallbacks (online, visibility, worker start) drain.

const lastRegistered = new Map();

/** Registers the Background Sync tag (at most once a second per tag). */
export function registerSync(tag) {
  const now = Date.now();
  if ((lastRegistered.get(tag) ?? 0) > now - 1000) return;
  lastRegistered.set(tag, now);
  const own = globalThis.registration;
  const found = own?.sync
    ? Promise.resolve(own)
    : globalThis.navigator?.serviceWorker?.getRegistration?.();
  found?.then((reg) => reg?.sync?.register(tag)).catch(() => {});
}

export function isServiceWorker() {
  return typeof globalThis.ServiceWorkerGlobalScope === 'function'
    && globalThis instanceof globalThis.ServiceWorkerGlobalScope;
}

export function isOffline() {
  return globalThis.navigator?.onLine === false;
}

/** Takes the lock only if it is free now: `{ release }`, or null when someone holds it. */
export function tryLock(name) {
  return new Promise((resolve) => {
    let release;
    const held = new Promise((r) => { release = r; });
    navigator.locks.request(name, { ifAvailable: true }, (lock) => {
      if (!lock) {
        resolve(null);
        return undefined;
      }
      resolve({ release });
      return held;
    }).catch(() => resolve(null));
  });
}

/**
 * Waits for `reply` (the leader's answer) or for the lock, whichever comes first: a leader
 * on its way out (a tab closing as the sync event fires) answers nothing, and its lock
 * comes here as soon as it is gone. `{ reply }` or `{ lock: { release } }`.
 */
export function replyOrLock(name, reply) {
  const controller = new AbortController();
  let settled = false;
  return new Promise((resolve, reject) => {
    let release;
    const held = new Promise((r) => { release = r; });
    navigator.locks.request(name, { signal: controller.signal }, () => {
      // Granted just as the reply came: let go at once.
      if (settled) return undefined;
      settled = true;
      resolve({ lock: { release } });
      return held;
    }).catch(() => {});
    const answered = (settle) => (value) => {
      if (settled) return;
      settled = true;
      controller.abort();
      settle(value);
    };
    reply.then(answered((r) => resolve({ reply: r })), answered(reject));
  });
}
