// export() and import(): a JSON backup of the outbox and its dead letters, in a real page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite, openApp } from './harness.js';

let srv, browser, context, page;

before(async () => ({ srv, browser, context, page } = await startSuite({ page: true })));
after(() => stopSuite({ srv, browser }));

test('export to JSON and import elsewhere: order, ids, keys, attempts, dead letters and every kind of value kept', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    let release;
    const gate = new Promise((res) => { release = res; });
    const src = await Outbox.open({
      name: 'backup-src',
      retry: { baseDelayMs: 60000, maxDelayMs: 60000, jitter: 'none' },
      handlers: {
        hang: () => gate,
        flaky: async () => { throw new Error('503'); },
        bad: async () => { throw new NonRetriableError('422 rejected'); },
      },
    });
    const cyclic = { label: 'cycle' };
    cyclic.self = cyclic;
    const shared = [1, 2];
    const rich = {
      when: new Date(1700000000000), invalid: new Date(NaN),
      map: new Map([['a', 1], [2, { b: new Set(['x', 3n]) }]]),
      bytes: new Uint8Array([0, 1, 254, 255]), buffer: new Uint16Array([513, 65535]).buffer,
      floats: new Float64Array([0.5, -0]),
      special: [NaN, Infinity, -Infinity, -0, undefined, null], big: 12345678901234567890n,
      tagged: { $t: 'not a tag', v: 1 }, cyclic, a: shared, b: shared,
      re: /ab+c/gi, blob: new Blob(['hello'], { type: 'text/plain' }),
      err: new RangeError('out of range'), boxed: new String('s'),
      sparse: [1, , 3], // eslint-disable-line no-sparse-arrays
    };
    const inflight = await src.enqueue({ handler: 'hang', keys: ['h'], mutations: 'in flight' });
    const t1 = await src.enqueue({ handler: 'flaky', keys: ['doc'], mutations: rich, metadata: { user: 'u1' }, priority: 'high' });
    const dead = await src.enqueue({ handler: 'bad', keys: ['doc2'], mutations: { n: 2 } });
    const t3 = await src.enqueue({ handler: 'hang', keys: ['doc2'], mutations: { n: 3 }, idempotencyKey: 'my-key-3' });
    const c1 = await src.enqueue({ handler: 'hang', keys: ['h'], mutations: { v: 1 }, coalesceKey: 'c' });
    const c2 = await src.enqueue({ handler: 'hang', keys: ['h'], mutations: { v: 2 }, coalesceKey: 'c' });
    const settle = async (pred) => { for (let i = 0; i < 300 && !(await pred()); i++) await new Promise((res) => setTimeout(res, 10)); };
    await settle(async () => (await src.deadLetters()).length === 1 && (await src.peek()).find((t) => t.id === t1.id).attempts >= 1);
    const backup = await src.export();
    const text = JSON.stringify(backup);
    const srcPeek = await src.peek();
    release();
    await src.close();

    // `hang` never answers here, so the imported records can be inspected before any send.
    const seen = [];
    let open;
    const sendGate = new Promise((res) => { open = res; });
    const dst = await Outbox.open({
      name: 'backup-dst',
      handlers: {
        hang: async (ctx) => { await sendGate; seen.push({ id: ctx.id, key: ctx.idempotencyKey, m: ctx.mutations }); },
        flaky: async (ctx) => { await sendGate; seen.push({ id: ctx.id, key: ctx.idempotencyKey, m: ctx.mutations, md: ctx.metadata }); },
        bad: async (ctx) => { seen.push({ id: ctx.id, m: ctx.mutations }); },
      },
    });
    await dst.enqueue({ handler: 'hang', keys: ['local'], mutations: 'already here' });
    const report = await dst.import(text);
    const again = await dst.import(JSON.parse(text));
    const peek = await dst.peek();
    const deadLetters = await dst.deadLetters();
    const m = peek.find((t) => t.id === t1.id).mutations;
    const checks = {
      when: m.when instanceof Date && m.when.getTime() === 1700000000000,
      invalid: Number.isNaN(m.invalid.getTime()),
      map: m.map instanceof Map && m.map.get('a') === 1 && m.map.get(2).b instanceof Set && m.map.get(2).b.has(3n),
      bytes: m.bytes instanceof Uint8Array && [...m.bytes].join() === '0,1,254,255',
      buffer: m.buffer instanceof ArrayBuffer && [...new Uint16Array(m.buffer)].join() === '513,65535',
      floats: m.floats instanceof Float64Array && m.floats[0] === 0.5 && Object.is(m.floats[1], -0),
      special: Number.isNaN(m.special[0]) && m.special[1] === Infinity && m.special[2] === -Infinity
        && Object.is(m.special[3], -0) && m.special[4] === undefined && 4 in m.special && m.special[5] === null,
      big: m.big === 12345678901234567890n,
      tagged: m.tagged.$t === 'not a tag' && m.tagged.v === 1,
      cyclic: m.cyclic.self === m.cyclic && m.cyclic.label === 'cycle',
      shared: m.a === m.b && m.a.join() === '1,2',
      re: m.re instanceof RegExp && m.re.source === 'ab+c' && m.re.flags === 'gi',
      blob: m.blob instanceof Blob && m.blob.type === 'text/plain' && (await m.blob.text()) === 'hello',
      err: m.err instanceof Error && m.err.name === 'RangeError' && m.err.message === 'out of range',
      boxed: typeof m.boxed === 'object' && m.boxed.valueOf() === 's',
      sparse: m.sparse.length === 3 && !(1 in m.sparse) && m.sparse[2] === 3,
    };
    open();
    dst.notifyOnline(); // t1 kept its 60 s backoff through the backup
    await dst.drain();
    const retried = deadLetters[0].id;
    await dst.retryDead(retried);
    await dst.drain();
    const after = { pending: (await dst.peek()).length, dead: (await dst.deadLetters()).length };
    await dst.close();
    return {
      report, again, checks, text: text.length, format: backup.format, version: backup.version,
      backupPending: backup.pending.map((t) => t.id), backupDead: backup.dead.map((t) => t.id),
      srcPeek: srcPeek.map((t) => ({ id: t.id, key: t.idempotencyKey, attempts: t.attempts, priority: t.priority })),
      peek: peek.map((t) => ({ id: t.id, key: t.idempotencyKey, attempts: t.attempts, priority: t.priority, keys: t.keys, mutations: typeof t.mutations === 'string' ? t.mutations : null })),
      dead: deadLetters.map((t) => ({ id: t.id, reason: t.deadReason, attempts: t.attempts, error: t.lastError?.message, m: t.mutations })),
      ids: { inflight: inflight.id, t1: t1.id, dead: dead.id, t3: t3.id, c1: c1.id, c2: c2.id },
      seen: seen.map((s) => ({ id: s.id, key: s.key, md: s.md })), after,
    };
  });
  const { ids } = r;
  assert.equal(r.format, 'offline-outbox-backup');
  assert.equal(r.version, 1);
  for (const [what, ok] of Object.entries(r.checks)) assert.ok(ok, `${what} survives export and import`);
  // The in-flight transaction is still pending: it is in the backup. The coalesced one
  // lives on inside the one it folded into.
  assert.deepEqual(r.backupPending, [ids.inflight, ids.t1, ids.t3, ids.c1]);
  assert.deepEqual(r.backupDead, [ids.dead]);
  assert.deepEqual(r.report, { pending: 4, dead: 1, skipped: 0 });
  assert.deepEqual(r.again, { pending: 0, dead: 0, skipped: 5 }, 'importing the same backup again adds nothing');
  // After what was here already, in the source's order, with ids, keys and attempts.
  assert.equal(r.peek[0].mutations, 'already here');
  assert.deepEqual(r.peek.slice(1).map(({ id, key, attempts, priority }) => ({ id, key, attempts, priority })), r.srcPeek);
  assert.equal(r.peek.find((t) => t.id === ids.t3).key, 'my-key-3');
  assert.ok(r.peek.find((t) => t.id === ids.t1).attempts >= 1);
  assert.deepEqual(r.dead, [{ id: ids.dead, reason: 'handler-rejected', attempts: 1, error: '422 rejected', m: { n: 2 } }]);
  // Sent from the new outbox with the original idempotency keys and metadata.
  const sent = Object.fromEntries(r.seen.map((s) => [s.id, s]));
  assert.equal(sent[ids.t3].key, 'my-key-3');
  assert.deepEqual(sent[ids.t1].md, { user: 'u1' });
  assert.ok(sent[ids.dead], 'an imported dead letter can be retried');
  assert.deepEqual(r.after, { pending: 0, dead: 0 }, 'everything imported went out');
});

test('import checks the whole document first: typed errors, nothing stored', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'backup-invalid', handlers: { ok: window.handlers.ok } });
    const good = (over = {}) => ({
      id: `id-${Math.random()}`, seq: 1, handler: 'ok', keys: ['k'], idempotencyKey: 'ik', priority: 'normal',
      attempts: 0, createdAt: 1, nextAttemptAt: 1, mutations: { a: 1 }, metadata: { $t: 'undefined' }, ...over,
    });
    const doc = (over = {}) => ({ format: 'offline-outbox-backup', version: 1, name: 'x', exportedAt: 1, pending: [good()], dead: [], ...over });
    const cases = {
      notJson: '{ nope',
      notObject: 42,
      format: doc({ format: 'workbox' }),
      version: doc({ version: 2 }),
      pendingNotArray: doc({ pending: {} }),
      missingHandlerField: doc({ pending: [good(), good({ handler: undefined })] }),
      unknownHandler: doc({ pending: [good(), good({ handler: 'nope' })] }),
      badPriority: doc({ pending: [good({ priority: 'urgent' })] }),
      keysNotStrings: doc({ pending: [good({ keys: [1] })] }),
      // Holes, which every() and some() pass over: a backup given as an object can have them.
      keysWithHole: doc({ pending: [good({ keys: ['k', , 'j'] })] }), // eslint-disable-line no-sparse-arrays
      aliasesWithHole: doc({ pending: [good({ aliases: [, 'a'] })] }), // eslint-disable-line no-sparse-arrays
      pendingWithHole: doc({ pending: [good(), , good()] }), // eslint-disable-line no-sparse-arrays
      emptyId: doc({ pending: [good({ id: '' })] }),
      unknownTag: doc({ pending: [good(), good({ mutations: { x: [{ $t: 'nope' }] } })] }),
      badBase64: doc({ pending: [good({ mutations: { $t: 'view', type: 'Uint8Array', v: '***' } })] }),
      danglingRef: doc({ pending: [good({ mutations: { a: { $t: 'ref', v: 9 } } })] }),
      deadWithoutReason: doc({ dead: [good()] }),
      pendingWithReason: doc({ pending: [good({ deadReason: 'expired' })] }),
      duplicateId: doc({ pending: [good({ id: 'same' }), good({ id: 'same' })] }),
    };
    const out = {};
    for (const [name, d] of Object.entries(cases)) {
      try {
        await ob.import(d);
        out[name] = 'accepted';
      } catch (e) {
        out[name] = { code: e.code, isOutboxError: e instanceof window.lib.OutboxError, message: e.message };
      }
    }
    const stored = { pending: (await ob.peek()).length, dead: (await ob.deadLetters()).length };
    await ob.close();
    return { out, stored };
  });
  for (const [name, res] of Object.entries(r.out)) {
    assert.notEqual(res, 'accepted', name);
    assert.ok(res.isOutboxError, name);
    assert.equal(res.code, name === 'unknownHandler' ? 'UnknownHandler' : 'InvalidBackup', `${name}: ${res.message}`);
  }
  assert.match(r.out.unknownTag.message, /pending\[1\]\.mutations\.x\[0\]/);
  assert.match(r.out.missingHandlerField.message, /pending\[1\]/);
  assert.match(r.out.keysWithHole.message, /pending\[0\]: keys must be an array of strings/);
  assert.match(r.out.pendingWithHole.message, /pending\[1\]: a transaction must be an object/);
  assert.deepEqual(r.stored, { pending: 0, dead: 0 }, 'a rejected import stores nothing');
});

test('import stores each record as the outbox writes one (keys once, no nulls or fields of its own, old seq order), and the leader shows them once it resolves', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = window.lib;
    const ob = await Outbox.open({ name: 'backup-normalized', handlers: { hang: () => new Promise(() => {}) } });
    const rec = (id, seq, over = {}) => ({
      id, seq, handler: 'hang', keys: ['k'], idempotencyKey: id, priority: 'normal', attempts: 1, createdAt: 1,
      nextAttemptAt: 1, mutations: id, metadata: { $t: 'undefined' }, ...over,
    });
    const report = await ob.import({
      format: 'offline-outbox-backup', version: 1, name: 'elsewhere', exportedAt: 1,
      pending: [
        rec('b', 5, { keys: ['k', 'j', 'k', 'j'], coalesceKey: null, lastError: null, aliases: [], deadAt: null, mine: 'x' }),
        rec('a', 2),
      ],
      dead: [],
    });
    // Straight after: the leader has taken them in by the time import resolves.
    const peek = await ob.peek();
    const doc = await ob.export();
    await ob.close();
    return { report, records: doc.pending, peekKeys: peek.map((t) => [t.id, t.keys]) };
  });
  assert.deepEqual(r.report, { pending: 2, dead: 0, skipped: 0 });
  assert.deepEqual(r.records.map((t) => t.id), ['a', 'b'], 'in the order of their old seqs');
  const b = r.records[1];
  assert.deepEqual(b.keys, ['k', 'j']);
  for (const field of ['mine', 'coalesceKey', 'lastError', 'aliases', 'deadAt']) assert.ok(!(field in b), `${field} not stored`);
  assert.deepEqual(r.peekKeys, [['a', ['k']], ['b', ['k', 'j']]]);
});

/**
 * A follower imports a dead letter on `doc`, a later transaction on `doc` and one on
 * `other` while the leader runs under the 'block' policy. With `lose`, the follower's word
 * that it imported never arrives (as if its tab died right after the import committed)
 * and the leader finds the records through the follower's next enqueue instead. Returns
 * what the leader sent before and after it discards the dead letter.
 */
async function importBlocked(name, lose) {
  const follower = await openApp(context, srv.origin);
  try {
    await page.evaluate(async (name) => {
      window.blockSeen = [];
      window.blockLeader = await window.lib.Outbox.open({
        name, deadLetterPolicy: 'block', leaderElection: 'web-locks',
        handlers: { ok: async (ctx) => { window.blockSeen.push(ctx.mutations); } },
      });
    }, name);
    const report = await follower.evaluate(async ({ name, lose }) => {
      let dropping = lose;
      const post = BroadcastChannel.prototype.postMessage;
      BroadcastChannel.prototype.postMessage = function (msg) {
        if (!(dropping && msg?.t === 'wake')) post.call(this, msg);
      };
      const ob = await window.lib.Outbox.open({ name, deadLetterPolicy: 'block', leaderElection: 'web-locks', handlers: { ok: window.handlers.ok } });
      const rec = (id, seq, over = {}) => ({
        id, seq, handler: 'ok', keys: ['doc'], idempotencyKey: id, priority: 'normal',
        attempts: 3, createdAt: 1, nextAttemptAt: 1, mutations: id, metadata: { $t: 'undefined' }, ...over,
      });
      const report = await ob.import({
        format: 'offline-outbox-backup', version: 1, name: 'elsewhere', exportedAt: 1,
        pending: [rec('later', 2), rec('other-key', 3, { keys: ['other'] })],
        dead: [rec('died', 1, { deadReason: 'max-attempts', deadAt: 1, lastError: { name: 'Error', message: 'x' } })],
      });
      dropping = false;
      if (lose) await ob.enqueue({ handler: 'ok', keys: ['w'], mutations: 'wake' });
      window.followerOutbox = ob;
      return { report, leader: ob.isLeader };
    }, { name, lose });
    assert.equal(report.leader, false);
    assert.deepEqual(report.report, { pending: 2, dead: 1, skipped: 0 });
    return await page.evaluate(async () => {
      for (let i = 0; i < 200 && !window.blockSeen.includes('other-key'); i++) await new Promise((r) => setTimeout(r, 10));
      await window.blockLeader.drain();
      const before = [...window.blockSeen].sort();
      await window.blockLeader.discardDead('died');
      await window.blockLeader.drain();
      return { before, after: window.blockSeen.slice(before.length) };
    });
  } finally {
    await follower.evaluate(() => window.followerOutbox?.close());
    await page.evaluate(() => window.blockLeader?.close());
    await follower.close();
  }
}

test("import under the 'block' policy: an imported dead letter holds its keys, also when a follower imports", async () => {
  const r = await importBlocked('backup-block', false);
  assert.deepEqual(r.before, ['other-key'], 'the later transaction on the dead key waits');
  assert.deepEqual(r.after, ['later']);
});

test("import under the 'block' policy: the leader holds an imported dead letter even when the importer's word never comes", async () => {
  const r = await importBlocked('backup-block-late', true);
  assert.deepEqual(r.before, ['other-key', 'wake'], 'the imported transaction on the dead key waits');
  assert.deepEqual(r.after, ['later']);
});
