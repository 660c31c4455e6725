// Web Locks for leadership. Every context that opens an outbox waits on one exclusive
// lock; the browser grants it to the next waiter the moment the holder releases it,
// closes or crashes.

export function hasLocks() {
  return typeof globalThis.navigator?.locks?.request === 'function';
}

/**
 * Requests the lock. `onGranted` runs once it is held; it stays held until `release()`.
 * `immediate` resolves true if the lock was free right away (so the caller can wait for
 * the leader's start-up before reporting itself open), false if this context queued.
 */
export function acquireLock(name, onGranted) {
  const controller = new AbortController();
  let release;
  let released = false;
  const held = new Promise((resolve) => { release = resolve; });
  // A grant that comes after `release()` (the free-lock probe was still out) is handed
  // straight back: the callback behind `onGranted` may be gone by then.
  const grant = () => { if (!released) onGranted(); return held; };
  const immediate = new Promise((resolve) => {
    navigator.locks.request(name, { ifAvailable: true }, (lock) => {
      if (lock) {
        resolve(true);
        return grant();
      }
      resolve(false);
      navigator.locks.request(name, { signal: controller.signal }, grant).catch(() => {});
      return undefined;
    }).catch(() => resolve(false));
  });
  return {
    immediate,
    release() {
      released = true;
      controller.abort();
      release();
    },
  };
}
