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
    tx.onabort = () => reject(tx.error ?? new DOMException('transaction aborted', 'AbortError'));
  });
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

/**
 * Appends records in one readwrite transaction: each metadata record gets its seq from
 * the outbox's key generator, and its payload is stored under that same seq from the
 * put's success callback (still inside the transaction). The transaction is committed as
 * soon as the last payload is written. Returns the seq requests.
 */
export function appendRecords(tx, metas, payloads) {
  const outbox = tx.objectStore('outbox');
  const store = tx.objectStore('payloads');
  let left = metas.length;
  return metas.map((meta, i) => {
    const req = outbox.put(meta);
    req.onsuccess = () => {
      try {
        store.put(payloads[i], req.result);
      } catch (e) {
        tx.abort();
        return;
      }
      if (--left === 0 && typeof tx.commit === 'function') tx.commit();
    };
    return req;
  });
}

/** Deletes every `[lo, hi]` range from the stores named, in one transaction. */
export function deleteRanges(tx, storeNames, ranges) {
  for (const name of storeNames) {
    const store = tx.objectStore(name);
    for (const [lo, hi] of ranges) store.delete(IDBKeyRange.bound(lo, hi));
  }
}

/** Payloads with seq in `[lo, hi]` (none when lo > hi), and those of `extra` seqs. */
export function readPayloads(tx, lo, hi, extra) {
  const store = tx.objectStore('payloads');
  const range = lo <= hi ? IDBKeyRange.bound(lo, hi) : null;
  return {
    keys: range ? store.getAllKeys(range) : null,
    values: range ? store.getAll(range) : null,
    extra: extra.map((seq) => store.get(seq)),
  };
}
