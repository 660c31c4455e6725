// What survives a reload and a crashed tab: everything enqueue resolved, sent in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite, openApp } from './harness.js';

let srv, browser;

before(async () => ({ srv, browser } = await startSuite()));
after(() => stopSuite({ srv, browser }));

/** Per key, the order in which the server first received each transaction. */
function orderByKey(received) {
  const out = {};
  for (const r of received) {
    const body = JSON.parse(r.body);
    (out[body.key] ??= []).includes(body.n) || out[body.key].push(body.n);
  }
  return out;
}

test('a page reload with pending work drains after reopening, in per-key order', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const page = await openApp(context, srv.origin);
  const enqueued = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    // This page cannot send: its handler never settles.
    const ob = await Outbox.open({ name: 'reload', handlers: { post: () => new Promise(() => {}) } });
    const out = [];
    for (let n = 0; n < 30; n++) {
      const key = ['a', 'b', 'c'][n % 3];
      const t = await ob.enqueue({ handler: 'post', keys: [key], mutations: { key, n } });
      out.push(t.seq);
    }
    return out;
  });
  await page.reload();
  await page.waitForFunction(() => window.ready === true);
  const left = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    // Sending waits until the pending ones are counted: peek() reports what is pending
    // once the outbox has read it all, and sends may finish meanwhile.
    let counted;
    const gate = new Promise((res) => { counted = res; });
    const ob = await Outbox.open({ name: 'reload', handlers: { post: async (ctx) => { await gate; return window.handlers.post(ctx); } } });
    const pending = (await ob.peek()).length;
    counted();
    while ((await ob.stats()).pending + (await ob.stats()).inFlight > 0) await ob.drain();
    await ob.close();
    return pending;
  });
  assert.equal(left, 30);
  assert.equal(enqueued.length, 30);
  const order = orderByKey(srv.api.received);
  assert.deepEqual(order.a, [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
  assert.deepEqual(order.b, [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]);
  assert.deepEqual(order.c, [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]);
  assert.equal(srv.api.unique().length, 30);
  await context.close();
});

test('a crashed tab loses nothing that enqueue resolved', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const page = await openApp(context, srv.origin);
  const durable = [];
  await page.exposeFunction('reportDurable', (id) => { durable.push(id); });
  // Enqueue continuously; every resolved enqueue is reported to the test at once.
  await page.evaluate(() => {
    const { Outbox } = window.lib;
    (async () => {
      const ob = await Outbox.open({ name: 'crash', handlers: { post: () => new Promise(() => {}) } });
      for (let n = 0; ; n++) {
        const batch = [];
        for (let i = 0; i < 5; i++) batch.push(ob.enqueue({ handler: 'post', keys: [`k${i}`], mutations: { key: `k${i}`, n } }).then((t) => window.reportDurable(t.id)));
        await Promise.all(batch);
      }
    })();
  });
  while (durable.length < 200) await new Promise((r) => setTimeout(r, 5));
  const crashed = new Promise((r) => page.once('crash', r));
  const cdp = await context.newCDPSession(page);
  cdp.send('Page.crash').catch(() => {});
  await crashed;
  const reported = [...durable];
  const fresh = await openApp(context, srv.origin);
  const stored = await fresh.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'crash', handlers: { post: () => new Promise(() => {}) } });
    const ids = (await ob.peek()).map((t) => t.id);
    await ob.close();
    return ids;
  });
  const have = new Set(stored);
  const lost = reported.filter((id) => !have.has(id));
  assert.ok(reported.length >= 200);
  assert.deepEqual(lost, [], `${lost.length} of ${reported.length} durable transactions lost`);
  await context.close();
});
