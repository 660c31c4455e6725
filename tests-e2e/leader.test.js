// One sender across tabs, in real Chromium: several pages of one browser context share
// the outbox. Run for Web Locks and for the BroadcastChannel lease.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite, openApp, launch, sleep, waitFor } from './harness.js';

let srv, browser;

before(async () => ({ srv, browser } = await startSuite()));
after(() => stopSuite({ srv, browser }));


/** Opens the outbox in a page; its `post` handler sends to the test server. */
async function openOutbox({ name, mode }) {
  const { Outbox } = window.lib;
  window.ob = await Outbox.open({ name, leaderElection: mode, handlers: window.handlers, maxConcurrency: 4, retry: { baseDelayMs: 50, maxDelayMs: 200 } });
}

/** A new page of the test app that runs `open(args)` in itself (which sets `window.ob`). */
async function tab(context, open, args) {
  const page = await openApp(context, srv.origin);
  await page.evaluate(open, args);
  return page;
}

async function leaderFlags(pages) {
  return Promise.all(pages.map((p) => p.evaluate(() => window.ob.isLeader).catch(() => null)));
}

async function waitForOneLeader(pages, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const flags = await leaderFlags(pages);
    if (flags.filter((f) => f === true).length === 1) return flags.indexOf(true);
    if (Date.now() > end) throw new Error(`no single leader: ${flags}`);
    await sleep(20);
  }
}

/** `n` pages of the test app running `open(args)`, opened one after another (so Web Locks
 * queues them in that order). */
async function tabs(context, n, args, open = openOutbox) {
  const pages = [];
  for (let i = 0; i < n; i++) pages.push(await tab(context, open, args));
  return pages;
}

/** For each key, the `n` of each transaction in the order the server first saw it. */
function firstSeenOrder() {
  const out = {};
  for (const entry of srv.api.unique()) {
    const body = JSON.parse(entry.body);
    (out[body.key] ??= []).push(body.n);
  }
  return out;
}


for (const mode of ['web-locks', 'broadcast-channel']) {
  test(`${mode}: exactly one leader among 2 to 5 tabs, also after the leader closes`, async () => {
    const context = await browser.newContext();
    const name = `one-${mode}`;
    const pages = await tabs(context, 2, { name, mode });
    for (const n of [2, 3, 5]) {
      while (pages.length < n) pages.push(await tab(context, openOutbox, { name, mode }));
      await waitForOneLeader(pages);
      for (let sample = 0; sample < 10; sample++) {
        const flags = await leaderFlags(pages);
        assert.equal(flags.filter((f) => f === true).length, 1, `${n} tabs, sample ${sample}: ${flags}`);
        await sleep(30);
      }
    }
    const leader = await waitForOneLeader(pages);
    await pages[leader].close();
    pages.splice(leader, 1);
    await waitForOneLeader(pages);
    for (let sample = 0; sample < 10; sample++) {
      const flags = await leaderFlags(pages);
      assert.equal(flags.filter((f) => f === true).length, 1, `after close, sample ${sample}: ${flags}`);
      await sleep(30);
    }
    await context.close();
  });

  for (const how of ['close', 'crash']) {
    test(`${mode}: the leader ${how === 'close' ? 'closes' : 'crashes'} during a drain of 200; the next leader finishes, exactly once, in order`, async () => {
      srv.api.reset();
      srv.api.delayMs = 3;
      const context = await browser.newContext();
      const name = `failover-${mode}-${how}`;
      const pages = await tabs(context, 3, { name, mode });
      const leader = await waitForOneLeader(pages);
      const writer = pages[(leader + 1) % pages.length];
      await writer.evaluate(async () => {
        const all = [];
        for (let n = 0; n < 200; n++) {
          const key = `k${n % 10}`;
          all.push(window.ob.enqueue({ handler: 'post', keys: [key], mutations: { key, n } }));
        }
        await Promise.all(all);
      });
      await waitFor(() => srv.api.unique().length >= 40, 20000, '40 sent');
      if (how === 'close') {
        await pages[leader].close();
      } else {
        const crashed = new Promise((r) => pages[leader].once('crash', r));
        (await context.newCDPSession(pages[leader])).send('Page.crash').catch(() => {});
        await crashed;
      }
      const sentBefore = srv.api.unique().length;
      pages.splice(leader, 1);
      await waitForOneLeader(pages, 10000);
      await waitFor(() => srv.api.unique().length === 200, 30000, 'all 200 sent');
      assert.ok(sentBefore < 200, 'the failover happened mid-drain');
      await waitFor(async () => (await pages[0].evaluate(() => window.ob.peek())).length === 0, 10000, 'empty outbox');
      const order = firstSeenOrder();
      for (const [key, ns] of Object.entries(order)) {
        assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `order of ${key}`);
      }
      assert.equal(new Set(srv.api.unique().map((e) => e.key)).size, 200);
      await context.close();
    });
  }

  test(`${mode}: close() cuts off an attempt that reached the server; the next leader removes it and never sends it`, async () => {
    srv.api.reset();
    // The server holds its answer, so the attempt is under way when the leader closes.
    srv.api.delayMs = 2000;
    const context = await browser.newContext();
    const name = `cut-off-${mode}`;
    const pages = await tabs(context, 2, { name, mode }, async ({ name, mode }) => {
      window.ob = await window.lib.Outbox.open({
        name, leaderElection: mode,
        handlers: { post: (ctx) => { window.signal = ctx.signal; return window.handlers.post(ctx); } },
      });
    });
    const li = await waitForOneLeader(pages);
    const [leader, next] = [pages[li], pages[1 - li]];
    const id = await next.evaluate(async () => (await window.ob.enqueue({ handler: 'post', keys: ['k'], mutations: { key: 'k', n: 1 } })).id);
    await waitFor(() => srv.api.received.length === 1, 5000, 'the attempt to reach the server');
    // Offline, the next leader attempts nothing (this page alone; the leader's fetch goes on).
    const cdp = await context.newCDPSession(next);
    const offline = (on) => cdp.send('Network.emulateNetworkConditions', { offline: on, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await offline(true);
    assert.equal(await leader.evaluate(async () => { await window.ob.close(); return window.signal.aborted; }), true);
    await waitFor(() => next.evaluate(() => window.ob.isLeader), 5000, 'the next leader');
    const out = await next.evaluate(async (id) => {
      await window.ob.remove(id);
      return window.ob.settled(id).then(() => 'acknowledged', (e) => e.code);
    }, id);
    assert.equal(out, 'Removed');
    await offline(false);
    await next.evaluate(async () => { window.ob.notifyOnline(); await window.ob.drain({ budgetMs: 500 }); });
    assert.equal(srv.api.received.length, 1, 'sent once, by the attempt close() cut off');
    srv.api.reset();
    await context.close();
  });

  test(`${mode}: the leader's own enqueue waits for a follower's lower seq on its key, even unannounced`, async () => {
    const context = await browser.newContext();
    const name = `own-after-follower-${mode}`;
    // Whichever leads records what it sends, in order (window.calls).
    const pages = await tabs(context, 2, { name, mode }, async ({ name, mode }) => {
      window.ob = await window.lib.Outbox.open({ name, leaderElection: mode, handlers: { post: window.handlers.ok } });
    });
    const leader = pages[await waitForOneLeader(pages)];
    const follower = pages.find((p) => p !== leader);
    // The follower's word never reaches the leader: only the store knows of its record.
    await follower.evaluate(async () => {
      const post = BroadcastChannel.prototype.postMessage;
      BroadcastChannel.prototype.postMessage = function (msg) {
        if (msg?.t !== 'wake') post.call(this, msg);
      };
      await window.ob.enqueue({ handler: 'post', keys: ['doc'], mutations: 'first' });
    });
    const sent = await leader.evaluate(async () => {
      const own = await window.ob.enqueue({ handler: 'post', keys: ['doc'], mutations: 'second' });
      await Promise.race([window.ob.settled(own.id), new Promise((r) => setTimeout(r, 3000))]);
      return window.calls.map((c) => c.mutations);
    });
    assert.deepEqual(sent, ['first', 'second']);
    await context.close();
  });

  test(`${mode}: the leader and a follower enqueue at the same time; each transaction reaches the handler once`, async () => {
    const context = await browser.newContext();
    const name = `both-enqueue-${mode}`;
    const pages = await tabs(context, 2, { name, mode }, async ({ name, mode }) => {
      window.ob = await window.lib.Outbox.open({ name, leaderElection: mode, handlers: { ok: window.handlers.ok } });
    });
    const leader = pages[await waitForOneLeader(pages)];
    // The follower's records reach the leader through its sync, which reads while the
    // leader's own enqueues go straight in: each must be taken in once.
    await Promise.all(pages.map((page, tab) => page.evaluate(async (tab) => {
      for (let i = 0; i < 200; i++) {
        await window.ob.enqueue({ handler: 'ok', keys: [`k${i % 3}`], mutations: { tab, i } });
        if (i % 3 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    }, tab)));
    await waitFor(async () => (await leader.evaluate(() => window.calls.length)) >= 400, 10000, '400 handled');
    await sleep(300);
    const ids = await leader.evaluate(() => window.calls.map((c) => c.id));
    assert.equal(ids.length, 400);
    assert.equal(new Set(ids).size, 400);
    await context.close();
  });

  test(`${mode}: every tab enqueues on shared keys while leaders crash or close, round after round; nothing lost, once each, per-key order`, async () => {
    srv.api.reset();
    srv.api.delayMs = 2;
    const context = await browser.newContext();
    const name = `churn-${mode}`;
    const churnOutbox = async ({ name, mode }) => {
      window.ob = await window.lib.Outbox.open({
        name, leaderElection: mode, maxConcurrency: 4, retry: { baseDelayMs: 20, maxDelayMs: 100 },
        handlers: {
          post: async (ctx) => {
            // Some first attempts fail, so retries interleave with the failovers.
            if (ctx.attempt === 1 && ctx.mutations.n % 7 === 0) throw new Error('flaky');
            await window.handlers.post(ctx);
          },
        },
      });
    };
    const pages = await tabs(context, 4, { name, mode }, churnOutbox);
    const enqueued = [];
    for (let round = 0; round < 5; round++) {
      // Every tab, the leader included, enqueues 20 at once; one in nine also takes key e.
      const bursts = await Promise.all(pages.map((page, t) => page.evaluate(async (who) => {
        const all = [];
        for (let i = 0; i < 20; i++) {
          const key = ['a', 'b', 'c', 'd'][(i * 7 + who) % 4];
          const keys = i % 9 === 0 ? [key, 'e'] : [key];
          all.push(window.ob.enqueue({ handler: 'post', keys, mutations: { key, n: who * 100 + i } }));
        }
        return (await Promise.all(all)).map((x) => ({ id: x.id, seq: x.seq, keys: x.keys }));
      }, round * 4 + t)));
      enqueued.push(...bursts.flat());
      await sleep(40 + 40 * round);
      const leader = await waitForOneLeader(pages, 10000);
      if (round % 2) {
        const crashed = new Promise((r) => pages[leader].once('crash', r));
        (await context.newCDPSession(pages[leader])).send('Page.crash').catch(() => {});
        await crashed;
      } else {
        await pages[leader].close();
      }
      pages.splice(leader, 1);
      pages.push(await tab(context, churnOutbox, { name, mode }));
    }
    await waitFor(() => srv.api.unique().length >= enqueued.length, 60000, `all ${enqueued.length} sent`);
    const byId = new Map(enqueued.map((t) => [t.id, t]));
    const sent = srv.api.unique();
    assert.equal(sent.length, enqueued.length);
    assert.ok(sent.every((e) => byId.has(e.key)), 'only enqueued transactions are sent');
    const seqsByKey = {};
    for (const entry of sent) for (const key of byId.get(entry.key).keys) (seqsByKey[key] ??= []).push(byId.get(entry.key).seq);
    for (const [key, seqs] of Object.entries(seqsByKey)) {
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `server order of ${key} is seq order`);
    }
    await context.close();
  });

  test(`${mode}: followers in three tabs enqueue concurrently on shared keys; server order is seq order`, async () => {
    srv.api.reset();
    const context = await browser.newContext();
    const name = `followers-${mode}`;
    const pages = await tabs(context, 4, { name, mode });
    const leader = await waitForOneLeader(pages);
    const followers = pages.filter((_, i) => i !== leader);
    const results = await Promise.all(followers.map((page, tab) => page.evaluate(async (tab) => {
      const all = [];
      for (let i = 0; i < 30; i++) {
        const key = ['a', 'b', 'c'][i % 3];
        all.push(window.ob.enqueue({ handler: 'post', keys: [key], mutations: { key, n: tab * 1000 + i } }));
      }
      const infos = await Promise.all(all);
      // Followers learn of every outcome.
      await Promise.all(infos.map((t) => window.ob.settled(t.id)));
      return infos.map((t) => ({ id: t.id, seq: t.seq, key: t.keys[0] }));
    }, tab)));
    const enqueued = results.flat();
    assert.equal(srv.api.unique().length, 90);
    const seqOf = new Map(enqueued.map((t) => [t.id, t.seq]));
    const byKey = {};
    for (const entry of srv.api.unique()) {
      const key = JSON.parse(entry.body).key;
      (byKey[key] ??= []).push(seqOf.get(entry.key));
    }
    for (const [key, seqs] of Object.entries(byKey)) {
      assert.equal(seqs.length, 30);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `server order of ${key} is seq order`);
    }
    await context.close();
  });
}

/** The test app, served so that Chromium may keep it in the back-forward cache. */
const CACHEABLE_APP = 'tests-e2e/pages/app.html?cacheable';

/** Navigates `page` away, into the back-forward cache, with a marker set to tell later. */
async function leaveIntoCache(page) {
  await page.evaluate(() => { window.marker = 'before'; });
  await page.goto(`${srv.origin}/${CACHEABLE_APP}&away`);
}

/** Navigates back to `page`, which must come from the back-forward cache. */
async function backFromCache(page) {
  await page.goBack({ waitUntil: 'commit' });
  const reasons = await page.evaluate(() => JSON.stringify(performance.getEntriesByType('navigation')[0].notRestoredReasons));
  assert.equal(await page.evaluate(() => window.marker), 'before', `restored from the back-forward cache (not: ${reasons})`);
}

for (const mode of ['web-locks', 'broadcast-channel']) {
  test(`${mode}: a leader that goes into the back-forward cache hands over at once, stays cached, and rejoins when restored`, async () => {
    srv.api.reset();
    const cached = await launch({ bfcache: true });
    const context = await cached.newContext();
    const name = `bfcache-${mode}`;
    const pages = [await openApp(context, srv.origin, CACHEABLE_APP), await openApp(context, srv.origin, CACHEABLE_APP)];
    for (const p of pages) {
      await p.evaluate(() => {
        // Holds in a tab that sets `holding`; elsewhere it posts.
        window.handlers.hold = (ctx) => (window.holding ? new Promise(() => {}) : window.handlers.post(ctx));
      });
      await p.evaluate(openOutbox, { name, mode });
    }
    // `a` leads (under the lease, the lower random claimant wins).
    const leader = await waitForOneLeader(pages);
    const [a, b] = leader === 0 ? pages : [...pages].reverse();
    const send = (p, n) => p.evaluate(async (n) => {
      const t = await window.ob.enqueue({ handler: 'post', keys: ['k'], mutations: { key: 'k', n } });
      await window.ob.settled(t.id);
    }, n);
    await send(a, 1);
    // The leader leaves while sending one, with `settled` waiting on it: the next leader
    // sends it while this page is frozen, and says so on a channel this page no longer hears.
    await a.evaluate(() => {
      window.holding = true;
      window.outcome = window.ob.enqueue({ handler: 'hold', keys: ['k'], mutations: { key: 'k', n: 2 } })
        .then((t) => window.ob.settled(t.id)).then(() => 'settled', (e) => e.code);
    });
    await waitFor(() => a.evaluate(async () => (await window.ob.stats()).inFlight === 1), 3000, 'the held attempt');
    await leaveIntoCache(a);
    const t0 = Date.now();
    await waitFor(() => b.evaluate(() => window.ob.isLeader), 3000, 'the follower to lead');
    const handover = Date.now() - t0;
    await waitFor(() => srv.api.unique().length === 2, 3000, 'the new leader to send the held one');
    await send(b, 3);
    await backFromCache(a);
    const outcome = await a.evaluate(() => Promise.race([window.outcome, new Promise((r) => setTimeout(() => r('still waiting'), 3000))]));
    assert.equal(outcome, 'settled', 'its settled() learns the outcome it missed');
    // Restored, it follows (the other tab leads now) and its work goes out through it.
    await sleep(300);
    assert.deepEqual(await leaderFlags([a, b]), [false, true]);
    await a.evaluate(() => { window.holding = false; });
    await send(a, 4);
    await b.close();
    await waitFor(() => a.evaluate(() => window.ob.isLeader), 3000, 'the restored tab to lead again');
    await send(a, 5);
    assert.deepEqual(firstSeenOrder(), { k: [1, 2, 3, 4, 5] });
    assert.equal(srv.api.received.length, 5, 'each once');
    assert.ok(handover < 1000, `handed over in ${handover} ms`);
    await cached.close();
  });
}

test('a follower\'s drain() whose answer came while it was in the back-forward cache is answered once it is restored', async () => {
  srv.api.reset();
  const cached = await launch({ bfcache: true });
  const context = await cached.newContext();
  const [a, b] = [await openApp(context, srv.origin, CACHEABLE_APP), await openApp(context, srv.origin, CACHEABLE_APP)];
  for (const p of [a, b]) {
    // Holds until the page that runs it opens the gate.
    await p.evaluate(() => { window.handlers.gate = () => new Promise((open) => { window.openGate = open; }); });
    await p.evaluate(openOutbox, { name: 'bfcache-rpc', mode: 'web-locks' });
  }
  assert.deepEqual(await leaderFlags([a, b]), [true, false]);
  // The leader drains for the follower until the held attempt ends; the follower is in the
  // cache by then, and the answer goes to the channel it closed.
  await b.evaluate(async () => {
    await window.ob.enqueue({ handler: 'gate', keys: ['k'], mutations: {} });
    window.drained = window.ob.drain().then((r) => `remaining ${r.remaining}`, (e) => e.code);
  });
  await waitFor(() => a.evaluate(() => typeof window.openGate === 'function'), 3000, 'the held attempt');
  await leaveIntoCache(b);
  await a.evaluate(() => window.openGate());
  await waitFor(() => a.evaluate(async () => (await window.ob.stats()).pending === 0), 3000, 'the leader to finish');
  await backFromCache(b);
  // Without a budget a follower's drain waits for its answer, which no one would send again.
  const drained = await b.evaluate(() => Promise.race([window.drained, new Promise((r) => setTimeout(() => r('still waiting'), 3000))]));
  assert.equal(drained, 'remaining 0');
  await cached.close();
});

test('a follower\'s settled() calls made together share one store lookup', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const [a, b] = await tabs(context, 2, { name: 'settled-batch', mode: 'web-locks' }, async (args) => {
    window.handlers.refuse = () => { throw new window.lib.NonRetriableError('refused'); };
    const { Outbox } = window.lib;
    window.ob = await Outbox.open({ name: args.name, leaderElection: args.mode, handlers: window.handlers });
  });
  assert.deepEqual(await leaderFlags([a, b]), [true, false]);
  const result = await b.evaluate(async () => {
    const ids = [];
    for (let n = 0; n < 20; n++) ids.push((await window.ob.enqueue({ handler: 'ok', keys: [`k${n}`], mutations: { n } })).id);
    ids.push((await window.ob.enqueue({ handler: 'refuse', keys: ['r'], mutations: {} })).id);
    // Every outcome was announced before any settled() call: each call asks the store.
    for (;;) {
      const st = await window.ob.stats();
      if (st.pending + st.inFlight === 0 && st.dead === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    let lookups = 0;
    const transaction = IDBDatabase.prototype.transaction;
    IDBDatabase.prototype.transaction = function (stores, ...rest) {
      if ([stores].flat().includes('acked')) lookups++;
      return transaction.call(this, stores, ...rest);
    };
    const first = await Promise.allSettled(ids.map((id) => window.ob.settled(id)));
    const together = lookups;
    // A call made after the lookup has started gets one of its own.
    await window.ob.settled(ids[0]);
    IDBDatabase.prototype.transaction = transaction;
    return { together, after: lookups - together, outcomes: first.map((r) => r.status === 'fulfilled' ? 'ok' : r.reason.code) };
  });
  assert.equal(result.together, 1, 'one lookup for 21 settled() calls');
  assert.equal(result.after, 1);
  assert.deepEqual(result.outcomes, [...Array(20).fill('ok'), 'Dead']);
  await context.close();
});

test('a follower waiting on many transactions takes over without first looking them up: it sends first, and asks the store only about what it does not hold', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const open = async ({ name, hold }) => {
    const { Outbox } = window.lib;
    window.log = [];
    const h = () => { window.log.push('handler'); return hold ? new Promise(() => {}) : undefined; };
    window.ob = await Outbox.open({ name, leaderElection: 'web-locks', handlers: { h } });
  };
  const a = await tab(context, open, { name: 'takeover-waits', hold: true });
  const b = await tab(context, open, { name: 'takeover-waits', hold: false });
  assert.deepEqual(await leaderFlags([a, b]), [true, false]);
  await b.evaluate(async () => {
    const ids = [];
    for (let n = 0; n < 300; n++) ids.push((await window.ob.enqueue({ handler: 'h', keys: [`k${n}`], mutations: n })).id);
    window.done = Promise.all(ids.map((id) => window.ob.settled(id)));
    // The follower's own lookup for these calls (one), then only what follows is logged.
    await new Promise((r) => setTimeout(r, 300));
    window.log = [];
    const transaction = IDBDatabase.prototype.transaction;
    IDBDatabase.prototype.transaction = function (stores, mode, ...rest) {
      const tx = transaction.call(this, stores, mode, ...rest);
      // A settled lookup reads the acked list, read-only (acknowledging writes it).
      if ([stores].flat().includes('acked') && (mode ?? 'readonly') === 'readonly') window.log.push('lookup');
      return tx;
    };
    // The lookup asks the aliases store about each id.
    window.asked = 0;
    const get = IDBObjectStore.prototype.get;
    IDBObjectStore.prototype.get = function (...args) {
      if (this.name === 'aliases') window.asked++;
      return get.apply(this, args);
    };
  });
  await a.close();
  const { log, asked } = await b.evaluate(async () => {
    await window.done;
    return { log: window.log, asked: window.asked };
  });
  assert.equal(log.filter((e) => e === 'handler').length, 300);
  // Before, it looked up all 300 as it took over, before its first send. Now the lookup
  // waits until the outbox is read, and asks only about what it no longer holds: what it
  // has just sent, whose acknowledgement is still being written.
  const before = log.indexOf('lookup');
  assert.ok(before !== 0, `the first send came first: ${log.slice(0, 5)}`);
  assert.ok(asked <= (before === -1 ? 300 : before), `asked about ${asked} ids, with ${before} sent`);
  assert.ok(log.filter((e) => e === 'lookup').length <= 1);
  await context.close();
});

test("a follower that missed outcomes on the channel learns them from the store once leadership changes: under the next leader, or as leader itself", async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const name = 'missed-outcome';
  const pages = [];
  // Opened in this order, Web Locks hands the lock on from c to b, then to a.
  for (let i = 0; i < 3; i++) {
    const p = await openApp(context, srv.origin);
    await p.evaluate((deaf) => {
      window.handlers.refuse = () => { throw new window.lib.NonRetriableError('refused'); };
      window.handlers.hang = () => new Promise(() => {});
      if (!deaf) return;
      // Deaf to the outcome events while `deaf` is set: what a leader gone before its last
      // events went out leaves its followers with.
      const { set, get } = Object.getOwnPropertyDescriptor(BroadcastChannel.prototype, 'onmessage');
      Object.defineProperty(BroadcastChannel.prototype, 'onmessage', {
        get() { return get.call(this); },
        set(f) { set.call(this, f && ((e) => (window.deaf && e.data?.t === 'evs' ? undefined : f(e)))); },
      });
      window.deaf = true;
    }, i === 2);
    await p.evaluate(openOutbox, { name, mode: 'web-locks' });
    pages.push(p);
  }
  const [c, b, a] = pages;
  assert.deepEqual(await leaderFlags([c, b, a]), [true, false, false]);
  srv.api.delayMs = 300;
  // Four waits in one lookup: acknowledged, dead, removed, and one still pending (its
  // handler never answers, in any tab), which must go on waiting.
  const waitOn = (n) => a.evaluate(async (n) => {
    const enq = (handler, key) => window.ob.enqueue({ handler, keys: [key], mutations: { key, n } });
    const hung = await enq('hang', `h${n}`);
    const blocked = await enq('post', `h${n}`);
    const txs = [await enq('post', 'k'), await enq('refuse', `r${n}`), blocked, hung];
    window.outcomes = txs.map((t) => window.ob.settled(t.id).then(() => 'settled', (e) => e.code));
    return blocked.id;
  }, n);
  const outcomes = (ms) => a.evaluate((ms) => Promise.all(window.outcomes.map((o) => Promise.race([o, new Promise((r) => setTimeout(() => r('waiting'), ms))]))), ms);
  for (const [n, leader, next] of [[1, c, b], [2, b, a]]) {
    const blocked = await waitOn(n);
    await waitFor(() => srv.api.unique().length === n, 3000, `transaction ${n} sent`);
    await leader.evaluate((id) => window.ob.remove(id), blocked);
    await waitFor(() => a.evaluate(async () => (await window.ob.stats()).dead === 1), 3000, 'the refused one dead');
    assert.deepEqual(await outcomes(300), ['waiting', 'waiting', 'waiting', 'waiting'], `${n}: the outcome events went unheard`);
    await leader.close();
    await waitFor(() => next.evaluate(() => window.ob.isLeader), 3000, 'the next leader');
    await sleep(300);
    assert.deepEqual(await outcomes(2000), ['settled', 'Dead', 'Removed', 'waiting'], `${n}: learned from the store`);
    // The next round counts its own dead letter.
    await a.evaluate(async () => { for (const t of await window.ob.deadLetters()) await window.ob.discardDead(t.id); });
  }
  assert.equal(srv.api.received.length, 2);
  await context.close();
});

test("a follower's remove() made while no one leads is served by the next leader (the follower itself here)", async () => {
  const context = await browser.newContext();
  const name = 'leaderless-remove';
  const pages = await tabs(context, 2, { name }, async ({ name }) => {
    window.ob = await window.lib.Outbox.open({
      name, leaderElection: 'broadcast-channel',
      handlers: { h: (ctx) => (ctx.mutations === 'head' ? new Promise(() => {}) : undefined) },
    });
  });
  const li = await waitForOneLeader(pages);
  const [leader, follower] = [pages[li], pages[1 - li]];
  const target = await follower.evaluate(async () => {
    await window.ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'head' });
    return (await window.ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'target' })).id;
  });
  // A crashed leader says nothing: its lease has to run out before anyone leads again.
  const crashed = new Promise((r) => leader.once('crash', r));
  (await context.newCDPSession(leader)).send('Page.crash').catch(() => {});
  await crashed;
  const r = await follower.evaluate(async (id) => {
    const leadingAtCall = window.ob.isLeader;
    try {
      await window.ob.remove(id);
    } catch (e) {
      return { leadingAtCall, error: `${e.code}: ${e.message}` };
    }
    return { leadingAtCall, leading: window.ob.isLeader, pending: (await window.ob.peek()).map((t) => t.mutations) };
  }, target);
  assert.deepEqual(r, { leadingAtCall: false, leading: true, pending: ['head'] });
  await context.close();
});

test("a crashed leader's in-flight transaction shows as pending in a follower once another context leads", async () => {
  const context = await browser.newContext();
  const name = 'in-flight-after-crash';
  // Web Locks grants in request order: the second page leads next, the third stays a follower.
  const pages = await tabs(context, 3, { name }, async ({ name }) => {
    window.ob = await window.lib.Outbox.open({ name, leaderElection: 'web-locks', handlers: { h: () => new Promise(() => {}) } });
  });
  const [leader, next, follower] = pages;
  assert.equal(await waitForOneLeader(pages), 0);
  await follower.evaluate(() => window.ob.enqueue({ handler: 'h', keys: ['k'], mutations: 'x' }));
  const status = () => follower.evaluate(async () => (await window.ob.peek())[0]?.status);
  await waitFor(async () => (await status()) === 'in-flight', 5000, 'the follower to see it in flight');
  // Offline, the next leader attempts nothing: the transaction stays pending there.
  await context.setOffline(true);
  const crashed = new Promise((r) => leader.once('crash', r));
  (await context.newCDPSession(leader)).send('Page.crash').catch(() => {});
  await crashed;
  await waitFor(() => next.evaluate(() => window.ob.isLeader), 5000, 'the next leader');
  await waitFor(async () => (await status()) === 'pending', 3000, 'the follower to show it pending');
  await context.close();
});

test('followers: events, settled, peek, stats, drain and remove through the leader', async () => {
  srv.api.reset();
  srv.api.delayMs = 400;
  const context = await browser.newContext();
  const name = 'follower-api';
  const [a, b] = await tabs(context, 2, { name, mode: 'web-locks' });
  assert.deepEqual(await leaderFlags([a, b]), [true, false]);
  const out = await b.evaluate(async () => {
    const events = [];
    window.ob.subscribe((e) => events.push(e.type));
    const first = await window.ob.enqueue({ handler: 'post', keys: ['k'], mutations: { key: 'k', n: 1 } });
    const second = await window.ob.enqueue({ handler: 'post', keys: ['k'], mutations: { key: 'k', n: 2 } });
    const third = await window.ob.enqueue({ handler: 'post', keys: ['k'], mutations: { key: 'k', n: 3 } });
    const removedWaiter = window.ob.settled(third.id).then(() => 'settled', (e) => e.code);
    while (!events.includes('sending')) await new Promise((r) => setTimeout(r, 10));
    const peek = (await window.ob.peek()).map((t) => [t.mutations.n, t.status]);
    const removeFlying = await window.ob.remove(first.id).then(() => 'removed', (e) => e.code);
    const removeWaiting = await window.ob.remove(third.id).then(() => 'removed', (e) => e.code);
    const removeUnknown = await window.ob.remove('no-such-id').then(() => 'removed', (e) => e.code);
    await window.ob.settled(second.id);
    const report = await window.ob.drain();
    const stats = await window.ob.stats();
    return { events, peek, removeFlying, removeWaiting, removeUnknown, removed: await removedWaiter, report, stats };
  });
  assert.deepEqual(out.peek, [[1, 'in-flight'], [2, 'pending'], [3, 'pending']]);
  assert.equal(out.removeFlying, 'InFlight');
  assert.equal(out.removeWaiting, 'removed');
  assert.equal(out.removeUnknown, 'NotFound');
  assert.equal(out.removed, 'Removed');
  for (const t of ['enqueued', 'sending', 'sent', 'removed']) assert.ok(out.events.includes(t), `${t} in ${out.events}`);
  assert.equal(out.report.complete, true);
  assert.deepEqual([out.stats.isLeader, out.stats.pending, out.stats.inFlight, out.stats.sent], [false, 0, 0, 2]);
  assert.deepEqual(srv.api.unique().map((e) => JSON.parse(e.body).n), [1, 2]);
  await context.close();
});

test('signing out: deleting the database from a follower wipes the outbox in every tab; the leader stops, and a reopen starts empty', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const name = 'sign-out';
  // Each page's handler holds every call and records its signal's abort.
  const open = async ({ name }) => {
    const { Outbox } = window.lib;
    window.calls = 0;
    window.aborted = 0;
    window.lost = [];
    const hold = (ctx) => {
      window.calls++;
      ctx.signal.addEventListener('abort', () => window.aborted++);
      return new Promise(() => {});
    };
    window.ob = await Outbox.open({ name, leaderElection: 'web-locks', handlers: { hold } });
    window.ob.subscribe((e) => { if (e.type === 'storage-lost') window.lost.push([e.reason, e.pending]); });
  };
  const [a, b] = await tabs(context, 2, { name }, open);
  assert.deepEqual(await leaderFlags([a, b]), [true, false]);
  await b.evaluate(async () => {
    for (const key of ['x', 'y', 'z']) await window.ob.enqueue({ handler: 'hold', keys: [key], mutations: key });
  });
  await a.waitForFunction(() => window.calls === 3);
  // The app's sign-out, in the follower: its own outbox closed, then the database deleted.
  const deletion = await b.evaluate(async (name) => {
    await window.ob.close();
    const events = [];
    await new Promise((resolve) => {
      const req = indexedDB.deleteDatabase(`offline-outbox:${name}`);
      req.onblocked = () => events.push('blocked');
      req.onsuccess = () => resolve(events.push('deleted'));
      req.onerror = () => resolve(events.push(`error: ${req.error}`));
    });
    return events;
  }, name);
  assert.deepEqual(deletion, ['deleted'], 'the leader let go of the database at once');
  await a.waitForFunction(() => window.lost.length === 1);
  const leader = await a.evaluate(async () => ({
    lost: window.lost,
    aborted: window.aborted,
    enqueue: await window.ob.enqueue({ handler: 'hold', keys: [], mutations: 'late' }).then(() => 'stored', (e) => e.code),
  }));
  assert.deepEqual(leader, { lost: [['deleted', 3]], aborted: 3, enqueue: 'StorageUnavailable' });
  // The next user's outbox, under the same name: empty, and this tab leads it.
  const fresh = await a.evaluate(async (name) => {
    const ob = await window.lib.Outbox.open({ name, handlers: { hold: () => {} } });
    const [peek, dead, stats] = await Promise.all([ob.peek(), ob.deadLetters(), ob.stats()]);
    await ob.close();
    return { peek: peek.length, dead: dead.length, pending: stats.pending + stats.inFlight, isLeader: stats.isLeader };
  }, name);
  assert.deepEqual(fresh, { peek: 0, dead: 0, pending: 0, isLeader: true });
  await context.close();
});
