// Drain triggers from the browser: the `online` event and the tab becoming visible.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite, openApp } from './harness.js';

let srv, browser;

before(async () => ({ srv, browser } = await startSuite()));
after(() => stopSuite({ srv, browser }));


test('going back online resets the backoff and drains at once', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const page = await openApp(context, srv.origin);
  await page.evaluate(async () => {
    const { Outbox } = window.lib;
    // A backoff of ten minutes: only the online trigger can bring the retry forward.
    window.ob = await Outbox.open({ name: 'online', handlers: window.handlers, retry: { baseDelayMs: 600000, maxDelayMs: 600000, jitter: 'none' } });
  });
  await context.setOffline(true);
  const id = await page.evaluate(async () => {
    const t = await window.ob.enqueue({ handler: 'http', keys: ['k'], mutations: { method: 'POST', url: '/api/mutate', body: '{"key":"k","n":1}' } });
    while ((await window.ob.peek())[0]?.attempts !== 1) await new Promise((r) => setTimeout(r, 10));
    return t.id;
  });
  const [before] = await page.evaluate(() => window.ob.peek());
  assert.equal(before.lastError.name, 'NetworkError');
  assert.ok(before.nextAttemptAt > Date.now() + 60000);
  await context.setOffline(false);
  const settled = await page.evaluate(async (id) => {
    const done = await Promise.race([window.ob.settled(id).then(() => 'settled'), new Promise((r) => setTimeout(() => r('still waiting'), 5000))]);
    return done;
  }, id);
  assert.equal(settled, 'settled');
  assert.equal(srv.api.unique().length, 1);
  assert.equal(srv.api.unique()[0].key, id);
  await context.close();
});

test('the tab becoming visible drains what throttled timers held back', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Stand-in for a throttled background tab: long timers never fire.
  await page.addInitScript(() => {
    const real = globalThis.setTimeout;
    globalThis.setTimeout = (f, ms, ...rest) => (ms >= 200 ? 0 : real(f, ms, ...rest));
  });
  await page.goto(`${srv.origin}/tests-e2e/pages/app.html`);
  await page.waitForFunction(() => window.ready === true);
  const calls = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    let calls = 0;
    window.ob = await Outbox.open({
      name: 'visible',
      handlers: { flaky: async () => { calls++; if (calls === 1) throw Object.assign(new Error('later'), { retryAfterMs: 300 }); } },
    });
    const t = await window.ob.enqueue({ handler: 'flaky', keys: ['k'], mutations: {} });
    await new Promise((r) => queueMicrotask(r));
    const wait = (ms) => new Promise((r) => { const start = performance.now(); const spin = () => (performance.now() - start >= ms ? r() : requestAnimationFrame(spin)); spin(); });
    await wait(600);
    const before = calls;
    document.dispatchEvent(new Event('visibilitychange'));
    await Promise.race([window.ob.settled(t.id), wait(3000)]);
    return [before, calls];
  });
  assert.deepEqual(calls, [1, 2]);
  await context.close();
});
