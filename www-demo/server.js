// The demo's server: serves the repository (so /pkg/ and /www-demo/ load) and a mutation
// API on loopback that dedupes on Idempotency-Key. Switches: POST /api/settings with
// { latencyMs, failureRate, down }.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PORT = Number(process.env.PORT ?? 8080);
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json' };

const settings = { latencyMs: 0, failureRate: 0, down: false };
const items = new Map();     // id -> item, the server's state
const seen = new Map();      // idempotency key -> response already given
let requests = 0;

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body;
}

async function api(req, res, url) {
  if (url.pathname === '/api/settings') {
    if (req.method === 'POST') Object.assign(settings, JSON.parse((await readBody(req)) || '{}'));
    return json(res, 200, settings);
  }
  if (url.pathname === '/api/items' && req.method === 'GET') {
    return json(res, 200, { items: [...items.values()], requests, deduplicated: requests - seen.size });
  }
  if (url.pathname === '/api/mutate' && req.method === 'POST') {
    requests++;
    const body = await readBody(req);
    if (settings.latencyMs) await new Promise((r) => setTimeout(r, settings.latencyMs));
    if (settings.down) return json(res, 503, { error: 'server down (demo switch)' });
    if (Math.random() < settings.failureRate) return json(res, 500, { error: 'random failure (demo switch)' });
    const key = req.headers['idempotency-key'];
    if (key && seen.has(key)) return json(res, 200, seen.get(key));
    let m;
    try { m = JSON.parse(body); } catch { return json(res, 400, { error: 'body is not JSON' }); }
    if (m.op === 'put' && typeof m.id === 'string') items.set(m.id, { id: m.id, text: String(m.text ?? ''), updatedAt: Date.now() });
    else if (m.op === 'delete' && typeof m.id === 'string') items.delete(m.id);
    else return json(res, 422, { error: 'unknown operation' });
    const answer = { ok: true };
    if (key) seen.set(key, answer);
    return json(res, 200, answer);
  }
  json(res, 404, { error: 'no such endpoint' });
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

server.listen(PORT, '127.0.0.1', () => {
  console.log(`offline-outbox demo: http://127.0.0.1:${PORT}/  (Ctrl+C to stop)`);
});
