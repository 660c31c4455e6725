// Seeded random calls through the public API, run in the test page by fuzz.test.js: valid
// calls and calls with one field perturbed, on an outbox where some transactions wait a
// day for a retry and hold back what shares their keys (so remove, coalescing and imports
// meet pending work). Each call either resolves or rejects with an OutboxError carrying a
// documented code; a rejected call changes nothing stored (the outbox's export, byte for
// byte, and the database list); what an accepted enqueue carries reaches its handler (or
// the dead letters) equal to its structured clone. Returns what broke, as readable lines.

import { prng, values, same, show } from '../../tests-js/values.js';

const CODES = new Set([
  'InvalidTransaction', 'InvalidOptions', 'UnknownHandler', 'NotSerializable', 'QuotaExceeded',
  'StorageUnavailable', 'Closed', 'Dead', 'NotFound', 'InFlight', 'Removed', 'NotLeader', 'InvalidBackup',
]);
const HANG_MS = 10_000;

/**
 * Replaces, deletes or adds beside one random field of a plain-data tree (options, a
 * transaction, a backup), copying only the objects on the way to it: the tree may hold
 * getters that throw and proxies that trap, which are only ever passed along, never read.
 */
function perturb(tree, rand, v) {
  const paths = [];
  const seen = new Set(); // a cycle is walked once
  const walk = (node, path) => {
    paths.push(path);
    if (seen.has(node)) return;
    if (node && typeof node === 'object') seen.add(node);
    for (const [k, d] of Object.entries(fields(node))) if ('value' in d) walk(d.value, [...path, k]);
  };
  walk(tree, []);
  const path = paths.length > 1 ? v.pick(paths.slice(1)) : [];
  const value = v.any(2, true);
  if (path.length === 0) return { tree: value, what: `whole → ${show(value)}` };
  const root = copy(tree);
  let parent = root;
  for (const k of path.slice(0, -1)) parent = parent[k] = copy(parent[k]);
  const key = path[path.length - 1];
  const r = rand();
  if (r < 0.15) delete parent[key];
  else if (r < 0.25) parent[`${key}Extra`] = value;
  else parent[key] = value;
  return { tree: root, what: `${path.join('.')} ${r < 0.15 ? 'deleted' : `${r < 0.25 ? 'gets a neighbour' : '→'} ${show(value)}`}` };
}

/** The own property descriptors of a plain object or array; none for anything else. */
function fields(node) {
  try {
    const plain = Array.isArray(node) || (node && typeof node === 'object' && Object.getPrototypeOf(node) === Object.prototype);
    if (!plain) return {};
    const all = Object.getOwnPropertyDescriptors(node);
    delete all.length;
    return all;
  } catch {
    return {}; // a proxy's trap
  }
}

/** A shallow copy that keeps accessors as accessors. */
const copy = (node) => Object.defineProperties(Array.isArray(node) ? new Array(node.length) : {}, fields(node));

const timeout = (p, what) => Promise.race([
  p, new Promise((_, reject) => setTimeout(() => reject(new Error(`hung: ${what}`)), HANG_MS)),
]);

async function databases() {
  return (await indexedDB.databases()).map((d) => d.name).sort().join('\n');
}

/** Deletes the database of the outbox `name`. */
const dropDatabase = (name) => new Promise((done) => {
  const q = indexedDB.deleteDatabase(`offline-outbox:${name}`);
  q.onsuccess = q.onerror = done;
});

export async function run({ seed, steps, options }) {
  const { Outbox, OutboxError, NonRetriableError } = window.lib;
  const rand = prng(seed);
  const v = values(rand);
  const failures = [];
  const fail = (step, what, why) => failures.push(`seed ${seed} step ${step}: ${what}: ${why}`);
  const received = new Map(); // id -> { mutations, metadata } as the handler saw them
  const receive = (ctx) => received.set(ctx.id, { mutations: ctx.mutations, metadata: ctx.metadata });
  const handlers = {
    ok: async (ctx) => { receive(ctx); },
    dead: async () => { throw new NonRetriableError('refused'); },
    // Fails once and retries a day later: pending, holding back what shares its keys. Under
    // attemptTimeoutMs (the outbox's or its own) it fails by never answering.
    hold: options.attemptTimeoutMs ? () => new Promise(() => {})
      : options.ownTimeout ? { send: () => new Promise(() => {}), attemptTimeoutMs: 20 }
        : async () => { throw new Error('later'); },
    batch: {
      sendBatch: async (batch) => { batch.forEach(receive); },
    },
  };
  const name = `fuzz-${seed}-${Object.keys(options).join('-')}`;
  // A failed attempt retries only a day later, so no timer fires between a call and its check.
  const DAY = 86_400_000;
  const retry = { maxAttempts: 2, baseDelayMs: DAY, maxDelayMs: DAY, jitter: 'none' };
  // With `follower`, every call goes through a second instance that does not lead.
  const { follower, ownTimeout, ...opts } = options;
  const openBoth = async () => {
    const first = await Outbox.open({ name, handlers, leaderElection: follower ? 'web-locks' : 'none', retry, ...opts });
    return [first, follower ? await Outbox.open({ name, handlers, leaderElection: 'web-locks', retry, ...opts }) : first];
  };
  let [lead, ob] = await openBoth();
  if (follower && ob.isLeader) fail('start', 'a second instance', 'leads too');
  // Runs what is runnable now; with a follower, until the leader has taken in all it wrote
  // (its peek lists what it holds; the follower's, what is stored).
  const quiet = async (what) => {
    const list = async (o) => JSON.stringify((await o.peek()).map((t) => [t.id, t.status]));
    for (let i = 0; ; i++) {
      await timeout(lead.drain(), what);
      if (!follower || (await list(lead)) === (await list(ob))) return;
      if (i === 200) throw new Error(`the leader never took in what the follower wrote (${what})`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const ids = [];
  const expected = new Map(); // id -> the structured clone of what was enqueued, and its handler
  const gone = new Set(); // ids removed or discarded
  // Takes out what waits for a retry, and so whatever it held back runs; with `all`, every
  // transaction not due yet (an import may set any time), one at a time otherwise.
  const release = async (all) => {
    let removed = 0;
    for (const t of await ob.peek()) {
      if (all ? t.nextAttemptAt > Date.now() : t.attempts > 0) {
        await ob.remove(t.id);
        gone.add(t.id);
        removed++;
        if (!all) break;
      }
    }
    return removed;
  };
  const snapshot = async () => {
    const b = await ob.export();
    delete b.exportedAt;
    return JSON.stringify(b);
  };
  // Whether a rejection was right: a documented code, and nothing stored changed.
  const rejected = async (step, what, e, before) => {
    if (!(e instanceof OutboxError) || !CODES.has(e.code)) {
      fail(step, what, `threw ${e?.name}: ${String(e?.message).slice(0, 200)}`);
      return;
    }
    if (before !== undefined && (await snapshot()) !== before) fail(step, what, `rejected (${e.code}) yet changed the outbox`);
  };
  const tally = {}; // "op outcome" -> calls, to show what a run reached
  const count = (op, outcome) => { tally[`${op} ${outcome}`] = (tally[`${op} ${outcome}`] ?? 0) + 1; };
  // Runs one call: its value as `out`, or its checked rejection as `e`. A method that
  // answers with a promise must report every failure through it, never throw at once.
  const attempt = async (step, op, what, call, before) => {
    let pending;
    try {
      pending = call();
    } catch (e) {
      count(op, 'threw at once');
      fail(step, what, `threw at once: ${e?.name}: ${String(e?.message).slice(0, 200)}`);
      return { e };
    }
    try {
      const out = await timeout(pending, what);
      count(op, 'ok');
      return { out };
    } catch (e) {
      count(op, e?.code ?? e?.name);
      await rejected(step, what, e, before);
      return { e };
    }
  };
  const idArg = () => (rand() < 0.7 && ids.length ? v.pick(ids) : v.any(1, true));

  for (let step = 0; step < steps; step++) {
    await quiet('drain');
    const before = await snapshot();
    // Nothing but the outbox writes its database here, so every record must read back: a
    // corrupt one means an earlier call stored what the outbox cannot read.
    const corrupt = before.indexOf('"deadReason":"corrupt"');
    if (corrupt >= 0) {
      fail(step, 'an earlier call', `stored a record that does not decode: ${before.slice(corrupt - 500, corrupt)}`);
      break;
    }
    const r = rand();
    if (r < 0.5) {
      // enqueue: valid apart from what the data refuses, or with one field perturbed; now
      // and then several in one task, which the outbox writes as one group commit (a group
      // record's members then meet every later call).
      const burst = rand() < 0.2 ? 2 + v.int(5) : 1;
      const calls = Array.from({ length: burst }, () => {
        const handler = rand() < 0.05 ? 'hold' : v.pick(['ok', 'ok', 'batch', 'dead', 'http']);
        const base = {
          handler,
          keys: Array.from({ length: v.int(3) }, () => v.pick(['a', 'b', 'c', '', 'é😀', String(v.int(9))])),
          mutations: handler === 'http'
            ? { method: v.pick(['POST', 'PUT', 'GET']), url: v.pick(['/api/mutate', 'not a url', 'ftp://x']), body: v.pick([undefined, 'b', new Uint8Array([1])]) }
            : v.any(3, true),
          metadata: rand() < 0.5 ? v.any(2, true) : undefined,
          priority: v.pick([undefined, 'high', 'normal', 'low']),
          coalesceKey: rand() < 0.15 ? v.pick(['c1', 'c2']) : undefined,
        };
        const perturbed = rand() < 0.3 ? perturb(base, rand, v) : null;
        const tx = perturbed ? perturbed.tree : base;
        const what = `enqueue ${perturbed ? perturbed.what : `${handler} ${show(base.mutations)}`}${burst > 1 ? ` (1 of ${burst} in one task)` : ''}`;
        let clone;
        let cloneable = true;
        try { clone = structuredClone({ mutations: tx.mutations, metadata: tx.metadata }); } catch { cloneable = false; }
        // Issued at once, all of them in this task. A refusal within a burst leaves the
        // others to be written, so only a lone call's refusal is checked to change nothing.
        return { handler, base, perturbed, what, clone, cloneable, done: attempt(step, 'enqueue', what, () => ob.enqueue(tx), burst > 1 ? undefined : before) };
      });
      for (const { handler, base, perturbed, what, clone, cloneable, done } of calls) {
        const { out: info, e } = await done;
        if (info) {
          ids.push(info.id);
          if (!cloneable) fail(step, what, 'accepted what structured clone refuses');
          // A coalesced transaction reaches its handler under another's id.
          else if (['ok', 'batch', 'dead'].includes(handler) && !perturbed && !base.coalesceKey) expected.set(info.id, { clone, handler, what });
        } else if (!perturbed && ['ok', 'batch', 'dead', 'hold'].includes(handler) && cloneable) {
          // Valid transactions are refused only for what they carry.
          fail(step, what, `refused a cloneable transaction: ${e?.code} ${e?.message}`);
        }
      }
    } else if (r < 0.53) {
      await release(false);
    } else if (r < 0.62) {
      const op = v.pick(['remove', 'retryDead', 'discardDead']);
      const list = op === 'remove' ? 'peek' : 'deadLetters';
      const full = await ob[list]();
      if (full.some((t, i) => i > 0 && t.seq <= full[i - 1].seq)) fail(step, `${list}()`, `not in seq order: ${full.map((t) => t.seq)}`);
      const listed = full.map((t) => t.id);
      // The same list with random options: refused as documented, or its first `limit`.
      const opts = rand() < 0.6 ? { limit: v.pick([0, 1, 2, 2.5, 1e9, Infinity, undefined, v.any(0, true)]) } : v.any(1, true);
      const shown = `${list}(${show(opts)})`;
      const { out: head } = await attempt(step, list, shown, () => ob[list](opts), before);
      if (head) {
        const limit = opts?.limit ?? Infinity;
        const want = listed.slice(0, Math.trunc(limit));
        const got = head.map((t) => t.id);
        if (got.join() !== want.join()) fail(step, shown, `listed ${got.length} ids, not the first ${want.length} of ${listed.length}`);
      }
      const id = rand() < 0.7 && listed.length ? v.pick(listed) : idArg();
      const what = `${op}(${show(id)})`;
      if (!(await attempt(step, op, what, () => ob[op](id), before)).e && op !== 'retryDead') gone.add(id);
    } else if (r < 0.7) {
      const id = idArg();
      const what = `settled(${show(id)})`;
      // It waits while its transaction (maybe one it was folded into) is pending; with
      // nothing pending it answers at once.
      const waits = (await ob.peek()).length > 0;
      await attempt(step, 'settled', what, () => (waits ? Promise.race([ob.settled(id), new Promise((r) => setTimeout(r, 20))]) : ob.settled(id)));
    } else if (r < 0.78) {
      // import: a backup of this outbox plus one new pending transaction, one field perturbed.
      const backup = JSON.parse(before);
      backup.exportedAt = Date.now();
      backup.pending.push({
        id: crypto.randomUUID(), seq: 1e6 + step, handler: 'ok', keys: ['a'], idempotencyKey: `k${step}`, priority: 'normal',
        attempts: 0, createdAt: 1, nextAttemptAt: 0, mutations: { $t: 'date', v: 5 }, metadata: null,
      });
      const perturbed = rand() < 0.8 ? perturb(backup, rand, v) : { tree: backup, what: 'as exported' };
      const what = `import ${perturbed.what}`;
      const arg = rand() < 0.2 ? (() => { try { return JSON.stringify(perturbed.tree); } catch { return perturbed.tree; } })() : perturbed.tree;
      await attempt(step, 'import', what, () => ob.import(arg), before);
    } else if (r < 0.84) {
      const arg = rand() < 0.5 ? { budgetMs: v.any(0, true) } : v.any(1, true);
      const what = `drain(${show(arg)})`;
      await attempt(step, 'drain', what, () => ob.drain(arg), before);
    } else if (r < 0.9) {
      const arg = rand() < 0.3 ? () => {} : v.any(1, true);
      const what = `subscribe(${show(arg)})`;
      let off, e;
      try {
        off = ob.subscribe(arg);
        count('subscribe', 'ok');
      } catch (err) {
        e = err;
        count('subscribe', e?.code ?? e?.name);
        await rejected(step, what, e, before);
      }
      if (!e && typeof off !== 'function') fail(step, what, 'returned no unsubscribe function');
      else off?.();
    } else if (r < 0.93) {
      // reopen: every instance closes and opens again, and the new leader reads what is
      // stored (group records, holes, members moved out of their group). What is listed
      // stays, but for coalescing transactions, which may fold as they are read.
      const listed = async () => (await Promise.all([ob.peek(), ob.deadLetters()])).flat()
        .filter((t) => !t.coalesceKey).map((t) => `${t.id.slice(0, 8)} ${t.status} ${t.handler} [${t.keys}] attempts ${t.attempts}`).sort();
      const was = await listed();
      if (follower) await timeout(ob.close(), 'close the follower');
      await timeout(lead.close(), 'close');
      [lead, ob] = await timeout(openBoth(), 'reopen');
      await quiet('reopen');
      const now = await listed();
      count('reopen', 'ok');
      const gone = was.filter((t) => !now.includes(t));
      const added = now.filter((t) => !was.includes(t));
      if (gone.length || added.length) fail(step, 'close and reopen', `listed no more: ${gone.join('; ')}; listed since: ${added.join('; ')}`);
    } else {
      // open: a valid set of options with one field perturbed, under a fresh name.
      const base = {
        name: `fuzz-open-${seed}-${step}`, handlers: { ok: handlers.ok, spec: { send: handlers.ok, merge: (a) => a, attemptTimeoutMs: 5000 } },
        leaderElection: 'none', maxConcurrency: 2, ordering: 'fifo', retry: { baseDelayMs: 10, jitter: 'none' },
        network: { policy: 'always' }, capacity: { maxCount: 10 }, persist: false, compress: true, attemptTimeoutMs: 60000,
      };
      const { tree, what: change } = perturb(base, rand, v);
      const what = `open ${change}`;
      const dbs = await databases();
      const { out: other } = await attempt(step, 'open', what, () => Outbox.open(tree));
      if (other) {
        await other.close();
        await dropDatabase(other.name);
      } else if ((await databases()) !== dbs) {
        fail(step, what, 'rejected yet created a database');
      }
    }
  }

  // Each round may run another transaction that then waits a day: until none is left
  // (what is due yet never runs is left for the checks below to report).
  const settle = async () => {
    do await quiet('final drain');
    while (await release(true));
  };
  await settle();
  // A backup of what is left (dead letters, and under the block policy what they hold
  // back) reads back into a new outbox as it was, where nothing it holds back runs.
  const backup = await ob.export();
  const twin = await Outbox.open({ name: `${name}-copy`, handlers, leaderElection: 'none', retry, ...opts });
  const report = await timeout(twin.import(JSON.stringify(backup)), 'import into a copy');
  await timeout(twin.drain(), 'drain the copy');
  const again = await twin.export();
  await twin.close();
  await dropDatabase(twin.name);
  // Records with a coalesce key may fold as the copy's leader loads them (the README's
  // Coalescing says when), so they are left out here.
  const comparable = (b) => JSON.stringify([...b.pending, ...b.dead].filter((t) => !t.coalesceKey).map(({ seq, ...t }) => t));
  if (report.dead !== backup.dead.length || report.pending !== backup.pending.length || comparable(again) !== comparable(backup)) {
    const [a, b] = [comparable(backup), comparable(again)];
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    const where = (doc, id) => (doc.pending.some((t) => t.id === id) ? 'pending' : doc.dead.some((t) => t.id === id) ? 'dead' : 'absent');
    const moved = [...backup.pending, ...backup.dead].filter((t) => where(backup, t.id) !== where(again, t.id))
      .map((t) => `${t.id.slice(0, 8)} ${t.handler} [${t.keys}] ${where(backup, t.id)} → ${where(again, t.id)}`);
    fail('end', 'export, import elsewhere, export', `${report.pending} of ${backup.pending.length} pending and ${report.dead} of ${backup.dead.length} dead imported; moved: ${moved.join('; ') || 'none'}; first difference: ${a.slice(i - 150, i + 80)} ≠ ${b.slice(i - 20, i + 80)}`);
  }
  // Fidelity: every accepted transaction reached its handler, or the dead letters, as cloned.
  const dead = new Map();
  for (;;) {
    const letters = await ob.deadLetters();
    for (const d of letters) dead.set(d.id, d);
    // Under the block policy each dead letter holds its keys: discarded, what it held runs.
    if (opts.deadLetterPolicy !== 'block' || !letters.length) break;
    for (const d of letters) await ob.discardDead(d.id);
    await settle();
  }
  for (const [id, { clone, handler, what }] of expected) {
    const got = handler === 'dead' ? dead.get(id) : received.get(id);
    if (!got) {
      if (!gone.has(id)) fail('end', what, `${id} never reached its handler`);
      continue;
    }
    if (!(await same(got.mutations, clone.mutations))) fail('end', what, `mutations came back as ${show(got.mutations)}`);
    if (!(await same(got.metadata, clone.metadata))) fail('end', what, `metadata came back as ${show(got.metadata)}`);
  }
  // Still a working module: a last transaction goes all the way.
  const last = await ob.enqueue({ handler: 'ok', keys: ['a'], mutations: 'last' });
  try {
    await timeout(ob.settled(last.id), 'last settled');
  } catch (e) {
    const left = (await ob.peek()).map((t) => `${t.handler} [${t.keys}] ${t.status} attempts ${t.attempts} due ${t.nextAttemptAt - Date.now()} ms`);
    fail('end', 'a last transaction', `${e.message}; pending: ${left.join('; ')}`);
  }
  await ob.close();
  if (follower) await lead.close();
  return { failures, tally, checked: expected.size };
}
