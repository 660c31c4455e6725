// Handlers and raw IndexedDB access for the wasm-bindgen-test suites. Works in pages and
// workers alike (globalThis only).

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let log = [];
export function resetLog() { log = []; }
/** The log as strings, e.g. "start:a1", "end:a1", "call:x@2". */
export function logLines() { return log.slice(); }

export function uniqueName(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2)}`;
}

let gateOpen = false;
export function setGate(open) { gateOpen = open; }

export function handlers() {
  return {
    ok: async (ctx) => { log.push(`call:${ctx.mutations?.tag}@${ctx.attempt}`); },
    slow: async (ctx) => {
      log.push(`start:${ctx.mutations.tag}`);
      await sleep(ctx.mutations.ms ?? 30);
      log.push(`end:${ctx.mutations.tag}`);
    },
    flaky: async (ctx) => {
      log.push(`call:${ctx.mutations.tag}@${ctx.attempt}@${Date.now()}`);
      if (ctx.attempt <= (ctx.mutations.failTimes ?? 0)) {
        const e = new Error(`flaky ${ctx.attempt}`);
        if (ctx.mutations.retryAfterMs !== undefined) e.retryAfterMs = ctx.mutations.retryAfterMs;
        throw e;
      }
    },
    /** Fails until openGate() is called. */
    gated: async (ctx) => {
      log.push(`call:${ctx.mutations.tag}@${ctx.attempt}`);
      if (gateOpen) return;
      const e = new Error('gate closed');
      if (ctx.mutations.fatal) e.name = 'NonRetriableError';
      else e.retryAfterMs = ctx.mutations.retryAfterMs ?? 20;
      throw e;
    },
    reject: async (ctx) => {
      log.push(`call:${ctx.mutations?.tag}@${ctx.attempt}`);
      const e = new Error('refused by server');
      e.name = 'NonRetriableError';
      throw e;
    },
    throwsSync: (ctx) => { log.push(`call:${ctx.mutations?.tag}@${ctx.attempt}`); throw new Error('sync throw'); },
    hang: (ctx) => new Promise((_, reject) => {
      log.push(`hang:${ctx.mutations?.tag}`);
      ctx.signal.addEventListener('abort', () => { log.push(`aborted:${ctx.mutations?.tag}`); reject(new Error('aborted')); });
    }),
    /** Records the exact values it was given, for fidelity checks. */
    keep: async (ctx) => { kept.push({ mutations: ctx.mutations, metadata: ctx.metadata, key: ctx.idempotencyKey, keys: ctx.keys }); },
  };
}

const kept = [];
export function keptValues() { return kept; }

export function options(name, extra) {
  return { name, handlers: handlers(), ...(extra ?? {}) };
}

export function tx(handler, keys, tag, extra) {
  return { handler, keys, mutations: { tag, ...(extra ?? {}) } };
}

export function richMutations() {
  const bytes = new Uint8Array([1, 2, 3, 250]);
  return {
    date: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
    isoString: '2024-01-02T03:04:05.000Z',
    buffer: bytes.buffer.slice(0),
    bytes,
    floats: new Float64Array([1.5, -0, NaN]),
    map: new Map([['k', { deep: [1, { x: null }] }]]),
    set: new Set(['a', 'b']),
    nested: { a: [1, 'two', { three: 3n }], u: undefined },
  };
}

/** Compares what the handler saw with a fresh richMutations(); returns mismatches. */
export function checkRich(m) {
  const bad = [];
  if (!(m.date instanceof Date) || m.date.getTime() !== Date.UTC(2024, 0, 2, 3, 4, 5)) bad.push('date');
  if (typeof m.isoString !== 'string') bad.push('isoString became ' + typeof m.isoString);
  if (!(m.buffer instanceof ArrayBuffer) || new Uint8Array(m.buffer)[3] !== 250) bad.push('buffer');
  if (!(m.bytes instanceof Uint8Array) || m.bytes.join() !== '1,2,3,250') bad.push('bytes');
  if (!(m.floats instanceof Float64Array) || !Object.is(m.floats[1], -0) || !Number.isNaN(m.floats[2])) bad.push('floats');
  if (!(m.map instanceof Map) || m.map.get('k').deep[1].x !== null) bad.push('map');
  if (!(m.set instanceof Set) || !m.set.has('b')) bad.push('set');
  if (m.nested.a[2].three !== 3n || !('u' in m.nested)) bad.push('nested');
  return bad;
}

function openRaw(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function request(r) {
  return new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
}

/** Record count of one store of an outbox's database, through a separate connection. */
export async function rawCount(outboxName, store) {
  const db = await openRaw(`offline-outbox:${outboxName}`);
  try { return await request(db.transaction(store).objectStore(store).count()); } finally { db.close(); }
}

export async function rawAll(outboxName, store) {
  const db = await openRaw(`offline-outbox:${outboxName}`);
  try { return await request(db.transaction(store).objectStore(store).getAll()); } finally { db.close(); }
}

export async function rawPut(outboxName, store, value, key) {
  const db = await openRaw(`offline-outbox:${outboxName}`);
  try {
    const t = db.transaction(store, 'readwrite');
    t.objectStore(store).put(value, key);
    await new Promise((resolve, reject) => { t.oncomplete = resolve; t.onerror = () => reject(t.error); });
  } finally { db.close(); }
}

export async function rawDelete(outboxName, store, key) {
  const db = await openRaw(`offline-outbox:${outboxName}`);
  try {
    const t = db.transaction(store, 'readwrite');
    t.objectStore(store).delete(key);
    await new Promise((resolve, reject) => { t.oncomplete = resolve; t.onerror = () => reject(t.error); });
  } finally { db.close(); }
}

/** An event array and the listener that fills it. */
export function collector() {
  const events = [];
  return { events, listener: (e) => events.push(e) };
}

export function eventTypes(events) { return events.map((e) => e.type); }

/** Awaits a promise and returns [ok, valueOrErrorCode]. */
export async function outcome(p) {
  try { return [true, await p]; } catch (e) { return [false, e?.code ?? String(e)]; }
}

export function isOutboxError(e) { return e?.name === 'OutboxError' && typeof e.code === 'string'; }

export async function waitFor(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await pred()) return true; await sleep(5); }
  return false;
}

/** Resolves with the promise's value, or with the string 'timeout' after `ms`. */
export function withTimeout(p, ms) {
  return Promise.race([p, sleep(ms).then(() => 'timeout')]);
}

export const hangAs = (name) => ({ [name]: handlers().hang });

/** [label, transaction, expected code] for every kind of bad input. */
export function badTransactions() {
  return [
    ['unknown handler', { handler: 'nope', keys: [], mutations: 1 }, 'UnknownHandler'],
    ['keys not an array', { handler: 'ok', keys: 'a', mutations: 1 }, 'InvalidTransaction'],
    ['keys missing', { handler: 'ok', mutations: 1 }, 'InvalidTransaction'],
    ['key not a string', { handler: 'ok', keys: ['a', 1], mutations: 1 }, 'InvalidTransaction'],
    ['function in mutations', { handler: 'ok', keys: [], mutations: { f() {} } }, 'NotSerializable'],
    ['symbol in mutations', { handler: 'ok', keys: [], mutations: { s: Symbol('x') } }, 'NotSerializable'],
    ['function as metadata', { handler: 'ok', keys: [], mutations: 1, metadata: () => 1 }, 'NotSerializable'],
    ['unknown field', { handler: 'ok', key: ['a'], keys: [], mutations: 1 }, 'InvalidTransaction'],
    ['bad priority', { handler: 'ok', keys: [], mutations: 1, priority: 'urgent' }, 'InvalidTransaction'],
    ['empty idempotency key', { handler: 'ok', keys: [], mutations: 1, idempotencyKey: '' }, 'InvalidTransaction'],
    ['not an object', 42, 'InvalidTransaction'],
    ['array', [], 'InvalidTransaction'],
    ['http without url', { handler: 'http', keys: [], mutations: { method: 'POST' } }, 'InvalidTransaction'],
    ['http GET with body', { handler: 'http', keys: [], mutations: { method: 'GET', url: '/x', body: 'b' } }, 'InvalidTransaction'],
    ['http bad method', { handler: 'http', keys: [], mutations: { method: 'PO ST', url: '/x' } }, 'InvalidTransaction'],
    ['http bad headers', { handler: 'http', keys: [], mutations: { method: 'POST', url: '/x', headers: { a: 1 } } }, 'InvalidTransaction'],
  ];
}

export function badOptions(name) {
  const h = handlers();
  return [
    ['unknown option', { name, handlers: h, maxConcurency: 2 }],
    ['no name', { handlers: h }],
    ['handler not a function', { name, handlers: { a: 1 } }],
    ['maxConcurrency 0', { name, handlers: h, maxConcurrency: 0 }],
    ['maxConcurrency fraction', { name, handlers: h, maxConcurrency: 1.5 }],
    ['bad ordering', { name, handlers: h, ordering: 'lifo' }],
    ['bad jitter', { name, handlers: h, retry: { jitter: 'some' } }],
    ['unknown retry option', { name, handlers: h, retry: { base: 1 } }],
    ['max below base', { name, handlers: h, retry: { baseDelayMs: 10, maxDelayMs: 5 } }],
    ['bad leaderElection', { name, handlers: h, leaderElection: 'raft' }],
    ['not an object', 'outbox'],
  ];
}

/** Bumps the leader epoch behind the outbox's back, as a new leader elsewhere would. */
export async function bumpEpochRaw(outboxName) {
  const db = await openRaw(`offline-outbox:${outboxName}`);
  try {
    const t = db.transaction('meta', 'readwrite');
    const store = t.objectStore('meta');
    const req = store.get('epoch');
    req.onsuccess = () => store.put((req.result ?? 0) + 1, 'epoch');
    await new Promise((resolve, reject) => { t.oncomplete = resolve; t.onerror = () => reject(t.error); });
  } finally { db.close(); }
}

/** Types of the `leader` events with their flag, e.g. "leader:false". */
export function leaderEvents(events) {
  return events.filter((e) => e.type === 'leader').map((e) => `leader:${e.isLeader}`);
}
