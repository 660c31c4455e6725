//! Backups: `export()` writes the outbox and its dead letters as one JSON document;
//! `import()` checks such a document whole, then adds what is not here yet in one
//! IndexedDB write, or changes nothing. The document and its checks are in `js/codec.js`;
//! this gathers what goes into the one and stores what the other returns.

use super::*;

#[wasm_bindgen(module = "/src/js/codec.js")]
extern "C" {
    #[wasm_bindgen(js_name = backupDoc)]
    fn backup_doc(name: &str, pending: &Array, dead: &Array, payloads: &Array) -> Promise;
    #[wasm_bindgen(js_name = readBackup, catch)]
    fn read_backup(
        doc: &JsValue,
        handlers: &Array,
        http: bool,
    ) -> std::result::Result<Array, JsValue>;
}

impl Engine {
    pub async fn export(self: Rc<Self>) -> Result<JsValue> {
        self.check_open()?;
        let pending = self.pending_metas(usize::MAX).await?;
        let dead = self.store.dead_letters(usize::MAX).await?;
        let metas: Vec<&TxMeta> = pending.iter().map(|(m, _)| m).chain(&dead).collect();
        let payloads = self
            .payload_map(metas.iter().map(|m| super::payload_key(m)).collect())
            .await?;
        let records = |list: &[&TxMeta]| -> Array {
            list.iter()
                .map(|m| JsValue::from(record::encode(m)))
                .collect()
        };
        let payloads: Array = metas
            .iter()
            .map(|m| payloads.get(&m.id).unwrap_or(JsValue::UNDEFINED))
            .collect();
        let (pending, dead) = metas.split_at(pending.len());
        let doc = backup_doc(&self.name, &records(pending), &records(dead), &payloads);
        JsFuture::from(doc).await.map_err(|e| js::from_js(&e))
    }

    /// Adds the backup's transactions that are not here yet, after everything pending,
    /// in the backup's order, with their ids, idempotency keys and attempts. The whole
    /// document is checked first: any fault rejects with nothing stored.
    pub async fn import(self: Rc<Self>, doc: JsValue) -> Result<JsValue> {
        self.check_open()?;
        let rows = read_backup(&doc, self.handlers.names(), self.handlers.http_builtin())
            .map_err(|e| js::from_js(&e))?;
        let seqs = self.store.import(&rows).await?;
        let (mut added, mut dead, mut skipped) = (Vec::new(), 0u32, 0u32);
        for (row, seq) in rows.iter().zip(seqs) {
            let Some(seq) = seq else {
                skipped += 1;
                continue;
            };
            let row: Array = row.unchecked_into();
            if row.get(2).is_truthy() {
                dead += 1;
            } else {
                added.push((
                    js::get(&row.get(0), "id").as_string().unwrap_or_default(),
                    seq,
                ));
            }
        }
        // The leader takes the records in through its sync, which reads the dead letters
        // committed with them in the same IndexedDB transaction (block policy), so none
        // of the imported transactions can start ahead of one. Here, that sync is waited
        // for (below), so `peek()` and `export()` show the records once this resolves.
        let synced = if self.is_leader() {
            Some(self.until_synced())
        } else {
            self.post(&leader::message("wake", &[]));
            None
        };
        for (id, seq) in &added {
            self.emit(|| {
                let ev = event("enqueued", Some(id));
                js::set(&ev, "seq", &JsValue::from_f64(*seq as f64));
                ev
            });
        }
        let out = Object::new();
        js::set(&out, "pending", &JsValue::from(added.len() as u32));
        js::set(&out, "dead", &JsValue::from(dead));
        js::set(&out, "skipped", &JsValue::from(skipped));
        if let Some(synced) = synced {
            let _ = synced.await;
        }
        Ok(out.into())
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
