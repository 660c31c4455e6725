// A module service worker using the package's entry, instrumented for the tests: its
// syncs (sw-record.js) and every tag registration.
import './sw-record.js';
import { installOutboxSync } from '../../pkg/offline_outbox_sw.js';

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

self.outbox = installOutboxSync({ name: 'sw-test', budgetMs: 3000, retry: { baseDelayMs: 50, maxDelayMs: 100 } });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
