// A classic service worker: the bundled script through importScripts.
importScripts('../../pkg/offline_outbox_classic.js');

offlineOutbox.installOutboxSync({ name: 'sw-test', budgetMs: 20000, wasm: '../../pkg/offline_outbox_bg.wasm' });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
