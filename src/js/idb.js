// The few IndexedDB promises the store needs. A transaction's requests are issued
// together and awaited once, on the transaction's completion: one callback per
// transaction instead of two per request.

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
      else reject(tx.error ?? new DOMException('transaction aborted', 'AbortError'));
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
 * Issues `ops` in `tx` and asks for the commit; aborts `tx` if one cannot be issued.
 * ops: ['put', store, value, key?] | ['delete', store, key] | ['deleteRange', store, lo, hi]
 */
function applyOps(tx, ops) {
  try {
    for (const [op, name, a, b] of ops) {
      const store = tx.objectStore(name);
      if (op === 'put') (b === undefined ? store.put(a) : store.put(a, b));
      else if (op === 'delete') store.delete(a);
      else store.delete(IDBKeyRange.bound(a, b));
    }
  } catch (e) {
    tx.abort();
    return;
  }
  if (typeof tx.commit === 'function') tx.commit();
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
 * Outbox records with after < seq <= upto (either bound may be null), metadata only; the
 * first `limit` of them where `limit` is not null.
 */
export function loadRange(tx, after, upto, limit, dead) {
  const store = tx.objectStore('outbox');
  let range = null;
  if (after !== null && upto !== null) range = IDBKeyRange.bound(after, upto, true, false);
  else if (after !== null) range = IDBKeyRange.lowerBound(after, true);
  else if (upto !== null) range = IDBKeyRange.upperBound(upto);
  const count = limit ?? undefined;
  return {
    keys: store.getAllKeys(range, count),
    values: store.getAll(range, count),
    dead: dead ? tx.objectStore('dead').getAll(range) : null,
  };
}

/**
 * Where a transaction id is: { dead: record } | { payload: true } (pending: a pending or
 * dead transaction has its payload) | {} (neither: acknowledged or never enqueued). An id
 * folded into another transaction is where that one is; one listed in `acked` is
 * acknowledged, its payload not yet swept.
 */
export function locate(tx, id) {
  const out = {};
  const acked = tx.objectStore('acked').getAll();
  acked.onsuccess = () => { if (acked.result.some((ids) => ids.includes(id))) out.acked = true; };
  named(tx, id, (id) => {
    const p = tx.objectStore('payloads').getKey(id);
    p.onsuccess = () => { if (p.result !== undefined) out.payload = true; };
    const d = tx.objectStore('dead').index('id').get(id);
    d.onsuccess = () => { if (d.result !== undefined) out.dead = d.result; };
  });
  return out;
}

/** Calls `then` with the id of the transaction `id` names: itself, or the one it was folded into. */
function named(tx, id, then) {
  const alias = tx.objectStore('aliases').get(id);
  alias.onsuccess = () => then(alias.result ?? id);
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
 * Schema 3: the ids folded into pending transactions move from the outbox's multiEntry
 * `aliases` index (which every enqueue had to maintain) to the `aliases` store, alias id
 * to owner id, which only coalescing writes.
 */
export function moveAliases(tx) {
  const outbox = tx.objectStore('outbox');
  const aliases = tx.objectStore('aliases');
  const req = outbox.index('aliases').getAll();
  req.onsuccess = () => {
    for (const meta of req.result) for (const alias of meta.aliases) aliases.put(meta.id, alias);
    outbox.deleteIndex('aliases');
  };
}

/** Opens `name` at `version`; `upgrade(db, tx, oldVersion)` runs inside versionchange. */
export function openDatabase(name, version, upgrade) {
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
        upgrade(req.result, req.transaction, ev.oldVersion);
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

/** The payload records of `ids`, one request each, in one transaction. */
export function readPayloads(tx, ids) {
  const store = tx.objectStore('payloads');
  return ids.map((id) => store.get(id));
}

/**
 * Adds backup records in one transaction: `[meta, payload, dead, ids]` each, in order.
 * A record any of whose `ids` (its id and aliases) is already here, pending, dead or
 * folded into another, is skipped, checked inside this same transaction so two imports
 * of one backup cannot both add it. Seqs come from the outbox's key generator in record
 * order; a dead letter takes its seq that way too, then moves to `dead`.
 * `out.seqs[i]` is the new seq of record i, or null where it was skipped.
 */
export function importRecords(tx, records) {
  const outbox = tx.objectStore('outbox');
  const payloads = tx.objectStore('payloads');
  const dead = tx.objectStore('dead');
  const aliases = tx.objectStore('aliases');
  const deadIds = dead.index('id');
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
  records.forEach(([, , , ids], i) => {
    for (const id of ids) {
      checks += 3;
      seen(i)(payloads.getKey(id));
      seen(i)(aliases.getKey(id));
      seen(i)(deadIds.getKey(id));
    }
  });
  if (checks === 0) write();
  return out;
}
