//! The IndexedDB store (through rexie): what is durable and how it is laid out.
//!
//! - `outbox`: scheduling metadata ([`TxMeta`]), keyPath `seq`, auto-increment. The key
//!   generator is the seq counter: IndexedDB allocates `seq` inside the same write as the
//!   record, atomically across every tab and worker, with no read first.
//! - `payloads`: `{ mutations, metadata }` by transaction id, stored by structured clone.
//!   Kept apart so opening loads only metadata; a payload is read when dispatched.
//! - `dead`: dead letters (metadata plus reason), keyPath `seq`, unique index on `id`.
//!   Their payloads stay in `payloads` until discarded.
//! - `meta`: the schema version.

use futures_util::future::{join, join3, join_all};
use js_sys::Object;
use rexie::{Index, ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{Error, ErrorCode, Result};
use crate::js;
use crate::model::{DeadReason, LastError, Millis, Seq, TxMeta};

const SCHEMA_VERSION: u32 = 1;
const OUTBOX: &str = "outbox";
const PAYLOADS: &str = "payloads";
const DEAD: &str = "dead";
const META: &str = "meta";

/// A record found in `outbox` that does not decode.
pub struct Corrupt {
    pub key: JsValue,
    pub raw: JsValue,
    pub reason: String,
}

pub struct Loaded {
    pub metas: Vec<TxMeta>,
    pub corrupt: Vec<Corrupt>,
}

/// One transaction to append: its metadata (no seq yet) and its payload record.
pub struct NewRecord<'a> {
    pub meta: &'a TxMeta,
    pub payload: &'a JsValue,
}

pub struct Store {
    /// `None` once closed.
    db: std::cell::RefCell<Option<Rexie>>,
}

/// Maps rexie/IndexedDB failures onto the public codes. The DOMException name is only
/// reachable through the error's text, which carries `Name: message`.
fn storage(context: &str, e: rexie::Error) -> Error {
    let text = match &e {
        rexie::Error::IdbError(inner) => inner.to_string(),
        other => other.to_string(),
    };
    let code = if text.contains("QuotaExceededError") {
        ErrorCode::QuotaExceeded
    } else if text.contains("DataCloneError") {
        ErrorCode::NotSerializable
    } else {
        ErrorCode::StorageUnavailable
    };
    Error::new(code, format!("{context}: {text}"))
}

fn encode(meta: &TxMeta) -> Result<JsValue> {
    serde_wasm_bindgen::to_value(meta)
        .map_err(|e| Error::new(ErrorCode::InvalidTransaction, e.to_string()))
}

fn decode(raw: JsValue) -> std::result::Result<TxMeta, String> {
    serde_wasm_bindgen::from_value(raw).map_err(|e| e.to_string())
}

fn seq_key(seq: Seq) -> JsValue {
    JsValue::from_f64(seq as f64)
}

fn committed(
    context: &str,
    r: std::result::Result<rexie::TransactionResult, rexie::Error>,
) -> Result<()> {
    match r {
        Ok(r) if r.is_committed() => Ok(()),
        Ok(_) => Err(Error::new(
            ErrorCode::StorageUnavailable,
            format!("{context}: transaction aborted"),
        )),
        Err(e) => Err(storage(context, e)),
    }
}

impl Store {
    pub fn database_name(name: &str) -> String {
        format!("offline-outbox:{name}")
    }

    pub async fn open(name: &str) -> Result<Self> {
        let db = Rexie::builder(&Self::database_name(name))
            .version(SCHEMA_VERSION)
            .add_object_store(
                ObjectStore::new(OUTBOX)
                    .key_path("seq")
                    .auto_increment(true),
            )
            .add_object_store(ObjectStore::new(PAYLOADS))
            .add_object_store(
                ObjectStore::new(DEAD)
                    .key_path("seq")
                    .add_index(Index::new("id", "id").unique(true)),
            )
            .add_object_store(ObjectStore::new(META))
            .build()
            .await
            .map_err(|e| storage("cannot open IndexedDB", e))?;
        let store = Self {
            db: std::cell::RefCell::new(Some(db)),
        };
        store.write_schema_version().await?;
        Ok(store)
    }

    async fn write_schema_version(&self) -> Result<()> {
        let tx = self.tx(&[META], TransactionMode::ReadWrite)?;
        let meta = tx.store(META).map_err(|e| storage("meta", e))?;
        let (version, key) = (
            JsValue::from(SCHEMA_VERSION),
            JsValue::from_str("schemaVersion"),
        );
        let (put, done) = join(meta.put(&version, Some(&key)), tx.done()).await;
        put.map_err(|e| storage("meta", e))?;
        committed("meta", done)
    }

    pub fn close(&self) {
        if let Some(db) = self.db.borrow_mut().take() {
            db.close();
        }
    }

    fn tx(&self, stores: &[&str], mode: TransactionMode) -> Result<rexie::Transaction> {
        match self.db.borrow().as_ref() {
            Some(db) => db
                .transaction(stores, mode)
                .map_err(|e| storage("cannot start an IndexedDB transaction", e)),
            None => Err(Error::new(ErrorCode::Closed, "the outbox is closed")),
        }
    }

    /// Every record of the outbox, metadata only, in `seq` order.
    pub async fn load(&self) -> Result<Loaded> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadOnly)?;
        let outbox = tx.store(OUTBOX).map_err(|e| storage("load", e))?;
        let (keys, values) =
            join(outbox.get_all_keys(None, None), outbox.get_all(None, None)).await;
        let keys = keys.map_err(|e| storage("load", e))?;
        let values = values.map_err(|e| storage("load", e))?;
        let mut metas = Vec::with_capacity(values.len());
        let mut corrupt = Vec::new();
        for (key, raw) in keys.into_iter().zip(values) {
            match decode(raw.clone()) {
                Ok(m) if m.seq.is_some() && key.as_f64() == m.seq.map(|s| s as f64) => {
                    metas.push(m)
                }
                Ok(_) => corrupt.push(Corrupt {
                    key,
                    raw,
                    reason: "seq does not match its key".into(),
                }),
                Err(reason) => corrupt.push(Corrupt { key, raw, reason }),
            }
        }
        Ok(Loaded { metas, corrupt })
    }

    /// Moves undecodable records to the dead letters (reason `corrupt`), keeping the raw
    /// record for inspection. Returns what the dead letters now hold for them.
    pub async fn quarantine(&self, corrupt: Vec<Corrupt>, now: Millis) -> Result<Vec<TxMeta>> {
        let tx = self.tx(&[OUTBOX, DEAD], TransactionMode::ReadWrite)?;
        let outbox = tx.store(OUTBOX).map_err(|e| storage("quarantine", e))?;
        let dead = tx.store(DEAD).map_err(|e| storage("quarantine", e))?;
        let mut buried = Vec::new();
        let mut records = Vec::new();
        for c in corrupt {
            let seq = c
                .key
                .as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as Seq);
            let Some(seq) = seq else { continue };
            let field = |k: &str| js::get(&c.raw, k).as_string();
            let meta = TxMeta {
                seq: Some(seq),
                id: field("id").unwrap_or_else(|| format!("corrupt-{seq}")),
                handler: field("handler").unwrap_or_default(),
                keys: Vec::new(),
                idempotency_key: field("idempotencyKey").unwrap_or_default(),
                priority: Default::default(),
                attempts: js::get(&c.raw, "attempts")
                    .as_f64()
                    .map(|f| f as u32)
                    .unwrap_or(0),
                created_at: js::get(&c.raw, "createdAt")
                    .as_f64()
                    .map(|f| f as Millis)
                    .unwrap_or(now),
                next_attempt_at: now,
                last_error: Some(LastError {
                    name: "DecodeError".into(),
                    message: c.reason,
                }),
                dead_reason: Some(DeadReason::Corrupt),
                dead_at: Some(now),
            };
            let record = encode(&meta)?;
            if let Some(obj) = record.dyn_ref::<Object>() {
                js::set(obj, "raw", &c.raw);
            }
            records.push((c.key, record));
            buried.push(meta);
        }
        let ops = records.iter().map(|(key, record)| async {
            dead.put(record, None).await?;
            outbox.delete(key.clone()).await
        });
        let (results, done) = join(join_all(ops), tx.done()).await;
        for r in results {
            r.map_err(|e| storage("quarantine", e))?;
        }
        committed("quarantine", done)?;
        Ok(buried)
    }

    /// Appends transactions in one IndexedDB transaction (the group commit). Resolves
    /// after it commits, with the seq of each, in order. On failure nothing is stored.
    pub async fn append(&self, records: &[NewRecord<'_>]) -> Result<Vec<Seq>> {
        let tx = self.tx(&[OUTBOX, PAYLOADS], TransactionMode::ReadWrite)?;
        let outbox = tx.store(OUTBOX).map_err(|e| storage("enqueue", e))?;
        let payloads = tx.store(PAYLOADS).map_err(|e| storage("enqueue", e))?;
        let mut encoded = Vec::with_capacity(records.len());
        for r in records {
            encoded.push((encode(r.meta)?, JsValue::from_str(&r.meta.id), r.payload));
        }
        let ops = encoded.iter().map(|(meta, id, payload)| {
            let outbox = &outbox;
            let payloads = &payloads;
            async move {
                let (p, m) = join(payloads.put(payload, Some(id)), outbox.put(meta, None)).await;
                p?;
                m
            }
        });
        let (results, done) = join(join_all(ops), tx.done()).await;
        let mut seqs = Vec::with_capacity(results.len());
        for r in results {
            let key = r.map_err(|e| storage("enqueue", e))?;
            let seq = key.as_f64().map(|f| f as Seq).ok_or_else(|| {
                Error::new(ErrorCode::StorageUnavailable, "IndexedDB returned no seq")
            })?;
            seqs.push(seq);
        }
        committed("enqueue", done)?;
        Ok(seqs)
    }

    /// The payload records of `ids`, `None` where one is missing.
    pub async fn payloads(&self, ids: &[String]) -> Result<Vec<Option<JsValue>>> {
        let tx = self.tx(&[PAYLOADS], TransactionMode::ReadOnly)?;
        let payloads = tx.store(PAYLOADS).map_err(|e| storage("read payload", e))?;
        let gets = ids.iter().map(|id| payloads.get(JsValue::from_str(id)));
        let results = join_all(gets).await;
        results
            .into_iter()
            .map(|r| r.map_err(|e| storage("read payload", e)))
            .collect()
    }

    /// Every payload record, by id (for `peek`, `deadLetters`).
    pub async fn all_payloads(&self) -> Result<std::collections::HashMap<String, JsValue>> {
        let tx = self.tx(&[PAYLOADS], TransactionMode::ReadOnly)?;
        let payloads = tx
            .store(PAYLOADS)
            .map_err(|e| storage("read payloads", e))?;
        let (keys, values) = join(
            payloads.get_all_keys(None, None),
            payloads.get_all(None, None),
        )
        .await;
        let keys = keys.map_err(|e| storage("read payloads", e))?;
        let values = values.map_err(|e| storage("read payloads", e))?;
        Ok(keys
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k.as_string()?, v)))
            .collect())
    }

    /// Removes acknowledged transactions and their payloads, all in one write.
    pub async fn delete(&self, done: &[(Seq, String)]) -> Result<()> {
        let tx = self.tx(&[OUTBOX, PAYLOADS], TransactionMode::ReadWrite)?;
        let outbox = tx.store(OUTBOX).map_err(|e| storage("acknowledge", e))?;
        let payloads = tx.store(PAYLOADS).map_err(|e| storage("acknowledge", e))?;
        let ops = done.iter().map(|(seq, id)| {
            let (outbox, payloads) = (&outbox, &payloads);
            async move {
                let (a, b) = join(
                    outbox.delete(seq_key(*seq)),
                    payloads.delete(JsValue::from_str(id)),
                )
                .await;
                a.and(b)
            }
        });
        let (results, fin) = join(join_all(ops), tx.done()).await;
        for r in results {
            r.map_err(|e| storage("acknowledge", e))?;
        }
        committed("acknowledge", fin)
    }

    /// Rewrites a pending transaction's metadata (after a failed attempt).
    pub async fn update(&self, meta: &TxMeta) -> Result<()> {
        let record = encode(meta)?;
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadWrite)?;
        let outbox = tx.store(OUTBOX).map_err(|e| storage("update", e))?;
        let (put, done) = join(outbox.put(&record, None), tx.done()).await;
        put.map_err(|e| storage("update", e))?;
        committed("update", done)
    }

    /// Moves a transaction from the outbox to the dead letters, in one write.
    pub async fn bury(&self, meta: &TxMeta) -> Result<()> {
        let seq = meta
            .seq
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "no seq"))?;
        let record = encode(meta)?;
        let tx = self.tx(&[OUTBOX, DEAD], TransactionMode::ReadWrite)?;
        let outbox = tx.store(OUTBOX).map_err(|e| storage("dead-letter", e))?;
        let dead = tx.store(DEAD).map_err(|e| storage("dead-letter", e))?;
        let (a, b, done) = join3(
            dead.put(&record, None),
            outbox.delete(seq_key(seq)),
            tx.done(),
        )
        .await;
        a.map_err(|e| storage("dead-letter", e))?;
        b.map_err(|e| storage("dead-letter", e))?;
        committed("dead-letter", done)
    }

    pub async fn dead_letters(&self) -> Result<Vec<TxMeta>> {
        let tx = self.tx(&[DEAD], TransactionMode::ReadOnly)?;
        let dead = tx.store(DEAD).map_err(|e| storage("dead letters", e))?;
        let all = dead
            .get_all(None, None)
            .await
            .map_err(|e| storage("dead letters", e))?;
        Ok(all.into_iter().filter_map(|raw| decode(raw).ok()).collect())
    }

    pub async fn count_dead(&self) -> Result<u32> {
        let tx = self.tx(&[DEAD], TransactionMode::ReadOnly)?;
        let dead = tx.store(DEAD).map_err(|e| storage("dead letters", e))?;
        dead.count(None)
            .await
            .map_err(|e| storage("dead letters", e))
    }

    pub async fn find_dead(&self, id: &str) -> Result<Option<TxMeta>> {
        let tx = self.tx(&[DEAD], TransactionMode::ReadOnly)?;
        let dead = tx.store(DEAD).map_err(|e| storage("dead letters", e))?;
        let index = dead.index("id").map_err(|e| storage("dead letters", e))?;
        let raw = index
            .get(JsValue::from_str(id))
            .await
            .map_err(|e| storage("dead letters", e))?;
        match raw {
            None => Ok(None),
            Some(raw) => decode(raw)
                .map(Some)
                .map_err(|e| Error::new(ErrorCode::StorageUnavailable, e)),
        }
    }

    /// Puts a dead letter back into the outbox under its original seq.
    pub async fn revive(&self, meta: &TxMeta) -> Result<()> {
        let seq = meta
            .seq
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "no seq"))?;
        let record = encode(meta)?;
        let tx = self.tx(&[OUTBOX, DEAD], TransactionMode::ReadWrite)?;
        let outbox = tx.store(OUTBOX).map_err(|e| storage("retry dead", e))?;
        let dead = tx.store(DEAD).map_err(|e| storage("retry dead", e))?;
        let (a, b, done) = join3(
            outbox.put(&record, None),
            dead.delete(seq_key(seq)),
            tx.done(),
        )
        .await;
        a.map_err(|e| storage("retry dead", e))?;
        b.map_err(|e| storage("retry dead", e))?;
        committed("retry dead", done)
    }

    /// Deletes a record (from `outbox` or `dead`) together with its payload.
    pub async fn discard(&self, from_dead: bool, seq: Seq, id: &str) -> Result<()> {
        let store_name = if from_dead { DEAD } else { OUTBOX };
        let tx = self.tx(&[store_name, PAYLOADS], TransactionMode::ReadWrite)?;
        let records = tx.store(store_name).map_err(|e| storage("remove", e))?;
        let payloads = tx.store(PAYLOADS).map_err(|e| storage("remove", e))?;
        let (a, b, done) = join3(
            records.delete(seq_key(seq)),
            payloads.delete(JsValue::from_str(id)),
            tx.done(),
        )
        .await;
        a.map_err(|e| storage("remove", e))?;
        b.map_err(|e| storage("remove", e))?;
        committed("remove", done)
    }
}
