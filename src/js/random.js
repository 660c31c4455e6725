// Randomness for transaction ids: crypto.getRandomValues, drawn from a pool refilled 512
// bytes at a time (one call per 32 ids); Math.random only where no crypto exists at all.

const pool = new Uint8Array(512);
let used = pool.length;

/** A random (version 4) UUID. */
export function uuid() {
  if (used === pool.length) {
    if (globalThis.crypto?.getRandomValues) crypto.getRandomValues(pool);
    else for (let i = 0; i < pool.length; i++) pool[i] = Math.random() * 256;
    used = 0;
  }
  const b = pool.subarray(used, (used += 16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** 53 random bits (all a JS number holds exactly): a seed, a context id. */
export const bits = () => Math.floor(Math.random() * 2 ** 53);
