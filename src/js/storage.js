// The StorageManager (`navigator.storage`), feature-detected: each answer is undefined
// where the browser lacks it or refuses.

/** Whether storage is persistent, asking for it first when `request` and it is not. */
export async function persist(request) {
  const storage = globalThis.navigator?.storage;
  try {
    const already = await storage?.persisted?.();
    return already || !request || already === undefined ? already : await storage.persist();
  } catch {
    return undefined;
  }
}

/** `[usage, quota]` in bytes for the whole origin. */
export async function estimate() {
  try {
    const e = await globalThis.navigator?.storage?.estimate?.();
    return e && [e.usage, e.quota];
  } catch {
    return undefined;
  }
}
