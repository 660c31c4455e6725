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

export function installOutboxSync({ name, handlers = {}, budgetMs = 25000, wasm, ...options }) {
  const tag = `offline-outbox:${name}`;
  let opened;
  const outbox = () => (opened ??= init(wasm === undefined ? undefined : { module_or_path: wasm })
    .then(() => Outbox.open({ name, handlers, ...options })));
  const drain = () => outbox().then((ob) => ob.drain({ budgetMs }));

  self.addEventListener('sync', (event) => {
    if (event.tag !== tag) return;
    event.waitUntil(drain().then(async (report) => {
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
