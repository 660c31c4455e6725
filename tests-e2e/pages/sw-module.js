// A module service worker using the package's entry, instrumented for the tests: it
// records how each sync event's promise settled and every tag registration.
import { installOutboxSync } from '../../pkg/offline_outbox_sw.js';

self.syncOutcomes = [];
self.registered = [];
const register = self.registration.sync.register.bind(self.registration.sync);
self.registration.sync.register = (tag) => { self.registered.push(tag); return register(tag); };
// Tests play a worker whose `navigator.onLine` lags behind the connection (Chromium's
// can, for a moment, when a sync fires): while `lagOnline` is set it reads false and the
// real `online` events are held back; the test then sends one itself.
self.lagOnline = false;
const onLine = Object.getOwnPropertyDescriptor(WorkerNavigator.prototype, 'onLine').get;
Object.defineProperty(WorkerNavigator.prototype, 'onLine', { get() { return !self.lagOnline && onLine.call(this); } });
self.addEventListener('online', (event) => { if (self.lagOnline) event.stopImmediatePropagation(); });

// Each sync also as { online, outcome }: whether the worker saw itself online when it fired.
self.syncs = [];
self.addEventListener('sync', (event) => {
  const seen = { online: navigator.onLine };
  self.syncs.push(seen);
  const waitUntil = event.waitUntil.bind(event);
  event.waitUntil = (p) => {
    p.then(() => self.syncOutcomes.push(seen.outcome = 'resolved'), () => self.syncOutcomes.push(seen.outcome = 'rejected'));
    return waitUntil(p);
  };
});

self.outbox = installOutboxSync({ name: 'sw-test', budgetMs: 3000, retry: { baseDelayMs: 50, maxDelayMs: 100 } });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
