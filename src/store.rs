//! The IndexedDB store: what is durable and how it is laid out.
//!
//! - `outbox`: scheduling metadata ([`TxMeta`]), keyPath `seq`, auto-increment. The key
//!   generator is the seq counter: IndexedDB allocates `seq` inside the same write as the
//!   record, atomically across every tab and worker, with no read first.
//! - `payloads`: `{ mutations, metadata }` by transaction id, stored by structured clone.
//!   Kept apart so opening loads only metadata; payloads are read a window at a time when
//!   dispatched (one transaction per window). Keyed by id, not seq, so an enqueue writes
//!   both records at once instead of waiting for the seq IndexedDB allocates.
//! - `dead`: dead letters (metadata plus reason), keyPath `seq`, unique index on `id`.
//!   Their payloads stay in `payloads` until discarded.
//! - `aliases`: the id of a transaction coalesced into another, mapped to that one's id,
//!   so the folded id still settles and is still known to an import. Only coalescing
//!   writes here: an index on `outbox` would cost every enqueue.
//! - `acked`: ids of acknowledged transactions whose payloads are still to be deleted, one
//!   record per acknowledgement batch. Deleting a payload costs IndexedDB about 100 µs,
//!   and the drain's payload reads would wait behind those deletes; they happen later,
//!   while the outbox is idle ([`Store::sweep`]).
//! - `meta`: the schema version and the leader epoch. Gaining leadership bumps the epoch;
//!   every write a leader makes to a record checks it in the same IndexedDB transaction
//!   (`fenced`), so a context that lost leadership cannot change records any more.
//!
//! Written on web-sys directly rather than a wrapper: every request of a transaction is
//! issued at once and the transaction's completion is awaited once, which is what makes
//! batched reads and removals cheap (a wrapper awaiting each request costs two callbacks
//! per request, and measured too slow for the drain target).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use js_sys::{Array, Map, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DomException, IdbDatabase, IdbObjectStore, IdbRequest, IdbTransaction, IdbTransactionMode,
};

use crate::envelope::Sealer;
use crate::error::{Error, ErrorCode, Result};
use crate::js;
use crate::model::{Millis, Seq, TxMeta};
use crate::record;

/// 1: outbox, payloads, dead (+ `id` index), meta. 2: the outbox's `aliases` index (ids of
/// transactions coalesced into a record). 3: that index becomes the `aliases` store, so
/// an enqueue no longer maintains an index (about a fifth of its write's cost); `acked`.
/// 4: group records in `outbox` (the `members` and `groups` indexes).
const SCHEMA_VERSION: u32 = 4;
const OUTBOX: &str = "outbox";
const PAYLOADS: &str = "payloads";
const DEAD: &str = "dead";
const META: &str = "meta";
const ALIASES: &str = "aliases";
const ACKED: &str = "acked";
/// The most transactions in one group record: a dispatch reads the group's whole payload
/// record, so a burst of thousands is split rather than read again for every window.
const GROUP_MOST: u32 = 256;
/// How long a removed (or discarded) id is remembered as such: 30 days.
pub const REMOVED_KEPT_MS: Millis = 30 * 24 * 60 * 60 * 1000;

#[wasm_bindgen(module = "/src/js/idb.js")]
extern "C" {
    #[wasm_bindgen(js_name = transactionDone)]
    fn transaction_done(tx: &IdbTransaction, commit: bool) -> Promise;
    /// Upgrades the layout first where it is older than `version`.
    #[wasm_bindgen(js_name = openDatabase)]
    fn open_database(name: &str, version: u32) -> Promise;
    #[wasm_bindgen(js_name = fencedOps, catch)]
    fn fenced_ops(tx: &IdbTransaction, epoch: f64, ops: &Array)
        -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(js_name = whileDead, catch)]
    fn while_dead(
        tx: &IdbTransaction,
        seq: f64,
        ops: &Array,
    ) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = bumpEpoch, catch)]
    fn bump_epoch(tx: &IdbTransaction) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = loadRange, catch)]
    fn load_range(
        tx: &IdbTransaction,
        after: JsValue,
        limit: u32,
        dead: bool,
        most: u32,
        count: u32,
    ) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = sweepAcked, catch)]
    fn sweep_acked(
        tx: &IdbTransaction,
        epoch: f64,
        most: u32,
    ) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = locate, catch)]
    fn locate_ids(tx: &IdbTransaction, ids: &Array) -> std::result::Result<JsValue, JsValue>;
    fn outcomes(found: &JsValue, ids: &Array) -> Array;
    #[wasm_bindgen(js_name = findDead, catch)]
    fn find_dead_id(tx: &IdbTransaction, id: &str) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = importRecords, catch)]
    fn import_records(
        tx: &IdbTransaction,
        records: &Array,
    ) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = readPayloads, catch)]
    fn read_payloads(
        tx: &IdbTransaction,
        ids: &Array,
        groups: &Array,
    ) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = allPayloads, catch)]
    fn all_payloads_of(tx: &IdbTransaction) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = byId)]
    fn by_id(keys: &Array, values: &Array) -> Map;
    #[wasm_bindgen(js_name = appendGroups, catch)]
    fn append_groups(
        tx: &IdbTransaction,
        metas: &Array,
        values: &Array,
        most: u32,
    ) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = pruneRemoved, catch)]
    fn prune_removed(tx: &IdbTransaction, before: f64) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(js_name = countPending, catch)]
    fn count_pending_of(tx: &IdbTransaction) -> std::result::Result<JsValue, JsValue>;
}

#[wasm_bindgen(module = "/src/js/envelope.js")]
extern "C" {
    #[wasm_bindgen(js_name = loadKey)]
    fn load_key(db: &IdbDatabase, create: bool) -> Promise;
}

/// One write for `fencedOps`.
enum Op<'a> {
    Put(&'a str, &'a JsValue),
    Delete(&'a str, Seq),
    DeleteRange(&'a str, Seq, Seq),
    /// Under an out-of-line key: a payload or an alias, by transaction id.
    DeleteAt(&'a str, &'a str),
    PutAt(&'a str, &'a str, &'a JsValue),
    /// Takes members (by seq) out of a group record; with `true`, their payloads move to
    /// records of their own (see `ungroup` in idb.js).
    Ungroup(Seq, Vec<Seq>, bool),
}

fn ops_array(ops: &[Op]) -> Array {
    ops.iter()
        .map(|op| -> JsValue {
            match op {
                Op::Put(store, v) => Array::of3(&"put".into(), &(*store).into(), v).into(),
                Op::Delete(store, seq) => {
                    Array::of3(&"delete".into(), &(*store).into(), &seq_key(*seq)).into()
                }
                Op::PutAt(store, id, v) => {
                    Array::of4(&"put".into(), &(*store).into(), v, &JsValue::from_str(id)).into()
                }
                Op::DeleteAt(store, id) => {
                    Array::of3(&"delete".into(), &(*store).into(), &JsValue::from_str(id)).into()
                }
                Op::DeleteRange(store, lo, hi) => Array::of4(
                    &"deleteRange".into(),
                    &(*store).into(),
                    &seq_key(*lo),
                    &seq_key(*hi),
                )
                .into(),
                Op::Ungroup(group, seqs, moved) => Array::of4(
                    &"ungroup".into(),
                    &seq_key(*group),
                    &seqs.iter().map(|s| seq_key(*s)).collect::<Array>(),
                    &JsValue::from_bool(*moved),
                )
                .into(),
            }
        })
        .collect()
}

/// The group edits for `metas` that were written in a group commit: one op per group, so
/// two members of one group are taken out by one read and write of its record.
fn push_ungroup<'a>(
    ops: &mut Vec<Op<'a>>,
    metas: impl IntoIterator<Item = &'a TxMeta>,
    moved: bool,
) {
    let mut groups: Vec<(Seq, Vec<Seq>)> = Vec::new();
    for meta in metas {
        let (Some(group), Some(seq)) = (meta.group_key(), meta.seq) else {
            continue;
        };
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, seqs)) => seqs.push(seq),
            None => groups.push((group, vec![seq])),
        }
    }
    ops.extend(
        groups
            .into_iter()
            .map(|(group, seqs)| Op::Ungroup(group, seqs, moved)),
    );
}

/// Payload records by transaction id: a JS `Map`, built where the records are read, so
/// no id is copied into the wasm to look one up.
pub struct Payloads(Map);

impl Payloads {
    pub fn empty() -> Self {
        Self(Map::new())
    }

    pub fn get(&self, id: &str) -> Option<JsValue> {
        Some(self.0.get(&JsValue::from_str(id))).filter(|v| !v.is_undefined())
    }
}

/// A record found in `outbox` that does not decode.
pub struct Corrupt {
    pub key: JsValue,
    pub raw: JsValue,
    pub reason: String,
    /// As [`TxMeta::group`]: a member of a group record that does not decode.
    pub group: u32,
}

pub struct Loaded {
    pub metas: Vec<TxMeta>,
    pub corrupt: Vec<Corrupt>,
    /// The dead letters in the same seq range, when asked for (they are read in the same
    /// IndexedDB transaction, so none can be missing that a loaded record follows).
    pub dead: Vec<TxMeta>,
    /// Whether a read with a limit stopped short of the end, so more records follow.
    pub more: bool,
}

/// A group commit being written: one IndexedDB transaction for every enqueue of the
/// current task, issued when it commits. On any failure nothing of it is stored.
pub struct Append {
    tx: Tx,
    records: Vec<(Object, JsValue, std::rc::Rc<str>)>,
}

impl Append {
    /// Adds one transaction: its metadata record (returned) and its payload record.
    pub fn add(&mut self, meta: &TxMeta, payload: &JsValue) -> Object {
        let record = record::encode(meta);
        self.records
            .push((record.clone(), payload.clone(), meta.id.clone()));
        record
    }

    /// Writes and waits; the seq of each record added, in order, and how far below it the
    /// group record lies (0 when written on its own). One transaction is written as two
    /// records of its own; several as one group record and one group payload record
    /// (IndexedDB's cost is per record, so 100 enqueues cost about as much as 2).
    pub async fn commit(self) -> Result<Vec<(Seq, u32)>> {
        let Self { tx, records } = self;
        let seq_of = |v: JsValue| {
            v.as_f64().map(|f| f as Seq).ok_or_else(|| {
                Error::new(ErrorCode::StorageUnavailable, "IndexedDB returned no seq")
            })
        };
        if let [(record, payload, id)] = records.as_slice() {
            tx.check(
                tx.store(PAYLOADS)?
                    .put_with_key(payload, &JsValue::from_str(id)),
            )?;
            let req = tx.check(tx.store(OUTBOX)?.put(record))?;
            tx.done().await?;
            return Ok(vec![(seq_of(result(&req))?, 0)]);
        }
        let metas: Array = records.iter().map(|(r, _, _)| JsValue::from(r)).collect();
        let values: Array = records.iter().map(|(_, p, _)| p.clone()).collect();
        let out = tx.check(append_groups(&tx.tx, &metas, &values, GROUP_MOST))?;
        // The payload record's key and the key generator's move follow the group's key.
        tx.wait(false).await?;
        let groups = Array::from(&js::get(&out, "groups"));
        (0..records.len() as u32)
            .map(|i| {
                let group = seq_of(groups.get(i / GROUP_MOST))?;
                let at = i % GROUP_MOST + 1;
                Ok((group + Seq::from(at), at))
            })
            .collect()
    }
}

pub struct Store {
    /// `None` once closed.
    db: std::cell::RefCell<Option<IdbDatabase>>,
    watchers: std::cell::RefCell<Vec<EventClosure>>,
    sealer: std::cell::RefCell<Sealer>,
}

/// The closure type wasm-bindgen-futures already compiles in: each closure signature
/// brings its own glue.
type EventClosure = Closure<dyn FnMut(JsValue)>;

/// Maps an IndexedDB failure onto the public codes.
fn storage(context: &str, e: JsValue) -> Error {
    let name = e
        .dyn_ref::<DomException>()
        .map(|d| d.name())
        .unwrap_or_default();
    let code = match name.as_str() {
        "QuotaExceededError" => ErrorCode::QuotaExceeded,
        "DataCloneError" => ErrorCode::NotSerializable,
        "NotLeaderError" => ErrorCode::NotLeader,
        _ => ErrorCode::StorageUnavailable,
    };
    let detail = js::describe(&e);
    Error::new(
        code,
        [context, ": ", &detail.name, ": ", &detail.message].concat(),
    )
}

/// The writes that take a transaction out for good (removed, or discarded from the dead
/// letters): its payload goes, and its id and aliases are marked removed in `aliases` with
/// the time (`removed_at`, a number where an alias holds its owner's id), so `settled`
/// still tells a removed id from an acknowledged one after a reopen. Marks older than
/// [`REMOVED_KEPT_MS`] are pruned when a context takes the lead.
fn push_forget<'a>(
    ops: &mut Vec<Op<'a>>,
    id: &'a str,
    aliases: &'a [String],
    removed_at: &'a JsValue,
) {
    ops.push(Op::DeleteAt(PAYLOADS, id));
    ops.push(Op::PutAt(ALIASES, id, removed_at));
    ops.extend(aliases.iter().map(|a| Op::PutAt(ALIASES, a, removed_at)));
}

fn seq_key(seq: Seq) -> JsValue {
    JsValue::from_f64(seq as f64)
}

/// One IndexedDB transaction: stores by name, requests issued through them, one wait.
struct Tx {
    tx: IdbTransaction,
    context: &'static str,
}

impl Tx {
    fn store(&self, name: &str) -> Result<IdbObjectStore> {
        self.tx
            .object_store(name)
            .map_err(|e| storage(self.context, e))
    }

    /// Commits now (every request is issued) and waits for it. Read-only transactions
    /// complete once every request has.
    fn done(self) -> TxWait {
        self.wait(true)
    }

    fn wait(self, commit: bool) -> TxWait {
        TxWait(Ok((
            JsFuture::from(transaction_done(&self.tx, commit)),
            self.context,
        )))
    }

    /// Turns a synchronous failure to issue a request into an abort of the whole
    /// transaction, so nothing of it is stored.
    fn check<T>(&self, r: std::result::Result<T, JsValue>) -> Result<T> {
        r.map_err(|e| {
            let _ = self.tx.abort();
            storage(self.context, e)
        })
    }
}

/// The end of a transaction whose requests are all issued (or why none could be). A
/// concrete future rather than an `async` body: a write built from borrowed records
/// returns it without keeping them, and without a state machine of its own.
pub struct TxWait(std::result::Result<(JsFuture, &'static str), Option<Error>>);

impl TxWait {
    /// A wait that fails at once with `e` (the transaction could not be started).
    fn failed(e: Error) -> Self {
        Self(Err(Some(e)))
    }
}

impl Future for TxWait {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.get_mut().0 {
            Ok((done, context)) => Pin::new(done)
                .poll(cx)
                .map(|r| r.map(|_| ()).map_err(|e| storage(context, e))),
            // Polled again after it failed: nothing more to say.
            Err(e) => e.take().map_or(Poll::Pending, |e| Poll::Ready(Err(e))),
        }
    }
}

/// A transaction whose requests are all issued, answered once it completes from what
/// the requests left in `out` (a [`TxWait`] with an answer; a write's is `()`).
pub struct TxRead<T> {
    wait: TxWait,
    out: JsValue,
    answer: fn(&JsValue) -> Result<T>,
}

impl<T> Future for TxRead<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        Pin::new(&mut this.wait)
            .poll(cx)
            .map(|r| r.and_then(|()| (this.answer)(&this.out)))
    }
}

impl TxRead<()> {
    fn failed(e: Error) -> Self {
        Self {
            wait: TxWait::failed(e),
            out: JsValue::UNDEFINED,
            answer: |_| Ok(()),
        }
    }
}

fn result(req: &IdbRequest) -> JsValue {
    req.result().unwrap_or(JsValue::UNDEFINED)
}

/// The dead-letter records of `values` that decode (one that does not stays where it is).
fn decode_valid(values: &JsValue) -> Vec<TxMeta> {
    record::decode_all(&Array::from(values))
        .into_iter()
        .filter_map(|m| m.ok())
        .collect()
}

impl Store {
    pub fn database_name(name: &str) -> String {
        ["offline-outbox:", name].concat()
    }

    pub async fn open(name: &str) -> Result<Self> {
        let opened =
            JsFuture::from(open_database(&Self::database_name(name), SCHEMA_VERSION)).await;
        let db: IdbDatabase = opened
            .map_err(|e| storage("cannot open IndexedDB", e))?
            .unchecked_into();
        Ok(Self {
            db: std::cell::RefCell::new(Some(db)),
            watchers: std::cell::RefCell::new(Vec::new()),
            sealer: Default::default(),
        })
    }

    /// Sets how payloads are written from now on. With `encrypt`, loads the outbox's key
    /// (creating it if there is none yet); without, the key is read only if a payload
    /// encrypted earlier is opened, so the open path has one IndexedDB read fewer.
    pub async fn set_sealing(&self, compress: bool, encrypt: bool) -> Result<()> {
        let db = self
            .db
            .borrow()
            .clone()
            .ok_or_else(|| Error::new(ErrorCode::Closed, "the outbox is closed"))?;
        let key = if encrypt {
            JsFuture::from(load_key(&db, true))
                .await
                .map_err(|e| storage("encryption key", e))?
        } else {
            JsValue::NULL
        };
        *self.sealer.borrow_mut() = Sealer {
            compress,
            encrypt,
            key: (!key.is_null()).then_some(key),
            db: Some(db),
        };
        Ok(())
    }

    /// Whether sealing a payload waits (encryption): `seal` then, else `seal_now`.
    pub fn seals_async(&self) -> bool {
        self.sealer.borrow().is_async()
    }

    pub fn seal_now(&self, record: &JsValue) -> Result<Option<JsValue>> {
        self.sealer.borrow().seal_now(record)
    }

    /// The record to write for payload `record` of transaction `id`: compressed and/or
    /// encrypted as configured; `None` to write it as it is.
    pub async fn seal(&self, record: &JsValue, id: &str) -> Result<Option<JsValue>> {
        let sealer = self.sealer.borrow().clone();
        sealer.seal(record, id).await
    }

    /// Opens the sealed payloads among `values` in place (see [`Sealer::open_all`]).
    fn unseal(&self, values: &Array, ids: &Array) -> Option<JsFuture> {
        self.sealer.borrow().open_all(values, ids)
    }

    /// Calls `lost` when the database goes away under the outbox: deleted (site data
    /// cleared, or evicted as Safari does) or closed by the browser. Another context
    /// upgrading the schema (a newer version of this package) also needs this connection
    /// closed; the outbox then reports StorageUnavailable until reopened.
    pub fn watch_loss(&self, lost: impl Fn(&'static str) + 'static) {
        let Some(db) = self.db.borrow().clone() else {
            return;
        };
        let lost = std::rc::Rc::new(lost);
        let on_change = EventClosure::new({
            let (db, lost) = (db.clone(), lost.clone());
            move |e: JsValue| {
                db.close();
                let deleted = js::get(&e, "newVersion").is_null();
                lost(if deleted { "deleted" } else { "upgraded" });
            }
        });
        db.set_onversionchange(Some(on_change.as_ref().unchecked_ref()));
        let on_close = EventClosure::new(move |_| lost("closed"));
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.watchers.borrow_mut().extend([on_change, on_close]);
    }

    pub fn close(&self) {
        if let Some(db) = self.db.borrow_mut().take() {
            db.set_onversionchange(None);
            db.set_onclose(None);
            db.close();
        }
        self.watchers.borrow_mut().clear();
    }

    /// Issues `requests` in one transaction and makes `answer` of what they leave once it
    /// completes; `commit` ends it at once (every request is issued up front).
    fn read<T>(
        &self,
        stores: &[&str],
        mode: IdbTransactionMode,
        context: &'static str,
        commit: bool,
        requests: impl FnOnce(&Tx) -> Result<JsValue>,
        answer: fn(&JsValue) -> Result<T>,
    ) -> TxRead<T> {
        let issued = self.tx(stores, mode, context).and_then(|tx| {
            let out = requests(&tx)?;
            Ok((tx.wait(commit), out))
        });
        let (wait, out) = issued.unwrap_or_else(|e| (TxWait::failed(e), JsValue::UNDEFINED));
        TxRead { wait, out, answer }
    }

    fn tx(&self, stores: &[&str], mode: IdbTransactionMode, context: &'static str) -> Result<Tx> {
        let db = self.db.borrow();
        let db = db
            .as_ref()
            .ok_or_else(|| Error::new(ErrorCode::Closed, "the outbox is closed"))?;
        let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        let tx = db
            .transaction_with_str_sequence_and_mode(&names, mode)
            .map_err(|e| storage(context, e))?;
        Ok(Tx { tx, context })
    }

    /// The first records after `after` that span about `limit` seqs (see `loadRange` in
    /// idb.js; a group record spans its members), and with `dead` every dead letter after
    /// `after`.
    pub fn load_first(&self, after: Option<Seq>, limit: u32, dead: bool) -> TxRead<Loaded> {
        self.load_some(after, limit, dead, 0)
    }

    /// The first `count` records in one transaction (fewer if the outbox holds fewer;
    /// undecodable ones count, and come out apart as `corrupt`).
    pub fn load_head(&self, count: usize) -> TxRead<Loaded> {
        let count = idb_count(count);
        self.load_some(None, count, false, count)
    }

    fn load_some(&self, after: Option<Seq>, limit: u32, dead: bool, count: u32) -> TxRead<Loaded> {
        let stores: &[&str] = if dead { &[OUTBOX, DEAD] } else { &[OUTBOX] };
        let after = after.map_or(JsValue::NULL, seq_key);
        // The records' read follows their keys' result: no early commit.
        self.read(
            stores,
            IdbTransactionMode::Readonly,
            "load",
            false,
            |tx| tx.check(load_range(&tx.tx, after, limit, dead, GROUP_MOST, count)),
            |out| Ok(loaded(out)),
        )
    }

    /// Takes over as leader in one IndexedDB transaction: bumps the epoch (every earlier
    /// leader's fenced writes fail from now on) and reads the first records spanning about
    /// `limit` seqs (as `load_first`), with `dead` every dead letter too. Returns the new
    /// epoch.
    pub fn take_over(&self, limit: u32, dead: bool) -> TxRead<(u64, Loaded)> {
        let stores: &[&str] = if dead {
            &[META, OUTBOX, DEAD]
        } else {
            &[META, OUTBOX]
        };
        // The epoch's put follows its read: no early commit.
        self.read(
            stores,
            IdbTransactionMode::Readwrite,
            "leader epoch",
            false,
            |tx| {
                let epoch = tx.check(bump_epoch(&tx.tx))?;
                let reqs = load_range(&tx.tx, JsValue::NULL, limit, dead, GROUP_MOST, 0);
                Ok(Array::of2(&epoch, &tx.check(reqs)?).into())
            },
            |out| {
                let out: &Array = out.unchecked_ref();
                let epoch = js::get(&out.get(0), "epoch").as_f64().unwrap_or(0.0) as u64;
                Ok((epoch, loaded(&out.get(1))))
            },
        )
    }

    fn fenced(
        &self,
        stores: &[&str],
        context: &'static str,
        epoch: u64,
        ops: &[Op<'_>],
    ) -> TxRead<()> {
        let mut scope = vec![META];
        scope.extend_from_slice(stores);
        self.read(
            &scope,
            IdbTransactionMode::Readwrite,
            context,
            false,
            |tx| {
                tx.check(fenced_ops(&tx.tx, epoch as f64, &ops_array(ops)))?;
                Ok(JsValue::UNDEFINED)
            },
            |_| Ok(()),
        )
    }

    /// How `settled(id)` ends for each id of `ids`, from where it is in the store:
    /// `undefined` while it is pending, else `[true, info]` once acknowledged, `[false,
    /// why]` if dead (its last error's message) or `[false, null]` if removed (`outcome`
    /// in `js/idb.js`).
    pub async fn settled_outcomes(&self, ids: &Array) -> Result<Array> {
        let tx = self.tx(
            &[OUTBOX, PAYLOADS, DEAD, ALIASES, ACKED],
            IdbTransactionMode::Readonly,
            "locate",
        )?;
        let found = tx.check(locate_ids(&tx.tx, ids))?;
        // The lookups follow the alias's result: no early commit.
        tx.wait(false).await?;
        Ok(outcomes(&found, ids))
    }

    /// Deletes the removal marks (see `push_forget`) set before `before`.
    pub fn prune_removed(&self, before: Millis) -> TxRead<()> {
        // The deletes follow the cursor's results: no early commit.
        self.read(
            &[ALIASES],
            IdbTransactionMode::Readwrite,
            "prune",
            false,
            |tx| {
                tx.check(prune_removed(&tx.tx, before as f64))?;
                Ok(JsValue::UNDEFINED)
            },
            |_| Ok(()),
        )
    }

    /// Moves undecodable records to the dead letters (reason `corrupt`), keeping the raw
    /// record for inspection.
    pub fn quarantine(&self, corrupt: Vec<Corrupt>, now: Millis, epoch: u64) -> TxRead<()> {
        let mut records = Vec::new();
        for c in corrupt {
            let seq = c
                .key
                .as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as Seq);
            let Some(seq) = seq else { continue };
            let record = record::corrupt_record(&c.raw, seq as f64, &c.reason, now as f64);
            let group = crate::model::group_key(seq, c.group);
            records.push((seq, group, record));
        }
        let mut ops = Vec::with_capacity(records.len() * 2);
        for (seq, group, record) in &records {
            ops.push(Op::Put(DEAD, record));
            ops.push(Op::Delete(OUTBOX, *seq));
            ops.extend(group.map(|g| Op::Ungroup(g, vec![*seq], false)));
        }
        self.fenced(&[OUTBOX, PAYLOADS, DEAD], "quarantine", epoch, &ops)
    }

    /// Starts the write of a group commit: records are added during the current task (the
    /// transaction stays open for it), then [`Append::commit`] writes them.
    pub fn begin_append(&self) -> Result<Append> {
        let tx = self.tx(
            &[OUTBOX, PAYLOADS],
            IdbTransactionMode::Readwrite,
            "enqueue",
        )?;
        Ok(Append {
            tx,
            records: Vec::new(),
        })
    }

    /// The payload records of transactions by id, each with the key of the group it was
    /// written in, if any ([`TxMeta::group_key`]); an id with no payload record is absent
    /// from the map.
    pub async fn payloads(&self, ids: &[(impl AsRef<str>, Option<Seq>)]) -> Result<Payloads> {
        let tx = self.tx(
            &[OUTBOX, PAYLOADS],
            IdbTransactionMode::Readonly,
            "read payloads",
        )?;
        let keys: Array = ids
            .iter()
            .map(|(id, _)| JsValue::from_str(id.as_ref()))
            .collect();
        let groups: Array = ids
            .iter()
            .map(|(_, g)| g.map_or(JsValue::NULL, seq_key))
            .collect();
        let answered: Promise = tx
            .check(read_payloads(&tx.tx, &keys, &groups))?
            .unchecked_into();
        let values = Array::from(
            &JsFuture::from(answered)
                .await
                .map_err(|e| storage(tx.context, e))?,
        );
        if let Some(opening) = self.unseal(&values, &keys) {
            let _ = opening.await;
        }
        Ok(Payloads(by_id(&keys, &values)))
    }

    /// Every payload record, by id (for `peek`, `deadLetters` over many records).
    pub async fn all_payloads(&self) -> Result<Payloads> {
        let tx = self.tx(&[PAYLOADS], IdbTransactionMode::Readonly, "read payloads")?;
        let out = tx.check(all_payloads_of(&tx.tx))?;
        tx.done().await?;
        let keys = Array::from(&js::get(&out, "keys"));
        let values = Array::from(&js::get(&out, "values"));
        if let Some(opening) = self.unseal(&values, &keys) {
            let _ = opening.await;
        }
        Ok(Payloads(by_id(&keys, &values)))
    }

    /// Removes acknowledged transactions and their aliases, all in one write: one range
    /// delete per run of consecutive seqs, one edit per group record; the ids of those
    /// written on their own go to `acked`, for [`Store::sweep`] to delete their payloads
    /// later. Returns how many went there.
    pub async fn delete(&self, done: &[TxMeta], epoch: u64) -> Result<usize> {
        let mut seqs: Vec<Seq> = done.iter().filter_map(|m| m.seq).collect();
        seqs.sort_unstable();
        let mut ops = Vec::new();
        for (lo, hi) in crate::model::seq_runs(&seqs) {
            ops.push(Op::DeleteRange(OUTBOX, lo, hi));
        }
        for meta in done {
            ops.extend(meta.aliases.iter().map(|a| Op::DeleteAt(ALIASES, a)));
        }
        push_ungroup(&mut ops, done, false);
        // A group's payloads go with its record, when its last member does.
        let ids: Array = done
            .iter()
            .filter(|m| m.group == 0)
            .map(|m| JsValue::from_str(&m.id))
            .collect();
        let to_sweep = ids.length() as usize;
        let ids: JsValue = ids.into();
        if to_sweep > 0 {
            ops.push(Op::Put(ACKED, &ids));
        }
        self.fenced(
            &[OUTBOX, PAYLOADS, ALIASES, ACKED],
            "acknowledge",
            epoch,
            &ops,
        )
        .await?;
        Ok(to_sweep)
    }

    /// Deletes the payloads of acknowledgement batches (see `acked`), oldest first, until
    /// about `most` (at least one batch): how many went, and whether more batches wait.
    pub fn sweep(&self, epoch: u64, most: u32) -> TxRead<(u32, bool)> {
        // The deletes follow the reads' results: no early commit.
        self.read(
            &[META, PAYLOADS, ACKED],
            IdbTransactionMode::Readwrite,
            "sweep",
            false,
            |tx| tx.check(sweep_acked(&tx.tx, epoch as f64, most)),
            |out| {
                let swept = js::get(out, "swept").as_f64().unwrap_or(0.0) as u32;
                Ok((swept, js::get(out, "left").is_truthy()))
            },
        )
    }

    /// Rewrites a pending transaction's metadata (after a failed attempt). A member of a
    /// group is written on its own from then on.
    pub fn update(&self, meta: &TxMeta, epoch: u64) -> TxRead<()> {
        let record: JsValue = record::encode(meta).into();
        let mut ops = vec![Op::Put(OUTBOX, &record)];
        push_ungroup(&mut ops, [meta], true);
        self.fenced(&[OUTBOX, PAYLOADS], "update", epoch, &ops)
    }

    /// Moves a transaction from the outbox to the dead letters, in one write.
    pub fn bury(&self, meta: &TxMeta, epoch: u64) -> TxRead<()> {
        let Some(seq) = meta.seq else {
            return TxRead::failed(Error::new(ErrorCode::NotFound, "no seq"));
        };
        let record: JsValue = record::encode(meta).into();
        let mut ops = vec![Op::Put(DEAD, &record), Op::Delete(OUTBOX, seq)];
        push_ungroup(&mut ops, [meta], true);
        self.fenced(&[OUTBOX, PAYLOADS, DEAD], "dead-letter", epoch, &ops)
    }

    /// Cancels a pending transaction: its record (or its place in `group`), payload and
    /// aliases go.
    pub fn cancel(
        &self,
        (seq, group): (Seq, Option<Seq>),
        id: &str,
        aliases: &[String],
        epoch: u64,
    ) -> TxRead<()> {
        let at = JsValue::from_f64(js::now() as f64);
        let mut ops = vec![Op::Delete(OUTBOX, seq)];
        push_forget(&mut ops, id, aliases, &at);
        ops.extend(group.map(|g| Op::Ungroup(g, vec![seq], false)));
        self.fenced(&[OUTBOX, PAYLOADS, ALIASES], "remove", epoch, &ops)
    }

    /// Folds `newer` into `older` in one write: `older` takes the payload and lists
    /// `newer`'s id among its aliases (and the alias store points that id, and every
    /// alias `newer` had, at `older`); `newer` leaves the outbox. `older.bytes` becomes
    /// the size of the payload as stored.
    pub async fn coalesce(
        &self,
        older: &mut TxMeta,
        payload: &JsValue,
        (newer_seq, newer): (Seq, &TxMeta),
        epoch: u64,
    ) -> Result<()> {
        let id = older.id.clone();
        let payload = self
            .seal(payload, &id)
            .await?
            .unwrap_or_else(|| payload.clone());
        // As an enqueue counts it: the stored form's size.
        older.bytes = js::size_of(&payload);
        let record: JsValue = record::encode(older).into();
        let owner = JsValue::from_str(&id);
        let mut ops = vec![
            Op::Put(OUTBOX, &record),
            Op::PutAt(PAYLOADS, &id, &payload),
            Op::Delete(OUTBOX, newer_seq),
            Op::DeleteAt(PAYLOADS, &newer.id),
        ];
        ops.extend(newer.ids().map(|alias| Op::PutAt(ALIASES, alias, &owner)));
        // Both leave their groups: `older` is written on its own, with the new payload.
        push_ungroup(&mut ops, [older, newer], false);
        self.fenced(&[OUTBOX, PAYLOADS, ALIASES], "coalesce", epoch, &ops)
            .await
    }

    /// The first `limit` dead letters, in seq order.
    pub fn dead_letters(&self, limit: usize) -> TxRead<Vec<TxMeta>> {
        self.read(
            &[DEAD],
            IdbTransactionMode::Readonly,
            "dead letters",
            true,
            |tx| {
                let all = tx
                    .store(DEAD)?
                    .get_all_with_key_and_limit(&JsValue::NULL, idb_count(limit));
                tx.check(all).map(JsValue::from)
            },
            |all| Ok(decode_valid(&result(all.unchecked_ref()))),
        )
    }

    pub fn count_dead(&self) -> TxRead<u32> {
        self.count(DEAD)
    }

    pub fn count_pending(&self) -> TxRead<u32> {
        self.read(
            &[OUTBOX],
            IdbTransactionMode::Readonly,
            "count",
            true,
            |tx| tx.check(count_pending_of(&tx.tx)),
            |out| Ok(js::get(out, "count").as_f64().unwrap_or(0.0) as u32),
        )
    }

    /// Acknowledgement batches whose payloads are not swept yet.
    pub fn count_acked(&self) -> TxRead<u32> {
        self.count(ACKED)
    }

    fn count(&self, store: &'static str) -> TxRead<u32> {
        self.read(
            &[store],
            IdbTransactionMode::Readonly,
            "count",
            true,
            |tx| tx.check(tx.store(store)?.count()).map(JsValue::from),
            |n| Ok(result(n.unchecked_ref()).as_f64().unwrap_or(0.0) as u32),
        )
    }

    /// The dead letter `id` names: its own, or the one it was folded into (coalescing).
    pub fn find_dead(&self, id: &str) -> TxRead<Option<TxMeta>> {
        // The dead letter's read follows the alias's result: no early commit.
        self.read(
            &[ALIASES, DEAD],
            IdbTransactionMode::Readonly,
            "dead letters",
            false,
            |tx| tx.check(find_dead_id(&tx.tx, id)),
            |out| {
                let raw = js::get(out, "record");
                if raw.is_undefined() {
                    return Ok(None);
                }
                record::decode(&raw)
                    .map(Some)
                    .map_err(|e| Error::new(ErrorCode::StorageUnavailable, e))
            },
        )
    }

    /// Puts a dead letter back into the outbox under its original seq.
    pub fn revive(&self, meta: &TxMeta) -> TxRead<()> {
        let Some(seq) = meta.seq else {
            return TxRead::failed(Error::new(ErrorCode::NotFound, "no seq"));
        };
        let record: JsValue = record::encode(meta).into();
        let ops = [Op::Put(OUTBOX, &record), Op::Delete(DEAD, seq)];
        self.while_dead(&[OUTBOX, DEAD], "retry dead", seq, &ops)
    }

    /// Deletes a dead letter together with its payload and aliases.
    pub fn discard(&self, seq: Seq, meta: &TxMeta) -> TxRead<()> {
        let at = JsValue::from_f64(js::now() as f64);
        let mut ops = vec![Op::Delete(DEAD, seq)];
        push_forget(&mut ops, &meta.id, &meta.aliases, &at);
        self.while_dead(&[DEAD, PAYLOADS, ALIASES], "discard", seq, &ops)
    }

    /// Writes `ops` only if the dead letter `seq` is still there when the write runs:
    /// two contexts may retry and discard the same one at once, and the loser must
    /// neither revive a record whose payload is gone nor delete a revived one's payload.
    fn while_dead(
        &self,
        stores: &[&str],
        context: &'static str,
        seq: Seq,
        ops: &[Op<'_>],
    ) -> TxRead<()> {
        self.read(
            stores,
            IdbTransactionMode::Readwrite,
            context,
            false,
            |tx| tx.check(while_dead(&tx.tx, seq as f64, &ops_array(ops))),
            |out| {
                if js::get(out, "gone").as_bool() == Some(true) {
                    return Err(Error::new(
                        ErrorCode::NotFound,
                        "the dead letter was retried or discarded meanwhile",
                    ));
                }
                Ok(())
            },
        )
    }

    /// Adds backup rows (`[record, payload, dead]`, as `readBackup` gives them) in one
    /// write, payloads sealed first, skipping any whose id or alias is already here; the
    /// new seq of each, `None` where skipped.
    pub async fn import(&self, rows: &Array) -> Result<Vec<Option<Seq>>> {
        for row in rows.iter() {
            let row: Array = row.unchecked_into();
            let record: Object = row.get(0).unchecked_into();
            let payload = row.get(1);
            let id = js::get(&record, "id").as_string().unwrap_or_default();
            let sealed = self.seal(&payload, &id).await?;
            // As an enqueue counts it: the stored form's size, for capacity and holds.
            let size = js::size_of(sealed.as_ref().unwrap_or(&payload)) as f64;
            js::set(&record, "bytes", &JsValue::from_f64(size));
            if let Some(sealed) = sealed {
                row.set(1, sealed);
            }
        }
        let tx = self.tx(
            &[OUTBOX, PAYLOADS, DEAD, ALIASES],
            IdbTransactionMode::Readwrite,
            "import",
        )?;
        let out = tx.check(import_records(&tx.tx, rows))?;
        // More requests follow the existence checks' results: no early commit.
        tx.wait(false).await?;
        Ok(Array::from(&js::get(&out, "seqs"))
            .iter()
            .map(|s| s.as_f64().map(|f| f as Seq))
            .collect())
    }
}

/// A count for an IndexedDB read of the first `n`: at least 1, since IndexedDB reads 0 as
/// no limit (a caller asking for none cuts what it gets).
fn idb_count(n: usize) -> u32 {
    n.clamp(1, u32::MAX as usize) as u32
}

/// Decodes what `loadRange` read: records whose metadata does not decode, or whose seq
/// is not their key, are set apart as corrupt.
fn loaded(out: &JsValue) -> Loaded {
    let dead = js::get(out, "dead")
        .dyn_into::<IdbRequest>()
        .map(|r| decode_valid(&result(&r)))
        .unwrap_or_default();
    let keys = Array::from(&js::get(out, "keys"));
    let values = Array::from(&js::get(out, "values"));
    let offsets = Array::from(&js::get(out, "offsets"));
    let mut metas = Vec::with_capacity(values.length() as usize);
    let mut corrupt = Vec::new();
    let decoded = record::decode_all(&values);
    for (i, ((key, raw), meta)) in keys.iter().zip(values.iter()).zip(decoded).enumerate() {
        let group = offsets.get(i as u32).as_f64().unwrap_or(0.0) as u32;
        match meta {
            Ok(mut m) if m.seq.map(|s| s as f64) == key.as_f64() => {
                m.group = group;
                metas.push(m);
            }
            Ok(_) => corrupt.push(Corrupt {
                key,
                raw,
                reason: "seq does not match its key".into(),
                group,
            }),
            Err(reason) => corrupt.push(Corrupt {
                key,
                raw,
                reason,
                group,
            }),
        }
    }
    Loaded {
        metas,
        corrupt,
        dead,
        more: js::get(out, "more").is_truthy(),
    }
}
