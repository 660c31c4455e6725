// Seeded random values for the codec's property test (Node) and the API fuzz run
// (tests-e2e/pages/fuzz.js, in a page): mostly what structured clone stores, some of what
// it refuses; `same` is structured-clone equality.

export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random values: mostly what structured clone stores, some of what it refuses. */
export function values(rand) {
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const int = (n) => Math.floor(rand() * n);
  const strings = () => pick([
    '', 'a', 'k1', '$t', '__proto__', 'constructor', '2024-01-01T00:00:00.000Z', '\uD800', '\u0000',
    'é😀', ' ', 'x'.repeat(2000), 'ab'.repeat(40_000), String(int(1e6)), 'http', 'ok', 'dead',
  ]);
  const numbers = () => pick([0, -0, 1, -1, 0.5, 1e21, -1e300, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 53 + 2, int(1000), 4294967296]);
  const leaves = [
    () => undefined, () => null, () => rand() < 0.5, numbers, strings, numbers, strings,
    () => BigInt(int(1e9)) * 12345678901n,
    () => new Date(pick([0, NaN, 8.64e15, -1, 1700000000000])),
    () => /a+b/giu,
    () => new ArrayBuffer(int(64)),
    () => new Uint8Array(Array.from({ length: int(3000) }, () => int(256))),
    () => new Float64Array([NaN, -0, 1.5]),
    () => new DataView(new ArrayBuffer(8), 2, 4),
    () => new Blob([strings()], { type: 'text/plain' }),
    () => new RangeError(strings()),
    () => Object.assign(new Error('m'), { name: 'MyError' }),
    () => new TypeError('t', { cause: 1 }),
    () => Object(strings()), () => Object(numbers()), () => Object(true), () => Object(5n),
    () => new BigInt64Array([-1n, 2n ** 63n - 1n]),
    () => new File(['f'], 'a.txt', { type: 'text/plain', lastModified: 7 }),
    // Own keys assignment cannot make, as JSON.parse (an API's answer) does.
    () => JSON.parse('{"__proto__":{"x":1},"a":2,"$t":"date"}'),
    // Views sharing one buffer, at offsets: structured clone keeps them sharing.
    () => { const b = new ArrayBuffer(16); return [new Uint8Array(b, 4, 4), new Uint16Array(b), new DataView(b, 1)]; },
    () => Object.assign([1, 2], { named: 'x', 4294967295: 'not an index' }),
  ];
  const refused = [
    () => () => 1, () => Symbol('s'), () => new WeakMap(), () => Promise.resolve(1),
    () => (typeof document === 'undefined' ? new WeakSet() : document.createElement('div')),
    () => new Proxy({}, { get() { throw new Error('trap'); }, ownKeys() { throw new Error('trap'); } }),
    () => Object.defineProperty({}, 'x', { enumerable: true, get() { throw new Error('getter'); } }),
  ];
  const any = (depth, allowRefused) => {
    const r = rand();
    if (allowRefused && r < 0.04) return pick(refused)();
    if (depth <= 0 || r < 0.55) return pick(leaves)();
    if (r < 0.7) return Array.from({ length: int(5) }, () => any(depth - 1, allowRefused));
    if (r < 0.85) {
      const o = {};
      for (let i = int(5); i > 0; i--) {
        const value = any(depth - 1, allowRefused);
        // Defined, not assigned: a `__proto__` key is then an own field, as JSON.parse makes it.
        Object.defineProperty(o, pick(['a', 'b', '$t', 'v', 'ids', '0', strings()]), { value, enumerable: true, writable: true, configurable: true });
      }
      return o;
    }
    if (r < 0.9) return new Map([[any(depth - 1, allowRefused), any(depth - 1, allowRefused)]]);
    if (r < 0.94) return new Set([any(depth - 1, allowRefused), any(depth - 1, allowRefused)]);
    if (r < 0.97) {
      // A cycle and a shared reference, both kept by structured clone.
      const o = { list: [] };
      o.self = o;
      const shared = { n: int(10) };
      o.list.push(shared, shared);
      return o;
    }
    const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
    sparse.extra = 'kept?';
    return sparse;
  };
  return { pick, int, any, strings, numbers };
}

/** Structured-clone equality: same types, same contents, NaN equal to NaN, -0 apart from 0. */
export async function same(a, b, seen = new Map()) {
  if (Object.is(a, b)) return true;
  if (typeof a !== typeof b || typeof a !== 'object' || a === null || b === null) return false;
  if (seen.has(a)) return seen.get(a) === b;
  seen.set(a, b);
  const tag = Object.prototype.toString.call(a);
  if (tag !== Object.prototype.toString.call(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return Object.is(a.getTime(), b.getTime());
  if (a instanceof RegExp) return a.source === b.source && a.flags === b.flags;
  if (a instanceof Error) return a.name === b.name && a.message === b.message;
  if (a instanceof File && (a.name !== b.name || a.lastModified !== b.lastModified)) return false;
  if (a instanceof Blob) return a.type === b.type && (await a.text()) === (await b.text());
  if (a instanceof ArrayBuffer) return bytesSame(new Uint8Array(a), new Uint8Array(b));
  // Through `seen`, a view's buffer must be shared where the original's was.
  if (ArrayBuffer.isView(a)) return a.byteLength === b.byteLength && a.byteOffset === b.byteOffset && same(a.buffer, b.buffer, seen);
  if (a instanceof Map || a instanceof Set) {
    if (a.size !== b.size) return false;
    const xs = [...a], ys = [...b];
    for (let i = 0; i < xs.length; i++) if (!(await same(xs[i], ys[i], seen))) return false;
    return true;
  }
  if (['[object String]', '[object Number]', '[object Boolean]', '[object BigInt]'].includes(tag)) return Object.is(a.valueOf(), b.valueOf());
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length || Array.isArray(a) !== Array.isArray(b) || (Array.isArray(a) && a.length !== b.length)) return false;
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i] || !(await same(a[ka[i]], b[kb[i]], seen))) return false;
  }
  return true;
}
const bytesSame = (x, y) => x.length === y.length && x.every((v, i) => v === y[i]);

/** A short readable form of any value, for failure lines. */
export function show(v, depth = 2) {
  try {
    if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…(${v.length})` : v);
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'function') return 'fn';
    if (typeof v === 'symbol') return 'symbol';
    if (typeof v !== 'object' || v === null) return Object.is(v, -0) ? '-0' : String(v);
    if (depth === 0) return Object.prototype.toString.call(v);
    if (Array.isArray(v)) return `[${v.slice(0, 5).map((x) => show(x, depth - 1)).join(',')}]`;
    const tag = Object.prototype.toString.call(v).slice(8, -1);
    if (tag !== 'Object') return tag;
    return `{${Object.keys(v).slice(0, 8).map((k) => `${k}:${show(v[k], depth - 1)}`).join(',')}}`;
  } catch {
    return 'unreadable';
  }
}

