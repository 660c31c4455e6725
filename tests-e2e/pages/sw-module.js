// A module service worker using the package's entry, instrumented for the tests: it
// records how each sync event's promise settled and every tag registration.
import { installOutboxSync } from '../../pkg/offline_outbox_sw.js';

self.syncOutcomes = [];
self.registered = [];
const register = self.registration.sync.register.bind(self.registration.sync);
self.registration.sync.register = (tag) => { self.registered.push(tag); return register(tag); };
self.addEventListener('sync', (event) => {
  const waitUntil = event.waitUntil.bind(event);
  event.waitUntil = (p) => {
    p.then(() => self.syncOutcomes.push('resolved'), () => self.syncOutcomes.push('rejected'));
    return waitUntil(p);
  };
});

self.outbox = installOutboxSync({ name: 'sw-test', budgetMs: 3000, retry: { baseDelayMs: 50, maxDelayMs: 100 } });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
