// The few IndexedDB promises the store needs. A transaction's requests are issued
// together and awaited once, on the transaction's completion: one callback per
// transaction instead of two per request.

import { acknowledged } from './records.js';

/** Why `tx` aborted. */
const abortError = (tx) => tx.error ?? new DOMException('transaction aborted', 'AbortError');

/**
 * Resolves when the transaction commits; rejects with its error if it aborts. With
 * `commit`, asks for the commit at once (no more requests will come) instead of waiting
 * for the last request's result to reach JS first: one round trip less per write.
 */
export function transactionDone(tx, commit) {
  if (commit && typeof tx.commit === 'function') {
    try { tx.commit(); } catch { /* already finishing */ }
  }
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => {
      if (tx.fenced) reject(new DOMException('another context leads this outbox now (epoch changed)', 'NotLeaderError'));
      else reject(abortError(tx));
    };
  });
}

/**
 * Runs `then()` inside `tx` once its epoch read shows `epoch` still current; otherwise
 * aborts `tx` (transactionDone then rejects with NotLeaderError).
 */
function whileLeading(tx, epoch, then) {
  const req = tx.objectStore('meta').get('epoch');
  req.onsuccess = () => {
    if ((req.result ?? 0) !== epoch) {
      tx.fenced = true;
      tx.abort();
      return;
    }
    then();
  };
}

/**
 * Issues `ops` in `tx` and asks for the commit once every request is issued; aborts `tx`
 * if one cannot be. ops: ['put', store, value, key?] | ['delete', store, key] |
 * ['deleteRange', store, lo, hi] | ['ungroup', group, seqs, move] (see `ungroup`).
 */
function applyOps(tx, ops) {
  let waiting = 1;
  const issued = () => {
    if (--waiting === 0 && typeof tx.commit === 'function') tx.commit();
  };
  try {
    for (const [op, name, a, b] of ops) {
      if (op === 'ungroup') {
        waiting++;
        ungroup(tx, name, a, b, issued);
        continue;
      }
      const store = tx.objectStore(name);
      if (op === 'put') (b === undefined ? store.put(a) : store.put(a, b));
      else if (op === 'delete') store.delete(a);
      else store.delete(IDBKeyRange.bound(a, b));
    }
  } catch (e) {
    tx.abort();
    return;
  }
  issued();
}

/**
 * Takes the members `seqs` out of the group record `group` (a group commit's metadata,
 * see `appendGroups`): each leaves a hole, so the others keep their seqs. With `move`, a
 * member's payload is copied out of the group's payload record to its own, under its id
 * (its record is being written on its own). The last member out deletes both group
 * records. A member already out (written on its own earlier) is left alone.
 */
function ungroup(tx, group, seqs, move, then) {
  const outbox = tx.objectStore('outbox');
  const payloads = tx.objectStore('payloads');
  const record = outbox.get(group);
  const values = move ? payloads.get(group) : null;
  (values ?? record).onsuccess = () => {
    const g = record.result;
    const out = [];
    if (g && Array.isArray(g.metas) && Array.isArray(g.ids)) {
      for (const seq of seqs) {
        const j = seq - group - 1;
        if (g.metas[j]) {
          out.push(g.metas[j].id);
          g.metas[j] = null;
        }
      }
    }
    if (out.length) {
      const p = values?.result;
      if (isGroupPayload(p)) for (const id of out) payloads.put(p.values[p.ids.indexOf(id)], id);
      g.ids = g.ids.filter((id) => !out.includes(id));
      if (g.ids.length) outbox.put(g);
      else {
        outbox.delete(group);
        payloads.delete(group);
      }
    }
    then();
  };
}

const isGroupPayload = (p) => Boolean(p) && Array.isArray(p.ids) && Array.isArray(p.values);

/**
 * Writes a group commit of several transactions as two records per `most` of them instead
 * of two each (IndexedDB's cost is per record): their metadata records in one `outbox`
 * record under the seq its key generator allocates, `{ seq: S, metas, ids }` (the
 * `members` index finds it by id), and their payloads as `{ ids, values }` under S in
 * `payloads`. Member i takes seq S + 1 + i: the key generator is moved past them in the
 * same transaction, so the seqs of every other write follow. Capped at `most` members, as
 * a dispatch reads a group's whole payload record. `out.groups` holds each group's S once
 * committed.
 */
export function appendGroups(tx, metas, values, most) {
  const outbox = tx.objectStore('outbox');
  const out = { groups: [] };
  const next = (from) => {
    if (from >= metas.length) {
      if (typeof tx.commit === 'function') tx.commit();
      return;
    }
    const chunk = metas.slice(from, from + most);
    const ids = chunk.map((m) => m.id);
    const req = outbox.put({ metas: chunk, ids });
    req.onsuccess = () => {
      const group = req.result;
      out.groups.push(group);
      tx.objectStore('payloads').put({ ids, values: values.slice(from, from + most) }, group);
      outbox.put({ seq: group + chunk.length });
      outbox.delete(group + chunk.length);
      next(from + most);
    };
  };
  next(0);
  return out;
}

/** Fenced writes: issues `ops` only while `epoch` is current (see whileLeading). */
export function fencedOps(tx, epoch, ops) {
  whileLeading(tx, epoch, () => applyOps(tx, ops));
}

/**
 * Issues `ops` only while the dead letter `seq` is still there: another context may have
 * retried or discarded it since it was read. `out.gone` says it was not.
 */
export function whileDead(tx, seq, ops) {
  const out = { gone: false };
  const req = tx.objectStore('dead').getKey(seq);
  req.onsuccess = () => {
    if (req.result === undefined) out.gone = true;
    else applyOps(tx, ops);
  };
  return out;
}

/**
 * Deletes the payloads of acknowledged transactions, off the drain's path: an
 * acknowledgement writes their ids as one `acked` record (one put, where deleting each
 * payload costs about 100 µs of IndexedDB time, which would hold up the payload reads
 * of the drain) and this takes such records in order, with their payloads, until about
 * `most` payloads (at least one record), fenced like every leader write. `out.swept`
 * counts the payloads, `out.left` whether more records wait.
 */
export function sweepAcked(tx, epoch, most) {
  const out = { swept: 0, left: false };
  whileLeading(tx, epoch, () => {
    const acked = tx.objectStore('acked');
    const req = acked.openCursor();
    let last;
    req.onsuccess = () => {
      const cursor = req.result;
      if (cursor && out.swept < most) {
        for (const id of cursor.value) tx.objectStore('payloads').delete(id);
        out.swept += cursor.value.length;
        last = cursor.key;
        cursor.continue();
        return;
      }
      out.left = Boolean(cursor);
      if (last !== undefined) acked.delete(IDBKeyRange.upperBound(last));
      if (typeof tx.commit === 'function') tx.commit();
    };
  });
  return out;
}

/** Increments the epoch; `out.epoch` holds the new value once the transaction commits. */
export function bumpEpoch(tx) {
  const meta = tx.objectStore('meta');
  const out = { epoch: 0 };
  const req = meta.get('epoch');
  req.onsuccess = () => {
    out.epoch = (req.result ?? 0) + 1;
    meta.put(out.epoch, 'epoch');
  };
  return out;
}

/**
 * Outbox records after the seq `after` (from the first where null), metadata only, in seq
 * order: the first that span `limit` seqs (at most `limit` records), `out.more` saying
 * whether others follow; with `count`, read on in the same transaction until `count`
 * records are read (acknowledged transactions leave holes in the seqs, so how many seqs
 * hold `count` is not known ahead). A group record comes out as its members, each with its
 * seq set, and spans their seqs: the limit bounds what is decoded at once whatever the
 * layout, and a group record reaching past it comes out only up to it. Once the
 * transaction completes: `out.keys`, `out.values`, `out.offsets` (how far below its seq a
 * member's group record lies, 0 for a record of its own), and `out.dead` (with `dead`, the
 * dead letters after `after`).
 */
export function loadRange(tx, after, limit, dead, most, count) {
  const out = { keys: [], values: [], offsets: [], more: false, dead: null };
  // Each read spans twice the seqs of the last (or the count still missing, if more): a
  // sparse head costs a few reads, and all of them span about twice the seqs needed.
  const next = (from, span, withDead) => readRange(tx, from, span, withDead, most, out, (cut) => {
    if (out.more && out.keys.length < count) next(cut, Math.max(count - out.keys.length, 2 * span), false);
  });
  next(after, limit, dead);
  return out;
}

/**
 * One read of `loadRange`, appended to `out`; `done(cut)` once taken, cut the last seq it
 * spanned. The next read, after that, takes the rest: the group record holding seqs above
 * `after` is the nearest group record at most `most` (a group's size) below it, since its
 * members take the seqs right after its key; records of their own may lie in between (a
 * member moved out of its group, by a retry say, keeps its seq), hence the sort.
 */
function readRange(tx, after, limit, dead, most, out, done) {
  const store = tx.objectStore('outbox');
  const range = after === null ? null : IDBKeyRange.lowerBound(after, true);
  let cut = null;
  const isGroup = (value) => value !== null && typeof value === 'object' && Array.isArray(value.metas);
  let below = null;
  let read = [];
  const rows = [];
  let parts = after === null ? 1 : 2;
  const part = () => {
    if (--parts > 0) return;
    if (below) take(below.key, below.value);
    read.forEach(([key, value]) => take(key, value));
    for (const [seq, value, offset] of rows.sort((a, b) => a[0] - b[0])) {
      out.keys.push(seq);
      out.values.push(value);
      out.offsets.push(offset);
    }
    done(cut);
  };
  if (after !== null) {
    const req = store.openCursor(IDBKeyRange.bound(Math.max(0, after - most), after), 'prev');
    req.onsuccess = () => {
      const cursor = req.result;
      if (cursor && !isGroup(cursor.value)) {
        cursor.continue();
        return;
      }
      below = cursor && { key: cursor.key, value: cursor.value };
      part();
    };
  }
  const keys = store.getAllKeys(range, limit);
  const take = (key, value) => {
    if (!isGroup(value)) {
      if (after === null || key > after) rows.push([key, value, 0]);
      return;
    }
    value.metas.forEach((m, j) => {
      const seq = key + 1 + j;
      if (m === null || (after !== null && seq <= after)) return;
      if (cut !== null && seq > cut) {
        out.more = true;
        return;
      }
      if (typeof m === 'object') m.seq = seq;
      rows.push([seq, m, j + 1]);
    });
  };
  const takeAll = (records) => {
    read = records;
    part();
  };
  // The first record is read alongside the keys: where it alone spans the limit (a
  // group record, typically, as a new leader's first read meets it), that is the whole
  // read, in one round trip instead of two.
  const first = store.getAll(range, 1);
  keys.onsuccess = () => {
    const k = keys.result;
    // A record spans the seqs up to the next record's key.
    let end = k.length;
    for (let i = 0, span = 0; i < k.length; i++) {
      span += i + 1 < k.length ? k[i + 1] - k[i] : 1;
      if (span >= limit) {
        end = i + 1;
        break;
      }
    }
    out.more = k.length === limit || end < k.length;
    if (k.length) cut = k[0] + limit - 1;
    if (end === 0) {
      takeAll([]);
      return;
    }
    const rest = end > 1 ? store.getAll(IDBKeyRange.bound(k[1], k[end - 1])) : null;
    (rest ?? first).onsuccess = () => takeAll([
      [k[0], first.result[0]],
      ...(rest ? rest.result.map((value, i) => [k[i + 1], value]) : []),
    ]);
  };
  if (dead) out.dead = tx.objectStore('dead').getAll(range);
}

/** How many transactions the outbox holds: its records, each group counted by members. */
export function countPending(tx) {
  const store = tx.objectStore('outbox');
  const out = { count: 0 };
  const all = store.count();
  const groups = store.index('groups').count();
  const members = store.index('members').count();
  members.onsuccess = () => { out.count = all.result - groups.result + members.result; };
  return out;
}

/**
 * Where each transaction id of `ids` is: { dead: record } | { payload: true } (pending: a
 * pending or dead transaction has its payload) | { member: true } (pending in a group
 * record) | {} (none: acknowledged or never enqueued). An id folded into another
 * transaction is where that one is; one listed in `acked` is acknowledged, its payload not
 * yet swept. One transaction and one read of `acked` for them all: a context that may have
 * missed outcomes asks for every id it waits on at once.
 */
export function locate(tx, ids) {
  const outs = ids.map(() => ({}));
  const acked = tx.objectStore('acked').getAll();
  acked.onsuccess = () => {
    const all = new Set(acked.result.flat());
    ids.forEach((id, i) => { if (all.has(id)) outs[i].acked = true; });
  };
  ids.forEach((id, i) => named(tx, id, (id, removed) => {
    const out = outs[i];
    out.removed = removed;
    const p = tx.objectStore('payloads').getKey(id);
    p.onsuccess = () => { if (p.result !== undefined) out.payload = true; };
    const g = tx.objectStore('outbox').index('members').getKey(id);
    g.onsuccess = () => { if (g.result !== undefined) out.member = true; };
    const d = tx.objectStore('dead').index('id').get(id);
    d.onsuccess = () => { if (d.result !== undefined) out.dead = d.result; };
  }));
  return outs;
}

/**
 * How `settled(id)` ends, from what `locate` found: undefined while the transaction is
 * pending (whoever sends it settles it), `[true, info]` once acknowledged, `[false, why]`
 * if dead (`why` its last error's message) and `[false, null]` if removed; the engine
 * words the rejections.
 */
function outcome(found, id) {
  if (found.dead) return [false, found.dead.lastError?.message ?? ''];
  if ((found.payload && !found.acked) || found.member) return undefined;
  if (found.removed) return [false, null];
  return [true, acknowledged(id)];
}

/** `outcome` for each id of `ids`, from what `locate` found for it. */
export const outcomes = (found, ids) => found.map((f, i) => outcome(f, ids[i]));

/**
 * Calls `then` with the id of the transaction `id` names (itself, or the one it was folded
 * into) and whether `id` is marked removed (an `aliases` entry holding the time it was
 * removed instead of an owner's id).
 */
function named(tx, id, then) {
  const alias = tx.objectStore('aliases').get(id);
  alias.onsuccess = () => {
    const owner = alias.result;
    then(typeof owner === 'string' ? owner : id, typeof owner === 'number');
  };
}

/** Deletes the removal marks in `aliases` set before `before` (see `named`). */
export function pruneRemoved(tx, before) {
  const req = tx.objectStore('aliases').openCursor();
  req.onsuccess = () => {
    const cursor = req.result;
    if (!cursor) {
      if (typeof tx.commit === 'function') tx.commit();
      return;
    }
    if (typeof cursor.value === 'number' && cursor.value < before) cursor.delete();
    cursor.continue();
  };
}

/**
 * The dead letter `id` names: its own record or, for an id folded into another
 * transaction, that one's. `out.record` once the transaction completes (undefined: none).
 */
export function findDead(tx, id) {
  const out = {};
  named(tx, id, (id) => {
    const dead = tx.objectStore('dead').index('id').get(id);
    dead.onsuccess = () => { out.record = dead.result; };
  });
  return out;
}

/**
 * Brings the database from `old` (0 when new) to the current layout (see `store.rs` for
 * what each store holds), inside the versionchange transaction `tx`. Each step upgrades
 * the version before it in place: records are never copied or dropped.
 */
function upgrade(db, tx, old, version) {
  if (old < 1) {
    db.createObjectStore('outbox', { keyPath: 'seq', autoIncrement: true });
    db.createObjectStore('payloads');
    db.createObjectStore('dead', { keyPath: 'seq' }).createIndex('id', 'id', { unique: true });
    db.createObjectStore('meta');
  }
  if (old < 3) {
    db.createObjectStore('aliases');
    db.createObjectStore('acked', { autoIncrement: true });
    // Version 2's `aliases` index on the outbox becomes the `aliases` store (version 1
    // had no coalescing, hence no aliases to move).
    if (old >= 2) {
      const outbox = tx.objectStore('outbox');
      const aliases = tx.objectStore('aliases');
      const req = outbox.index('aliases').getAll();
      req.onsuccess = () => {
        for (const meta of req.result) for (const alias of meta.aliases) aliases.put(meta.id, alias);
        outbox.deleteIndex('aliases');
      };
    }
  }
  if (old < 4) {
    const outbox = tx.objectStore('outbox');
    outbox.createIndex('members', 'ids', { multiEntry: true });
    // Counts group records (only they have `ids`), for the pending count.
    outbox.createIndex('groups', 'ids.length');
  }
  tx.objectStore('meta').put(version, 'schemaVersion');
}

/** Opens `name` at schema `version`, upgrading its layout first where it is older. */
export function openDatabase(name, version) {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = indexedDB.open(name, version);
    } catch (e) {
      reject(e);
      return;
    }
    req.onupgradeneeded = (ev) => {
      try {
        upgrade(req.result, req.transaction, ev.oldVersion, version);
      } catch (e) {
        req.transaction.abort();
        reject(e);
      }
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => {};
  });
}

/**
 * The payload records of `ids`, in one transaction: where `groups[i]` names the group
 * record transaction i was written in, from that group's payload record (read once for
 * all its members), else under its id; failing that, from the other place (a member
 * written on its own since, or one whose group the caller did not know). Resolves with
 * the values (undefined where none) once every read is answered, without waiting for the
 * transaction to complete: a read-only one has nothing to commit, and its completion can
 * come milliseconds later, after whatever else the page runs meanwhile.
 */
export function readPayloads(tx, ids, groups) {
  const store = tx.objectStore('payloads');
  const members = tx.objectStore('outbox').index('members');
  const values = [];
  let pending = 0;
  let answered;
  const done = new Promise((resolve, reject) => {
    answered = () => resolve(values);
    tx.addEventListener('abort', () => reject(abortError(tx)));
  });
  // A read's follow-up reads are issued in its success handler, before it counts as done.
  const read = (req, then) => {
    pending++;
    req.onsuccess = () => {
      then(req.result);
      if (--pending === 0) answered();
    };
  };
  const reads = new Map();
  const fromGroup = (i, key, otherwise) => {
    let group = reads.get(key);
    if (!group) {
      group = { waiting: [] };
      reads.set(key, group);
      read(store.get(key), (result) => {
        group.result = isGroupPayload(result) ? result : { ids: [], values: [] };
        for (const use of group.waiting) use();
      });
    }
    const use = () => {
      const at = group.result.ids.indexOf(ids[i]);
      if (at >= 0) values[i] = group.result.values[at];
      else otherwise();
    };
    if (group.result) use();
    else group.waiting.push(use);
  };
  const own = (i, otherwise) => read(store.get(ids[i]), (result) => {
    if (result !== undefined) values[i] = result;
    else otherwise();
  });
  const indexed = (i) => read(members.getKey(ids[i]), (key) => {
    if (key !== undefined) fromGroup(i, key, () => {});
  });
  ids.forEach((id, i) => {
    const group = groups[i];
    if (group === undefined || group === null) own(i, () => indexed(i));
    else fromGroup(i, group, () => own(i, () => {}));
  });
  if (pending === 0) answered();
  values.length = ids.length;
  return done;
}

/**
 * Every payload record as `{ keys, values }` by transaction id, group payload records
 * taken apart (their members that are gone or written on their own included: a payload
 * under its own id comes later and wins).
 */
export function allPayloads(tx) {
  const store = tx.objectStore('payloads');
  const out = { keys: [], values: [] };
  const keys = store.getAllKeys();
  const values = store.getAll();
  values.onsuccess = () => {
    const own = [];
    keys.result.forEach((key, i) => {
      const v = values.result[i];
      if (typeof key === 'number') {
        if (!isGroupPayload(v)) return;
        v.ids.forEach((id, j) => { out.keys.push(id); out.values.push(v.values[j]); });
      } else own.push(i);
    });
    for (const i of own) {
      out.keys.push(keys.result[i]);
      out.values.push(values.result[i]);
    }
  };
  return out;
}

/** A `Map` of `keys[i]` to `values[i]` without the undefined values; a later key wins. */
export function byId(keys, values) {
  const map = new Map();
  keys.forEach((key, i) => {
    if (values[i] !== undefined) map.set(key, values[i]);
  });
  return map;
}

/**
 * Adds backup records in one transaction: `[meta, payload, dead]` each, in order.
 * A record any of whose ids (its id and aliases) is already here, pending (on its own or
 * in a group), dead, folded into another or marked removed (the app's removal stands), is
 * skipped, checked inside this same transaction so two imports of one backup cannot both
 * add it. Seqs come from the outbox's key generator in record
 * order; a dead letter takes its seq that way too, then moves to `dead`.
 * `out.seqs[i]` is the new seq of record i, or null where it was skipped.
 */
export function importRecords(tx, records) {
  const outbox = tx.objectStore('outbox');
  const payloads = tx.objectStore('payloads');
  const dead = tx.objectStore('dead');
  const aliases = tx.objectStore('aliases');
  const deadIds = dead.index('id');
  const members = outbox.index('members');
  const out = { seqs: records.map(() => null) };
  const present = records.map(() => false);
  let checks = 0;
  const write = () => records.forEach(([meta, payload, isDead], i) => {
    if (present[i]) return;
    payloads.put(payload, meta.id);
    for (const alias of meta.aliases ?? []) aliases.put(meta.id, alias);
    const req = outbox.put(meta);
    req.onsuccess = () => {
      out.seqs[i] = req.result;
      if (isDead) {
        outbox.delete(req.result);
        dead.put({ ...meta, seq: req.result });
      }
    };
  });
  const seen = (i) => (req) => {
    req.onsuccess = () => {
      if (req.result !== undefined) present[i] = true;
      if (--checks === 0) write();
    };
  };
  records.forEach(([meta], i) => {
    for (const id of [meta.id, ...(meta.aliases ?? [])]) {
      checks += 4;
      seen(i)(payloads.getKey(id));
      seen(i)(members.getKey(id));
      seen(i)(aliases.getKey(id));
      seen(i)(deadIds.getKey(id));
    }
  });
  if (checks === 0) write();
  return out;
}
