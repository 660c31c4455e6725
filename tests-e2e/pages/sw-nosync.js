// A service worker where the Background Sync API is missing (as in Safari and Firefox).
delete self.SyncManager;
Object.defineProperty(self.registration, 'sync', { value: undefined });
importScripts('../../pkg/offline_outbox_classic.js');

offlineOutbox.installOutboxSync({ name: 'sw-test', budgetMs: 20000, wasm: '../../pkg/offline_outbox_bg.wasm' });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
