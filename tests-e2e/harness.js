// Shared by the node --test suites and the benchmarks: a loopback server (static files
// plus a mutation API that dedupes on Idempotency-Key) and headless Chromium.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css',
};

export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-quic', '--no-first-run',
];

/** A server on 127.0.0.1 with a random port. `api` records what the mutation API saw. */
export async function startServer() {
  const api = {
    received: [],          // every request, duplicates included
    byKey: new Map(),      // idempotency key -> first body
    script: [],            // queued { status, headers, body } answers for /api/mutate
    delayMs: 0,
    statusSeen: new Map(), // idempotency key -> times /api/status/<code> was called
    endlessClosed: 0,      // clients that stopped reading /api/endless
    down: false,           // /api/mutate drops every connection: fetch fails while online
    staleServed: 0,        // files served as an older build (`?stale`)
    files: new Map(),      // static file URL (path and query) -> times requested
    // A request still held (delayMs) when the next test resets is not recorded as answered.
    round: 0,
    reset() { this.received = []; this.byKey.clear(); this.script = []; this.delayMs = 0; this.statusSeen.clear(); this.endlessClosed = 0; this.down = false; this.staleServed = 0; this.files.clear(); this.round++; },
    unique() { return [...this.byKey.values()]; },
  };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname.startsWith('/api/')) {
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      const body = bytes.toString();
      // /api/status/<code>: answers <code> the first time per idempotency key, then 200.
      const status = url.pathname.match(/^\/api\/status\/(\d{3})$/);
      if (status) {
        const key = req.headers['idempotency-key'] ?? null;
        const code = Number(status[1]);
        const seen = api.statusSeen.get(key) ?? [];
        seen.push(Date.now());
        api.statusSeen.set(key, seen);
        const first = seen.length === 1;
        const headers = { 'content-type': 'text/plain' };
        if (first && code === 429) headers['retry-after'] = '1';
        if (first && code === 503) headers['retry-after'] = new Date(Date.now() + 2000).toUTCString();
        res.writeHead(first ? code : 200, headers);
        res.end(first ? `status ${code} body for ${key}` : 'ok');
        return;
      }
      // /api/endless: a 503 whose body never ends, a chunk every 50 ms after the first.
      if (url.pathname === '/api/endless') {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
        res.write('é'.repeat(150) + 'x'.repeat(150));
        const timer = setInterval(() => res.write('y'.repeat(1000)), 50);
        res.on('close', () => { clearInterval(timer); api.endlessClosed++; });
        return;
      }
      if (url.pathname === '/api/mutate') {
        if (api.down) {
          req.socket.destroy();
          return;
        }
        const key = req.headers['idempotency-key'] ?? null;
        const entry = { key, method: req.method, body, bytes, headers: req.headers, at: Date.now() };
        api.received.push(entry);
        const round = api.round;
        if (api.delayMs) await new Promise((r) => setTimeout(r, api.delayMs));
        const current = round === api.round;
        const answer = (current ? api.script.shift() : null) ?? { status: 200 };
        if (current && answer.status >= 200 && answer.status < 300 && key && !api.byKey.has(key)) api.byKey.set(key, entry);
        res.writeHead(answer.status, { 'content-type': 'text/plain', ...(answer.headers ?? {}) });
        res.end(answer.body ?? 'ok');
        return;
      }
      res.writeHead(404).end();
      return;
    }
    api.files.set(req.url, (api.files.get(req.url) ?? 0) + 1);
    const file = path.join(ROOT, path.normalize(decodeURIComponent(url.pathname)));
    if (!file.startsWith(ROOT) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end('not found');
      return;
    }
    // `?stale`: answers as an HTTP cache holding an older file would, unless the request
    // bypasses caches (fetch's `cache: 'reload'`).
    if (url.searchParams.has('stale') && req.headers.pragma !== 'no-cache') {
      api.staleServed++;
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end('an older build');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      // Chromium keeps no page served `no-store` in the back-forward cache.
      'cache-control': url.searchParams.has('cacheable') ? 'no-cache' : 'no-store',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, api, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/** With `bfcache`, the back-forward cache on, as in a user's Chromium (playwright turns it off). */
export async function launch({ bfcache = false } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    ignoreDefaultArgs: bfcache ? ['--disable-back-forward-cache'] : [],
  });
}

/** Opens the test page (which loads pkg/) and waits until the module is initialised. */
export async function openApp(context, origin, page = 'tests-e2e/pages/app.html') {
  const p = await context.newPage();
  p.on('pageerror', (e) => console.error('[pageerror]', e.message));
  await p.goto(`${origin}/${page}`);
  await p.waitForFunction(() => window.ready === true);
  return p;
}

/**
 * What a test file shares: one loopback server and one headless Chromium; with `page`,
 * also a browser context with the test app open in it. Pair with `stopSuite`.
 */
export async function startSuite({ page = false } = {}) {
  const srv = await startServer();
  const browser = await launch();
  if (!page) return { srv, browser };
  const context = await browser.newContext();
  return { srv, browser, context, page: await openApp(context, srv.origin) };
}

export async function stopSuite({ srv, browser }) {
  await browser?.close();
  await srv?.close();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `pred` (sync or async) until it holds; throws after `ms`. */
export async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
