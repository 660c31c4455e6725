// Service worker entry of offline-outbox. In a module service worker:
//
//   import { installOutboxSync } from 'offline-outbox/sw';
//   installOutboxSync({ name: 'todos', handlers: { /* as in the page, or only 'http' */ } });
//
// In a classic one: importScripts('.../offline_outbox_classic.js'), then
// offlineOutbox.installOutboxSync({ name, handlers, wasm: '.../offline_outbox_bg.wasm' }).
//
// The worker never sits on leadership: on a `sync` event it drains only if no open page
// leads (otherwise that page drains, or the worker does as soon as that page goes away),
// within `budgetMs`. The event's promise resolves when
// the outbox is empty and rejects while work remains, so the browser retries later; on the
// last chance the tag is registered again. Without the Sync API it drains on worker start,
// on `online`, and when a page asks (it posts { type: 'offline-outbox:wake', name }).
import init, { Outbox } from './offline_outbox.js';

/** How long a sync waits for the worker to see itself online. */
const ONLINE_WAIT_MS = 2000;

/**
 * A sync event fires once the browser has a connection, but the worker's own
 * `navigator.onLine` can still say offline for a moment (seen in Chromium), and the outbox
 * attempts nothing while it does: a drain then would end at once with everything left.
 * Resolves when the worker is online, or after `ONLINE_WAIT_MS` regardless.
 */
function online() {
  if (self.navigator?.onLine !== false) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { self.removeEventListener('online', done); clearTimeout(timer); resolve(); };
    const timer = setTimeout(done, ONLINE_WAIT_MS);
    self.addEventListener('online', done);
  });
}

export function installOutboxSync({ name, handlers = {}, budgetMs = 25000, wasm, ...options }) {
  const tag = `offline-outbox:${name}`;
  // A failed open is not kept: the worker starts (and opens) for any event, offline too,
  // when fetching the module fails; the next sync, once online, opens it again.
  let opened;
  const outbox = () => (opened ??= init(wasm === undefined ? undefined : { module_or_path: wasm })
    .then(() => Outbox.open({ name, handlers, ...options }))
    .catch((e) => { opened = undefined; throw e; }));
  const drain = () => outbox().then((ob) => ob.drain({ budgetMs }));

  self.addEventListener('sync', (event) => {
    if (event.tag !== tag) return;
    event.waitUntil(online().then(drain).then(async (report) => {
      if (report.remaining === 0) return report;
      if (event.lastChance) await self.registration.sync.register(tag).catch(() => {});
      throw new Error(`offline-outbox: ${report.remaining} transactions still pending`);
    }));
  });

  if (typeof self.SyncManager !== 'function' || !self.registration?.sync) {
    self.addEventListener('online', () => { drain(); });
    self.addEventListener('message', (event) => {
      if (event.data?.type === 'offline-outbox:wake' && event.data.name === name) event.waitUntil(drain());
    });
    drain();
  }
  return outbox();
}

export { init, Outbox };
