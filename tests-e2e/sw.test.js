// Queued work goes out after every tab has closed: the service worker drains on
// Background Sync (fired through CDP), and without the Sync API on worker start / online.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startSuite, stopSuite, openApp, sleep, waitFor, ROOT } from './harness.js';

let srv, browser;

before(async () => ({ srv, browser } = await startSuite()));
after(() => stopSuite({ srv, browser }));

const TAG = 'offline-outbox:sw-test';


/**
 * Registers the worker, then enqueues 5 HTTP transactions while offline; returns ids. The
 * page's outbox stays open, as `window.ob`.
 */
async function enqueueOffline(context, script, type) {
  const page = await openApp(context, srv.origin);
  await page.evaluate(async ({ script, type }) => {
    await navigator.serviceWorker.register(script, { type });
    await navigator.serviceWorker.ready;
  }, { script, type });
  await context.setOffline(true);
  const ids = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = window.ob = await Outbox.open({ name: 'sw-test', handlers: {}, retry: { baseDelayMs: 600000, maxDelayMs: 600000, jitter: 'none' } });
    const ids = [];
    for (let n = 0; n < 5; n++) {
      const t = await ob.enqueue({ handler: 'http', keys: [`k${n}`], mutations: { method: 'POST', url: '/api/mutate', body: JSON.stringify({ key: `k${n}`, n }) } });
      ids.push(t.id);
    }
    // Offline, the page attempts nothing (it registered the sync tag instead).
    await new Promise((r) => setTimeout(r, 200));
    if ((await ob.peek()).some((t) => t.attempts > 0)) throw new Error('an attempt was made offline');
    return ids;
  });
  return { page, ids };
}

/**
 * A fresh context with the worker registered and five transactions queued offline (see
 * `enqueueOffline`), and a CDP session on a blank page of its own, which outlives the app
 * page.
 */
async function queuedOffline(script, type) {
  srv.api.reset();
  const context = await browser.newContext();
  const cdp = await context.newCDPSession(await context.newPage());
  const { page, ids } = await enqueueOffline(context, script, type);
  return { context, cdp, page, ids };
}

/** Fires the worker's sync: the server must then get the request of idempotency key `key`,
 *  the only one, once. */
async function syncSendsOnce(cdp, registrationId, key) {
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId, tag: TAG, lastChance: false });
  await waitFor(() => srv.api.byKey.has(key), 15000, 'the worker to send it');
  await sleep(200);
  assert.equal(srv.api.received.length, 1, 'once');
}

/** Ends a test whose worker queued `key` while offline: the page closes, the browser is
 *  back online, and the worker's sync must send that request, the only one, once. */
async function backOnlineSendsOnce({ context, cdp, page }, id, key) {
  await page.close();
  await context.setOffline(false);
  await syncSendsOnce(cdp, id, key);
  await context.close();
}

/** Where the test workers are registered. */
const scope = () => `${srv.origin}/tests-e2e/pages/`;

async function registrationId(cdp) {
  const found = new Promise((resolve) => {
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const r = registrations.find((x) => x.scopeURL === scope() && !x.isDeleted);
      if (r) resolve(r.registrationId);
    });
  });
  await cdp.send('ServiceWorker.enable');
  return found;
}

for (const [kind, script, type] of [['module', 'sw-module.js', 'module'], ['classic', 'sw-classic.js', 'classic']]) {
  test(`${kind} service worker: sync after every tab closed sends each transaction once`, async () => {
    const { context, cdp, page, ids } = await queuedOffline(script, type);
    const tags = await page.evaluate(async () => (await navigator.serviceWorker.ready).sync.getTags());
    assert.ok(tags.includes(TAG), `the page registered the sync tag: ${tags}`);
    assert.equal(srv.api.received.length, 0);
    await page.close();
    await context.setOffline(false);
    const id = await registrationId(cdp);
    await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
    await waitFor(() => srv.api.unique().length === 5, 15000, 'the worker to send all five').catch(async (e) => {
      const [sw] = context.serviceWorkers();
      const state = sw && await sw.evaluate(async () => JSON.stringify({
        online: navigator.onLine,
        syncs: self.syncs,
        locks: await navigator.locks.query(),
        stats: await Promise.race([self.outbox.then((ob) => ob.stats()), new Promise((r) => setTimeout(() => r('no answer'), 1000))]),
      })).catch((err) => String(err));
      throw new Error(`${e.message}: ${srv.api.unique().length} sent; worker ${state}`);
    });
    await sleep(200);
    assert.equal(srv.api.received.length, 5, 'each request exactly once');
    assert.deepEqual(srv.api.received.map((r) => r.key).sort(), [...ids].sort());
    await context.close();
  });
}

/**
 * A fresh context with a page controlled by the module worker (the README's fetch recipe
 * in it), which uses no outbox of its own: the worker's is the only one. With a CDP session
 * on a blank page of its own, as `queuedOffline` gives. `script` is the worker's URL (its
 * query may name the module's); `caches`, cache names the page makes before registering.
 */
async function controlledPage({ caches: made = [], script = 'sw-module.js' } = {}) {
  srv.api.reset();
  const context = await browser.newContext();
  const cdp = await context.newCDPSession(await context.newPage());
  const page = await openApp(context, srv.origin);
  await page.evaluate(async ({ made, script }) => {
    for (const name of made) await (await caches.open(name)).put('/stale.wasm', new Response('old'));
    await navigator.serviceWorker.register(script, { type: 'module' });
    await navigator.serviceWorker.ready;
  }, { made, script });
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  return { context, cdp, page };
}

/** A POST from `page` that the worker's fetch recipe queues if it cannot go out, with
 *  Idempotency-Key `key`: its status, or the error it failed with. */
const postQueued = (page, key) => page.evaluate((key) => fetch('/api/mutate?queue', {
  method: 'POST', headers: { 'Idempotency-Key': key }, body: key,
}).then((r) => r.status, (e) => String(e)), key);

test('a worker started offline (to queue a page\'s POST) loads the module from its cache; its install fetched it once and dropped its scope\'s other builds\' caches', async () => {
  const stale = `offline-outbox-wasm ${scope()} 0000000000000000`;
  const otherScope = `offline-outbox-wasm ${srv.origin}/elsewhere/ 0000000000000000`;
  const wasm = '/pkg/offline_outbox_bg.wasm?worker';
  const { context, cdp, page } = await controlledPage({ caches: [stale, otherScope], script: `sw-module.js?wasm=${encodeURIComponent(wasm)}` });
  assert.equal(srv.api.files.get(wasm), 1, 'one fetch of the module served the install and the open');
  const names = await page.evaluate(() => caches.keys());
  assert.equal(names.length, 2, `this build's module cache and another scope's: ${names}`);
  assert.ok(names.includes(otherScope), 'another scope\'s worker may run another build: its cache is kept');
  const ours = names.find((n) => n !== otherScope);
  assert.ok(ours.startsWith(`offline-outbox-wasm ${scope()} `), ours);
  assert.match(ours.split(' ').pop(), /^[0-9a-f]{16}$/, 'named for this build');
  const id = await registrationId(cdp);
  // (Offline first: the emulation then covers the worker as it starts again.)
  await context.setOffline(true);
  await cdp.send('ServiceWorker.stopAllWorkers');
  // The POST starts the worker, offline: before, it could not fetch the module, its
  // outbox never opened, and the POST failed like any other offline.
  assert.equal(await postQueued(page, 'queued-cold'), 202);
  await backOnlineSendsOnce({ context, cdp, page }, id, 'queued-cold');
});

test('the worker keeps only this build\'s module: where the HTTP cache answers with another, it asks the server', async () => {
  const wasm = '/pkg/offline_outbox_bg.wasm?stale';
  const { context, page } = await controlledPage({ script: `sw-module.js?wasm=${encodeURIComponent(wasm)}` });
  assert.ok(srv.api.staleServed >= 1, 'the first answer was an older build');
  const kept = await page.evaluate(async (wasm) => {
    const [name] = await caches.keys();
    const hit = await (await caches.open(name)).match(new URL(wasm, location.href).href);
    return hit && (await hit.arrayBuffer()).byteLength;
  }, wasm);
  assert.equal(kept, fs.statSync(path.join(ROOT, 'pkg/offline_outbox_bg.wasm')).size);
  const [sw] = context.serviceWorkers();
  assert.equal(await sw.evaluate(() => self.outbox.then(() => 'opened', (e) => `failed: ${e}`)), 'opened');
  await context.close();
});

test('a POST a page makes offline is queued by the worker (the README\'s fetch recipe) and sent on sync: its bytes, type and idempotency key', async () => {
  const { context, cdp, page } = await controlledPage();
  await context.setOffline(true);
  const statuses = await page.evaluate(async () => {
    const post = (n, headers, body) => fetch(`/api/mutate?queue&n=${n}`, { method: 'POST', headers, body }).then((r) => r.status);
    const photo = Uint8Array.from({ length: 3000 }, (_, i) => i % 251);
    return [
      await post(1, { 'Content-Type': 'image/png', 'Idempotency-Key': 'upload-1' }, new Blob([photo])),
      await post(2, { 'Content-Type': 'application/json', 'Idempotency-Key': 'note-2' }, JSON.stringify({ text: 'é' })),
    ];
  });
  assert.deepEqual(statuses, [202, 202], 'the worker answered for the server');
  assert.equal(srv.api.received.length, 0);
  await page.close();
  await context.setOffline(false);
  const id = await registrationId(cdp);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
  await waitFor(() => srv.api.unique().length === 2, 15000, 'the worker to send both');
  await sleep(200);
  assert.equal(srv.api.received.length, 2, 'each once');
  const [photo, note] = srv.api.received;
  assert.equal(photo.key, 'upload-1', 'sent first: the same key (path), in order');
  assert.equal(photo.headers['content-type'], 'image/png');
  assert.deepEqual([...photo.bytes], Array.from({ length: 3000 }, (_, i) => i % 251));
  assert.equal(note.key, 'note-2');
  assert.equal(note.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(note.body), { text: 'é' });
  await context.close();
});

test('a POST that fails while the browser says online (a network that reaches nothing) is queued by the worker, which registers its sync at once', async () => {
  const { context, cdp, page } = await controlledPage();
  srv.api.down = true;
  assert.equal(await postQueued(page, 'sent-later'), 202);
  const [sw] = context.serviceWorkers();
  assert.ok(await sw.evaluate(() => navigator.onLine), 'the worker thinks it is online');
  // Before, only an enqueue made offline registered it, and no page is left to send.
  await waitFor(() => sw.evaluate((tag) => self.registered.includes(tag), TAG), 3000, 'the worker to register its sync');
  await page.close();
  srv.api.down = false;
  await syncSendsOnce(cdp, await registrationId(cdp), 'sent-later');
  await context.close();
});

test('a sync that fires while the worker still sees itself offline waits for it to come online', async () => {
  const { context, cdp, page, ids } = await queuedOffline('sw-module.js', 'module');
  await page.close();
  const [sw] = context.serviceWorkers();
  // The connection is back, and a sync fires; the worker hears of it 300 ms later.
  await sw.evaluate(() => { self.lagOnline = true; });
  await context.setOffline(false);
  const id = await registrationId(cdp);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
  await sleep(300);
  assert.equal(srv.api.received.length, 0);
  await sw.evaluate(() => { self.lagOnline = false; self.dispatchEvent(new Event('online')); });
  await waitFor(() => srv.api.unique().length === 5, 10000, 'the worker to send all five');
  await sleep(200);
  assert.equal(srv.api.received.length, 5, 'each request exactly once');
  assert.deepEqual(srv.api.unique().map((r) => r.key).sort(), [...ids].sort());
  const syncs = await sw.evaluate(() => self.syncs);
  assert.ok(syncs.some((s) => s.online === false && s.outcome === 'resolved'), `a sync begun offline resolved: ${JSON.stringify(syncs)}`);
  await context.close();
});

test('a worker whose outbox could not open (started offline) opens it on the next sync', async () => {
  const { context, cdp, page, ids } = await queuedOffline('sw-classic.js', 'classic');
  await page.close();
  const id = await registrationId(cdp);
  // Restarted while offline without the module in its cache (as a worker installed
  // offline), the worker cannot fetch it, so its open fails.
  const [running] = context.serviceWorkers();
  assert.ok(await running.evaluate(async () => (await caches.keys()).length === 1 && caches.delete((await caches.keys())[0])), 'the install cached the module');
  await cdp.send('ServiceWorker.stopAllWorkers');
  await cdp.send('ServiceWorker.startWorker', { scopeURL: scope() });
  let sw;
  await waitFor(async () => {
    sw = context.serviceWorkers()[0];
    return sw && await sw.evaluate(() => self.outbox !== undefined).catch(() => false);
  }, 5000, 'the restarted worker');
  assert.match(await sw.evaluate(() => self.outbox.then(() => 'opened', (e) => `failed: ${e}`)), /^failed/);
  await context.setOffline(false);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
  await waitFor(() => srv.api.unique().length === 5, 15000, 'the worker to send all five');
  assert.deepEqual(srv.api.unique().map((r) => r.key).sort(), [...ids].sort());
  await context.close();
});

test('the recipe\'s `await outbox` after an open that failed opens again: a POST queued once the worker could open', async () => {
  const { context, cdp, page } = await controlledPage();
  const id = await registrationId(cdp);
  // Started offline without its module (as one installed offline), the worker cannot open
  // its outbox, so it cannot queue the POST that started it.
  assert.ok(await page.evaluate(async () => (await caches.keys()).length === 1 && caches.delete((await caches.keys())[0])), 'the install cached the module');
  await context.setOffline(true);
  await cdp.send('ServiceWorker.stopAllWorkers');
  assert.match(await postQueued(page, 'lost'), /TypeError/);
  const [sw] = context.serviceWorkers();
  // Online, a sync opens the outbox in the same worker.
  await context.setOffline(false);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
  await waitFor(() => sw.evaluate(() => self.syncOutcomes.length === 1), 10000, 'the sync to end');
  assert.deepEqual(await sw.evaluate(() => self.syncOutcomes), ['resolved']);
  // Offline again, the next POST is queued. Before, `installOutboxSync` returned the first
  // open's promise, which kept its failure for the worker's life, and this POST failed too.
  await context.setOffline(true);
  assert.equal(await postQueued(page, 'queued-later'), 202);
  await backOnlineSendsOnce({ context, cdp, page }, id, 'queued-later');
});

test('a worker whose database was deleted (the app signing a user out) queues the next POST in a fresh outbox', async () => {
  const { context, cdp, page } = await controlledPage();
  const id = await registrationId(cdp);
  await context.setOffline(true);
  assert.equal(await postQueued(page, 'before-wipe'), 202);
  const deleted = await page.evaluate(() => new Promise((resolve) => {
    const req = indexedDB.deleteDatabase('offline-outbox:sw-test');
    req.onsuccess = () => resolve('deleted');
    req.onerror = () => resolve(String(req.error));
  }));
  assert.equal(deleted, 'deleted');
  // Before, the worker kept its outbox, which refuses every call once its database is
  // gone, and the POST failed.
  assert.equal(await postQueued(page, 'after-wipe'), 202);
  // Only what was queued after the wipe goes out.
  await backOnlineSendsOnce({ context, cdp, page }, id, 'after-wipe');
});

test('without the Sync API in the page, work drains when the browser is back online', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(() => {
    delete window.SyncManager;
    Object.defineProperty(ServiceWorkerRegistration.prototype, 'sync', { get: () => undefined });
  });
  await page.goto(`${srv.origin}/tests-e2e/pages/app.html`);
  await page.waitForFunction(() => window.ready === true);
  await context.setOffline(true);
  await page.evaluate(async () => {
    const { Outbox } = window.lib;
    window.ob = await Outbox.open({ name: 'nosync-page', handlers: {}, retry: { baseDelayMs: 600000, maxDelayMs: 600000, jitter: 'none' } });
    for (let n = 0; n < 3; n++) {
      await window.ob.enqueue({ handler: 'http', keys: ['k'], mutations: { method: 'POST', url: '/api/mutate', body: JSON.stringify({ key: 'k', n }) } });
    }
  });
  await sleep(200);
  assert.equal(srv.api.received.length, 0);
  await context.setOffline(false);
  await waitFor(() => srv.api.unique().length === 3, 5000, 'the drain on online');
  await context.close();
});

test('without the Sync API in the worker, a restarted worker drains', async () => {
  const { context, cdp, page, ids } = await queuedOffline('sw-nosync.js', 'classic');
  await page.close();
  await context.setOffline(false);
  // Its `online` fallback may already be draining (tested on its own below); either way
  // a restarted worker finishes the job.
  await cdp.send('ServiceWorker.enable');
  await cdp.send('ServiceWorker.stopAllWorkers');
  // The browser starts the worker again (for any event); it drains on start.
  await cdp.send('ServiceWorker.startWorker', { scopeURL: scope() });
  await waitFor(() => srv.api.unique().length === 5, 15000, 'the worker to drain on start');
  assert.deepEqual(srv.api.unique().map((r) => r.key).sort(), [...ids].sort());
  await context.close();
});

test('a sync that cannot finish rejects (the browser retries) and registers again on its last chance', async () => {
  const { context, cdp, page } = await queuedOffline('sw-module.js', 'module');
  await page.close();
  // The server is down: every request gets a 503. Set before going online, since the
  // browser fires the registered tag by itself once online.
  srv.api.script = Array.from({ length: 1000 }, () => ({ status: 503 }));
  await context.setOffline(false);
  const id = await registrationId(cdp);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: true });
  const [sw] = context.serviceWorkers();
  await waitFor(async () => (await sw.evaluate(() => self.syncOutcomes.length)) >= 1, 15000, 'the sync outcome');
  assert.equal(await sw.evaluate(() => self.syncOutcomes[0]), 'rejected');
  assert.deepEqual(await sw.evaluate(() => self.registered.slice(0, 1)), [TAG]);
  assert.ok(srv.api.received.length >= 5, 'it did try');
  // The tag registered again may fire at once (the browser is online), and fail again
  // while the server is down: every outcome until the server is back is a rejection.
  const before = await sw.evaluate(() => self.syncOutcomes.length);
  assert.deepEqual(await sw.evaluate(() => self.syncOutcomes), Array(before).fill('rejected'));
  // The server is back; the next sync finishes and resolves. The browser runs one sync
  // of a tag at a time: one it fired itself (the tag registered again) may still be
  // running when this one is dispatched, so the browser's retry is played by dispatching
  // again while no sync has resolved.
  srv.api.script = [];
  const outcomes = () => sw.evaluate(() => self.syncOutcomes);
  for (let round = 0; round < 3 && !(await outcomes()).slice(before).includes('resolved'); round++) {
    const seen = (await outcomes()).length;
    await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
    await waitFor(async () => (await outcomes()).length > seen, 10000, 'a sync outcome').catch(() => {});
  }
  const after = (await outcomes()).slice(before);
  assert.ok(after.includes('resolved'), `a sync resolved once the server was back: ${after}, ${srv.api.unique().length} of 5 sent`);
  assert.equal(after.at(-1), 'resolved', `nothing after it rejected: ${after}`);
  assert.equal(srv.api.unique().length, 5);
  await context.close();
});

test('a worker sync while a tab leads: the tab drains, nothing is sent twice', async () => {
  srv.api.reset();
  srv.api.delayMs = 200;
  const context = await browser.newContext();
  const blank = await context.newPage();
  const cdp = await context.newCDPSession(blank);
  const page = await openApp(context, srv.origin);
  await page.evaluate(async () => {
    await navigator.serviceWorker.register('sw-module.js', { type: 'module' });
    await navigator.serviceWorker.ready;
    const { Outbox } = window.lib;
    window.ob = await Outbox.open({ name: 'sw-test', handlers: {} });
    for (let n = 0; n < 10; n++) {
      await window.ob.enqueue({ handler: 'http', keys: [`k${n % 2}`], mutations: { method: 'POST', url: '/api/mutate', body: JSON.stringify({ key: `k${n % 2}`, n }) } });
    }
  });
  assert.equal(await page.evaluate(() => window.ob.isLeader), true);
  const id = await registrationId(cdp);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
  const [sw] = context.serviceWorkers();
  await waitFor(async () => (await sw.evaluate(() => self.syncOutcomes.length)) === 1, 20000, 'the sync outcome');
  assert.deepEqual(await sw.evaluate(() => self.syncOutcomes), ['resolved']);
  assert.equal(await sw.evaluate(async () => (await self.outbox).isLeader), false);
  assert.equal(srv.api.received.length, 10, 'each sent once');
  assert.equal(srv.api.unique().length, 10);
  await context.close();
});

test('a sync while the lock holder answers nothing (a tab on its way out): the worker drains once it is gone, without waiting out its budget', async () => {
  const { context, cdp, page, ids } = await queuedOffline('sw-module.js', 'module');
  await page.evaluate(async () => {
    await window.ob.close();
    // The leader lock, held by a page whose outbox is gone: no one answers the worker.
    await new Promise((held) => navigator.locks.request('offline-outbox:sw-test', () => { held(); return new Promise(() => {}); }));
  });
  await context.setOffline(false);
  const id = await registrationId(cdp);
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: srv.origin, registrationId: id, tag: TAG, lastChance: false });
  await sleep(500);
  assert.equal(srv.api.received.length, 0, 'nothing goes while the lock is held');
  await page.close();
  // The worker's budget is 25 s; its lock request is granted as the page goes.
  await waitFor(() => srv.api.unique().length === 5, 5000, 'the worker to drain after the page went');
  assert.deepEqual(srv.api.unique().map((r) => r.key).sort(), [...ids].sort());
  await context.close();
});

test('without the Sync API in the worker, it drains when the browser is back online', async () => {
  srv.api.reset();
  const context = await browser.newContext();
  const { page, ids } = await enqueueOffline(context, 'sw-nosync.js', 'classic');
  await page.close();
  assert.equal(srv.api.received.length, 0);
  await context.setOffline(false);
  await waitFor(() => srv.api.unique().length === 5, 15000, 'the worker to drain on online');
  assert.deepEqual(srv.api.unique().map((r) => r.key).sort(), [...ids].sort());
  await context.close();
});
