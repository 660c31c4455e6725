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
  srv.api.script.push({ status: 503 });
  const id = await page.evaluate(async () => {
    const t = await window.ob.enqueue({ handler: 'http', keys: ['k'], mutations: { method: 'POST', url: '/api/mutate', body: '{"key":"k","n":1}' } });
    while ((await window.ob.peek())[0]?.attempts !== 1) await new Promise((r) => setTimeout(r, 10));
    return t.id;
  });
  const [before] = await page.evaluate(() => window.ob.peek());
  assert.equal(before.lastError.name, 'HttpError');
  assert.ok(before.nextAttemptAt > Date.now() + 60000);
  await context.setOffline(true);
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

test('while the browser is offline nothing is attempted (no attempt spent); drain() reports what waits', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const page = await openApp(context, srv.origin);
  await context.setOffline(true);
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    let calls = 0;
    const ob = await Outbox.open({ name: 'offline-idle', retry: { baseDelayMs: 50, maxDelayMs: 50, maxAttempts: 2 }, handlers: { h: async () => { calls++; } } });
    window.ob = ob;
    window.calls = () => calls;
    const t = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: 1 });
    const drained = await ob.drain();
    await new Promise((res) => setTimeout(res, 500));
    const [p] = await ob.peek();
    return { id: t.id, drained: drained.remaining, calls, attempts: p.attempts, dead: (await ob.deadLetters()).length };
  });
  assert.deepEqual({ drained: r.drained, calls: r.calls, attempts: r.attempts, dead: r.dead }, { drained: 1, calls: 0, attempts: 0, dead: 0 });
  await context.setOffline(false);
  await page.evaluate((id) => window.ob.settled(id), r.id);
  assert.equal(await page.evaluate(() => window.calls()), 1);
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
