// Group commits in their own records: enqueues committed together are stored as one
// metadata record and one payload record, and every later change to one member (an
// acknowledgement, a retry, a dead letter, a removal, a fold) takes it out of the group
// without losing or re-sending the others, also across a reopen. Real page, real IndexedDB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite } from './harness.js';

let srv, browser, page;

before(async () => {
  ({ srv, browser, page } = await startSuite({ page: true }));
  await page.evaluate(() => {
    const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
    // What the database holds: the outbox's records (a group as its member ids) and
    // the payload records' keys.
    window.stored = async (name) => {
      const db = await req(indexedDB.open(`offline-outbox:${name}`));
      const tx = db.transaction(['outbox', 'payloads']);
      const [records, keys] = await Promise.all([
        req(tx.objectStore('outbox').getAll()), req(tx.objectStore('payloads').getAllKeys()),
      ]);
      db.close();
      return {
        records: records.map((r) => (r.metas ? { group: r.metas.filter(Boolean).map((m) => m.id) } : r.id)),
        payloadKeys: keys.map((k) => typeof k),
      };
    };
  });
});
after(() => stopSuite({ srv, browser }));

test('100 concurrent enqueues are stored as two records; acknowledged members leave the group, the rest drain after a reopen, once each, in order, intact', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'groups-reopen';
    const firstSent = [];
    let go;
    const started = new Promise((res) => { go = res; });
    const ob = await Outbox.open({
      name,
      handlers: {
        h: async (ctx) => {
          await started;
          if (ctx.mutations.n >= 30) await new Promise(() => {});
          firstSent.push(ctx.mutations.n);
        },
      },
    });
    const at = new Date(1_700_000_000_000);
    const infos = await Promise.all(Array.from({ length: 100 }, (_, n) => ob.enqueue({
      handler: 'h', keys: [`k${n % 7}`], mutations: { n, at, tags: new Map([['n', n]]) }, metadata: { iso: '2024-01-01T00:00:00Z' },
    })));
    const written = await window.stored(name);
    go();
    for (let i = 0; i < 400 && firstSent.length < 30; i++) await new Promise((res) => setTimeout(res, 5));
    // Let the acknowledgements commit.
    await new Promise((res) => setTimeout(res, 200));
    await ob.close();
    const left = await window.stored(name);

    const sent = [];
    let go2;
    const started2 = new Promise((res) => { go2 = res; });
    const ob2 = await Outbox.open({ name, handlers: { h: async (ctx) => { await started2; sent.push(ctx); } } });
    const stats = await ob2.stats();
    const peek = await ob2.peek();
    const settled = ob2.settled(infos[99].id).then((t) => t.status ?? 'acknowledged');
    const backup = await ob2.export();
    const imported = await ob2.import(backup);
    go2();
    await ob2.drain();
    const drained = await window.stored(name);
    await ob2.close();

    const first = sent.find((c) => c.mutations.n === 30);
    return {
      seqs: infos.map((t) => t.seq),
      written, leftGroup: left.records.find((x) => x.group)?.group.length, leftPayloads: left.payloadKeys,
      firstSent, pending: stats.pending + stats.inFlight, peek: peek.map((t) => t.mutations.n), peekPayload: peek[0].mutations.tags.get('n'),
      settled: await settled, imported,
      sent: sent.map((c) => [c.mutations.n, c.keys[0]]),
      fidelity: [first.mutations.at instanceof Date && first.mutations.at.getTime(), first.mutations.tags instanceof Map, first.metadata.iso],
      drained,
    };
  });
  // Consecutive seqs, in call order.
  assert.deepEqual(r.seqs.map((s, i) => s - r.seqs[0] - i), Array(100).fill(0));
  assert.equal(r.written.records.length, 1);
  assert.equal(r.written.records[0].group.length, 100);
  assert.deepEqual(r.written.payloadKeys, ['number']);
  assert.equal(r.firstSent.length, 30);
  assert.equal(r.leftGroup, 70, 'the acknowledged members left the group record');
  assert.equal(r.pending, 70);
  assert.deepEqual(r.peek, Array.from({ length: 70 }, (_, i) => i + 30));
  assert.equal(r.peekPayload, 30);
  assert.equal(r.settled, 'acknowledged');
  assert.deepEqual(r.imported, { pending: 0, dead: 0, skipped: 70 }, 'an import knows the members by id');
  const ns = r.sent.map(([n]) => n);
  assert.deepEqual([...ns].sort((a, b) => a - b), Array.from({ length: 70 }, (_, i) => i + 30), 'each remaining one once');
  for (let k = 0; k < 7; k++) {
    const onKey = r.sent.filter(([, key]) => key === `k${k}`).map(([n]) => n);
    assert.deepEqual(onKey, [...onKey].sort((a, b) => a - b), `key k${k} in order`);
  }
  assert.deepEqual(r.fidelity, [1_700_000_000_000, true, '2024-01-01T00:00:00Z']);
  assert.deepEqual(r.drained, { records: [], payloadKeys: [] }, 'the last member out took the group records with it');
});

test('a retried, a dead, a removed and a folded member each leave the group with what they need; after a reopen nothing is lost or sent twice', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const name = 'groups-members';
    const sent = [];
    let release;
    const gate = new Promise((res) => { release = res; });
    const ob = await Outbox.open({
      name, retry: { baseDelayMs: 3_600_000, maxDelayMs: 3_600_000, jitter: 'none' },
      handlers: {
        gate: () => gate,
        h: async (ctx) => {
          if (ctx.mutations === 'retry') throw new Error('try later');
          if (ctx.mutations === 'dead') throw new NonRetriableError('refused');
          sent.push(ctx.mutations);
        },
      },
    });
    await ob.enqueue({ handler: 'gate', keys: ['z'], mutations: null });
    const [ok, retry, dead, removed, older, newer] = await Promise.all([
      ob.enqueue({ handler: 'h', keys: ['a'], mutations: 'ok' }),
      ob.enqueue({ handler: 'h', keys: ['b'], mutations: 'retry' }),
      ob.enqueue({ handler: 'h', keys: ['c'], mutations: 'dead' }),
      ob.enqueue({ handler: 'h', keys: ['z'], mutations: 'removed' }),
      ob.enqueue({ handler: 'h', keys: ['z'], mutations: 'older', coalesceKey: 'doc' }),
      ob.enqueue({ handler: 'h', keys: ['z'], mutations: 'newer', coalesceKey: 'doc' }),
    ]);
    await ob.remove(removed.id);
    for (let i = 0; i < 400; i++) {
      const s = await ob.stats();
      if (s.dead === 1 && sent.includes('ok') && (await ob.peek()).find((t) => t.id === retry.id)?.attempts === 1) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    await new Promise((res) => setTimeout(res, 200));
    await ob.close();
    const left = await window.stored(name);

    const sent2 = [];
    // The gate holds key z again until the reopened outbox has been looked at: a new leader
    // starts sending at once.
    let release2;
    const gate2 = new Promise((res) => { release2 = res; });
    const ob2 = await Outbox.open({ name, handlers: { gate: () => gate2, h: async (ctx) => { sent2.push([ctx.mutations, ctx.attempt]); } } });
    const peek = (await ob2.peek()).map((t) => [t.mutations, t.attempts]);
    const deadLetters = (await ob2.deadLetters()).map((t) => [t.id === dead.id, t.mutations]);
    const folded = ob2.settled(newer.id).then((t) => t.id);
    const gone = await ob2.settled(removed.id).then(() => 'settled', (e) => e.code);
    release2();
    ob2.notifyOnline();
    await ob2.drain();
    await ob2.retryDead(dead.id);
    await ob2.drain();
    await ob2.close();
    release();
    return {
      sent, left, peek, deadLetters, folded: await folded, gone, sent2,
      ids: { ok: ok.id, older: older.id },
    };
  });
  assert.deepEqual(r.sent, ['ok']);
  // Every member left; the group's records went with the last. The retried, dead and folded
  // ones have payload records of their own now, as has the gate.
  assert.deepEqual(r.left.records.filter((x) => x.group), []);
  assert.deepEqual(r.left.payloadKeys, ['string', 'string', 'string', 'string']);
  assert.deepEqual(r.peek.sort(), [[null, 0], ['newer', 0], ['retry', 1]]);
  assert.deepEqual(r.deadLetters, [[true, 'dead']]);
  assert.equal(r.folded, r.ids.older);
  assert.equal(r.gone, 'Removed', 'a removed member is known as removed after a reopen');
  assert.deepEqual(r.sent2.slice(0, 2).sort(), [['newer', 1], ['retry', 2]]);
  assert.deepEqual(r.sent2.slice(2), [['dead', 1]]);
});

test('a new leader reads a group record in parts, past a member moved out of it to a record of its own: every one goes out once, in order', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'groups-parts';
    const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
    const sent = [];
    const ob = await Outbox.open({
      name, retry: { baseDelayMs: 50, maxDelayMs: 50, jitter: 'none' },
      handlers: {
        h: async (ctx) => {
          if (ctx.mutations === 2) throw new Error('try later');
          sent.push(ctx.mutations);
        },
      },
    });
    // One group record of 60 on one key: 0 and 1 go, 2 fails and moves out of the group
    // (its record keeps its seq, inside the group's), the rest wait behind it.
    await Promise.all(Array.from({ length: 60 }, (_, n) => ob.enqueue({ handler: 'h', keys: ['k'], mutations: n })));
    for (let i = 0; i < 400 && !((await ob.peek()).find((t) => t.mutations === 2)?.attempts >= 1); i++) await sleep(5);
    await ob.close();
    const left = await window.stored(name);

    // The next leader reads the first 16 seqs, so the group in parts.
    const sent2 = [];
    const ob2 = await Outbox.open({ name, handlers: { h: async (ctx) => { sent2.push(ctx.mutations); } } });
    for (let i = 0; i < 400 && sent2.length < 58; i++) await sleep(10);
    await sleep(100);
    const { pending } = await ob2.stats();
    await ob2.close();
    return { sent, left: left.records.map((x) => (x.group ? x.group.length : 'own')), sent2, pending };
  });
  assert.deepEqual(r.sent, [0, 1]);
  assert.deepEqual(r.left, [57, 'own']);
  assert.deepEqual(r.sent2, Array.from({ length: 58 }, (_, i) => i + 2));
  assert.equal(r.pending, 0);
});

test('encrypted, compressed group members are sealed each under its own id: a retried one moves out sealed and still opens after a reopen', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'groups-sealed';
    const secret = 'GROUP-SECRET-9031';
    let fail = true;
    const ob = await Outbox.open({
      name, encrypt: true, compress: true, retry: { baseDelayMs: 3_600_000, maxDelayMs: 3_600_000, jitter: 'none' },
      handlers: { h: async (ctx) => { if (fail) throw new Error(`no ${ctx.mutations.n}`); } },
    });
    await Promise.all([0, 1, 2].map((n) => ob.enqueue({ handler: 'h', keys: [`k${n}`], mutations: { n, secret, big: secret.repeat(200) } })));
    for (let i = 0; i < 400 && (await ob.peek()).some((t) => t.attempts === 0); i++) await new Promise((res) => setTimeout(res, 5));
    await new Promise((res) => setTimeout(res, 100));
    await ob.close();
    const req = (q) => new Promise((res, rej) => { q.onsuccess = () => res(q.result); q.onerror = () => rej(q.error); });
    const db = await req(indexedDB.open(`offline-outbox:${name}`));
    const values = await req(db.transaction('payloads').objectStore('payloads').getAll());
    db.close();
    const text = (v) => new TextDecoder('latin1').decode(v.data);
    fail = false;
    const sent = [];
    const ob2 = await Outbox.open({ name, handlers: { h: async (ctx) => { sent.push([ctx.mutations.n, ctx.mutations.big.length, ctx.attempt]); } } });
    ob2.notifyOnline();
    await ob2.drain();
    await ob2.close();
    return {
      sealed: values.every((v) => v.$sealed && v.z && !text(v).includes(secret)), count: values.length,
      sent: sent.sort(),
    };
  });
  assert.equal(r.count, 3, 'each retried member has its payload record of its own, the group none');
  assert.ok(r.sealed, 'sealed, compressed, no plaintext');
  assert.deepEqual(r.sent, [[0, 3400, 2], [1, 3400, 2], [2, 3400, 2]]);
});

test('a burst of 600 enqueues is split into group records of at most 256; seqs rise in call order, each is sent once, in order per key', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'groups-burst';
    const sent = [];
    let go;
    const started = new Promise((res) => { go = res; });
    const ob = await Outbox.open({ name, maxConcurrency: 8, handlers: { h: async (ctx) => { await started; sent.push([ctx.mutations, ctx.keys[0]]); } } });
    const infos = await Promise.all(Array.from({ length: 600 }, (_, n) => ob.enqueue({ handler: 'h', keys: [`k${n % 5}`], mutations: n })));
    const stored = await window.stored(name);
    go();
    await ob.drain();
    await ob.close();
    return { seqs: infos.map((t) => t.seq), groups: stored.records.map((x) => x.group?.length), sent };
  });
  assert.deepEqual(r.groups, [256, 256, 88]);
  assert.ok(r.seqs.every((s, i) => i === 0 || s > r.seqs[i - 1]), 'seqs rise in call order');
  assert.equal(r.sent.length, 600);
  assert.equal(new Set(r.sent.map(([n]) => n)).size, 600);
  for (let k = 0; k < 5; k++) {
    const onKey = r.sent.filter(([, key]) => key === `k${k}`).map(([n]) => n);
    assert.deepEqual(onKey, [...onKey].sort((a, b) => a - b), `key k${k} in order`);
  }
});

test('a reopen reads group records in chunks by the seqs they span: neither group keys nor holes left by removed members end the read early; every remaining one of 6,000 is sent once', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const name = 'groups-holes';
    const ob = await Outbox.open({ name, handlers: { h: () => new Promise(() => {}) } });
    const infos = await Promise.all(Array.from({ length: 6000 }, (_, n) => ob.enqueue({ handler: 'h', keys: [`k${n % 10}`], mutations: n })));
    // Two in three of the first 600 removed (those in flight refuse): holes in the first
    // groups. 6,000 members span more seqs than the sync reads at a time.
    const kept = [];
    await Promise.all(infos.map((t, n) => (n >= 600 || n % 3 === 0 ? kept.push(n) : ob.remove(t.id).catch(() => kept.push(n)))));
    await ob.close();
    const sent = [];
    const ob2 = await Outbox.open({ name, handlers: { h: async (ctx) => { sent.push([ctx.mutations, ctx.keys[0]]); } } });
    await ob2.drain();
    await ob2.close();
    return { kept: kept.sort((a, b) => a - b), sent };
  });
  assert.ok(r.kept.length >= 5600 && r.kept.length < 5610, `${r.kept.length} kept`);
  assert.deepEqual(r.sent.map(([n]) => n).sort((a, b) => a - b), r.kept);
  for (let k = 0; k < 10; k++) {
    const onKey = r.sent.filter(([, key]) => key === `k${k}`).map(([n]) => n);
    assert.deepEqual(onKey, [...onKey].sort((a, b) => a - b), `key k${k} in order`);
  }
});

test('loadRange on random layouts: a head read of any count, a first read of a few seqs and the chunked read of everything each give the stored transactions in seq order, none twice', async () => {
  const failures = await page.evaluate(async () => {
    const { loadRange } = await import('/src/js/idb.js');
    const { prng } = await import('/tests-js/values.js');
    const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
    const most = 8;
    const failures = [];
    for (let seed = 1; seed <= 150 && failures.length < 5; seed++) {
      const rand = prng(seed);
      // Lone records, holes (acknowledged), and group records of up to `most` members, some
      // acknowledged (null) and some moved out to a record of their own under their seq.
      const records = [];
      const expected = [];
      for (let s = 1; s < 120;) {
        const r = rand();
        if (r < 0.2) {
          s++;
        } else if (r < 0.55) {
          records.push({ seq: s, id: `t${s}` });
          expected.push(s);
          s++;
        } else {
          const n = 1 + Math.floor(rand() * most);
          const metas = [];
          for (let j = 0; j < n; j++) {
            const seq = s + 1 + j;
            const fate = rand();
            if (fate < 0.3) metas.push(null);
            else if (fate < 0.45) {
              metas.push(null);
              records.push({ seq, id: `t${seq}`, moved: true });
              expected.push(seq);
            } else {
              metas.push({ id: `t${seq}` });
              expected.push(seq);
            }
          }
          // The last member out deletes the group record.
          if (metas.some(Boolean)) records.push({ seq: s, metas, ids: metas.filter(Boolean).map((m) => m.id) });
          s += n + 1;
        }
      }
      expected.sort((a, b) => a - b);
      const name = `layout-${seed}`;
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore('outbox', { keyPath: 'seq' });
      const db = await req(open);
      const w = db.transaction('outbox', 'readwrite');
      for (const r of records) w.objectStore('outbox').put(r);
      await new Promise((res) => { w.oncomplete = res; });
      const read = async (after, limit, count) => {
        const tx = db.transaction('outbox');
        const out = loadRange(tx, after, limit, false, most, count);
        await new Promise((res) => { tx.oncomplete = res; });
        out.keys.forEach((k, i) => {
          const v = out.values[i];
          if (v?.id !== `t${k}` || (out.offsets[i] === 0) !== records.some((r) => r.seq === k && !r.metas)) {
            failures.push(`seed ${seed}: seq ${k} read as ${JSON.stringify(v)} at offset ${out.offsets[i]}`);
          }
        });
        return out;
      };
      const ascending = (keys) => keys.every((k, i) => i === 0 || k > keys[i - 1]);
      // The head, as a follower's peek({ limit }) reads it.
      for (const count of [1, 2, 3, 5, 8, 13, 30, expected.length, expected.length + 3]) {
        const { keys } = await read(null, Math.max(1, count), count);
        const want = expected.slice(0, keys.length);
        if (!ascending(keys) || keys.join() !== want.join() || keys.length < Math.min(count, expected.length)) {
          failures.push(`seed ${seed}: head of ${count}: [${keys}] against [${expected.slice(0, count + 5)}...]`);
        }
      }
      // A new leader's first read (a few seqs, a prefix of the order), then the sync loop's
      // chunks, each after the highest seq read so far.
      const first = await read(null, 1 + Math.floor(rand() * most), 0);
      if (!ascending(first.keys) || first.keys.join() !== expected.slice(0, first.keys.length).join()) {
        failures.push(`seed ${seed}: first read [${first.keys}] against [${expected.slice(0, 10)}...]`);
      }
      const all = [...first.keys];
      let more = first.more;
      for (let i = 0; more && i < 200; i++) {
        const chunk = await read(all.length ? all[all.length - 1] : null, 2 * most + 1 + Math.floor(rand() * 20), 0);
        if (!ascending(chunk.keys)) failures.push(`seed ${seed}: chunk [${chunk.keys}] out of order`);
        all.push(...chunk.keys);
        more = chunk.more;
      }
      if (all.join() !== expected.join()) failures.push(`seed ${seed}: chunks read [${all}] against [${expected}]`);
      db.close();
      await req(indexedDB.deleteDatabase(name));
    }
    return failures;
  });
  assert.deepEqual(failures, []);
});
