// What the page-side benchmarks share: the 1 KiB text, a handler that never answers,
// timing, the median and opening a database.
export const KIB = 'x'.repeat(1000);

export const never = () => new Promise(() => {});

export async function time(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Opens database `name`, creating it (version 1) with `upgrade(db)` if given. */
export function openDb(name, upgrade) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, upgrade && 1);
    if (upgrade) req.onupgradeneeded = () => upgrade(req.result);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
