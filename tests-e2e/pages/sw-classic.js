// A classic service worker: the bundled script through importScripts, instrumented for
// the tests (sw-record.js).
importScripts('./sw-record.js', '../../pkg/offline_outbox_classic.js');

self.outbox = offlineOutbox.installOutboxSync({ name: 'sw-test', budgetMs: 20000, wasm: '../../pkg/offline_outbox_bg.wasm' });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
