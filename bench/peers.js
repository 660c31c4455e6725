// The same work through offline-outbox, @tanstack/offline-transactions (its executor with
// a local-only collection, IndexedDB storage) and workbox-background-sync (`Queue`), and
// raw IndexedDB, in a page. Bundled by `make bench` (esbuild) into peers.bundle.js.
//
// Each system is driven through one small adapter: `open({ name, handler, maxConcurrency })`
// gives `{ enqueue(key, payload) -> resolves once stored, close() }`; `handler(payload)` is
// called for each stored item when the system sends.
import init, { Outbox } from '../pkg/offline_outbox.js';
import { startOfflineExecutor, IndexedDBAdapter } from '@tanstack/offline-transactions';
import { createCollection, localOnlyCollectionOptions } from '@tanstack/db';
import { Queue } from 'workbox-background-sync';
import { KIB, never, time, median, openDb } from './measure.js';

// Workbox's Queue is written for a service worker: its feature test reads
// `self.registration.sync`. In a page there is no registration, so it gets an empty one and
// takes its documented fallback (replay when the queue is constructed); its IndexedDB work
// is unchanged.
if (!('registration' in self)) self.registration = {};

let wasm = null;

const systems = {
  'offline-outbox': {
    // The module is compiled once per page, before any timing (the peers are plain JS).
    async prepare() {
      wasm ??= await init();
    },
    async open({ name, handler, maxConcurrency = 4 }) {
      await this.prepare();
      const ob = await Outbox.open({ name, maxConcurrency, handlers: { h: (ctx) => handler(ctx.mutations) } });
      return {
        enqueue: (key, payload) => ob.enqueue({ handler: 'h', keys: [key], mutations: payload }),
        close: () => ob.close(),
        // Sending starts after the first records are read; the rest load meanwhile.
        async loaded(n) {
          for (let i = 0; i < 1200; i++) {
            const st = await ob.stats();
            if (st.pending + st.inFlight >= n) return;
            await new Promise((r) => setTimeout(r, 50));
          }
        },
      };
    },
  },

  '@tanstack/offline-transactions': {
    async open({ name, handler, maxConcurrency = 4 }) {
      // Resolves each enqueue once the executor's storage has written its transaction.
      const waiting = [];
      const inner = new IndexedDBAdapter(name);
      const seen = new Set();
      const storage = {
        get: (k) => inner.get(k),
        keys: () => inner.keys(),
        delete: (k) => inner.delete(k),
        clear: () => inner.clear(),
        async set(k, v) {
          await inner.set(k, v);
          if (!seen.has(k)) {
            seen.add(k);
            waiting.shift()?.();
          }
        },
      };
      const items = createCollection(localOnlyCollectionOptions({ id: 'items', getKey: (x) => x.id }));
      const executor = startOfflineExecutor({
        collections: { items },
        storage,
        maxConcurrency,
        mutationFns: {
          send: async ({ transaction }) => {
            for (const m of transaction.mutations) await handler(m.modified.payload);
          },
        },
      });
      await executor.waitForInit();
      let n = 0;
      return {
        enqueue(key, payload) {
          const stored = new Promise((r) => waiting.push(r));
          const tx = executor.createOfflineTransaction({ mutationFnName: 'send' });
          tx.mutate(() => items.insert({ id: `${key}#${n++}#${Math.random()}`, key, payload }));
          tx.commit().catch(() => {});
          return stored;
        },
        close: async () => executor.dispose(),
      };
    },
  },

  'workbox-background-sync': {
    async open({ name, handler }) {
      // Replays on construction (the fallback above): shift each request and hand it over.
      const queue = new Queue(name, {
        onSync: async ({ queue: q }) => {
          let entry;
          while ((entry = await q.shiftRequest())) await handler(await entry.request.json());
        },
      });
      return {
        enqueue: (key, payload) => queue.pushRequest({
          request: new Request(`/api/mutate?key=${encodeURIComponent(key)}`, {
            method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload),
          }),
        }),
        close: async () => {},
      };
    },
  },

  'raw IndexedDB': {
    async open({ name, handler }) {
      const db = await openDb(name, (d) => d.createObjectStore('s', { autoIncrement: true }));
      // "Sending" reads what is stored at open, in order, hands each over, then deletes
      // what it read.
      (async () => {
        const [keys, values] = await new Promise((resolve) => {
          const store = db.transaction('s').objectStore('s');
          const k = store.getAllKeys();
          const v = store.getAll();
          v.onsuccess = () => resolve([k.result, v.result]);
        });
        for (const v of values) await handler(v.payload);
        if (keys.length) db.transaction('s', 'readwrite').objectStore('s').delete(IDBKeyRange.bound(keys[0], keys[keys.length - 1]));
      })();
      return {
        enqueue: (key, payload) => new Promise((resolve, reject) => {
          const tx = db.transaction('s', 'readwrite');
          tx.objectStore('s').put({ key, payload });
          tx.oncomplete = resolve;
          tx.onerror = () => reject(tx.error);
        }),
        close: async () => db.close(),
      };
    },
  },
};

const payload = (n, text = KIB) => ({ n, text, at: Date.now() });

/** Sequential awaited enqueues and rounds of 100 concurrent ones, per second (medians). */
async function enqueueRates(system) {
  const s = await systems[system].open({ name: `peer-enq-${Math.random()}`, handler: never });
  const seq = [];
  const conc = [];
  // 15 measured rounds after 3 warm-up ones: with fewer, one slow stretch of the machine
  // moved a row's median by a third.
  for (let round = 0; round < 18; round++) {
    const ms = await time(async () => { for (let i = 0; i < 20; i++) await s.enqueue('k', payload(i)); });
    const cms = await time(() => Promise.all(Array.from({ length: 100 }, (_, i) => s.enqueue(`k${i}`, payload(i)))));
    if (round >= 3) { seq.push(20000 / ms); conc.push(100000 / cms); }
  }
  await s.close();
  return { sequential: median(seq), concurrent: median(conc) };
}

/**
 * Stores `n` items (keys `keys` apart, `size`-byte payloads) with a handler that never
 * answers; gives up after `deadlineMs`, or sooner once its rate so far (after 10 s) would
 * not store them all by then. Resolves with how many were stored.
 */
async function fill(system, name, n, keys, size, deadlineMs) {
  const s = await systems[system].open({ name, handler: never });
  const text = 'x'.repeat(size);
  const start = performance.now();
  const onTime = (stored, ms) => ms < deadlineMs && (ms < 10000 || (stored / ms) * deadlineMs >= n);
  let b = 0;
  for (; b < n && onTime(b, performance.now() - start); b += 500) {
    await Promise.all(Array.from({ length: Math.min(500, n - b) }, (_, i) => s.enqueue(`k${(b + i) % keys}`, payload(b + i, text))));
  }
  await s.close();
  return Math.min(b, n);
}

/**
 * Opens what `fill` stored, as an app starting again would: how long until the first
 * handler call (ready to drain), and until `n` handler calls (each `handlerMs` long).
 */
async function openAndDrain(system, name, n, handlerMs, maxConcurrency) {
  let calls = 0;
  let first = 0;
  let resolveAll;
  const all = new Promise((r) => { resolveAll = r; });
  await systems[system].prepare?.();
  const t0 = performance.now();
  const handler = async () => {
    if (calls === 0) first = performance.now() - t0;
    if (handlerMs) await new Promise((r) => setTimeout(r, handlerMs));
    if (++calls === n) resolveAll();
  };
  const s = await systems[system].open({ name, handler, maxConcurrency });
  const done = await Promise.race([all.then(() => true), new Promise((r) => setTimeout(() => r(false), 120000))]);
  const ms = performance.now() - t0;
  await s.close();
  return { firstMs: first, totalMs: ms, calls, done };
}

/**
 * Opens `n` stored items with a handler that never answers: when it started sending, and
 * (for the heap figure) waits until it has read them all.
 */
async function openHolding(system, name, n) {
  let first = 0;
  await systems[system].prepare?.();
  const t0 = performance.now();
  window.holding = await systems[system].open({ name, handler: () => { if (!first) first = performance.now() - t0; return never(); } });
  for (let i = 0; i < 600 && !first; i++) await new Promise((r) => setTimeout(r, 50));
  await window.holding.loaded?.(n);
  // The module's exports have one- or two-letter names (scripts/minify-names.mjs).
  const memory = wasm && Object.values(wasm).find((v) => v instanceof WebAssembly.Memory);
  return { firstMs: first, wasmBytes: memory ? memory.buffer.byteLength : 0 };
}

/**
 * The open's protocol alone, in plain JS, on the database an outbox named `name` stored:
 * the database open, a Web Lock, a read-write transaction that bumps the epoch and reads
 * the first records (committed before anything is sent), then a read of the first
 * payload. No wasm, no scheduling: how soon any open that keeps the outbox's guarantees
 * could send first, as the open rows time it.
 */
async function openProtocol(name) {
  const t0 = performance.now();
  const db = await openDb(`offline-outbox:${name}`);
  // Held until the page closes, as a leader holds it.
  await new Promise((granted) => navigator.locks.request(`protocol:${name}`, () => { granted(); return never(); }));
  const first = await new Promise((resolve, reject) => {
    const tx = db.transaction(['meta', 'outbox'], 'readwrite');
    const meta = tx.objectStore('meta');
    const epoch = meta.get('epoch');
    epoch.onsuccess = () => meta.put((epoch.result ?? 0) + 1, 'epoch');
    // As the outbox reads them: the keys spanning 16 seqs and the first record (here a
    // group record, which spans them all).
    const store = tx.objectStore('outbox');
    const keys = store.getAllKeys(null, 16);
    store.getAll(null, 1);
    tx.oncomplete = () => resolve(keys.result[0]);
    tx.onerror = () => reject(tx.error);
  });
  // The first record's payload record (a group's holds its members' payloads).
  await new Promise((resolve) => { db.transaction('payloads').objectStore('payloads').get(first).onsuccess = resolve; });
  const ms = performance.now() - t0;
  db.close();
  return ms;
}

window.peerBench = { systems: Object.keys(systems), enqueueRates, fill, openAndDrain, openHolding, openProtocol };
window.peersReady = true;
