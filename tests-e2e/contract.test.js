// The JS contract of DESIGN.md, end to end: pkg/ as built, loaded in a real page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite } from './harness.js';

let srv, browser, context, page;

before(async () => ({ srv, browser, context, page } = await startSuite({ page: true })));
after(() => stopSuite({ srv, browser }));

test('exports: init, Outbox, NonRetriableError, OutboxError', async () => {
  const r = await page.evaluate(() => {
    const { Outbox, NonRetriableError, OutboxError } = window.lib;
    const e = new OutboxError('Closed', 'x');
    const n = new NonRetriableError('y');
    return {
      open: typeof Outbox.open,
      outboxError: [e instanceof Error, e.name, e.constructor.name, e.code, e.message],
      nonRetriable: [n instanceof Error, n.name, n.constructor.name, n.message],
      init: typeof window.lib.default,
    };
  });
  assert.deepEqual(r, {
    open: 'function',
    outboxError: [true, 'OutboxError', 'OutboxError', 'Closed', 'x'],
    nonRetriable: [true, 'NonRetriableError', 'NonRetriableError', 'y'],
    init: 'function',
  });
});

test('a full life cycle through the public API', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError, OutboxError } = window.lib;
    let fail = true;
    const seen = [];
    const ob = await Outbox.open({
      name: 'contract-life',
      handlers: {
        save: async (ctx) => { seen.push([ctx.mutations.n, ctx.attempt, ctx.idempotencyKey, ctx.signal instanceof AbortSignal]); },
        refuse: async () => { if (fail) throw new NonRetriableError('no'); },
        hang: () => new Promise(() => {}),
      },
      maxConcurrency: 2,
      retry: { baseDelayMs: 5, maxDelayMs: 20, jitter: 'equal' },
    });
    const events = [];
    const unsubscribe = ob.subscribe((e) => events.push(e.type));
    const a = await ob.enqueue({ handler: 'save', keys: ['k'], mutations: { n: 1 }, idempotencyKey: 'idem-1', metadata: { by: 'me' } });
    const b = await ob.enqueue({ handler: 'refuse', keys: ['k'], mutations: { n: 2 }, priority: 'high' });
    await ob.settled(a.id);
    let dead;
    try { await ob.settled(b.id); } catch (e) { dead = [e instanceof OutboxError, e.code]; }
    const letters = await ob.deadLetters();
    fail = false;
    await ob.retryDead(b.id);
    await ob.settled(b.id);
    const report = await ob.drain({ budgetMs: 1000 });
    const stats = await ob.stats();
    unsubscribe();
    await ob.enqueue({ handler: 'save', keys: [], mutations: { n: 3 } });
    const eventsAfterUnsubscribe = events.length;
    await ob.drain();
    const head = await ob.enqueue({ handler: 'hang', keys: ['x'], mutations: { n: 4 } });
    const c = await ob.enqueue({ handler: 'save', keys: ['x'], mutations: { n: 5 } });
    const removed = await ob.remove(c.id).then(() => 'removed', (e) => e.code);
    const inFlight = await ob.remove(head.id).then(() => 'removed', (e) => e.code);
    const peek = (await ob.peek()).map((t) => [t.id === head.id, t.status]);
    await ob.close();
    let closed;
    try { await ob.enqueue({ handler: 'save', keys: [], mutations: 1 }); } catch (e) { closed = e.code; }
    return {
      a: [a.seq > 0, a.status, a.idempotencyKey, a.metadata.by, a.priority, b.priority],
      seen: seen.map((s) => [s[0], s[2] === 'idem-1' || s[0] !== 1, s[3]]),
      dead, letters: letters.map((l) => [l.id === b.id, l.status, l.deadReason, l.lastError.name]),
      report: [report.complete, report.remaining],
      stats: [stats.pending, stats.inFlight, stats.dead, stats.isLeader],
      events: events.slice(0, eventsAfterUnsubscribe),
      grew: events.length === eventsAfterUnsubscribe,
      removed, inFlight, peek, closed, name: ob.name,
    };
  });
  assert.deepEqual(r.a, [true, 'pending', 'idem-1', 'me', 'normal', 'high']);
  assert.deepEqual(r.seen, [[1, true, true], [3, true, true]]);
  assert.deepEqual(r.dead, [true, 'Dead']);
  assert.deepEqual(r.letters, [[true, 'dead', 'handler-rejected', 'NonRetriableError']]);
  assert.deepEqual(r.report, [true, 0]);
  assert.deepEqual(r.stats, [0, 0, 0, true]);
  for (const t of ['enqueued', 'sending', 'sent', 'dead', 'drained']) assert.ok(r.events.includes(t), `${t} in ${r.events}`);
  assert.equal(r.grew, true, 'no events after unsubscribe');
  assert.equal(r.removed, 'removed');
  assert.equal(r.inFlight, 'InFlight');
  assert.deepEqual(r.peek, [[true, 'in-flight']]);
  assert.equal(r.closed, 'Closed');
  assert.equal(r.name, 'contract-life');
});

test('listeners: in subscription order, each subscription on its own, a throwing one stops nothing', async () => {
  const r = await page.evaluate(async () => {
    const ob = await window.lib.Outbox.open({ name: 'contract-listeners', handlers: { hang: () => new Promise(() => {}) } });
    const seen = [];
    const f = (e) => { if (e.type === 'enqueued') seen.push('f'); };
    const unsubscribeFirst = ob.subscribe(f);
    const unsubscribeSecond = ob.subscribe(f);
    ob.subscribe(() => { throw new Error('a listener fails'); });
    ob.subscribe((e) => { if (e.type === 'enqueued') { seen.push('g'); unsubscribeSecond(); } });
    const tx = { handler: 'hang', keys: ['k'], mutations: 1 };
    await ob.enqueue(tx);
    await ob.enqueue(tx);
    unsubscribeFirst();
    await ob.enqueue(tx);
    let bad;
    try { ob.subscribe(42); } catch (e) { bad = e.code; }
    await ob.close();
    return { seen, bad };
  });
  assert.deepEqual(r.seen, ['f', 'f', 'g', 'f', 'g', 'g']);
  assert.equal(r.bad, 'InvalidOptions');
});

test('transaction ids are distinct version 4 UUIDs, also past a refill of the random pool', async () => {
  const ids = await page.evaluate(async () => {
    const ob = await window.lib.Outbox.open({ name: 'contract-ids', handlers: { hang: () => new Promise(() => {}) } });
    const infos = await Promise.all(Array.from({ length: 70 }, (_, i) => ob.enqueue({ handler: 'hang', keys: [`k${i}`], mutations: i })));
    await ob.close();
    return infos.map((t) => t.id);
  });
  assert.equal(new Set(ids).size, 70);
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('settled() of a transaction this context never held answers from the store', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const name = 'contract-settled-store';
    const handlers = {
      ok: async () => {},
      bad: async () => { throw new NonRetriableError('refused'); },
      hang: () => new Promise(() => {}),
    };
    const a = await Outbox.open({ name, handlers });
    const acked = await a.enqueue({ handler: 'ok', keys: ['a'], mutations: 1 });
    const dead = await a.enqueue({ handler: 'bad', keys: ['d'], mutations: 2 });
    await a.enqueue({ handler: 'hang', keys: ['k'], mutations: 3 });
    const removed = await a.enqueue({ handler: 'hang', keys: ['k'], mutations: 4 });
    const pending = await a.enqueue({ handler: 'hang', keys: ['k'], mutations: 5 });
    await a.settled(acked.id);
    await a.settled(dead.id).catch(() => {});
    await a.remove(removed.id);
    await a.close();
    // b leads and loads what is pending; c follows and holds nothing in memory.
    const b = await Outbox.open({ name, handlers, leaderElection: 'web-locks' });
    const c = await Outbox.open({ name, handlers, leaderElection: 'web-locks' });
    const outcome = (p) => Promise.race([
      p.then((t) => ['fulfilled', t], (e) => ['rejected', e instanceof window.lib.OutboxError, e.code, e.message]),
      new Promise((res) => setTimeout(() => res(['waiting']), 300)),
    ]);
    const out = {
      leader: [b.isLeader, c.isLeader],
      acked: await outcome(b.settled(acked.id)),
      dead: await outcome(b.settled(dead.id)),
      removed: await outcome(b.settled(removed.id)),
      pending: await outcome(c.settled(pending.id)),
      ids: { acked: acked.id, dead: dead.id, removed: removed.id },
    };
    await c.close();
    await b.close();
    return out;
  });
  assert.deepEqual(r.leader, [true, false]);
  assert.deepEqual(r.acked, ['fulfilled', { id: r.ids.acked, status: 'acknowledged' }]);
  assert.deepEqual(r.dead, ['rejected', true, 'Dead', `transaction ${r.ids.dead} is dead: refused`]);
  assert.deepEqual(r.removed, ['rejected', true, 'Removed', `transaction "${r.ids.removed}" was removed`]);
  assert.deepEqual(r.pending, ['waiting']);
});

test('built-in http handler replays with fetch and an Idempotency-Key', async () => {
  srv.api.reset();
  srv.api.script = [{ status: 503, headers: { 'Retry-After': '0' } }, { status: 200 }, { status: 404, body: 'no such thing' }];
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'contract-http', handlers: {}, retry: { baseDelayMs: 5 } });
    const t1 = await ob.enqueue({ handler: 'http', keys: ['h'], mutations: { method: 'POST', url: '/api/mutate', headers: { 'content-type': 'application/json' }, body: '{"n":1}' } });
    await ob.settled(t1.id);
    const t2 = await ob.enqueue({ handler: 'http', keys: ['h'], mutations: { method: 'PUT', url: '/api/mutate', body: new Uint8Array([104, 105]) } });
    const dead = await ob.settled(t2.id).then(() => 'acknowledged', (e) => e.code);
    const [letter] = await ob.deadLetters();
    await ob.close();
    return { t1: t1.idempotencyKey, t2: t2.idempotencyKey, dead, error: letter.lastError };
  });
  const got = srv.api.received.map((x) => [x.method, x.key, x.body]);
  assert.deepEqual(got, [['POST', r.t1, '{"n":1}'], ['POST', r.t1, '{"n":1}'], ['PUT', r.t2, 'hi']]);
  assert.equal(srv.api.received[0].headers['content-type'], 'application/json');
  assert.equal(r.dead, 'Dead');
  assert.equal(r.error.name, 'HttpError');
  assert.match(r.error.message, /^HTTP 404 .*no such thing/);
});

test('typed errors for bad input and bad options', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const codes = [];
    const grab = async (p) => { try { await p; codes.push('resolved'); } catch (e) { codes.push(`${e.name}:${e.code}`); } };
    await grab(Outbox.open({ name: 'x', handlers: {}, maxConcurency: 1 }));
    const ob = await Outbox.open({ name: 'contract-bad', handlers: { ok: async () => {} } });
    await grab(ob.enqueue({ handler: 'missing', keys: [], mutations: 1 }));
    await grab(ob.enqueue({ handler: 'ok', keys: [1], mutations: 1 }));
    await grab(ob.enqueue({ handler: 'ok', keys: [], mutations: { f: () => 1 } }));
    await grab(ob.settled(42));
    // Values whose reading throws (a Proxy's traps) are bad input like any other.
    const trap = (target) => new Proxy(target, { get() { throw new Error('trap'); }, ownKeys() { throw new Error('trap'); } });
    await grab(ob.enqueue({ handler: 'ok', keys: trap(['a']), mutations: 1 }));
    await grab(Outbox.open(trap({ name: 'x' })));
    await grab(Outbox.open({ name: 'x', handlers: trap({}) }));
    await grab(ob.enqueue({ handler: 'http', keys: [], mutations: trap({}) }));
    await grab(ob.enqueue({ handler: 'ok', keys: [], mutations: trap({}) }));
    await grab(ob.enqueue({ handler: 'ok', keys: [], mutations: 1, metadata: Object.defineProperty({}, 'x', { enumerable: true, get() { throw new Error('getter'); } }) }));
    await grab(ob.drain(trap({})));
    await grab(ob.import({ format: 'offline-outbox-backup', version: 1, name: 'x', exportedAt: 1, pending: trap([]), dead: [] }));
    const stats = await ob.stats();
    await ob.close();
    return { codes, pending: stats.pending };
  });
  assert.deepEqual(r.codes, [
    'OutboxError:InvalidOptions', 'OutboxError:UnknownHandler', 'OutboxError:InvalidTransaction',
    'OutboxError:NotSerializable', 'OutboxError:InvalidTransaction',
    'OutboxError:InvalidTransaction', 'OutboxError:InvalidOptions', 'OutboxError:InvalidOptions',
    'OutboxError:InvalidTransaction', 'OutboxError:NotSerializable', 'OutboxError:NotSerializable',
    'OutboxError:InvalidOptions', 'OutboxError:InvalidBackup',
  ]);
  assert.equal(r.pending, 0);
});
