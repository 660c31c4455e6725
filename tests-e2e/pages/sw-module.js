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

// `?wasm=<url>`: the module from there (by default, the one beside the package's entry).
const wasm = new URL(location.href).searchParams.get('wasm') ?? undefined;
self.outbox = installOutboxSync({ name: 'sw-test', budgetMs: 3000, retry: { baseDelayMs: 50, maxDelayMs: 100 }, wasm });
// The README's recipe: a POST a page makes while the network is down is queued, the way
// Workbox's BackgroundSyncPlugin does. Here only requests marked `?queue`, so that the
// other tests' requests pass through untouched.
self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'POST' || !new URL(request.url).searchParams.has('queue')) return;
  const queued = request.clone(); // fetch consumes the body
  event.respondWith(fetch(request).catch(async () => {
    await (await self.outbox).enqueue({
      handler: 'http',
      keys: [new URL(queued.url).pathname],
      idempotencyKey: queued.headers.get('Idempotency-Key') ?? undefined,
      mutations: {
        method: queued.method,
        url: queued.url,
        headers: Object.fromEntries(queued.headers),
        body: await queued.blob(),
      },
    });
    return new Response(null, { status: 202 });
  }));
});
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
