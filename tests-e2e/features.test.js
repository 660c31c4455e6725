// Issue 5's features through the JS API of pkg/ as built, in a real page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite, openApp } from './harness.js';

let srv, browser, context, page;

before(async () => ({ srv, browser, context, page } = await startSuite({ page: true })));
after(() => stopSuite({ srv, browser }));

test('priorities: high before normal before low, never reordering a shared key', async () => {
  const order = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const order = [];
    let open;
    const gate = new Promise((r) => { open = r; });
    const ob = await Outbox.open({
      name: 'features-priority', maxConcurrency: 1,
      handlers: {
        gate: () => gate,
        log: async (ctx) => { order.push(ctx.mutations); },
      },
    });
    await ob.enqueue({ handler: 'gate', keys: ['g'], mutations: 0 });
    for (const [m, keys, priority] of [
      ['low-a', ['a'], 'low'], ['normal-b', ['b'], 'normal'], ['high-c', ['c'], 'high'],
      ['low-s', ['s'], 'low'], ['high-s', ['s'], 'high'],
    ]) await ob.enqueue({ handler: 'log', keys, mutations: m, priority });
    open();
    await ob.drain();
    await ob.close();
    return order;
  });
  // high-s shares key 's' with the earlier low-s, so it waits for it.
  assert.deepEqual(order, ['high-c', 'normal-b', 'low-a', 'low-s', 'high-s']);
});

test('send status: peek, events and stats show sending, retrying with its time and error, dead', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    let release;
    const held = new Promise((r) => { release = r; });
    const events = [];
    const ob = await Outbox.open({
      name: 'features-status',
      retry: { baseDelayMs: 60000, maxDelayMs: 60000, jitter: 'none' },
      handlers: {
        flaky: async () => { const e = new Error('server said 503'); e.name = 'HttpError'; throw e; },
        slow: () => held,
        bad: async () => { throw new NonRetriableError('422 invalid'); },
      },
    });
    ob.subscribe((e) => events.push(e));
    const f = await ob.enqueue({ handler: 'flaky', keys: ['f'], mutations: 1 });
    const s = await ob.enqueue({ handler: 'slow', keys: ['s'], mutations: 2 });
    const b = await ob.enqueue({ handler: 'bad', keys: ['b'], mutations: 3 });
    const waitFor = async (pred) => { for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10)); };
    await waitFor(() => events.some((e) => e.type === 'retry') && events.some((e) => e.type === 'dead'));
    const before = Date.now();
    const peek = Object.fromEntries((await ob.peek()).map((t) => [t.id, t]));
    const stats = await ob.stats();
    const dead = await ob.deadLetters();
    release();
    await ob.settled(s.id);
    await ob.close();
    const pf = peek[f.id];
    const retry = events.find((e) => e.type === 'retry' && e.id === f.id);
    const deadEv = events.find((e) => e.type === 'dead');
    return {
      flaky: [pf.status, pf.attempts, pf.lastError.name, pf.lastError.message, pf.nextAttemptAt - before > 50000],
      slow: peek[s.id].status,
      inPeek: b.id in peek,
      stats: [stats.pending, stats.retrying, stats.inFlight, stats.dead],
      retry: [retry.attempt, retry.nextAttemptAt === pf.nextAttemptAt, retry.error.message],
      sending: events.filter((e) => e.type === 'sending').map((e) => [e.id === f.id || e.id === s.id || e.id === b.id, e.attempt]),
      dead: [deadEv.id === b.id, deadEv.reason, deadEv.error.message, dead[0].status, dead[0].attempts, dead[0].deadReason, dead[0].lastError.message],
    };
  });
  assert.deepEqual(r.flaky, ['pending', 1, 'HttpError', 'server said 503', true]);
  assert.equal(r.slow, 'in-flight');
  assert.equal(r.inPeek, false);
  assert.deepEqual(r.stats, [1, 1, 1, 1]);
  assert.deepEqual(r.retry, [1, true, 'server said 503']);
  assert.deepEqual(r.sending, [[true, 1], [true, 1], [true, 1]]);
  assert.deepEqual(r.dead, [true, 'handler-rejected', '422 invalid', 'dead', 1, 'handler-rejected', '422 invalid']);
});

// One scenario under both policies: 'x1' dies; 'x2' (same key) and 'y' (other key) follow.
async function deadLetterScenario(policy) {
  return page.evaluate(async (policy) => {
    const { Outbox, NonRetriableError } = window.lib;
    const sent = [];
    let refuse = true;
    const opts = {
      name: `features-dead-${policy}`,
      handlers: {
        send: async (ctx) => {
          if (ctx.mutations === 'x1' && refuse) throw new NonRetriableError('rejected');
          sent.push(ctx.mutations);
        },
      },
      ...(policy ? { deadLetterPolicy: policy } : {}),
    };
    let ob = await Outbox.open(opts);
    const x1 = await ob.enqueue({ handler: 'send', keys: ['x'], mutations: 'x1' });
    const x2 = await ob.enqueue({ handler: 'send', keys: ['x'], mutations: 'x2' });
    await ob.enqueue({ handler: 'send', keys: ['y'], mutations: 'y' });
    await ob.drain();
    const afterDeath = [...sent];
    const waiting = (await ob.peek()).map((t) => t.mutations);
    // The hold survives a reopen (a new leader reads it from the dead letters).
    await ob.close();
    ob = await Outbox.open(opts);
    await ob.drain();
    const afterReopen = [...sent];
    refuse = false;
    await ob.retryDead(x1.id);
    await ob.settled(x2.id);
    const afterRetry = [...sent];
    // discardDead releases the key as well.
    refuse = true;
    const x3 = await ob.enqueue({ handler: 'send', keys: ['x'], mutations: 'x1' });
    const x4 = await ob.enqueue({ handler: 'send', keys: ['x'], mutations: 'x4' });
    await ob.drain();
    const beforeDiscard = [...sent];
    await ob.discardDead(x3.id);
    await ob.settled(x4.id);
    const end = [...sent];
    await ob.close();
    return { afterDeath, waiting, afterReopen, afterRetry, beforeDiscard, end };
  }, policy);
}

test('lastError keeps what a handler threw: an error\'s message, an object as JSON, other values as text, at most 1,000 characters of it', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'features-last-error';
    // A whole error page thrown as the message: 2 MB, not ASCII at the cut.
    const huge = 'é'.repeat(600) + 'x'.repeat(2_000_000);
    const thrown = {
      error: new TypeError('plain'),
      huge: new Error(huge),
      object: { code: 42, why: 'quota' },
      string: 'just text',
      number: 7,
      nothing: undefined,
      unprintable: { toJSON() { throw new Error('no'); } },
    };
    const handlers = { h: (ctx) => { throw thrown[ctx.mutations]; } };
    let ob = await Outbox.open({ name, handlers, retry: { maxAttempts: 1 } });
    const lengths = [];
    ob.subscribe((e) => { if (e.type === 'dead') lengths.push(e.error.message.length); });
    const ids = [];
    for (const k of Object.keys(thrown)) ids.push((await ob.enqueue({ handler: 'h', keys: [k], mutations: k })).id);
    await Promise.all(ids.map((id) => ob.settled(id).catch(() => {})));
    // The long one as whether it is the first 1,000 chars, or else its length.
    const cut = huge.slice(0, 1000);
    const read = async () => Object.fromEntries((await ob.deadLetters()).map(({ mutations: k, lastError: e }) => [k,
      k === 'huge' ? { ...e, message: e.message === cut || e.message.length } : e]));
    const live = await read();
    await ob.close();
    ob = await Outbox.open({ name, handlers });
    const stored = await read();
    await ob.close();
    return { live, stored, lengths };
  });
  const expected = {
    error: { name: 'TypeError', message: 'plain' },
    huge: { name: 'Error', message: true },
    object: { name: 'Error', message: '{"code":42,"why":"quota"}' },
    string: { name: 'Error', message: 'just text' },
    number: { name: 'Error', message: '7' },
    nothing: { name: 'Error', message: 'undefined' },
    unprintable: { name: 'Error', message: '' },
  };
  assert.deepEqual(r.live, expected);
  assert.deepEqual(r.stored, expected, 'as stored, after a reopen');
  assert.equal(r.lengths.length, 7);
  assert.equal(Math.max(...r.lengths), 1000, 'the dead event carries the cut message too');
});

test("dead letters, policy 'skip' (default): later transactions on the key go on", async () => {
  const r = await deadLetterScenario(undefined);
  assert.deepEqual(r.afterDeath, ['x2', 'y']);
  assert.deepEqual(r.waiting, []);
  assert.deepEqual(r.afterRetry, ['x2', 'y', 'x1']);
  assert.deepEqual(r.end, ['x2', 'y', 'x1', 'x4']);
});

test("dead letters, policy 'block': the key waits until retryDead or discardDead, across reopen", async () => {
  const r = await deadLetterScenario('block');
  assert.deepEqual(r.afterDeath, ['y']);
  assert.deepEqual(r.waiting, ['x2']);
  assert.deepEqual(r.afterReopen, ['y']);
  assert.deepEqual(r.afterRetry, ['y', 'x1', 'x2']);
  assert.deepEqual(r.beforeDiscard, ['y', 'x1', 'x2']);
  assert.deepEqual(r.end, ['y', 'x1', 'x2', 'x4']);
});

test('metrics and progress: depth, bytes, oldest age, success rate, latency percentiles, done/total', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const events = [];
    let gate;
    const gated = new Promise((r) => { gate = r; });
    const failedOnce = new Set();
    const ob = await Outbox.open({
      name: 'features-metrics', maxConcurrency: 4,
      retry: { baseDelayMs: 1, maxDelayMs: 1, jitter: 'none' },
      handlers: {
        gate: () => gated,
        work: async (ctx) => {
          await new Promise((r) => setTimeout(r, 10 + (ctx.mutations.n % 3) * 10));
          if (ctx.mutations.n % 5 === 0 && !failedOnce.has(ctx.id)) { failedOnce.add(ctx.id); throw new Error('once'); }
        },
      },
    });
    ob.subscribe((e) => { if (e.type === 'progress' || e.type === 'drained') events.push(e); });
    await ob.enqueue({ handler: 'gate', keys: [], mutations: null });
    for (let n = 1; n <= 20; n++) {
      await ob.enqueue({ handler: 'work', keys: [`k${n % 4}`], mutations: { n, text: 'x'.repeat(1000) } });
    }
    await new Promise((r) => setTimeout(r, 30));
    const queued = await ob.stats();
    gate();
    await ob.drain();
    const end = await ob.stats();
    await ob.close();
    return { queued, end, events };
  });
  assert.equal(r.queued.pending, 20);
  assert.ok(r.queued.bytes >= 20 * 1000 && r.queued.bytes < 20 * 1200, `bytes ${r.queued.bytes}`);
  assert.ok(r.queued.oldestAgeMs >= 30, `oldestAgeMs ${r.queued.oldestAgeMs}`);
  assert.equal(r.queued.inFlight, 1);
  assert.deepEqual([r.end.pending, r.end.bytes, r.end.oldestAgeMs], [0, 0, null]);
  // 21 acknowledged attempts (the gate and 20), 4 failed ones (n = 5, 10, 15, 20).
  assert.equal(r.end.successRate, 21 / 25);
  const { p50, p90, p99 } = r.end.attemptLatencyMs;
  assert.ok(p50 >= 10 && p50 <= p90 && p90 <= p99 && p99 >= 30, JSON.stringify(r.end.attemptLatencyMs));
  const progress = r.events.filter((e) => e.type === 'progress');
  assert.equal(progress.length, 21);
  assert.deepEqual(progress.map((e) => e.done), Array.from({ length: 21 }, (_, i) => i + 1));
  assert.deepEqual(progress.at(-1), { type: 'progress', done: 21, total: 21 });
  assert.ok(progress.every((e) => e.total === 21), JSON.stringify(progress.map((e) => e.total)));
  assert.equal(r.events.at(-1).type, 'drained');
});

test('batch handlers: up to batchSize runnable transactions per call, per-transaction outcomes, fail all', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const batches = [];
    let active = 0, maxActive = 0, gate;
    const gated = new Promise((r) => { gate = r; });
    const ob = await Outbox.open({
      name: 'features-batch', maxConcurrency: 1,
      retry: { baseDelayMs: 1, maxDelayMs: 1, jitter: 'none' },
      handlers: {
        gate: () => gated,
        save: {
          batchSize: 3,
          sendBatch: async (batch) => {
            active++; maxActive = Math.max(maxActive, active);
            batches.push(batch.map((c) => `${c.mutations}#${c.attempt}`));
            await new Promise((r) => setTimeout(r, 5));
            active--;
            if (batch.some((c) => c.mutations === 'e' && c.attempt === 1)) throw new Error('server down');
            return batch.map((c) => {
              if (c.mutations === 'b' && c.attempt === 1) return Object.assign(new Error('later'), { retryAfterMs: 1 });
              if (c.mutations === 'c') return new NonRetriableError('invalid');
              return undefined;
            });
          },
        },
      },
    });
    await ob.enqueue({ handler: 'gate', keys: [], mutations: null });
    const ids = {};
    for (const [m, k] of [['a1', 'a'], ['a2', 'a'], ['b', 'b'], ['c', 'c'], ['d', 'd'], ['e', 'e'], ['f', 'f']]) {
      ids[m] = (await ob.enqueue({ handler: 'save', keys: [k], mutations: m })).id;
    }
    gate();
    await ob.drain();
    for (let i = 0; i < 100 && (await ob.stats()).pending > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      await ob.drain();
    }
    const dead = (await ob.deadLetters()).map((t) => [t.mutations, t.deadReason, t.lastError.message]);
    const settled = await Promise.all(['a1', 'a2', 'b', 'd', 'e', 'f'].map((m) => ob.settled(ids[m]).then((t) => t.status)));
    // Batch size 1 still passes an array.
    const single = await Outbox.open({
      name: 'features-batch-1',
      handlers: { one: { batchSize: 1, sendBatch: async (b) => { batches.push(['single', b.length]); } } },
    });
    await single.settled((await single.enqueue({ handler: 'one', keys: ['x'], mutations: 1 })).id);
    await single.close();
    const bad = await Outbox.open({ name: 'x', handlers: { h: { sendBatch: () => {}, batchSize: 0 } } }).then(() => 'opened', (e) => e.code);
    const unknown = await Outbox.open({ name: 'x', handlers: { h: { transmit: () => {} } } }).then(() => 'opened', (e) => e.code);
    await ob.close();
    return { batches, maxActive, dead, settled, bad, unknown };
  });
  assert.deepEqual(r.batches[0], ['a1#1', 'b#1', 'c#1']);
  assert.equal(r.maxActive, 1);
  const main = r.batches.filter((b) => b[0] !== 'single');
  for (const b of main) {
    assert.ok(b.length >= 1 && b.length <= 3, JSON.stringify(b));
    assert.ok(!(b.some((x) => x.startsWith('a1')) && b.some((x) => x.startsWith('a2'))), 'a1 and a2 share a key');
  }
  const flat = main.flat();
  assert.ok(flat.indexOf('a2#1') > flat.indexOf('a1#1'));
  assert.ok(flat.includes('b#2'), 'b retried after its own error');
  const eBatch = main.find((b) => b.includes('e#1'));
  for (const x of eBatch) assert.ok(flat.includes(x.replace('#1', '#2')), `${x} retried with its batch`);
  assert.deepEqual(r.dead, [['c', 'handler-rejected', 'invalid']]);
  assert.deepEqual(r.settled, Array(6).fill('acknowledged'));
  assert.deepEqual(r.batches.find((b) => b[0] === 'single'), ['single', 1]);
  assert.equal(r.bad, 'InvalidOptions');
  assert.equal(r.unknown, 'InvalidOptions');
});

test("network policy 'wifi-preferred': low priority waits on a slow link until it is fast, drain(), maxHoldMs or maxHoldBytes", async () => {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const slow = () => cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 2000, downloadThroughput: 4000, uploadThroughput: 4000 });
  const fast = () => cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.evaluate(async () => {
    const { Outbox } = window.lib;
    window.netSent = [];
    const handlers = { send: async (ctx) => { window.netSent.push(ctx.mutations.m); } };
    window.netOb = await Outbox.open({ name: 'features-net', handlers, network: { policy: 'wifi-preferred' } });
    window.netShort = await Outbox.open({ name: 'features-net-short', handlers, network: { policy: 'wifi-preferred', maxHoldMs: 300 } });
    window.netSmall = await Outbox.open({ name: 'features-net-small', handlers, network: { policy: 'wifi-preferred', maxHoldBytes: 500 } });
  });
  try {
    await slow();
    assert.equal(await page.evaluate(() => navigator.connection.effectiveType), '2g');
    const held = await page.evaluate(async () => {
      const ob = window.netOb;
      await ob.enqueue({ handler: 'send', keys: ['l'], mutations: { m: 'low-1' }, priority: 'low' });
      const n = await ob.enqueue({ handler: 'send', keys: ['n'], mutations: { m: 'normal' } });
      await ob.settled(n.id);
      await new Promise((r) => setTimeout(r, 300));
      return { sent: [...window.netSent], held: (await ob.stats()).held };
    });
    assert.deepEqual(held, { sent: ['normal'], held: 1 });
    await fast();
    await page.waitForFunction(() => window.netSent.includes('low-1'), null, { timeout: 5000 });
    await slow();
    const drained = await page.evaluate(async () => {
      const ob = window.netOb;
      await ob.enqueue({ handler: 'send', keys: ['l'], mutations: { m: 'low-2' }, priority: 'low' });
      await new Promise((r) => setTimeout(r, 200));
      const before = window.netSent.includes('low-2');
      const report = await ob.drain();
      return { before, after: window.netSent.includes('low-2'), sent: report.sent };
    });
    assert.deepEqual(drained, { before: false, after: true, sent: 1 });
    const limits = await page.evaluate(async () => {
      const t0 = Date.now();
      const a = await window.netShort.enqueue({ handler: 'send', keys: ['s'], mutations: { m: 'short' }, priority: 'low' });
      await window.netShort.settled(a.id);
      const waited = Date.now() - t0;
      const b = await window.netSmall.enqueue({ handler: 'send', keys: ['b'], mutations: { m: 'big', pad: 'x'.repeat(1000) }, priority: 'low' });
      await window.netSmall.settled(b.id);
      return { waited, sent: window.netSent.slice(-2) };
    });
    assert.ok(limits.waited >= 280 && limits.waited < 3000, `held ${limits.waited} ms`);
    assert.deepEqual(limits.sent, ['short', 'big']);
  } finally {
    await fast();
    await page.evaluate(() => Promise.all([window.netOb.close(), window.netShort.close(), window.netSmall.close()]));
  }
});

test('coalescing: a pending transaction takes the newer mutations (or merges) in place; in-flight ones are never touched', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const sent = [];
    const events = [];
    const gates = [];
    const hold = () => new Promise((r) => gates.push(r));
    const handlers = (hang) => ({
      put: async (ctx) => { if (hang && ctx.mutations.v === 'a') await hold(); sent.push(['put', { ...ctx.mutations, key: ctx.idempotencyKey }]); },
      patch: { send: async (ctx) => { sent.push(['patch', ctx.mutations]); }, merge: (older, newer) => ({ ...older, ...newer }) },
    });
    let ob = await Outbox.open({ name: 'features-coalesce', handlers: handlers(true) });
    ob.subscribe((e) => { if (e.type === 'coalesced') events.push(e); });
    const q = (t) => ob.enqueue({ keys: ['doc'], ...t });
    const a = await q({ handler: 'put', mutations: { v: 'a' }, coalesceKey: 'title' });
    while (!gates.length) await new Promise((r) => setTimeout(r, 5));
    const b = await q({ handler: 'put', mutations: { v: 'b' }, coalesceKey: 'title' });
    const e = await q({ handler: 'put', mutations: { v: 'e' } });
    const c = await q({ handler: 'put', mutations: { v: 'c' }, coalesceKey: 'title' });
    const d = await q({ handler: 'put', mutations: { v: 'd' }, coalesceKey: 'title', metadata: { last: true } });
    const other = await ob.enqueue({ handler: 'put', keys: ['elsewhere'], mutations: { v: 'x' }, coalesceKey: 'title' });
    // Same coalesce key on other keys: not folded, so it ran on its own.
    await ob.settled(other.id);
    await new Promise((r) => setTimeout(r, 50));
    const peek = (await ob.peek()).map((t) => [t.id, t.status, t.mutations.v, t.metadata, t.coalesceKey]);
    // Folded records survive a reopen: the new instance still knows c and d settle with b.
    await ob.close();
    ob = await Outbox.open({ name: 'features-coalesce', handlers: handlers(false) });
    const settled = await Promise.all([a, b, c, d, e, other].map((t) => ob.settled(t.id).then((i) => i.status)));
    // Enqueued in one task: the second folds into the first before it can start.
    const [p1, p2] = await Promise.all([
      ob.enqueue({ handler: 'patch', keys: ['p'], mutations: { title: 'T' }, coalesceKey: 'p' }),
      ob.enqueue({ handler: 'patch', keys: ['p'], mutations: { body: 'B' }, coalesceKey: 'p' }),
    ]);
    await ob.settled(p2.id);
    await ob.close();
    return {
      enqueued: [a, e].map((t) => t.coalesceKey),
      keys: { d: d.idempotencyKey, e: e.idempotencyKey },
      ids: { a: a.id, b: b.id, c: c.id, d: d.id, e: e.id, other: other.id, p1: p1.id, p2: p2.id },
      peek, settled, sent, events: events.map((x) => [x.id, x.into]),
    };
  });
  const { ids } = r;
  assert.deepEqual(r.peek, [
    [ids.a, 'in-flight', 'a', undefined, 'title'],
    [ids.b, 'pending', 'd', { last: true }, 'title'],
    [ids.e, 'pending', 'e', undefined, undefined],
  ]);
  assert.deepEqual(r.enqueued, ['title', undefined]);
  assert.deepEqual(r.events, [[ids.c, ids.b], [ids.d, ids.b]]);
  assert.deepEqual(r.settled, Array(6).fill('acknowledged'));
  // a was aborted by close: pending again in the new instance, so b (carrying d) folds into
  // it on load, and e keeps its place after them.
  const puts = r.sent.filter(([h]) => h === 'put').map(([, m]) => [m.v, m.key]);
  assert.deepEqual(puts.filter(([v]) => v !== 'x'), [['d', r.keys.d], ['e', r.keys.e]]);
  assert.ok(puts.some(([v]) => v === 'x'));
  assert.deepEqual(r.sent.filter(([h]) => h === 'patch').map(([, m]) => m), [{ title: 'T', body: 'B' }]);
});

test('coalescing: remove() of a folded id removes the transaction it settles with; every id settles as removed, nothing stays stored', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'features-coalesce-remove';
    const handlers = { h: (ctx) => (ctx.mutations === 'head' ? new Promise(() => {}) : undefined) };
    const outcome = (ob, id) => Promise.race([
      ob.settled(id).then(() => 'acknowledged', (e) => e.code),
      new Promise((r) => setTimeout(() => r('still waiting'), 1000)),
    ]);
    let ob = await Outbox.open({ name, handlers });
    await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'head' });
    const older = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'v1', coalesceKey: 'c' });
    const newer = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'v2', coalesceKey: 'c' });
    const removed = [];
    ob.subscribe((e) => { if (e.type === 'removed') removed.push(e.id); });
    // Before the fold is known to the caller, and after a reopen (ids read from the store).
    while ((await ob.peek()).length !== 2) await new Promise((r) => setTimeout(r, 5));
    const waiting = [outcome(ob, older.id), outcome(ob, newer.id)];
    await ob.remove(newer.id);
    const live = await Promise.all(waiting);
    const peek = (await ob.peek()).map((t) => t.mutations);
    await ob.close();
    ob = await Outbox.open({ name, handlers });
    const reopened = await Promise.all([outcome(ob, older.id), outcome(ob, newer.id)]);
    const a = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'w1', coalesceKey: 'd' });
    const b = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'w2', coalesceKey: 'd' });
    while ((await ob.peek()).length !== 2) await new Promise((r) => setTimeout(r, 5));
    await ob.close();
    ob = await Outbox.open({ name, handlers });
    const folded = outcome(ob, a.id);
    await ob.remove(b.id);
    const afterReopen = [(await ob.peek()).map((t) => t.mutations), await folded];
    await ob.close();
    const db = await new Promise((res) => { const q = indexedDB.open(`offline-outbox:${name}`); q.onsuccess = () => res(q.result); });
    const payloads = await new Promise((res) => { const q = db.transaction('payloads').objectStore('payloads').count(); q.onsuccess = () => res(q.result); });
    db.close();
    return { live, peek, removed: removed.sort(), ids: [older.id, newer.id].sort(), reopened, afterReopen, payloads };
  });
  assert.deepEqual(r.live, ['Removed', 'Removed']);
  assert.deepEqual(r.peek, ['head']);
  assert.deepEqual(r.removed, r.ids);
  // A removed transaction leaves no record: after a reopen its ids settle at once (as
  // nothing pending or dead does) instead of waiting for good.
  // Both ids stay known as removed: after a reopen they still settle as Removed (never as
  // acknowledged, which would tell the app the server had them).
  assert.deepEqual(r.reopened, ['Removed', 'Removed']);
  assert.deepEqual(r.afterReopen, [['head'], 'Removed']);
  assert.equal(r.payloads, 1, 'only the head payload is stored');
});

test('a removed or discarded id settles as Removed after a reopen too; its mark goes after 30 days', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const name = 'features-removed-marks';
    const handlers = {
      h: (ctx) => {
        if (ctx.mutations === 'hold') return new Promise(() => {});
        if (ctx.mutations === 'bad') throw new NonRetriableError('422 invalid');
        return undefined;
      },
    };
    const outcome = (ob, id) => Promise.race([
      ob.settled(id).then(() => 'acknowledged', (e) => e.code),
      new Promise((r) => setTimeout(() => r('still waiting'), 1000)),
    ]);
    const aliases = async (write) => {
      const db = await new Promise((res) => { const q = indexedDB.open(`offline-outbox:${name}`); q.onsuccess = () => res(q.result); });
      const tx = db.transaction('aliases', write ? 'readwrite' : 'readonly');
      if (write) write(tx.objectStore('aliases'));
      const keys = tx.objectStore('aliases').getAllKeys();
      await new Promise((res) => { tx.oncomplete = res; });
      db.close();
      return keys.result;
    };
    let ob = await Outbox.open({ name, handlers });
    await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'hold' });
    const removed = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'removed' });
    const bad = await ob.enqueue({ handler: 'h', keys: ['b'], mutations: 'bad' });
    const sent = await ob.enqueue({ handler: 'h', keys: ['s'], mutations: 'sent' });
    const live = [await outcome(ob, sent.id), await outcome(ob, bad.id)];
    await ob.remove(removed.id);
    await ob.discardDead(bad.id);
    const discarded = await outcome(ob, bad.id);
    await ob.close();
    // Marks of ids removed 31 and 29 days ago, as that time's leader would have left them.
    const day = 24 * 60 * 60 * 1000;
    await aliases((store) => { store.put(Date.now() - 31 * day, 'old'); store.put(Date.now() - 29 * day, 'recent'); });
    // The held one goes out now, so the new leader goes idle, and prunes.
    ob = await Outbox.open({ name, handlers: { h: () => undefined } });
    const reopened = await Promise.all([removed.id, bad.id, sent.id, 'recent'].map((id) => outcome(ob, id)));
    let left = await aliases();
    for (let i = 0; i < 100 && left.includes('old'); i++) {
      await new Promise((res) => setTimeout(res, 50));
      left = await aliases();
    }
    const expired = await outcome(ob, 'old');
    await ob.close();
    return { live, discarded, reopened, expired, left: left.sort(), ids: [removed.id, bad.id, 'recent'].sort() };
  });
  assert.deepEqual(r.live, ['acknowledged', 'Dead']);
  assert.equal(r.discarded, 'Removed', 'a discarded dead letter settles as removed');
  assert.deepEqual(r.reopened, ['Removed', 'Removed', 'acknowledged', 'Removed']);
  assert.deepEqual(r.left, r.ids, 'the leader pruned the mark older than 30 days, and only it');
  // Known no more: as for an acknowledged transaction, nothing is stored.
  assert.equal(r.expired, 'acknowledged');
});

test('coalescing: close() while a fold is still to come resolves, and the fold happens after a reopen', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'features-coalesce-close';
    const sent = [];
    const handlers = { h: (ctx) => (ctx.mutations === 'head' ? new Promise(() => {}) : undefined) };
    let ob = await Outbox.open({ name, handlers });
    await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'head' });
    const older = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'v1', coalesceKey: 'c' });
    // Its write lands after close() has begun: the leader takes it in, to fold, while closing.
    const newer = ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'v2', coalesceKey: 'c' });
    const closed = await Promise.race([
      ob.close().then(() => 'closed'),
      new Promise((res) => setTimeout(() => res('close() still waiting'), 3000)),
    ]);
    if (closed !== 'closed') return { closed };
    const newerId = (await newer).id;
    ob = await Outbox.open({ name, handlers: { h: (ctx) => { sent.push(ctx.mutations); } } });
    const settled = await Promise.all([older.id, newerId].map((id) => ob.settled(id).then(() => 'acknowledged', (e) => e.code)));
    await ob.close();
    return { closed, settled, sent };
  });
  assert.equal(r.closed, 'closed');
  assert.deepEqual(r.settled, ['acknowledged', 'acknowledged']);
  assert.deepEqual(r.sent, ['head', 'v2'], 'the newer folded into the older: its mutations sent once');
});

test('coalescing: remove() while a newer transaction is being folded in removes both, and neither is sent', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'features-coalesce-remove-race';
    const sent = [];
    const outcome = (ob, id) => Promise.race([
      ob.settled(id).then(() => 'acknowledged', (e) => e.code),
      new Promise((res) => setTimeout(() => res('still waiting'), 2000)),
    ]);
    let ob = await Outbox.open({ name, handlers: { h: (ctx) => (ctx.mutations === 'head' ? new Promise(() => {}) : undefined) } });
    await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'head' });
    const older = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'v1', coalesceKey: 'c' });
    // The fold of this one into the older starts as its write commits; the removal comes
    // while the fold reads and writes.
    const newer = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'v2', coalesceKey: 'c' });
    const removed = await ob.remove(older.id).then(() => 'removed', (e) => e.code);
    const live = await Promise.all([older.id, newer.id].map((id) => outcome(ob, id)));
    await ob.close();
    ob = await Outbox.open({ name, handlers: { h: (ctx) => { sent.push(ctx.mutations); } } });
    const reopened = await Promise.all([older.id, newer.id].map((id) => outcome(ob, id)));
    await ob.drain();
    await ob.close();
    return { removed, live, reopened, sent };
  });
  assert.equal(r.removed, 'removed');
  assert.deepEqual(r.live, ['Removed', 'Removed']);
  assert.deepEqual(r.reopened, ['Removed', 'Removed']);
  assert.deepEqual(r.sent, ['head'], 'nothing of the removed transaction went out');
});

test('coalescing: a merge that throws leaves both transactions to run on their own, in order, and says so with an error event', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'features-coalesce-merge-throws';
    const sent = [];
    const errors = [];
    let release;
    const gate = new Promise((r) => { release = r; });
    const handlers = {
      hold: () => gate,
      patch: {
        send: (ctx) => { sent.push(ctx.mutations); },
        merge: (older, newer) => { if (newer.bad) throw new TypeError('cannot merge'); return { ...older, ...newer }; },
      },
    };
    let ob = await Outbox.open({ name, handlers });
    const watch = (o, who) => o.subscribe((e) => { if (e.type === 'error') errors.push([who, e.id, e.error.code, e.error.message, e.error instanceof window.lib.OutboxError]); });
    watch(ob, 'leader');
    // A follower hears the leader's error event through the channel, as the same error.
    const follower = await Outbox.open({ name, handlers });
    watch(follower, 'follower');
    // The key stays busy, so the patches wait, pending, behind the held one.
    await ob.enqueue({ handler: 'hold', keys: ['doc'], mutations: 0 });
    const a = await ob.enqueue({ handler: 'patch', keys: ['doc'], mutations: { title: 'T' }, coalesceKey: 'doc' });
    const b = await ob.enqueue({ handler: 'patch', keys: ['doc'], mutations: { bad: true }, coalesceKey: 'doc' });
    await new Promise((r) => setTimeout(r, 50));
    const before = (await ob.peek()).map((t) => [t.id, t.mutations]);
    await follower.close();
    // A new leader tries the fold again as it loads them, and fails the same way.
    await ob.close();
    ob = await Outbox.open({ name, handlers });
    watch(ob, 'leader');
    const settled = Promise.all([a, b].map((t) => ob.settled(t.id).then((i) => i.id)));
    release();
    const done = await settled;
    await ob.close();
    return { ids: [a.id, b.id], before, errors, sent, done };
  });
  const [a, b] = r.ids;
  assert.deepEqual(r.before.slice(1), [[a, { title: 'T' }], [b, { bad: true }]]);
  const error = [b, 'InvalidTransaction', 'merge threw TypeError: cannot merge', true];
  assert.deepEqual(r.errors.map(([who]) => who).sort(), ['follower', 'leader', 'leader'], JSON.stringify(r.errors));
  for (const [, ...e] of r.errors) assert.deepEqual(e, error);
  assert.deepEqual(r.sent, [{ title: 'T' }, { bad: true }], 'each on its own, in order');
  assert.deepEqual(r.done, [a, b]);
});

test('coalescing: retryDead() and discardDead() take an id folded into the dead letter too', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const sent = [];
    let refuse = true;
    let head;
    const ob = await Outbox.open({
      name: 'features-coalesce-dead',
      handlers: {
        h: async (ctx) => {
          if (ctx.mutations === 'head') return head;
          if (refuse) throw new NonRetriableError('refused');
          sent.push(ctx.mutations);
        },
      },
    });
    // Behind a head held on `key`, `newer` folds into `older`; then the head goes and the
    // folded transaction is refused. The folded id, and how it settled.
    const foldAndRefuse = async (key, older, newer) => {
      refuse = true;
      let release;
      head = new Promise((r) => { release = r; });
      await ob.enqueue({ handler: 'h', keys: [key], mutations: 'head' });
      await ob.enqueue({ handler: 'h', keys: [key], mutations: older, coalesceKey: key });
      const folded = await ob.enqueue({ handler: 'h', keys: [key], mutations: newer, coalesceKey: key });
      while ((await ob.peek()).length !== 2) await new Promise((r) => setTimeout(r, 5));
      release();
      return [folded, await ob.settled(folded.id).then(() => 'acknowledged', (e) => e.code)];
    };
    const [newer, died] = await foldAndRefuse('k', 'v1', 'v2');
    refuse = false;
    await ob.retryDead(newer.id);
    await ob.settled(newer.id);
    const dead = (await ob.deadLetters()).length;
    // And discard: dead again, then discarded by the folded id.
    const [w2, died2] = await foldAndRefuse('m', 'w1', 'w2');
    await ob.discardDead(w2.id);
    const left = (await ob.deadLetters()).length;
    await ob.close();
    return { died, sent, dead, died2, left };
  });
  assert.equal(r.died, 'Dead');
  assert.deepEqual(r.sent, ['v2']);
  assert.equal(r.dead, 0);
  assert.equal(r.died2, 'Dead');
  assert.equal(r.left, 0);
});

test('dead letters: retryDead and discardDead of one dead letter at once, from two contexts: one wins, nothing is left half done', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const name = 'features-dead-race';
    let refuse = true;
    const sent = [];
    const handlers = { h: async (ctx) => { if (refuse) throw new NonRetriableError('refused'); sent.push(ctx.mutations); } };
    // Two instances in one page are two contexts: the second follows the first.
    const a = await Outbox.open({ name, handlers });
    const b = await Outbox.open({ name, handlers });
    const rounds = [];
    for (let i = 0; i < 6; i++) {
      refuse = true;
      const t = await a.enqueue({ handler: 'h', keys: ['k'], mutations: i });
      await a.settled(t.id).catch(() => {});
      refuse = false;
      const [retry, discard] = [(i % 2 ? a : b), (i % 2 ? b : a)];
      const [retried, discarded] = await Promise.allSettled([retry.retryDead(t.id), discard.discardDead(t.id)]);
      // Revived, it goes out before the next round refuses again.
      if (retried.status === 'fulfilled') await a.settled(t.id);
      rounds.push([retried.status, discarded.status, retried.reason?.code ?? discarded.reason?.code]);
    }
    const dead = (await a.deadLetters()).map((d) => [d.mutations, d.deadReason]);
    await b.close();
    await a.close();
    return { rounds, dead, sent };
  });
  for (const [retried, discarded, loser] of r.rounds) {
    assert.ok((retried === 'fulfilled') !== (discarded === 'fulfilled'), `one of the two wins: ${retried}, ${discarded}`);
    assert.equal(loser, 'NotFound');
  }
  assert.deepEqual(r.dead, []);
  assert.equal(r.sent.length, r.rounds.filter(([retried]) => retried === 'fulfilled').length);
});

test('schema migration: a database in the previous layout (version 1) opens with every record, in order, attempts intact', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'offline-outbox:features-migrate';
    const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
    // Version 1, written by hand the way 0.1 wrote it.
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore('outbox', { keyPath: 'seq', autoIncrement: true });
      db.createObjectStore('payloads');
      db.createObjectStore('dead', { keyPath: 'seq' }).createIndex('id', 'id', { unique: true });
      db.createObjectStore('meta').put(1, 'schemaVersion');
    };
    const db = await req(open);
    const tx = db.transaction(['outbox', 'payloads', 'dead'], 'readwrite');
    const rec = (seq, id, keys, attempts) => ({
      seq, id, handler: 'send', keys, idempotencyKey: `idem-${id}`, priority: 'normal', attempts,
      createdAt: 1_700_000_000_000 + seq, nextAttemptAt: 0,
      ...(attempts ? { lastError: { name: 'Error', message: `failed ${attempts}x` } } : {}),
    });
    for (const [seq, id, keys, attempts] of [[1, 'one', ['a'], 3], [2, 'two', ['b'], 0], [4, 'four', ['a'], 1]]) {
      tx.objectStore('outbox').put(rec(seq, id, keys, attempts));
      tx.objectStore('payloads').put({ mutations: { id, at: new Date(seq) }, metadata: { v: 1 } }, id);
    }
    tx.objectStore('dead').put({ ...rec(3, 'three', ['c'], 5), deadReason: 'max-attempts', deadAt: 1_700_000_000_100 });
    tx.objectStore('payloads').put({ mutations: { id: 'three' }, metadata: null }, 'three');
    await new Promise((res) => { tx.oncomplete = res; });
    db.close();

    const sent = [];
    let gate;
    const gated = new Promise((r) => { gate = r; });
    const ob = await Outbox.open({
      name: 'features-migrate',
      handlers: { send: async (ctx) => { await gated; sent.push([ctx.id, ctx.attempt, ctx.idempotencyKey, ctx.mutations.at instanceof Date]); } },
    });
    const peek = (await ob.peek()).map((t) => [t.seq, t.id, t.attempts, t.lastError?.message ?? null]);
    const dead = (await ob.deadLetters()).map((t) => [t.seq, t.id, t.attempts, t.deadReason]);
    gate();
    await ob.drain();
    await ob.retryDead('three');
    await ob.drain();
    await ob.close();
    const after = await req(indexedDB.open(name));
    const version = [after.version, await req(after.transaction('meta').objectStore('meta').get('schemaVersion')), [...after.transaction('outbox').objectStore('outbox').indexNames]];
    after.close();
    return { peek, dead, sent, version };
  });
  assert.deepEqual(r.peek, [[1, 'one', 3, 'failed 3x'], [2, 'two', 0, null], [4, 'four', 1, 'failed 1x']]);
  assert.deepEqual(r.dead, [[3, 'three', 5, 'max-attempts']]);
  assert.deepEqual(r.sent.slice(0, 3).sort(), [['four', 2, 'idem-four', true], ['one', 4, 'idem-one', true], ['two', 1, 'idem-two', true]]);
  assert.ok(r.sent.findIndex(([id]) => id === 'one') < r.sent.findIndex(([id]) => id === 'four'), 'per-key order kept');
  assert.deepEqual(r.sent[3], ['three', 1, 'idem-three', false]);
  assert.deepEqual(r.version, [4, 4, ['groups', 'members']]);
});

test('schema migration: version 2 kept folded ids in an outbox index; they move to the aliases store and still settle, import dedupes on them', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'offline-outbox:features-migrate-2';
    const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
    const open = indexedDB.open(name, 2);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore('outbox', { keyPath: 'seq', autoIncrement: true }).createIndex('aliases', 'aliases', { multiEntry: true });
      db.createObjectStore('payloads');
      db.createObjectStore('dead', { keyPath: 'seq' }).createIndex('id', 'id', { unique: true });
      db.createObjectStore('meta').put(2, 'schemaVersion');
    };
    const db = await req(open);
    const tx = db.transaction(['outbox', 'payloads'], 'readwrite');
    const rec = (seq, id, aliases) => ({
      seq, id, handler: 'send', keys: ['k'], idempotencyKey: `idem-${id}`, priority: 'normal', attempts: 0,
      createdAt: 1_700_000_000_000 + seq, nextAttemptAt: 0, ...(aliases.length ? { aliases } : {}),
    });
    for (const [seq, id, aliases] of [[1, 'one', ['one-b', 'one-c']], [3, 'three', []]]) {
      tx.objectStore('outbox').put(rec(seq, id, aliases));
      tx.objectStore('payloads').put({ mutations: { id }, metadata: null }, id);
    }
    await new Promise((res) => { tx.oncomplete = res; });
    db.close();

    const sent = [];
    let gate;
    const gated = new Promise((r) => { gate = r; });
    const ob = await Outbox.open({ name: 'features-migrate-2', handlers: { send: async (ctx) => { await gated; sent.push(ctx.id); } } });
    const backup = await ob.export();
    const settledFolded = ob.settled('one-c').then((t) => [t.id, t.status]);
    const version = async () => {
      const d = await req(indexedDB.open(name));
      const t = d.transaction(['meta', 'outbox', 'aliases']);
      const reqs = [t.objectStore('meta').get('schemaVersion'), t.objectStore('aliases').getAll(), t.objectStore('aliases').getAllKeys()];
      const v = [d.version, ...await Promise.all(reqs.map(req))];
      v.splice(2, 0, [...t.objectStore('outbox').indexNames]);
      d.close();
      return v;
    };
    const before = await version();
    // The backup holds `one` with its aliases: importing it (or only a folded id) skips it.
    const folded = { ...backup, pending: backup.pending.filter((t) => t.id === 'one').map((t) => ({ ...t, id: 'other', aliases: ['one-b'] })) };
    const imported = await ob.import(folded);
    gate();
    const settled = await settledFolded;
    await ob.drain();
    const after = await version();
    await ob.close();
    return { before, after, settled, sent, imported };
  });
  assert.deepEqual(r.before, [4, 4, ['groups', 'members'], ['one', 'one'], ['one-b', 'one-c']]);
  assert.deepEqual(r.settled, ['one', 'acknowledged']);
  assert.deepEqual(r.sent, ['one', 'three']);
  assert.deepEqual(r.imported, { pending: 0, dead: 0, skipped: 1 });
  // Acknowledged: its aliases go with it.
  assert.deepEqual(r.after.slice(3), [[], []]);
});

test('storage health: persistence and estimate in stats, capacity warnings that never refuse work', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const events = [];
    let gate, gate2;
    const gated = new Promise((r) => { gate = r; });
    const gated2 = new Promise((r) => { gate2 = r; });
    const ob = await Outbox.open({
      name: 'features-capacity', capacity: { maxCount: 5 },
      handlers: { gate: () => gated, gate2: () => gated2, send: async () => {} },
    });
    ob.subscribe((e) => { if (e.type === 'capacity') events.push([e.level, e.count]); });
    await ob.enqueue({ handler: 'gate', keys: [], mutations: null });
    const levels = [];
    for (let i = 0; i < 6; i++) {
      await ob.enqueue({ handler: 'send', keys: ['k'], mutations: i });
      await new Promise((r) => setTimeout(r, 0));
      levels.push(events.length);
    }
    const stats = await ob.stats();
    gate();
    await ob.drain();
    // Below the marks again: crossing them re-arms.
    await ob.enqueue({ handler: 'gate2', keys: [], mutations: null });
    for (let i = 0; i < 3; i++) await ob.enqueue({ handler: 'send', keys: [], mutations: i });
    await new Promise((r) => setTimeout(r, 0));
    gate2();
    await ob.drain();
    await ob.close();
    const bad = await Outbox.open({ name: 'x', handlers: {}, capacity: { maxCount: 0 } }).then(() => 'opened', (e) => e.code);
    return { events, levels, pending: stats.pending + stats.inFlight, storage: stats.storage, bad };
  });
  // 4 of 5 (the gate and three) is 80 %; 5 is 100 %.
  assert.deepEqual(r.levels, [0, 0, 1, 2, 2, 2]);
  assert.deepEqual(r.events.slice(0, 2), [['warning', 4], ['full', 5]]);
  assert.equal(r.pending, 7, 'nothing refused past capacity');
  assert.deepEqual(r.events.slice(2), [['warning', 4]]);
  assert.equal(typeof r.storage.persisted, 'boolean');
  assert.ok(r.storage.usage > 0 && r.storage.quota > r.storage.usage, JSON.stringify(r.storage));
  assert.equal(r.bad, 'InvalidOptions');
});

test('capacity by bytes: acknowledged, dead and removed transactions stop counting', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const big = (i) => ({ i, text: 'x'.repeat(3000) });
    // The same final outbox reached with and without earlier traffic must report the same.
    const run = async (name, churn) => {
      const events = [];
      let open;
      const gate = new Promise((r) => { open = r; });
      const ob = await Outbox.open({
        name, capacity: { maxBytes: 20000 },
        handlers: {
          send: async () => {}, hang: () => gate, hold: () => new Promise(() => {}),
          bad: async () => { throw new NonRetriableError('no'); },
        },
      });
      ob.subscribe((e) => { if (e.type === 'capacity') events.push({ level: e.level, count: e.count, bytes: e.bytes }); });
      if (churn) {
        const blocker = await ob.enqueue({ handler: 'hang', keys: [], mutations: null });
        const gone = await ob.enqueue({ handler: 'send', keys: ['r'], mutations: big(-1) });
        await ob.remove(gone.id);
        for (let i = 0; i < 3; i++) await ob.enqueue({ handler: 'send', keys: ['a'], mutations: big(i) });
        await ob.enqueue({ handler: 'bad', keys: ['b'], mutations: big(9) });
        open();
        await ob.settled(blocker.id);
        await ob.drain();
      }
      for (let i = 0; i < 8; i++) {
        await ob.enqueue({ handler: 'hold', keys: ['z'], mutations: big(i) });
        await new Promise((r) => setTimeout(r, 0));
      }
      const stats = await ob.stats();
      await ob.close();
      return { events, dead: stats.dead };
    };
    return { churned: await run('capacity-bytes-churn', true), fresh: await run('capacity-bytes-fresh', false) };
  });
  assert.equal(r.churned.dead, 1);
  assert.ok(r.fresh.events.length > 0, 'the fresh outbox crossed a mark');
  assert.deepEqual(r.churned.events.slice(-r.fresh.events.length), r.fresh.events);
});

test('QuotaExceededError becomes OutboxError QuotaExceeded with nothing written', async () => {
  // A fresh context: the quota override reaches storage opened after it.
  const fresh = await browser.newContext();
  try {
    const p = await openApp(fresh, srv.origin);
    const cdp = await fresh.newCDPSession(p);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: srv.origin, quotaSize: 512 * 1024 });
    const out = await p.evaluate(async () => {
      const { Outbox } = window.lib;
      const ob = await Outbox.open({ name: 'features-quota', handlers: { hang: () => new Promise(() => {}) } });
      await ob.enqueue({ handler: 'hang', keys: ['a'], mutations: 'small' });
      // Random, so no compression of stored values can make it fit.
      const big = new Uint8Array(4 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
      const results = await Promise.allSettled([
        ob.enqueue({ handler: 'hang', keys: ['b'], mutations: 'rides with the big one' }),
        ob.enqueue({ handler: 'hang', keys: ['c'], mutations: big }),
      ]);
      const peek = (await ob.peek()).map((t) => t.mutations);
      await ob.close();
      return { codes: results.map((x) => x.status === 'rejected' ? x.reason.code : 'ok'), names: results.map((x) => x.reason?.name), peek };
    });
    // Both enqueues of the task shared the aborted write: neither is stored.
    assert.deepEqual(out.codes, ['QuotaExceeded', 'QuotaExceeded']);
    assert.deepEqual(out.names, ['OutboxError', 'OutboxError']);
    assert.deepEqual(out.peek, ['small']);
  } finally {
    await fresh.close();
  }
});

test('a database that disappears is reported (storage-lost), never passed off as an empty queue', async () => {
  const cdp = await context.newCDPSession(page);
  await page.evaluate(async () => {
    const { Outbox } = window.lib;
    window.lostEvents = [];
    const handlers = { hang: () => new Promise(() => {}) };
    for (const name of ['features-lost-deleted', 'features-lost-cleared']) {
      const ob = await Outbox.open({ name, handlers });
      ob.subscribe((e) => { if (e.type === 'storage-lost') window.lostEvents.push([name, e.reason, e.pending]); });
      await ob.enqueue({ handler: 'hang', keys: ['a'], mutations: 1 });
      await ob.enqueue({ handler: 'hang', keys: ['a'], mutations: 2 });
      window[name] = ob;
    }
    indexedDB.deleteDatabase('offline-outbox:features-lost-deleted');
  });
  await page.waitForFunction(() => window.lostEvents.length === 1, null, { timeout: 5000 });
  await cdp.send('Storage.clearDataForOrigin', { origin: srv.origin, storageTypes: 'indexeddb' });
  await page.waitForFunction(() => window.lostEvents.length === 2, null, { timeout: 5000 });
  const r = await page.evaluate(async () => ({
    events: window.lostEvents,
    after: await window['features-lost-deleted'].enqueue({ handler: 'hang', keys: [], mutations: 3 }).then(() => 'ok', (e) => e.code),
  }));
  assert.deepEqual(r.events, [
    ['features-lost-deleted', 'deleted', 2],
    ['features-lost-cleared', 'closed', 2],
  ]);
  assert.equal(r.after, 'StorageUnavailable');
});

test('a leader still reading a long outbox answers peek and stats with all of it, not the part read so far', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const handlers = { h: () => new Promise(() => {}) };
    let ob = await Outbox.open({ name: 'features-taking-over', handlers });
    await Promise.all(Array.from({ length: 6000 }, (_, i) => ob.enqueue({ handler: 'h', keys: [`k${i % 50}`], mutations: i })));
    await ob.close();
    ob = await Outbox.open({ name: 'features-taking-over', handlers });
    const [peek, stats] = await Promise.all([ob.peek(), ob.stats()]);
    await ob.close();
    return { peek: peek.length, first: peek[0].mutations, last: peek.at(-1).mutations, stats: stats.pending + stats.inFlight };
  });
  assert.deepEqual(r, { peek: 6000, first: 0, last: 5999, stats: 6000 });
});

test('acknowledged payloads are deleted once the outbox is idle, by a later leader too; until then they count as acknowledged', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'features-sweep';
    const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
    const counts = async () => {
      const db = await req(indexedDB.open(`offline-outbox:${name}`));
      const tx = db.transaction(['payloads', 'acked', 'outbox']);
      const n = await Promise.all(['payloads', 'acked', 'outbox'].map((s) => req(tx.objectStore(s).count())));
      db.close();
      return n;
    };
    const idle = async () => { for (let i = 0; i < 100; i++) { const n = await counts(); if (n[0] === 0 && n[1] === 0) return n; await new Promise((r) => setTimeout(r, 20)); } return counts(); };
    let ob = await Outbox.open({ name, handlers: { ok: async () => {} } });
    await Promise.all(Array.from({ length: 300 }, (_, i) => ob.enqueue({ handler: 'ok', keys: [`k${i % 7}`], mutations: { i } })));
    await ob.drain();
    const afterDrain = await idle();
    await ob.close();
    // A leader that stopped before sweeping: an acknowledged id with its payload still
    // stored. A new leader that is busy (one transaction in flight) reports it as
    // acknowledged, and sweeps it once idle.
    const db = await req(indexedDB.open(`offline-outbox:${name}`));
    const tx = db.transaction(['payloads', 'acked'], 'readwrite');
    tx.objectStore('payloads').put({ mutations: { left: true } }, 'left-behind');
    tx.objectStore('acked').put(['left-behind']);
    await new Promise((res) => { tx.oncomplete = res; });
    db.close();
    let release;
    const held = new Promise((r) => { release = r; });
    ob = await Outbox.open({ name, handlers: { ok: () => held } });
    await ob.enqueue({ handler: 'ok', keys: ['busy'], mutations: {} });
    const settled = await Promise.race([ob.settled('left-behind').then((t) => t.status), new Promise((r) => setTimeout(() => r('still waiting'), 2000))]);
    const whileBusy = await counts();
    release();
    await ob.drain();
    const afterIdle = await idle();
    await ob.close();
    return { afterDrain, settled, whileBusy, afterIdle };
  });
  assert.deepEqual(r.afterDrain, [0, 0, 0]);
  assert.equal(r.settled, 'acknowledged');
  assert.deepEqual(r.whileBusy, [2, 1, 1]);
  assert.deepEqual(r.afterIdle, [0, 0, 0]);
});

test('an outbox that never goes idle still sweeps once 50,000 acknowledged payloads wait, down below that', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'features-backlog';
    const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
    const payloads = async () => {
      const db = await req(indexedDB.open(`offline-outbox:${name}`));
      const n = await req(db.transaction('payloads').objectStore('payloads').count());
      db.close();
      return n;
    };
    let release;
    const held = new Promise((res) => { release = res; });
    const ob = await Outbox.open({ name, maxConcurrency: 8, handlers: { ok: async () => {}, hold: () => held } });
    // In flight until released: the outbox is never idle meanwhile.
    await ob.enqueue({ handler: 'hold', keys: ['held'], mutations: 0 });
    // Imported, so each has a payload record of its own (a group commit's payloads go
    // with its group record instead, see the group commit tests).
    const total = 52_000;
    const rec = (n) => ({
      id: `t${n}`, seq: n, handler: 'ok', keys: [`k${n % 64}`], idempotencyKey: `t${n}`, priority: 'normal',
      attempts: 0, createdAt: 1, nextAttemptAt: 1, mutations: n, metadata: { $t: 'undefined' },
    });
    for (let b = 0; b < total; b += 2000) {
      const pending = Array.from({ length: 2000 }, (_, i) => rec(b + i + 1));
      await ob.import({ format: 'offline-outbox-backup', version: 1, name, exportedAt: 1, pending, dead: [] });
    }
    for (;;) {
      const s = await ob.stats();
      if (s.pending + s.inFlight === 1) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    // The acknowledgements that passed 50,000 started a sweep while busy.
    let busy = await payloads();
    for (let i = 0; i < 100 && busy > 50_000; i++) {
      await new Promise((res) => setTimeout(res, 50));
      busy = await payloads();
    }
    release();
    await ob.drain();
    let idle = await payloads();
    for (let i = 0; i < 400 && idle > 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
      idle = await payloads();
    }
    await ob.close();
    return { busy, idle };
  });
  // Below the backlog but not swept to nothing: the rest waits for idle.
  assert.ok(r.busy <= 50_000 && r.busy > 40_000, `payloads while busy: ${r.busy}`);
  assert.equal(r.idle, 0);
});

test('attemptTimeoutMs: an attempt with no outcome in time fails as a TimeoutError; its signal aborts, its slot and keys go free, a late outcome is ignored', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const calls = [];
    const aborts = [];
    const retries = [];
    let lateAnswered = false;
    const ob = await Outbox.open({
      name: 'features-timeout', maxConcurrency: 1, attemptTimeoutMs: 150,
      retry: { baseDelayMs: 500, maxDelayMs: 500, jitter: 'none' },
      handlers: {
        send: (ctx) => {
          const { mutations: m, attempt, signal } = ctx;
          calls.push(`${m}#${attempt}`);
          signal.addEventListener('abort', () => aborts.push([m, attempt, signal.reason.name, signal.reason.message]));
          if (attempt > 1) return undefined;
          // 'hang' never answers; 'late' answers after the limit.
          if (m === 'hang') return new Promise(() => {});
          if (m === 'late') return new Promise((res) => setTimeout(() => { lateAnswered = true; res(); }, 300));
          return undefined;
        },
      },
    });
    ob.subscribe((e) => { if (e.type === 'retry') retries.push([e.attempt, e.error.name, e.error.message]); });
    const hang = await ob.enqueue({ handler: 'send', keys: ['k'], mutations: 'hang' });
    const after = await ob.enqueue({ handler: 'send', keys: ['k'], mutations: 'after' });
    const other = await ob.enqueue({ handler: 'send', keys: ['o'], mutations: 'other' });
    const late = await ob.enqueue({ handler: 'send', keys: ['l'], mutations: 'late' });
    const waitFor = async (pred) => { for (let i = 0; i < 500 && !pred(); i++) await new Promise((res) => setTimeout(res, 10)); };
    // The late answer came while the transaction waited for its retry: it stays pending.
    await waitFor(() => lateAnswered);
    const lateAfterAnswer = (await ob.peek()).find((t) => t.id === late.id);
    await Promise.all([hang, after, other, late].map((t) => ob.settled(t.id)));
    const stats = await ob.stats();
    await ob.close();
    const refused = [];
    for (const bad of [0, -1, 1.5, '100', 2 ** 31, NaN, null]) {
      try {
        await Outbox.open({ name: 'features-timeout-bad', handlers: {}, attemptTimeoutMs: bad });
        refused.push('opened');
      } catch (e) {
        refused.push(`${e.code}: ${e.message}`);
      }
    }
    const created = (await indexedDB.databases()).some((d) => d.name.endsWith('features-timeout-bad'));
    return {
      refused, created, calls, aborts, retries,
      lateAfterAnswer: [lateAfterAnswer.status, lateAfterAnswer.attempts, lateAfterAnswer.lastError.name],
      stats: [stats.sent, stats.retried, stats.pending],
    };
  });
  // With one slot: 'other' and 'late' ran while 'hang' waited for its retry, and 'after'
  // waited on its key until 'hang' was acknowledged.
  assert.deepEqual(r.calls, ['hang#1', 'other#1', 'late#1', 'hang#2', 'after#1', 'late#2']);
  const why = 'no outcome within 150 ms';
  assert.deepEqual(r.aborts, [['hang', 1, 'TimeoutError', why], ['late', 1, 'TimeoutError', why]]);
  assert.deepEqual(r.retries, [[1, 'TimeoutError', why], [1, 'TimeoutError', why]]);
  assert.deepEqual(r.lateAfterAnswer, ['pending', 1, 'TimeoutError']);
  assert.deepEqual(r.stats, [4, 2, 0]);
  assert.deepEqual(new Set(r.refused), new Set(['InvalidOptions: attemptTimeoutMs must be a whole number from 1 to 2147483647']));
  assert.equal(r.refused.length, 7);
  assert.equal(r.created, false);
});

test('attemptTimeoutMs: a batch call times out as a whole; the http handler\'s request is aborted and sent again with the same Idempotency-Key', async () => {
  srv.api.reset();
  srv.api.delayMs = 5000;
  const r = await page.evaluate(async (url) => {
    const { Outbox } = window.lib;
    const batches = [];
    const retries = [];
    const ob = await Outbox.open({
      name: 'features-timeout-batch', attemptTimeoutMs: 200,
      retry: { baseDelayMs: 100, maxDelayMs: 100, jitter: 'none' },
      handlers: {
        b: {
          batchSize: 10,
          sendBatch: (batch) => {
            batches.push(batch.map((c) => `${c.mutations}#${c.attempt}`).sort());
            return batch[0].attempt === 1 ? new Promise(() => {}) : undefined;
          },
        },
      },
    });
    window.timeoutOutbox = ob;
    ob.subscribe((e) => { if (e.type === 'retry') retries.push(e.error.name); });
    const ids = await Promise.all([
      ob.enqueue({ handler: 'b', keys: ['x'], mutations: 'x' }),
      ob.enqueue({ handler: 'b', keys: ['y'], mutations: 'y' }),
    ]);
    await Promise.all(ids.map((t) => ob.settled(t.id)));
    const h = await ob.enqueue({ handler: 'http', keys: ['h'], mutations: { method: 'POST', url, body: 'hello' } });
    for (let i = 0; i < 500 && retries.length < 3; i++) await new Promise((res) => setTimeout(res, 10));
    return { batches, retries, id: h.id, key: h.idempotencyKey };
  }, `${srv.origin}/api/mutate`);
  // Their retries fall due a moment apart, so they may go in one call or two.
  assert.deepEqual(r.batches[0], ['x#1', 'y#1']);
  assert.deepEqual(r.batches.slice(1).flat().sort(), ['x#2', 'y#2']);
  // Both batch members, then the held request.
  assert.deepEqual(r.retries, ['TimeoutError', 'TimeoutError', 'TimeoutError']);
  srv.api.delayMs = 0;
  await page.evaluate(async (id) => {
    await window.timeoutOutbox.settled(id);
    await window.timeoutOutbox.close();
  }, r.id);
  // The held request was sent, and so was the one that went through after it.
  assert.ok(srv.api.received.length >= 2, `${srv.api.received.length} requests`);
  assert.ok(srv.api.received.every((q) => q.key === r.key && q.body === 'hello'));
  assert.equal(srv.api.unique().length, 1);
  srv.api.reset();
});

test('a handler\'s own attemptTimeoutMs takes the outbox\'s place: longer for an upload, shorter for a quick write, for a batch too', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const retries = [];
    const calls = [];
    // Each handler's first attempt: 'upload' answers after 400 ms, the others never.
    const first = (name, ctx) => {
      calls.push(`${name}#${ctx.attempt}`);
      if (ctx.attempt > 1) return undefined;
      return name === 'upload' ? new Promise((res) => setTimeout(res, 400)) : new Promise(() => {});
    };
    const ob = await Outbox.open({
      name: 'features-timeout-own', attemptTimeoutMs: 150,
      retry: { baseDelayMs: 50, maxDelayMs: 50, jitter: 'none' },
      handlers: {
        upload: { send: (ctx) => first('upload', ctx), attemptTimeoutMs: 2000 },
        quick: { send: (ctx) => first('quick', ctx), attemptTimeoutMs: 40 },
        notes: { sendBatch: ([ctx]) => first('notes', ctx), batchSize: 5, attemptTimeoutMs: 60 },
        plain: (ctx) => first('plain', ctx),
      },
    });
    ob.subscribe((e) => { if (e.type === 'retry') retries.push(`${e.error.name}: ${e.error.message}`); });
    const ids = [];
    for (const handler of ['upload', 'quick', 'notes', 'plain']) ids.push((await ob.enqueue({ handler, keys: [handler], mutations: handler })).id);
    await Promise.all(ids.map((id) => ob.settled(id)));
    await ob.close();
    const refused = [];
    for (const spec of [{ attemptTimeoutMs: 0 }, { attemptTimeoutMs: 2 ** 31 }, { attemptTimeoutMs: '100' }, { batchSize: 0, sendBatch: () => {} }]) {
      try {
        await Outbox.open({ name: 'features-timeout-own-bad', handlers: { h: { send: () => {}, ...spec } } });
        refused.push('opened');
      } catch (e) {
        refused.push(`${e.code}: ${e.message}`);
      }
    }
    const created = (await indexedDB.databases()).some((d) => d.name.endsWith('features-timeout-own-bad'));
    return { retries: retries.sort(), calls: calls.sort(), refused, created };
  });
  assert.deepEqual(r.retries, [
    'TimeoutError: no outcome within 150 ms', // plain: the outbox's
    'TimeoutError: no outcome within 40 ms', // quick
    'TimeoutError: no outcome within 60 ms', // notes, as a batch
  ]);
  // The upload answered after 400 ms, past the outbox's 150, within its own 2000.
  assert.deepEqual(r.calls, ['notes#1', 'notes#2', 'plain#1', 'plain#2', 'quick#1', 'quick#2', 'upload#1']);
  const range = 'attemptTimeoutMs must be a whole number from 1 to 2147483647';
  assert.deepEqual(r.refused.slice(0, 3), Array(3).fill(`InvalidOptions: handler "h": ${range}`));
  // A batch handler's spec with send as well is refused before its batchSize is read.
  assert.match(r.refused[3], /^InvalidOptions: handler "h" must be a function/);
  assert.equal(r.created, false);
});

test('peek and deadLetters take a limit: the head of the list in seq order, with only its payloads read, in a follower too', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const handlers = {
      hold: () => new Promise(() => {}),
      bad: async () => { throw new NonRetriableError('refused'); },
    };
    window.limitOutbox = await Outbox.open({ name: 'features-limit', maxConcurrency: 1, handlers });
    const ob = window.limitOutbox;
    for (let i = 0; i < 3; i++) await ob.enqueue({ handler: 'bad', keys: [`d${i}`], mutations: { dead: i } });
    while ((await ob.deadLetters()).length < 3) await new Promise((res) => setTimeout(res, 10));
    // Lone and grouped records, 600 in all: over the 512 past which a whole list is read
    // from the whole payload store.
    for (let i = 0; i < 100; i++) await ob.enqueue({ handler: 'hold', keys: [`k${i}`], mutations: { n: i } });
    await Promise.all(Array.from({ length: 500 }, (_, i) => ob.enqueue({ handler: 'hold', keys: [`k${100 + i}`], mutations: { n: 100 + i } })));
    const brief = (list) => list.map((t) => [t.id, t.seq, t.status, t.attempts, JSON.stringify(t.mutations)]);
    // Requests on the payloads store while a call runs, and the dead letters read.
    const counted = async (f) => {
      const { out, requests, results } = await window.countReads(f);
      return { list: brief(out), reads: { get: requests('payloads.get'), getAll: requests('payloads.getAll'), dead: results('dead.getAll') } };
    };
    const all = await counted(() => ob.peek());
    const head = await counted(() => ob.peek({ limit: 5 }));
    const lengths = {};
    for (const [what, opts] of Object.entries({ zero: { limit: 0 }, fraction: { limit: 2.9 }, huge: { limit: 1e12 }, infinite: { limit: Infinity }, empty: {}, unset: { limit: undefined }, nothing: null })) {
      lengths[what] = (await ob.peek(opts)).length;
    }
    const deadAll = await counted(() => ob.deadLetters());
    const deadHead = await counted(() => ob.deadLetters({ limit: 2 }));
    const deadNone = await counted(() => ob.deadLetters({ limit: 0 }));
    const stored = async () => { const { pending, dead } = await ob.export(); return JSON.stringify([pending, dead]); };
    const before = await stored();
    const refusals = [];
    for (const bad of [{ limit: -1 }, { limit: '5' }, { limit: NaN }, { limit: null }, { max: 5 }, { limit: 5, more: 1 }, 5, 'x', [], () => {}]) {
      for (const call of ['peek', 'deadLetters']) {
        try { await ob[call](bad); refusals.push('resolved'); } catch (e) { refusals.push(`${e.name}:${e.code}`); }
      }
    }
    return { all, head, lengths, deadAll, deadHead, deadNone, refusals, unchanged: (await stored()) === before };
  });
  assert.equal(r.all.list.length, 600);
  assert.equal(r.all.list[0][2], 'in-flight');
  assert.deepEqual(r.head.list, r.all.list.slice(0, 5));
  assert.ok(r.all.reads.getAll >= 1, 'the whole list reads the whole payload store');
  assert.equal(r.head.reads.getAll, 0);
  assert.ok(r.head.reads.get >= 1 && r.head.reads.get <= 5, `5 payloads read with ${r.head.reads.get} gets`);
  assert.deepEqual(r.lengths, { zero: 0, fraction: 2, huge: 600, infinite: 600, empty: 600, unset: 600, nothing: 600 });
  assert.deepEqual(r.deadAll.list.map((t) => t[4]), ['{"dead":0}', '{"dead":1}', '{"dead":2}']);
  assert.deepEqual(r.deadHead.list, r.deadAll.list.slice(0, 2));
  assert.equal(r.deadHead.reads.getAll, 0);
  assert.equal(r.deadAll.reads.dead, 3);
  assert.equal(r.deadHead.reads.dead, 2, 'only the first two dead letters are read');
  assert.deepEqual([r.deadNone.list.length, r.deadNone.reads.dead], [0, 1], 'a limit of 0 reads one, not all');
  assert.deepEqual(r.refusals, Array(20).fill('OutboxError:InvalidOptions'));
  assert.ok(r.unchanged, 'a refused call changes nothing stored');

  // A follower lists from the store, with the same limit.
  const follower = await openApp(context, srv.origin);
  const f = await follower.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const handlers = {
      hold: () => new Promise(() => {}),
      bad: async () => { throw new NonRetriableError('refused'); },
    };
    const ob = await Outbox.open({ name: 'features-limit', handlers });
    const out = { isLeader: ob.isLeader, head: (await ob.peek({ limit: 4 })).map((t) => [t.id, t.seq]), dead: (await ob.deadLetters({ limit: 1 })).map((t) => t.id) };
    await ob.close();
    return out;
  });
  await follower.close();
  await page.evaluate(() => window.limitOutbox.close());
  assert.equal(f.isLeader, false);
  assert.deepEqual(f.head, r.all.list.slice(0, 4).map((t) => [t[0], t[1]]));
  assert.deepEqual(f.dead, [r.deadAll.list[0][0]]);
});

test('a follower lists the head of the outbox in seq order, with reads bounded by the limit, across acknowledged holes and a member moved out of its group', async () => {
  let lead = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    window.headOutbox = await Outbox.open({
      name: 'features-follower-head',
      maxConcurrency: 2,
      handlers: {
        ack: async () => {},
        hold: () => new Promise(() => {}),
        flaky: async (ctx) => { if (ctx.attempt === 1) throw new Error('503'); return new Promise(() => {}); },
      },
      retry: { baseDelayMs: 60000, maxDelayMs: 60000, jitter: 'none' },
    });
    const ob = window.headOutbox;
    // Acknowledged lone records: holes at the head of the store.
    for (let i = 0; i < 50; i++) await ob.enqueue({ handler: 'ack', keys: [`a${i}`], mutations: i });
    // One group commit of 300 (two group records): its first 150 members acknowledged, one
    // failing once, so written on its own under its seq, and the rest never answered.
    await Promise.all(Array.from({ length: 300 }, (_, i) => ob.enqueue({
      handler: i < 150 ? 'ack' : i === 150 ? 'flaky' : 'hold', keys: [`g${i}`], mutations: i,
    })));
    for (let i = 0; i < 300; i++) {
      const head = await ob.peek({ limit: 1 });
      if (head[0]?.attempts === 1 && head[0].status === 'pending') break;
      await new Promise((res) => setTimeout(res, 10));
    }
    // Lone records behind them.
    for (let i = 0; i < 600; i++) await ob.enqueue({ handler: 'hold', keys: [`l${i}`], mutations: 300 + i });
    const list = await ob.peek();
    return { list: list.map((t) => [t.id, t.seq, t.attempts]), head: list.slice(0, 4).map((t) => [t.status, t.attempts]) };
  });
  assert.deepEqual(lead.head, [['pending', 1], ['in-flight', 0], ['in-flight', 0], ['pending', 0]], 'the moved-out member and the two in flight lead');
  lead = lead.list;
  assert.equal(lead.length, 750);
  assert.ok(lead.every((t, i) => i === 0 || t[1] > lead[i - 1][1]), 'the leader lists in seq order');

  const follower = await openApp(context, srv.origin);
  const f = await follower.evaluate(async () => {
    const { Outbox } = window.lib;
    const never = () => new Promise(() => {});
    const ob = await Outbox.open({ name: 'features-follower-head', handlers: { ack: never, hold: never, flaky: never } });
    // Records the outbox store's reads return while a call runs.
    const counted = async (call) => {
      const { out, results } = await window.countReads(call);
      return { list: out.map((t) => [t.id, t.seq, t.attempts]), records: results('outbox.get') + results('outbox.getAll') };
    };
    const out = { isLeader: ob.isLeader, heads: {} };
    for (const limit of [1, 2, 3, 5, 150, 151, 160]) out.heads[limit] = await counted(() => ob.peek({ limit }));
    out.all = await counted(() => ob.peek());
    out.exported = (await ob.export()).pending.map((t) => t.id);
    await ob.close();
    return out;
  });
  await follower.close();
  await page.evaluate(() => window.headOutbox.close());
  assert.equal(f.isLeader, false);
  assert.deepEqual(f.all.list, lead);
  assert.deepEqual(f.exported, lead.map((t) => t[0]), 'an export lists in seq order too');
  for (const [limit, head] of Object.entries(f.heads)) {
    assert.deepEqual(head.list, lead.slice(0, Number(limit)), `limit ${limit}`);
  }
  // Group records count as one record each, whatever they hold. The reads for a head span
  // about twice the seqs it needs (each read twice the last where one came up short); the
  // whole list reads all 600 lone records too.
  for (const [limit, head] of Object.entries(f.heads)) {
    assert.ok(head.records <= 2 * Number(limit) + 8, `${head.records} records read for ${limit}`);
  }
  assert.ok(f.all.records >= 600, `${f.all.records} records read for all`);
});

test('a follower finds the head of a sparse outbox in a few reads', async () => {
  // 200 lone records, 9 in 10 acknowledged: the 20 left pending lie 10 seqs apart.
  const lead = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    window.sparseOutbox = await Outbox.open({
      name: 'features-follower-sparse',
      maxConcurrency: 2,
      handlers: { ack: async () => {}, fail: async () => { throw new Error('503'); } },
      retry: { baseDelayMs: 60000, maxDelayMs: 60000, jitter: 'none' },
    });
    const ob = window.sparseOutbox;
    for (let i = 0; i < 200; i++) await ob.enqueue({ handler: i % 10 ? 'ack' : 'fail', keys: [`s${i}`], mutations: i });
    for (let i = 0; i < 300 && (await ob.stats()).pending + (await ob.stats()).inFlight > 20; i++) await new Promise((res) => setTimeout(res, 10));
    return (await ob.peek()).map((t) => [t.id, t.mutations]);
  });
  assert.deepEqual(lead.map((t) => t[1]), Array.from({ length: 20 }, (_, i) => 10 * i));
  const follower = await openApp(context, srv.origin);
  const f = await follower.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'features-follower-sparse', handlers: { ack: async () => {}, fail: async () => {} } });
    const head = await window.countReads(() => ob.peek({ limit: 20 }));
    const none = await window.countReads(() => ob.peek({ limit: 0 }));
    await ob.close();
    return {
      isLeader: ob.isLeader,
      head: head.out.map((t) => [t.id, t.mutations]),
      reads: head.requests('outbox.getAllKeys'),
      none: none.out.length,
      keysForNone: none.results('outbox.getAllKeys'),
    };
  });
  await follower.close();
  await page.evaluate(() => window.sparseOutbox.close());
  assert.equal(f.isLeader, false);
  assert.deepEqual(f.head, lead);
  // Spans of 20, 40, 80 and 320 seqs; reads spanning only what is missing took 15.
  assert.ok(f.reads <= 5, `${f.reads} reads`);
  // IndexedDB reads a count of 0 as no limit: a limit of 0 must not become a read of all.
  assert.equal(f.none, 0);
  assert.ok(f.keysForNone <= 1, `${f.keysForNone} keys read for a limit of 0`);
});
