// The demo's sync server: serves the repository (so /pkg/ and /www-demo/ load) and a
// mutation API on loopback that dedupes on Idempotency-Key. Switches, set from the page:
// POST /api/settings with { latencyMs, failureRate, down }. Items longer than 140
// characters are refused with 422, which the outbox treats as final (a dead letter).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json' };
export const MAX_TEXT = 140;

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body;
}

/** Starts the server on 127.0.0.1:`port` (0: any free port); resolves with its handle. */
export function startDemoServer(port = 0) {
  const settings = { latencyMs: 0, failureRate: 0, down: false };
  const items = new Map(); // id -> item, the server's state
  const seen = new Map(); // idempotency key -> answer already given
  const stats = { requests: 0, applied: 0, deduplicated: 0 };

  async function api(req, res, url) {
    if (url.pathname === '/api/settings') {
      if (req.method === 'POST') {
        const patch = JSON.parse((await readBody(req)) || '{}');
        for (const k of Object.keys(settings)) if (k in patch) settings[k] = patch[k];
      }
      return json(res, 200, settings);
    }
    if (url.pathname === '/api/items' && req.method === 'GET') {
      return json(res, 200, { items: [...items.values()], ...stats });
    }
    if (url.pathname === '/api/mutate' && req.method === 'POST') {
      stats.requests++;
      const body = await readBody(req);
      if (settings.latencyMs) await new Promise((r) => setTimeout(r, settings.latencyMs));
      if (settings.down) return json(res, 503, { error: 'server down (demo switch)' });
      if (Math.random() < settings.failureRate) return json(res, 500, { error: 'random failure (demo switch)' });
      const key = req.headers['idempotency-key'];
      if (key && seen.has(key)) {
        stats.deduplicated++;
        return json(res, 200, seen.get(key));
      }
      let m;
      try { m = JSON.parse(body); } catch { return json(res, 400, { error: 'body is not JSON' }); }
      if (typeof m.id !== 'string') return json(res, 422, { error: 'no item id' });
      if (m.op === 'put') {
        const text = String(m.text ?? '');
        if (text.length > MAX_TEXT) return json(res, 422, { error: `text longer than ${MAX_TEXT} characters` });
        items.set(m.id, { id: m.id, text, done: Boolean(m.done), updatedAt: Date.now() });
      } else if (m.op === 'delete') {
        items.delete(m.id);
      } else {
        return json(res, 422, { error: 'unknown operation' });
      }
      stats.applied++;
      const answer = { ok: true };
      if (key) seen.set(key, answer);
      return json(res, 200, answer);
    }
    return json(res, 404, { error: 'no such endpoint' });
  }

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname.startsWith('/api/')) return api(req, res, url);
    if (url.pathname === '/') { res.writeHead(302, { location: '/www-demo/' }).end(); return; }
    let file = path.join(ROOT, path.normalize(decodeURIComponent(url.pathname)));
    if (file.endsWith(path.sep)) file = path.join(file, 'index.html');
    if (!file.startsWith(ROOT) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({
    origin: `http://127.0.0.1:${server.address().port}`,
    items,
    settings,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  })));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { origin } = await startDemoServer(Number(process.env.PORT ?? 8080));
  console.log(`offline-outbox demo: ${origin}/  (Ctrl+C to stop)`);
}
