// Payloads at rest: compression and encryption, checked on the records IndexedDB holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite } from './harness.js';

let srv, browser, context, page;

before(async () => {
  ({ srv, browser, context, page } = await startSuite({ page: true }));
  await page.evaluate(() => {
    // Direct access to an outbox's database, as an attacker reading the disk would see it.
    window.rawDb = (name) => new Promise((resolve, reject) => {
      const req = indexedDB.open(`offline-outbox:${name}`);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    window.rawGet = async (name, store, key) => {
      const db = await window.rawDb(name);
      const v = await new Promise((resolve) => { const r = db.transaction(store).objectStore(store).get(key); r.onsuccess = () => resolve(r.result); });
      db.close();
      return v;
    };
    window.rawPut = async (name, store, value, key) => {
      const db = await window.rawDb(name);
      await new Promise((resolve) => { const tx = db.transaction(store, 'readwrite'); tx.objectStore(store).put(value, key); tx.oncomplete = resolve; });
      db.close();
    };
    // A field-data form: the kind of JSON an offline app queues.
    window.formRecord = (n) => ({
      formId: 'site-inspection-v3', submittedAt: new Date(1764547200000 + n), inspector: { id: 'u-1842', name: 'Dana Whitfield' },
      location: { lat: 51.5072 + n / 1e4, lng: -0.1276, accuracyM: 4.2 },
      answers: Array.from({ length: 40 }, (_, i) => ({ questionId: `q-${i}`, type: i % 3 ? 'choice' : 'text', value: i % 3 ? `option-${i % 4}` : `Observed condition ${i} is within tolerance; no action required.`, flagged: i % 7 === 0 })),
    });
  });
});
after(() => stopSuite({ srv, browser }));

test('compress: payloads over 1 KiB are stored deflated, smaller ones as given; handlers see the values', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const seen = [];
    let open;
    const gate = new Promise((res) => { open = res; });
    const ob = await Outbox.open({ name: 'rest-compress', compress: true, handlers: { h: async (ctx) => { await gate; seen.push(ctx.mutations); } } });
    const big = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: window.formRecord(1) });
    const small = await ob.enqueue({ handler: 'h', keys: ['k'], mutations: { note: 'short', at: new Date(5) } });
    const rawBig = await window.rawGet('rest-compress', 'payloads', big.id);
    const rawSmall = await window.rawGet('rest-compress', 'payloads', small.id);
    const peek = await ob.peek();
    const stats = await ob.stats();
    open();
    await ob.drain();
    await ob.close();
    return {
      json: JSON.stringify(window.formRecord(1)).length, bigKind: Object.keys(rawBig).sort().join(), z: rawBig.z, stored: rawBig.data.length,
      smallKind: Object.keys(rawSmall).sort().join(), smallAt: rawSmall.mutations.at instanceof Date,
      peekDate: peek[0].mutations.submittedAt instanceof Date && peek[0].mutations.submittedAt.getTime() === 1764547200001,
      sameBig: JSON.stringify(seen[0]) === JSON.stringify(window.formRecord(1)) && seen[0].submittedAt instanceof Date,
      sameSmall: seen[1].note === 'short' && seen[1].at.getTime() === 5, bytes: stats.bytes,
    };
  });
  assert.equal(r.bigKind, '$sealed,data,z');
  assert.equal(r.z, true);
  assert.ok(r.stored * 3 < r.json, `deflated ${r.json} B of JSON to ${r.stored} B`);
  assert.equal(r.smallKind, 'metadata,mutations', 'a small payload is stored as given');
  assert.ok(r.smallAt && r.peekDate && r.sameBig && r.sameSmall);
  assert.ok(r.bytes < r.json, 'stats count the stored (deflated) size');
});

test('an import or a coalesce counts a sealed payload at its stored size, as an enqueue does', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const never = { h: () => new Promise(() => {}) };
    const bytes = async (name, fill) => {
      const ob = await Outbox.open({ name, compress: true, encrypt: true, leaderElection: 'none', handlers: never, maxConcurrency: 1 });
      // A first transaction that never finishes takes the one slot: the rest stay pending.
      await ob.enqueue({ handler: 'h', keys: ['first'], mutations: 0 });
      await fill(ob);
      const out = { bytes: (await ob.stats()).bytes, backup: await ob.export() };
      await ob.close();
      return out;
    };
    const put = (ob, n, coalesceKey) => ob.enqueue({ handler: 'h', keys: ['k'], mutations: window.formRecord(n), coalesceKey });
    const enqueued = await bytes('rest-bytes-enqueued', (ob) => put(ob, 2));
    const coalesced = await bytes('rest-bytes-coalesced', async (ob) => {
      // The fold is written after the enqueue resolves; its event says it is done.
      const folded = new Promise((done) => ob.subscribe((e) => e.type === 'coalesced' && done()));
      await put(ob, 1, 'c');
      await put(ob, 2, 'c');
      await folded;
    });
    const imported = await bytes('rest-bytes-imported', (ob) => ob.import({ ...enqueued.backup, pending: enqueued.backup.pending.slice(1) }));
    return { enqueued: enqueued.bytes, coalesced: coalesced.bytes, imported: imported.bytes, json: JSON.stringify(window.formRecord(2)).length };
  });
  assert.ok(r.enqueued > 0 && r.enqueued * 3 < r.json, `a deflated payload counts ${r.enqueued} B`);
  assert.deepEqual([r.coalesced, r.imported], [r.enqueued, r.enqueued]);
});

test('encrypt: AES-GCM at rest under a non-extractable key; plaintext for handlers, peek, export and a reopen without the option', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'rest-encrypt';
    const secret = 'TOP-SECRET-4417';
    let ob = await Outbox.open({ name, encrypt: true, compress: true, handlers: { h: () => new Promise(() => {}) } });
    const t = await ob.enqueue({ handler: 'h', keys: ['a'], mutations: { secret, n: 1 }, metadata: { who: secret } });
    const big = await ob.enqueue({ handler: 'h', keys: ['a'], mutations: { secret, form: window.formRecord(2) } });
    await ob.close();
    const raw = await window.rawGet(name, 'payloads', t.id);
    const rawBig = await window.rawGet(name, 'payloads', big.id);
    const key = await window.rawGet(name, 'meta', 'cryptoKey');
    const hasSecret = (bytes) => new TextDecoder('latin1').decode(bytes).includes(secret);
    let exportable = true;
    try { await crypto.subtle.exportKey('raw', key); } catch { exportable = false; }
    ob = await Outbox.open({ name, handlers: { h: () => new Promise(() => {}) } });
    const peek = await ob.peek();
    const backup = await ob.export();
    await ob.close();
    return {
      kind: Object.keys(raw).sort().join(), iv: raw.iv.length, plainInRecord: hasSecret(raw.data) || hasSecret(rawBig.data),
      bigZ: rawBig.z, keyType: key.constructor.name, extractable: key.extractable, algo: `${key.algorithm.name}-${key.algorithm.length}`, exportable,
      peek: peek.map((p) => [p.mutations.secret, p.metadata?.who ?? null]),
      exported: backup.pending[0].mutations.secret,
    };
  });
  assert.equal(r.kind, '$sealed,data,iv,z');
  assert.equal(r.iv, 12);
  assert.equal(r.plainInRecord, false, 'no plaintext in what IndexedDB holds');
  assert.equal(r.bigZ, true, 'compressed before it is encrypted');
  assert.deepEqual([r.keyType, r.extractable, r.algo, r.exportable], ['CryptoKey', false, 'AES-GCM-256', false]);
  assert.deepEqual(r.peek, [['TOP-SECRET-4417', 'TOP-SECRET-4417'], ['TOP-SECRET-4417', null]]);
  assert.equal(r.exported, 'TOP-SECRET-4417', 'a backup holds plaintext');
});

test('a leader that does not encrypt sends what a context that does encrypted after it opened', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'rest-mixed';
    const seen = [];
    // Opened first, before there is any key: it leads (Web Locks, first come).
    const plain = await Outbox.open({ name, leaderElection: 'web-locks', handlers: { h: async (ctx) => { seen.push(ctx.mutations.n); } } });
    const sealing = await Outbox.open({ name, leaderElection: 'web-locks', encrypt: true, handlers: { h: async () => {} } });
    const t = await sealing.enqueue({ handler: 'h', keys: ['a'], mutations: { n: 7 } });
    const stored = await window.rawGet(name, 'payloads', t.id);
    await sealing.settled(t.id);
    const dead = await plain.deadLetters();
    const leaders = [plain.isLeader, sealing.isLeader];
    await sealing.close();
    await plain.close();
    return { encrypted: Boolean(stored?.iv), seen, dead: dead.length, leaders };
  });
  assert.deepEqual(r.leaders, [true, false]);
  assert.equal(r.encrypted, true, 'the follower wrote it encrypted');
  assert.deepEqual(r.seen, [7], 'the leader opened it with the key created after it opened');
  assert.equal(r.dead, 0);
});

test('encrypt: an altered or swapped payload becomes a corrupt dead letter; the rest go out', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'rest-tamper';
    let ob = await Outbox.open({ name, encrypt: true, handlers: { h: () => new Promise(() => {}) } });
    const a = await ob.enqueue({ handler: 'h', keys: ['a'], mutations: 'A' });
    const b = await ob.enqueue({ handler: 'h', keys: ['b'], mutations: 'B' });
    const c = await ob.enqueue({ handler: 'h', keys: ['c'], mutations: 'C' });
    await ob.close();
    const rawA = await window.rawGet(name, 'payloads', a.id);
    rawA.data[3] ^= 1;
    await window.rawPut(name, 'payloads', rawA, a.id);
    await window.rawPut(name, 'payloads', await window.rawGet(name, 'payloads', c.id), b.id);
    const sent = [];
    ob = await Outbox.open({ name, handlers: { h: async (ctx) => { sent.push(ctx.mutations); } } });
    await ob.drain();
    const dead = (await ob.deadLetters()).map((d) => ({ id: d.id, reason: d.deadReason, error: d.lastError.name, message: d.lastError.message }));
    await ob.close();
    return { sent, dead, ids: { a: a.id, b: b.id } };
  });
  assert.deepEqual(r.sent, ['C']);
  assert.deepEqual(r.dead.map((d) => [d.id, d.reason, d.error]).sort(), [[r.ids.a, 'corrupt', 'UnreadablePayload'], [r.ids.b, 'corrupt', 'UnreadablePayload']].sort());
  assert.match(r.dead[0].message, /altered|another key/);
});

test('sealed payloads that cannot be opened become corrupt dead letters saying why: damaged deflate, bytes that are not JSON, encrypted with no key', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'rest-unopenable';
    let ob = await Outbox.open({ name, compress: true, handlers: { h: () => new Promise(() => {}) } });
    const txs = [];
    for (const k of ['a', 'b', 'c', 'd']) txs.push(await ob.enqueue({ handler: 'h', keys: [k], mutations: window.formRecord(k.charCodeAt(0)) }));
    await ob.close();
    const [a, b, c, d] = txs.map((t) => t.id);
    const rawA = await window.rawGet(name, 'payloads', a);
    // BFINAL with block type 3, which deflate reserves: no reader may take it.
    rawA.data[0] = 0x07;
    await window.rawPut(name, 'payloads', rawA, a);
    await window.rawPut(name, 'payloads', { $sealed: 1, z: false, data: new TextEncoder().encode('{not json') }, b);
    // This outbox never encrypted, so its database holds no key.
    await window.rawPut(name, 'payloads', { $sealed: 1, z: false, iv: new Uint8Array(12), data: new Uint8Array(40) }, c);
    const sent = [];
    ob = await Outbox.open({ name, handlers: { h: async (ctx) => { sent.push(ctx.mutations.submittedAt.getTime()); } } });
    await ob.drain();
    const dead = Object.fromEntries((await ob.deadLetters()).map((x) => [x.id, [x.deadReason, x.lastError.name, x.lastError.message]]));
    await ob.close();
    return { sent, dead: [dead[a], dead[b], dead[c], dead[d]] };
  });
  assert.deepEqual(r.sent, [1764547200000 + 'd'.charCodeAt(0)]);
  const [a, b, c, d] = r.dead;
  for (const x of [a, b, c]) assert.deepEqual(x.slice(0, 2), ['corrupt', 'UnreadablePayload']);
  assert.match(a[2], /compressed bytes are damaged/);
  assert.match(b[2], /does not decode: .*JSON/);
  assert.match(c[2], /encrypted and this database holds no key/);
  assert.equal(d, undefined);
});

test('encrypt: a payload read ahead while a coalesced transaction folds into it does not bring back the older mutations', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'rest-fold-during-read';
    let ob = await Outbox.open({ name, encrypt: true, handlers: { h: () => new Promise(() => {}) } });
    await ob.enqueue({ handler: 'h', keys: ['doc'], mutations: 'head' });
    await ob.enqueue({ handler: 'h', keys: ['other'], mutations: 'other' });
    const older = await ob.enqueue({ handler: 'h', keys: ['doc'], mutations: 'older', coalesceKey: 'doc' });
    await ob.close();
    // The read-ahead's decryption of `older` takes long; later ones (the fold's) do not.
    const decrypt = crypto.subtle.decrypt.bind(crypto.subtle);
    let slowed = false;
    crypto.subtle.decrypt = async (params, key, data) => {
      const plain = await decrypt(params, key, data);
      if (!slowed && new TextDecoder().decode(params.additionalData) === older.id) {
        slowed = true;
        await new Promise((r) => setTimeout(r, 400));
      }
      return plain;
    };
    try {
      let releaseHead;
      const sent = [];
      ob = await Outbox.open({
        name, encrypt: true, maxConcurrency: 1,
        handlers: {
          h: async (ctx) => {
            if (ctx.mutations === 'head') await new Promise((r) => { releaseHead = r; });
            sent.push(ctx.mutations);
          },
        },
      });
      // `head` is in flight; `older` waits behind it and is read ahead (slowly).
      for (let i = 0; i < 100 && !slowed; i++) await new Promise((r) => setTimeout(r, 5));
      const folded = new Promise((r) => ob.subscribe((e) => { if (e.type === 'coalesced') r(e.into); }));
      await ob.enqueue({ handler: 'h', keys: ['doc'], mutations: 'newer', coalesceKey: 'doc' });
      const into = await folded;
      // Past the slow decryption: the read-ahead has finished too.
      await new Promise((r) => setTimeout(r, 500));
      releaseHead();
      await ob.settled(older.id);
      await ob.close();
      return { slowed, into, older: older.id, sent };
    } finally {
      crypto.subtle.decrypt = decrypt;
    }
  });
  assert.equal(r.slowed, true, 'the read-ahead decrypted the older payload');
  assert.equal(r.into, r.older);
  assert.deepEqual(r.sent.filter((m) => m !== 'other'), ['head', 'newer']);
});

test('sealed enqueues keep call order on a key, whatever each takes to seal', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const seen = [];
    const ob = await Outbox.open({ name: 'rest-order', encrypt: true, compress: true, handlers: { h: async (ctx) => { seen.push(ctx.mutations.i); } } });
    const infos = await Promise.all(Array.from({ length: 30 }, (_, i) => ob.enqueue({
      handler: 'h', keys: ['k'], mutations: i % 3 === 0 ? { i, form: window.formRecord(i) } : { i },
    })));
    await ob.drain();
    await ob.close();
    return { seen, seqs: infos.map((t) => t.seq) };
  });
  assert.deepEqual(r.seen, Array.from({ length: 30 }, (_, i) => i));
  assert.deepEqual(r.seqs, [...r.seqs].sort((a, b) => a - b));
});

test('compress and encrypt are checked options', async () => {
  const codes = await page.evaluate(async () => {
    const out = [];
    for (const o of [{ compress: 'yes' }, { encrypt: 1 }]) {
      try { await window.lib.Outbox.open({ name: 'rest-bad', handlers: {}, ...o }); out.push('opened'); } catch (e) { out.push(e.code); }
    }
    return out;
  });
  assert.deepEqual(codes, ['InvalidOptions', 'InvalidOptions']);
});
