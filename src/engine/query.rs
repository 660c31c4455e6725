//! Queries and management: `peek`, `stats`, `settled`, the dead-letter calls and `remove`.
//! The leader answers from memory; a follower reads the store, or asks the leader where
//! only the leader can act (`remove` of a record it may be sending).

use super::sync::REMOVE_TIMEOUT_MS;
use super::*;
use crate::store::Payloads;

impl Engine {
    /// The first `limit` pending transactions in seq order, with their status: the leader
    /// copies them, a follower reads them.
    pub(super) async fn pending_metas(&self, limit: usize) -> Result<Vec<(TxMeta, Status)>> {
        let _ = self.until_loaded().await;
        if self.is_leader() {
            let st = self.st.borrow();
            return Ok(st
                .sched
                .seqs()
                .filter_map(|s| Some((TxMeta::clone(st.pending.get(&s)?), leader_status(&st, s))))
                .take(limit)
                .collect());
        }
        let metas = self.store.load_head(limit).await?.metas;
        let st = self.st.borrow();
        Ok(metas
            .into_iter()
            .map(|m| {
                let status = if st.remote_in_flight.contains_key(&*m.id) {
                    Status::InFlight
                } else {
                    Status::Pending
                };
                (m, status)
            })
            .collect())
    }

    /// `peek()` (`dead` false) or `deadLetters()`: the first `limit` (as the caller's
    /// options gave it) in seq order, with their payloads; only those are read.
    pub async fn list(self: Rc<Self>, dead: bool, limit: Result<usize>) -> Result<JsValue> {
        let limit = limit?;
        self.check_open()?;
        let mut metas = if dead {
            // A new leader moves undecodable records here as it reads the outbox.
            let _ = self.until_loaded().await;
            let dead = self.store.dead_letters(limit).await?;
            dead.into_iter().map(|m| (m, Status::Dead)).collect()
        } else {
            self.pending_metas(limit).await?
        };
        metas.truncate(limit);
        let payloads = self
            .payload_map(metas.iter().map(|(m, _)| payload_key(m)).collect())
            .await?;
        let out: Array = metas
            .iter()
            .map(|(m, status)| info(m, *status, payloads.get(&m.id).as_ref()))
            .collect();
        Ok(out.into())
    }

    /// Not generic, so that its state machine is compiled once for its callers.
    pub(super) async fn payload_map(&self, ids: Vec<PayloadKey>) -> Result<Payloads> {
        // Reading the whole store is quicker for many, unless acknowledged payloads wait
        // there to be swept (up to `SWEEP_BACKLOG` of them).
        if ids.len() > WINDOW && self.store.count_acked().await? == 0 {
            return self.store.all_payloads().await;
        }
        self.store.payloads(&ids).await
    }

    async fn find_dead(&self, id: &str) -> Result<TxMeta> {
        self.store.find_dead(id).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                ["no dead letter with id \"", id, "\""].concat(),
            )
        })
    }

    /// Back into the outbox under its original seq, so it takes its old place in every
    /// key's order; attempts start over.
    pub async fn retry_dead(self: Rc<Self>, id: String) -> Result<()> {
        self.check_open()?;
        let mut meta = self.find_dead(&id).await?;
        if meta.dead_reason == Some(DeadReason::Corrupt) {
            return Err(Error::new(
                ErrorCode::InvalidTransaction,
                "a corrupt record cannot be retried; inspect it in deadLetters() and discard it",
            ));
        }
        let seq = meta
            .seq
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "dead letter without seq"))?;
        meta.dead_reason = None;
        meta.dead_at = None;
        meta.attempts = 0;
        meta.next_attempt_at = js::now();
        self.store.revive(&meta).await?;
        let leading = {
            let mut st = self.st.borrow_mut();
            let leading = st.epoch.is_some();
            if leading {
                self.insert_pending(&mut st, meta.clone());
            }
            leading
        };
        if !leading {
            self.post(&leader::message(
                "revived",
                &[("seq", JsValue::from_f64(seq as f64))],
            ));
        }
        self.emit(|| {
            let ev = event("enqueued", Some(&meta.id));
            js::set(&ev, "seq", &JsValue::from_f64(seq as f64));
            ev
        });
        self.pump();
        Ok(())
    }

    pub async fn discard_dead(self: Rc<Self>, id: String) -> Result<()> {
        self.check_open()?;
        let meta = self.find_dead(&id).await?;
        let seq = meta
            .seq
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "dead letter without seq"))?;
        self.store.discard(seq, &meta).await?;
        self.release_held(seq);
        Ok(())
    }

    /// A discarded dead letter no longer holds its keys (block policy): the leader frees
    /// them; a follower tells the leader.
    pub(super) fn release_held(self: &Rc<Self>, seq: Seq) {
        let leading = {
            let mut st = self.st.borrow_mut();
            if st.sched.is_held(seq) {
                let _ = st.sched.remove(seq);
            }
            st.epoch.is_some()
        };
        if leading {
            self.pump();
        } else {
            self.post(&leader::message(
                "discarded",
                &[("seq", JsValue::from_f64(seq as f64))],
            ));
        }
    }

    /// Cancels a pending transaction that is not being sent.
    pub async fn remove(self: Rc<Self>, id: String) -> Result<()> {
        self.check_open()?;
        self.folds_done(&id).await;
        self.check_open()?;
        let Some(epoch) = self.st.borrow().epoch else {
            let reply = self.rpc(
                "remove",
                &[("id", JsValue::from_str(&id))],
                Some(REMOVE_TIMEOUT_MS),
            );
            return JsFuture::from(reply)
                .await
                .map(|_| ())
                .map_err(|e| js::from_js(&e));
        };
        let (seq, meta, ids) = {
            let mut st = self.st.borrow_mut();
            let seq = *st.ids.get(id.as_str()).ok_or_else(|| {
                Error::new(
                    ErrorCode::NotFound,
                    ["no pending transaction with id \"", &id, "\""].concat(),
                )
            })?;
            if st.sched.is_in_flight(seq) {
                return Err(Error::new(
                    ErrorCode::InFlight,
                    ["transaction \"", &id, "\" is being sent"].concat(),
                ));
            }
            // Out of the scheduler first, so it cannot start while the delete commits.
            let _ = st.sched.remove(seq);
            st.cache.remove(&seq);
            let meta = st.take_pending(seq);
            // `id` may be one folded into another (coalescing): what goes is the
            // transaction it settles with, under that one's id, with every id folded into it.
            let ids: Vec<String> = match &meta {
                Some(m) => m.ids().map(str::to_owned).collect(),
                None => vec![id.clone()],
            };
            for i in &ids {
                st.ids.remove(i.as_str());
            }
            (seq, meta, ids)
        };
        let aliases = meta.as_ref().map_or(&[][..], |m| &m.aliases[..]);
        let group = meta.as_ref().and_then(|m| m.group_key());
        match self
            .store
            .cancel((seq, group), &ids[0], aliases, epoch)
            .await
        {
            Ok(()) => {
                let err = removed_error(&id);
                for i in &ids {
                    self.waiters.settle(i, false, &err);
                }
                for i in &ids {
                    self.emit_outcome(|| event("removed", Some(i)));
                }
                self.pump();
                Ok(())
            }
            Err(e) => {
                if e.code == ErrorCode::NotLeader {
                    self.lost_fence();
                } else if let Some(meta) = meta {
                    self.insert_pending(&mut self.st.borrow_mut(), *meta);
                }
                self.pump();
                Err(e)
            }
        }
    }

    /// Waits while newer transactions are being folded into the one `id` names. A fold
    /// reads, merges and writes over several awaits; a removal in between was undone by
    /// the fold's write (the record came back and was sent). After the wait the
    /// transaction carries every id folded into it, and the removal takes them all.
    async fn folds_done(&self, id: &str) {
        loop {
            let wait = {
                let mut st = self.st.borrow_mut();
                let Some(&seq) = st.ids.get(id) else { return };
                if !st.folding_into(seq) {
                    return;
                }
                let d = Deferred::new();
                let p = d.promise.clone();
                st.fold_waits.push((seq, d));
                p
            };
            let _ = JsFuture::from(wait).await;
        }
    }

    /// Resolves when the transaction is acknowledged, by whichever context sends it;
    /// rejects if it is or becomes dead (or is removed).
    pub fn settled(self: &Rc<Self>, id: String) -> Promise {
        if let Err(e) = self.check_open() {
            return Promise::reject(&js::to_js(&e));
        }
        let promise;
        {
            let st = self.st.borrow();
            if let Some(m) = st.recent.iter().rev().find(|m| *m.id == *id) {
                return Promise::resolve(&info(m, Status::Acknowledged, None));
            }
            // Registered before the store is asked, so an outcome announced meanwhile is
            // not missed.
            promise = self.waiters.wait(&id);
            if st.ids.contains_key(id.as_str()) {
                return promise;
            }
        }
        if let Some(ids) = self.waiters.ask(&id) {
            self.settle_stored(ids, true);
        }
        promise
    }

    /// Settles what waits on each id of `list` that this context does not hold pending if
    /// the store says how it ended; otherwise the word from whichever context sends it
    /// will. A failed read rejects them if `asked` (`settled` calls), else leaves them
    /// waiting.
    fn settle_stored(self: &Rc<Self>, list: Array, asked: bool) {
        let me = self.clone();
        js::spawn(async move {
            // A new leader reads the outbox first, so that these reads (thousands, for a
            // page that waits on every item) do not hold up its first send, and what it
            // then holds pending settles by its own outcomes: only the rest is asked about.
            let _ = me.until_loaded().await;
            // A `settled` call's list takes no more ids from now on (see `Waiters::ask`).
            js::set(&list, "read", &JsValue::TRUE);
            let ids = Array::new();
            {
                let st = me.st.borrow();
                for id in list.iter() {
                    if !st.ids.contains_key(&*id.as_string().unwrap_or_default()) {
                        ids.push(&id);
                    }
                }
            }
            // Most contexts wait on nothing: no transaction then, on each change of leader.
            if ids.length() == 0 {
                return;
            }
            let outcomes = match me.store.settled_outcomes(&ids).await {
                Ok(o) => o,
                Err(e) => {
                    if asked {
                        me.waiters.reject(&js::to_js(&e), &ids);
                    }
                    return;
                }
            };
            for i in 0..ids.length() {
                let out = outcomes.get(i);
                let Some(id) = ids.get(i).as_string().filter(|_| !out.is_undefined()) else {
                    continue;
                };
                let out: Array = out.unchecked_into();
                let (ok, value) = (out.get(0).is_truthy(), out.get(1));
                let value = match (ok, value.as_string()) {
                    (true, _) => value,
                    (false, Some(why)) => dead_error(&id, &[": ", &why]),
                    (false, None) => removed_error(&id),
                };
                me.waiters.settle(&id, ok, &value);
            }
        });
    }

    /// Every `settled` wait checked against the store, in one read: for a context that may
    /// have missed outcomes announced on the channel (a page back from the back-forward
    /// cache, or under a new leader: the last one may have gone before its last events
    /// went out).
    pub(super) fn settle_from_store(self: &Rc<Self>) {
        self.settle_stored(self.waiters.ids(), false);
    }

    /// Counts over the pending transactions: the leader's from memory without copying
    /// them (a UI may poll this with 100,000 pending), a follower's from the store.
    async fn summary(&self) -> Result<Summary> {
        let mut sum = Summary::default();
        let _ = self.until_loaded().await;
        if self.is_leader() {
            let st = self.st.borrow();
            for (seq, m) in &st.pending {
                sum.add(m, leader_status(&st, *seq));
            }
            return Ok(sum);
        }
        for (m, status) in self.pending_metas(usize::MAX).await? {
            sum.add(&m, status);
        }
        Ok(sum)
    }

    pub async fn stats(self: Rc<Self>) -> Result<JsValue> {
        self.check_open()?;
        let dead = self.store.count_dead().await?;
        let sum = self.summary().await?;
        let (figures, persisted) = {
            let st = self.st.borrow();
            let next = if st.epoch.is_some() {
                st.sched.next_due().filter(|t| *t != Millis::MAX)
            } else {
                sum.next
            };
            let or_nan = |v: Option<Millis>| v.map_or(f64::NAN, |t| t as f64);
            let latency = |p| st.metrics.percentile(p).unwrap_or(f64::NAN);
            let figures = [
                (sum.count - sum.in_flight) as f64,
                sum.in_flight as f64,
                // Pending after at least one failed attempt: what a UI shows as "retrying".
                sum.retrying as f64,
                dead as f64,
                // Low-priority work held back by the network policy.
                st.sched.parked() as f64,
                or_nan(sum.oldest),
                or_nan(sum.oldest.map(|t| js::now().saturating_sub(t))),
                sum.bytes as f64,
                st.metrics.success_rate().unwrap_or(f64::NAN),
                latency(50.0),
                latency(90.0),
                latency(99.0),
                or_nan(next),
                st.totals.sent as f64,
                st.totals.retried as f64,
                st.totals.dead as f64,
                f64::from(u8::from(st.epoch.is_some() && !st.closed)),
            ];
            (figures, st.persisted)
        };
        JsFuture::from(stats_object(&figures, persisted))
            .await
            .map_err(|e| js::from_js(&e))
    }
}

#[wasm_bindgen(module = "/src/js/stats.js")]
extern "C" {
    /// The `stats()` object from its figures, in the order `stats` lists them.
    #[wasm_bindgen(js_name = statsObject)]
    fn stats_object(figures: &[f64], persisted: Option<bool>) -> Promise;
}

/// A pending transaction's status as the leader knows it.
fn leader_status(st: &State, seq: Seq) -> Status {
    if st.sched.is_in_flight(seq) {
        Status::InFlight
    } else {
        Status::Pending
    }
}

/// What `stats` counts over the pending transactions.
#[derive(Default)]
struct Summary {
    count: usize,
    in_flight: usize,
    retrying: usize,
    oldest: Option<Millis>,
    bytes: u64,
    /// The earliest next attempt of those not in flight.
    next: Option<Millis>,
}

impl Summary {
    fn add(&mut self, m: &TxMeta, status: Status) {
        self.count += 1;
        self.bytes += m.bytes;
        self.oldest = Some(self.oldest.map_or(m.created_at, |o| o.min(m.created_at)));
        if status == Status::InFlight {
            self.in_flight += 1;
            return;
        }
        if m.attempts > 0 {
            self.retrying += 1;
        }
        self.next = Some(
            self.next
                .map_or(m.next_attempt_at, |n| n.min(m.next_attempt_at)),
        );
    }
}
