// Web Locks for leadership. Every context that opens an outbox waits on one exclusive
// lock; the browser grants it to the next waiter the moment the holder releases it,
// closes or crashes.

export function hasLocks() {
  return typeof globalThis.navigator?.locks?.request === 'function';
}

/**
 * Requests the lock. It stays held until `release()`; `bind(onGranted)` says what to run
 * once it is held (at once if it already is: the request can go out before its owner is
 * ready for the answer). `immediate` resolves true if the lock was free right away (so the
 * caller can wait for the leader's start-up before reporting itself open), false if this
 * context queued.
 */
export function acquireLock(name) {
  const controller = new AbortController();
  let release;
  let onGranted;
  let granted = false;
  let released = false;
  const held = new Promise((resolve) => { release = resolve; });
  const grant = () => {
    granted = true;
    // After `release()` the callback behind `onGranted` may be gone: the lock goes back.
    if (onGranted && !released) onGranted();
    return held;
  };
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
    bind(f) {
      onGranted = f;
      if (granted && !released) f();
    },
    release() {
      released = true;
      controller.abort();
      release();
    },
  };
}
