//! Backups: `export()` writes the outbox and its dead letters as one JSON document;
//! `import()` checks such a document whole, then adds what is not here yet in one
//! IndexedDB write, or changes nothing. Payloads go through `codec.js`, so whatever
//! IndexedDB can store (dates, maps, binary data, cycles) comes back as it was.

use super::*;
use crate::options::{MAX_KEYS, MAX_STRING};

const FORMAT: &str = "offline-outbox-backup";
const VERSION: u32 = 1;

#[wasm_bindgen(module = "/src/js/codec.js")]
extern "C" {
    #[wasm_bindgen(js_name = encodeValue)]
    fn encode_value(value: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = decodeValue, catch)]
    fn decode_value(json: &JsValue, path: &str) -> std::result::Result<JsValue, JsValue>;
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidBackup, message)
}

/// One backup record checked and decoded, ready to write: metadata, payload, whether it
/// is a dead letter (what `Store::import` takes).
type Record = (TxMeta, JsValue, bool);

impl Engine {
    pub async fn export(self: Rc<Self>) -> Result<JsValue> {
        self.check_open()?;
        let pending = self.pending_metas().await?;
        let dead = self.store.dead_letters().await?;
        let ids = pending
            .iter()
            .map(|(m, _)| m)
            .chain(&dead)
            .map(super::payload_key);
        let payloads = self.payload_map(ids).await?;
        let doc = Object::new();
        js::set(&doc, "format", &JsValue::from_str(FORMAT));
        js::set(&doc, "version", &JsValue::from(VERSION));
        js::set(&doc, "name", &JsValue::from_str(&self.name));
        js::set(&doc, "exportedAt", &JsValue::from_f64(js::now() as f64));
        for (field, metas) in [
            (
                "pending",
                pending.iter().map(|(m, _)| m).collect::<Vec<_>>(),
            ),
            ("dead", dead.iter().collect()),
        ] {
            let out = Array::new();
            for meta in metas {
                out.push(&export_record(meta, payloads.get(&*meta.id)).await?);
            }
            js::set(&doc, field, &out);
        }
        Ok(doc.into())
    }

    /// Adds the backup's transactions that are not here yet, after everything pending,
    /// in the backup's order, with their ids, idempotency keys and attempts. The whole
    /// document is checked first: any fault rejects with nothing stored.
    pub async fn import(self: Rc<Self>, doc: JsValue) -> Result<JsValue> {
        self.check_open()?;
        let rows = self.parse_backup(&doc)?;
        let seqs = self.store.import(&rows).await?;
        let (mut added, mut dead, mut skipped) = (Vec::new(), 0u32, 0u32);
        for ((mut meta, _, is_dead), seq) in rows.into_iter().zip(seqs) {
            let Some(seq) = seq else {
                skipped += 1;
                continue;
            };
            meta.seq = Some(seq);
            if is_dead {
                dead += 1;
            } else {
                added.push(meta);
            }
        }
        // The leader takes the records in through its sync, which reads the dead letters
        // committed with them in the same IndexedDB transaction (block policy), so none
        // of the imported transactions can start ahead of one.
        if self.is_leader() {
            self.request_sync();
        } else {
            self.post(&leader::message("wake", &[]));
        }
        for meta in &added {
            self.emit(|| {
                let ev = event("enqueued", Some(&meta.id));
                js::set(&ev, "seq", &JsValue::from_f64(meta.seq.unwrap_or(0) as f64));
                ev
            });
        }
        let out = Object::new();
        js::set(&out, "pending", &JsValue::from(added.len() as u32));
        js::set(&out, "dead", &JsValue::from(dead));
        js::set(&out, "skipped", &JsValue::from(skipped));
        Ok(out.into())
    }
}

impl Engine {
    fn parse_backup(&self, doc: &JsValue) -> Result<Vec<Record>> {
        let doc = match doc.as_string() {
            Some(text) => js_sys::JSON::parse(&text)
                .map_err(|e| invalid(format!("not JSON: {}", js::describe(&e).message)))?,
            None => doc.clone(),
        };
        if !js::is_plain_object(&doc) {
            return Err(invalid("a backup must be an object or its JSON text"));
        }
        if js::get(&doc, "format").as_string().as_deref() != Some(FORMAT) {
            return Err(invalid(format!("format must be \"{FORMAT}\"")));
        }
        let version = js::get(&doc, "version");
        if version.as_f64() != Some(f64::from(VERSION)) {
            return Err(invalid(format!(
                "version {} is not one this outbox reads (it reads {VERSION})",
                js::describe(&version).message
            )));
        }
        let mut records = Vec::new();
        for (field, dead) in [("pending", false), ("dead", true)] {
            let list = js::get(&doc, field);
            let list = Some(list)
                .filter(Array::is_array)
                .and_then(|list| js::array_from(&list).ok())
                .ok_or_else(|| invalid(format!("{field} must be an array")))?;
            for (i, raw) in list.iter().enumerate() {
                records.push(self.parse_record(&raw, &format!("{field}[{i}]"), dead)?);
            }
        }
        // Owned strings: the set type `remote_in_flight` already compiles in.
        let mut ids: FxHashSet<String> = FxHashSet::default();
        for (meta, _, _) in &records {
            for id in meta.ids() {
                if !ids.insert(id.to_owned()) {
                    return Err(invalid(format!("id \"{id}\" appears twice")));
                }
            }
        }
        // Pending and dead interleaved as they were: a dead letter retried later takes
        // its place among the imported transactions on its keys.
        records.sort_by_key(|(meta, _, _)| meta.seq.unwrap_or(Seq::MAX));
        for (meta, _, _) in &mut records {
            meta.seq = None;
        }
        Ok(records)
    }

    fn parse_record(&self, raw: &JsValue, at: &str, dead: bool) -> Result<Record> {
        if !js::is_plain_object(raw) {
            return Err(invalid(format!("{at}: a transaction must be an object")));
        }
        let meta = record::decode(raw).map_err(|e| invalid(format!("{at}: {e}")))?;
        let bad = |m: &str| Err(invalid(format!("{at}: {m}")));
        let strings = meta
            .ids()
            .chain([meta.idempotency_key(), meta.handler.as_str()]);
        for s in strings {
            if s.is_empty() || s.len() > MAX_STRING {
                return bad(&format!("ids, keys and names are 1 to {MAX_STRING} bytes"));
            }
        }
        if meta.keys.len() > MAX_KEYS || meta.keys.iter().any(|k| k.len() > MAX_STRING) {
            return bad(&format!(
                "at most {MAX_KEYS} keys of at most {MAX_STRING} bytes"
            ));
        }
        if dead != meta.dead_reason.is_some() {
            return bad(if dead {
                "a dead letter needs its deadReason"
            } else {
                "a pending transaction has no deadReason"
            });
        }
        let Some(handler) = self.handlers.get(&meta.handler) else {
            return Err(Error::new(
                ErrorCode::UnknownHandler,
                format!("{at}: no handler named \"{}\" is registered", meta.handler),
            ));
        };
        let field = |name: &'static str| {
            decode_value(&js::get(raw, name), &format!("{at}.{name}"))
                .map_err(|e| invalid(js::describe(&e).message))
        };
        let (mutations, metadata) = (field("mutations")?, field("metadata")?);
        if matches!(handler, Handler::Http) {
            crate::http::validate(&mutations)
                .map_err(|e| invalid(format!("{at}: {}", e.message)))?;
        }
        let payload = payload_record(&mutations, &metadata);
        let meta = TxMeta {
            keys: TxMeta::dedup_keys(meta.keys),
            bytes: js::size_of(&payload),
            ..meta
        };
        Ok((meta, payload, dead))
    }
}

/// Under the block policy a dead letter keeps its keys from later transactions (a corrupt
/// record's keys are unknown, so it holds nothing).
pub(super) fn hold_dead(st: &mut State, m: &TxMeta) {
    if m.dead_reason == Some(DeadReason::Corrupt) {
        return;
    }
    if let Some(seq) = m.seq {
        if st.sched.insert(seq, &m.keys, m.priority, 0).is_ok() {
            let _ = st.sched.hold(seq);
        }
    }
}

/// One transaction as the backup holds it: its metadata, then its payload encoded.
async fn export_record(meta: &TxMeta, payload: Option<&JsValue>) -> Result<JsValue> {
    let record = record::encode(meta);
    for name in ["mutations", "metadata"] {
        let value = payload.map_or(JsValue::UNDEFINED, |p| js::get(p, name));
        let encoded = JsFuture::from(encode_value(&value))
            .await
            .map_err(|e| Error::new(ErrorCode::NotSerializable, js::describe(&e).message))?;
        js::set(&record, name, &encoded);
    }
    Ok(record.into())
}
