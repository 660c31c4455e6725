// The built-in `http` handler: how each response is classified, end to end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite, waitFor } from './harness.js';

let srv, browser, page;

before(async () => ({ srv, browser, page } = await startSuite({ page: true })));
after(() => stopSuite({ srv, browser }));

test('responses are classified: 2xx acknowledges, 408/425/429/5xx and network errors retry, other 4xx are final', async () => {
  srv.api.reset();
  const codes = [200, 201, 204, 400, 404, 408, 422, 425, 429, 500, 503];
  const r = await page.evaluate(async (codes) => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'http-table', handlers: {}, maxConcurrency: 16, retry: { baseDelayMs: 20, maxDelayMs: 20, jitter: 'none' } });
    const out = {};
    const infos = await Promise.all(codes.map((code) => ob.enqueue({
      handler: 'http', keys: [`c${code}`], mutations: { method: 'POST', url: `/api/status/${code}`, body: `n=${code}` },
    })));
    await Promise.all(infos.map(async (t, i) => {
      out[codes[i]] = await ob.settled(t.id).then(() => ({ outcome: 'acknowledged' }), (e) => ({ outcome: e.code }));
      out[codes[i]].key = t.idempotencyKey;
    }));
    for (const d of await ob.deadLetters()) {
      const code = Number(d.mutations.url.split('/').pop());
      out[code].error = d.lastError;
      out[code].attempts = d.attempts;
    }
    // A network error (nothing listens on port 1): retried, never final.
    const net = await ob.enqueue({ handler: 'http', keys: ['net'], mutations: { method: 'POST', url: 'http://127.0.0.1:1/x', body: 'x' } });
    let info;
    for (let i = 0; i < 200; i++) {
      [info] = (await ob.peek()).filter((t) => t.id === net.id);
      if (info?.attempts >= 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    out.network = { attempts: info.attempts, error: info.lastError.name, status: info.status };
    await ob.close();
    return out;
  }, codes);
  const calls = (code) => srv.api.statusSeen.get(r[code].key) ?? [];
  for (const code of [200, 201, 204]) {
    assert.equal(r[code].outcome, 'acknowledged', `${code}`);
    assert.equal(calls(code).length, 1, `${code} sent once`);
  }
  for (const code of [400, 404, 422]) {
    assert.equal(r[code].outcome, 'Dead', `${code}`);
    assert.equal(calls(code).length, 1, `${code} not retried`);
    assert.equal(r[code].error.name, 'HttpError');
    assert.match(r[code].error.message, new RegExp(`^HTTP ${code} .*status ${code} body for`));
  }
  for (const code of [408, 425, 429, 500, 503]) {
    assert.equal(r[code].outcome, 'acknowledged', `${code} retried until 200`);
    assert.equal(calls(code).length, 2, `${code} sent twice`);
  }
  const gap = (code) => calls(code)[1] - calls(code)[0];
  assert.ok(gap(429) >= 950, `Retry-After: 1 honoured (${gap(429)} ms)`);
  assert.ok(gap(503) >= 950, `Retry-After as an HTTP date honoured (${gap(503)} ms)`);
  assert.ok(gap(500) < 900, `no Retry-After: the 20 ms backoff (${gap(500)} ms)`);
  assert.deepEqual(r.network, { attempts: r.network.attempts, error: 'NetworkError', status: r.network.status });
  assert.ok(r.network.attempts >= 2);
  // Every request carried its transaction's idempotency key.
  for (const code of codes) assert.ok(srv.api.statusSeen.has(r[code].key));
});

test('a failed response is read only as far as its excerpt: an endless error body fails the attempt at once and is cancelled', async () => {
  srv.api.reset();
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'http-endless', handlers: {}, retry: { baseDelayMs: 60000, maxDelayMs: 60000, jitter: 'none' } });
    const t0 = performance.now();
    const failed = new Promise((resolve) => ob.subscribe((e) => { if (e.type === 'retry') resolve(e.error); }));
    await ob.enqueue({ handler: 'http', keys: ['k'], mutations: { method: 'POST', url: '/api/endless', body: 'x' } });
    const error = await Promise.race([failed, new Promise((resolve) => setTimeout(() => resolve(null), 5000))]);
    const ms = performance.now() - t0;
    await ob.close();
    return { error, ms };
  });
  assert.ok(r.error, 'the attempt failed within 5 s');
  assert.equal(r.error.name, 'HttpError');
  assert.equal(r.error.message, `HTTP 503 Service Unavailable: ${'é'.repeat(150)}${'x'.repeat(50)}`);
  await waitFor(() => srv.api.endlessClosed === 1, 3000, 'the body download cancelled');
});

test('a Blob or File body is stored as it is and sent as its bytes, its type the Content-Type, after a reopen; compressed and encrypted too', async () => {
  for (const opts of [{}, { compress: true }, { encrypt: true }]) {
    srv.api.reset();
    const name = `http-blob-${Object.keys(opts).join('')}`;
    // Offline until the outbox has closed: what goes out after the reopen was read back
    // from IndexedDB, not held in memory.
    await page.context().setOffline(true);
    const keys = await page.evaluate(async ({ name, opts }) => {
      const { Outbox } = window.lib;
      const ob = await Outbox.open({ name, handlers: {}, ...opts });
      const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) % 256);
      const file = await ob.enqueue({ handler: 'http', keys: ['photo'], mutations: {
        method: 'PUT', url: '/api/mutate', body: new File([bytes], 'photo.png', { type: 'image/png' }),
      } });
      const blob = await ob.enqueue({ handler: 'http', keys: ['note'], mutations: {
        method: 'POST', url: '/api/mutate', headers: { 'Content-Type': 'text/x-note' },
        body: new Blob(['hello ', 'wörld'], { type: 'text/plain' }),
      } });
      const [held] = await ob.peek({ limit: 1 });
      await ob.close();
      return { file: file.idempotencyKey, blob: blob.idempotencyKey, held: held.mutations.body instanceof File };
    }, { name, opts });
    await page.context().setOffline(false);
    await page.evaluate(async ({ name, opts }) => {
      const ob = await window.lib.Outbox.open({ name, handlers: {}, ...opts });
      await ob.drain();
      const { pending, dead } = await ob.stats();
      await ob.close();
      if (pending + dead) throw new Error(`left: ${pending} pending, ${dead} dead`);
    }, { name, opts });
    const what = JSON.stringify(opts);
    assert.ok(keys.held, `${what}: peek gives the File back`);
    const file = srv.api.byKey.get(keys.file);
    assert.equal(file.method, 'PUT');
    assert.equal(file.headers['content-type'], 'image/png', what);
    assert.deepEqual([...file.bytes], Array.from({ length: 4096 }, (_, i) => (i * 7) % 256), what);
    const blob = srv.api.byKey.get(keys.blob);
    assert.equal(blob.headers['content-type'], 'text/x-note', `${what}: a header set wins over the type`);
    assert.equal(blob.body, 'hello wörld', what);
  }
});

test('a request fetch would refuse is refused at enqueue, naming what is wrong, and nothing is stored', async () => {
  srv.api.reset();
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'http-bad', handlers: {} });
    const bad = [
      'not an object',
      { method: 'POST', url: '/x', extra: 1 },
      { method: 'PO ST', url: '/x' },
      { method: 'trace', url: '/x' },
      { method: 'POST', url: 42 },
      { method: 'POST', url: 'http://[::1' },
      { method: 'POST', url: 'ftp://example.test/x' },
      { method: 'POST', url: '/x', headers: { a: 1 } },
      { method: 'POST', url: '/x', headers: { 'bad name': 'x' } },
      { method: 'POST', url: '/x', body: { json: true } },
      { method: 'get', url: '/x', body: 'x' },
      new Proxy({}, { ownKeys() { throw new Error('trap'); } }),
    ];
    const out = [];
    for (const mutations of bad) {
      try {
        await ob.enqueue({ handler: 'http', keys: ['k'], mutations });
        out.push('stored');
      } catch (e) {
        out.push(`${e.code}: ${e.message}`);
      }
    }
    const ok = await ob.enqueue({ handler: 'http', keys: ['k'], mutations: { method: 'HEAD', url: '/api/status/200', headers: { 'X-A': 'b' }, body: null } });
    await ob.settled(ok.id);
    const { pending, dead } = await ob.stats();
    await ob.close();
    return { out, pending, dead };
  });
  assert.deepEqual(r.out, [
    'InvalidTransaction: http mutations must be { method, url, headers?, body? }',
    'InvalidTransaction: unknown http field "extra"',
    'InvalidTransaction: http method must be an HTTP token such as "POST"',
    'InvalidTransaction: fetch refuses the trace method',
    'InvalidTransaction: http url must be a string',
    'InvalidTransaction: http url "http://[::1" does not parse',
    'InvalidTransaction: http url "ftp://example.test/x" is not http or https',
    'InvalidTransaction: http headers must be an object of strings',
    r.out[8],
    'InvalidTransaction: http body must be a string, an ArrayBuffer, a typed array or a Blob',
    'InvalidTransaction: a GET or HEAD request cannot have a body',
    'InvalidTransaction: http mutations cannot be read',
  ]);
  assert.match(r.out[8], /^InvalidTransaction: http headers are not valid: /);
  assert.deepEqual([r.pending, r.dead], [0, 0]);
  assert.equal(srv.api.statusSeen.size, 1, 'only the good request went out');
});
