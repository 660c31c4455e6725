// A classic service worker: the bundled script through importScripts, instrumented for
// the tests: it records each sync event (whether the worker saw itself online then) and
// how its promise settled.
importScripts('../../pkg/offline_outbox_classic.js');

self.syncs = [];
self.addEventListener('sync', (event) => {
  const seen = { online: navigator.onLine };
  self.syncs.push(seen);
  const waitUntil = event.waitUntil.bind(event);
  event.waitUntil = (p) => {
    p.then(() => { seen.outcome = 'resolved'; }, () => { seen.outcome = 'rejected'; });
    return waitUntil(p);
  };
});
self.outbox = offlineOutbox.installOutboxSync({ name: 'sw-test', budgetMs: 20000, wasm: '../../pkg/offline_outbox_bg.wasm' });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
