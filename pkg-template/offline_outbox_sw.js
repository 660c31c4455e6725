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
//
// The worker keeps the wasm module in Cache Storage (fetched on install): a worker is
// started for any event, offline too (a page's POST to queue), when fetching the module
// would fail.
import init, { Outbox } from './offline_outbox.js';

/** This build's module cache: build-pkg.sh puts a hash of the module here. Named for the
 *  worker's scope too, so that activating drops only this scope's older builds: another
 *  scope's worker on the origin may run another build, and would have to fetch its module
 *  again (not possible offline). */
const BUILD = '__BUILD__';
const CACHES = `offline-outbox-wasm ${self.registration?.scope} `;
const CACHE = CACHES + BUILD;

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

/** The URL `wasm` names (by default the module beside this file), or null where it is the
 *  module itself (a Response, bytes). Throws where there is no default (the classic bundle
 *  has no `import.meta.url`). */
function moduleUrl(wasm) {
  if (wasm === undefined) return new URL('offline_outbox_bg.wasm', import.meta.url).href;
  if (typeof wasm === 'string' || wasm instanceof URL) return new URL(wasm, self.location.href).href;
  return wasm instanceof Request ? wasm.url : null;
}

/** The module from this build's cache, else fetched and kept there. */
async function cachedModule(url) {
  let cache;
  try {
    cache = await caches.open(CACHE);
  } catch {
    return fetch(url); // no Cache Storage here (some private modes)
  }
  const hit = await cache.match(url);
  if (hit) return hit;
  // The HTTP cache may hold another build's module under the same URL (kept here it would
  // pair this build's glue with it for good): only this build's is kept, asked of the
  // server itself when the first answer is another.
  let response;
  for (const mode of ['default', 'reload']) {
    response = await fetch(url, { cache: mode });
    const bytes = response.ok ? await response.clone().arrayBuffer() : null;
    if (bytes && await hash(bytes) === BUILD) {
      await cache.put(url, response).catch(() => {});
      return new Response(bytes, { headers: { 'content-type': 'application/wasm' } });
    }
  }
  return response; // not this build's: init says what is wrong with it
}

/** The first 16 hex digits of the SHA-256 of `bytes`, as build-pkg.sh writes BUILD. */
async function hash(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function installOutboxSync({ name, handlers = {}, budgetMs = 25000, wasm, ...options }) {
  const tag = `offline-outbox:${name}`;
  let url = null;
  try {
    url = moduleUrl(wasm);
  } catch {} // init reports it
  // On install the worker opens its outbox too: one fetch of the module serves both.
  let fetching;
  const module = () => (fetching ??= cachedModule(url).finally(() => { fetching = undefined; }));
  // A failed open is not kept: a worker started offline without the module cached (it was
  // installed offline) opens on the next event. Nor is an outbox whose database went away
  // (deleted as the app signs a user out, say): it refuses every call, so the next use
  // opens the outbox afresh.
  let opened;
  const open = () => {
    const drop = () => { if (opened === done) opened = undefined; };
    const done = (url ? module() : Promise.resolve(wasm))
      .then((module) => init({ module_or_path: module })) // undefined: the one beside the glue
      .then(() => Outbox.open({ name, handlers, ...options }))
      .then((ob) => {
        ob.subscribe((e) => { if (e.type === 'storage-lost') drop(); });
        return ob;
      }, (e) => { drop(); throw e; });
    return done;
  };
  const outbox = () => (opened ??= open());

  if (url) {
    self.addEventListener('install', (event) => event.waitUntil(module().then(() => {}, () => {})));
    // This scope's other builds' modules: their workers are replaced by this one.
    self.addEventListener('activate', (event) => event.waitUntil(caches.keys()
      .then((names) => Promise.all(names
        .filter((n) => n.startsWith(CACHES) && n !== CACHE)
        .map((n) => caches.delete(n))))
      .catch(() => {})));
  }
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
  outbox(); // opened as the worker starts
  // Each use gets the outbox as `outbox()` has it, opened again after a failed open or a
  // lost database: the first open's promise would keep its failure for the worker's life
  // (a worker started offline without its module, then online), and the fetch recipe's
  // `await outbox` would fail every POST after it.
  return new (class extends Promise {
    static get [Symbol.species]() { return Promise; } // `finally` makes a plain one
    then(onFulfilled, onRejected) { return outbox().then(onFulfilled, onRejected); }
  })(() => {});
}

export { init, Outbox };
