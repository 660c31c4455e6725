// Core benchmarks, run in one page. Each figure comes with a baseline measured in the same
// run, so the ratio does not depend on the machine.
import init, { Outbox } from '../pkg/offline_outbox.js';

const KIB = 'x'.repeat(1000);
const payload = (n) => ({ n, text: KIB, at: new Date() });
const never = () => new Promise(() => {});

function rawDb(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, 1);
    req.onupgradeneeded = () => req.result.createObjectStore('s', { autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** One put in its own readwrite transaction, resolved on commit: the plain IndexedDB way. */
function rawPut(db, value) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction('s', 'readwrite');
    tx.objectStore('s').put(value);
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
}

async function time(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function fresh(name, handlers, extra) {
  return Outbox.open({ name: `${name}-${Math.random().toString(36).slice(2)}`, handlers, ...extra });
}

async function untilEmpty(ob) {
  for (;;) {
    const r = await ob.drain();
    if (r.remaining === 0) return;
  }
}

export async function run() {
  await init();
  const out = {};
  const N = 400;

  // Sequential: the outbox (whose handler hangs, so it only stores) against a raw put per
  // transaction, interleaved in rounds so drift in the machine hits both alike.
  const db = await rawDb(`raw-${Math.random()}`);
  const seq = await fresh('bench-seq', { h: never });
  for (let i = 0; i < 20; i++) {
    await rawPut(db, payload(i));
    await seq.enqueue({ handler: 'h', keys: ['w'], mutations: payload(i) });
  }
  let rawSeqMs = 0;
  let oursSeqMs = 0;
  for (let round = 0; round < 8; round++) {
    rawSeqMs += await time(async () => { for (let i = 0; i < N / 8; i++) await rawPut(db, payload(i)); });
    oursSeqMs += await time(async () => {
      for (let i = 0; i < N / 8; i++) await seq.enqueue({ handler: 'h', keys: ['k'], mutations: payload(i) });
    });
  }
  await seq.close();
  const rawConcMs = await time(() => Promise.all(Array.from({ length: 100 }, (_, i) => rawPut(db, payload(i)))));
  db.close();
  out.rawSequentialPerSec = (N / rawSeqMs) * 1000;
  out.sequentialEnqueuePerSec = (N / oursSeqMs) * 1000;
  out.rawConcurrentPerSec = (100 / rawConcMs) * 1000;

  // 100 concurrent enqueues (group commit), best of 5 rounds, against the same baselines.
  {
    const ob = await fresh('bench-conc', { h: never });
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      const ms = await time(() => Promise.all(Array.from({ length: 100 }, (_, i) => ob.enqueue({ handler: 'h', keys: [`k${i}`], mutations: payload(i) }))));
      best = Math.min(best, ms);
    }
    out.concurrentEnqueuePerSec = (100 / best) * 1000;
    await ob.close();
  }

  // Drain with an instant handler: 5,000 written by a context that cannot send, then a
  // fresh context opens the outbox and drains it (payloads come from IndexedDB).
  {
    const name = `bench-drain-${Math.random().toString(36).slice(2)}`;
    const writer = await Outbox.open({ name, handlers: { h: never } });
    for (let b = 0; b < 50; b++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => writer.enqueue({ handler: 'h', keys: [`k${(b * 100 + i) % 64}`], mutations: payload(i) })));
    }
    await writer.close();
    let sent = 0;
    const t0 = performance.now();
    const ob = await Outbox.open({ name, handlers: { h: async () => { sent++; } } });
    await untilEmpty(ob);
    const ms = performance.now() - t0;
    out.drainCount = sent;
    out.drainPerSec = (sent / ms) * 1000;
    await ob.close();
  }

  // 50 transactions on 50 distinct keys, 20 ms handler, maxConcurrency 8; the baseline is
  // the same work in strict FIFO order.
  for (const ordering of ['per-key', 'fifo']) {
    const name = `bench-keys-${ordering}-${Math.random().toString(36).slice(2)}`;
    const writer = await Outbox.open({ name, handlers: { h: never } });
    await Promise.all(Array.from({ length: 50 }, (_, i) => writer.enqueue({ handler: 'h', keys: [`key${i}`], mutations: { i } })));
    await writer.close();
    const t0 = performance.now();
    const ob = await Outbox.open({ name, ordering, maxConcurrency: 8, handlers: { h: () => new Promise((r) => setTimeout(r, 20)) } });
    await untilEmpty(ob);
    out[ordering === 'fifo' ? 'fiftyKeysFifoSec' : 'fiftyKeysSec'] = (performance.now() - t0) / 1000;
    await ob.close();
  }
  return out;
}

window.runBench = run;
window.benchReady = true;
