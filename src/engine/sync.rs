//! What contexts tell each other over the outbox's BroadcastChannel: election messages,
//! wake-ups for the leader (`wake` after a follower's enqueue, `revived`, `online`),
//! events (batched, once per task), and requests only the leader can serve (`remove`,
//! `drain`) with their replies. Messages carry ids and small fields, never payloads.

use super::*;
use crate::leader::{decode_lease, encode_lease, message};
use crate::lease::Action;

/// How long a follower waits for the leader to answer a `remove`.
pub(super) const REMOVE_TIMEOUT_MS: u32 = 5_000;
/// Seqs the sync loop reads at a time (a group record spans its members).
const SYNC_CHUNK: u32 = 5_000;

impl Engine {
    /// Presence: `hello` on open, answered by `here`; `bye` on close.
    pub(super) fn say(&self, kind: &str) {
        self.post(&message(
            kind,
            &[("from", JsValue::from_f64(self.me as f64))],
        ));
    }

    pub(super) fn post(&self, msg: &JsValue) {
        if let Some(c) = self.st.borrow().channel.as_ref() {
            c.post(msg);
        }
    }

    /// Events go out together at the end of the task: one message, not one per event.
    pub(super) fn queue_outgoing(&self, ev: JsValue) {
        let mut st = self.st.borrow_mut();
        st.outgoing.push(ev);
        if st.outgoing_timer.is_none() {
            let this = self.this.clone();
            st.outgoing_timer = Some(Timeout::new(0, move || {
                if let Some(e) = this.upgrade() {
                    js::spawn(async move { e.flush_outgoing() });
                }
            }));
        }
    }

    pub(super) fn flush_outgoing(&self) {
        let evs = {
            let mut st = self.st.borrow_mut();
            st.outgoing_timer = None;
            std::mem::take(&mut st.outgoing)
        };
        if !evs.is_empty() {
            let evs: Array = evs.into_iter().collect();
            self.post(&message("evs", &[("evs", evs.into())]));
        }
    }

    pub(super) fn on_message(self: &Rc<Self>, msg: JsValue) {
        let Some(kind) = js::get(&msg, "t").as_string() else {
            return;
        };
        if self.st.borrow().closed {
            return;
        }
        let leading = self.is_leader();
        let from = js::get(&msg, "from").as_f64().map(|f| f as u64);
        match kind.as_str() {
            "hello" | "here" | "bye" => {
                let Some(from) = from else { return };
                let mut st = self.st.borrow_mut();
                st.peers.retain(|&p| p != from);
                if kind != "bye" {
                    st.peers.push(from);
                }
                drop(st);
                if kind == "hello" {
                    self.say("here");
                }
            }
            "hb" | "claim" | "resign" | "who" => {
                let Some(m) = decode_lease(&kind, &msg) else {
                    return;
                };
                let actions = match self.st.borrow_mut().lease.as_mut() {
                    Some(lease) => lease.on_message(m, js::now()),
                    None => return,
                };
                self.lease_actions(actions);
            }
            "wake" if leading => self.request_sync(),
            "revived" if leading => {
                if let Some(seq) = js::get(&msg, "seq").as_f64() {
                    self.load_revived(seq as Seq);
                }
            }
            "discarded" if leading => {
                if let Some(seq) = js::get(&msg, "seq").as_f64() {
                    self.release_held(seq as Seq);
                }
            }
            "online" if leading => self.notify_online(),
            "evs" => {
                for ev in Array::from(&js::get(&msg, "evs")).iter() {
                    self.remote_event(&ev);
                }
            }
            "rpc" if leading => self.serve(msg),
            "lead" if !leading => self.rejoin(),
            "reply" => self.take_reply(&msg),
            _ => {}
        }
    }

    /// For a follower that may have missed the leader's words: under a new leader, or back
    /// from the back-forward cache (its channel was closed meanwhile). What it took to be
    /// in flight is pending until the leader says; its requests go out again, as their
    /// replies may be lost; its `settled` waits are checked against the store.
    pub(super) fn rejoin(self: &Rc<Self>) {
        self.st.borrow_mut().remote_in_flight.clear();
        {
            // Posting calls nothing back (a message is delivered in a later task).
            let st = self.st.borrow();
            for r in &st.rpcs {
                self.post(&r.msg);
            }
        }
        self.settle_from_store();
    }

    pub(super) fn lease_actions(self: &Rc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(m) => self.post(&encode_lease(m)),
                Action::BecomeLeader => js::spawn(self.clone().gain()),
                Action::BecomeFollower => self.demote(),
            }
        }
        self.arm_lease_timer();
    }

    pub(super) fn arm_lease_timer(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        let Some(at) = st.lease.as_ref().and_then(|l| l.next_tick()) else {
            st.lease_timer = None;
            return;
        };
        let delay = at.saturating_sub(js::now()).min(MAX_TIMER_MS) as u32;
        let this = Rc::downgrade(self);
        st.lease_timer = Some(Timeout::new(delay, move || {
            if let Some(e) = this.upgrade() {
                js::spawn(async move {
                    let actions = match e.st.borrow_mut().lease.as_mut() {
                        Some(lease) => lease.tick(js::now()),
                        None => return,
                    };
                    e.lease_actions(actions);
                });
            }
        }));
    }

    /// A nudge from the environment (the page became visible): the leader drains, a
    /// follower passes it on (the leader may be a throttled background tab).
    pub(super) fn wake(self: &Rc<Self>) {
        if self.is_leader() {
            self.pump();
        } else {
            self.post(&message("wake", &[]));
        }
    }

    /// The leader reads what other contexts enqueued: every record above what it has
    /// seen. Requests arriving during a read are served by one more read.
    pub(super) fn request_sync(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.epoch.is_none() {
                return;
            }
            if st.syncing {
                st.sync_again = true;
                return;
            }
            st.syncing = true;
        }
        js::spawn(self.clone().sync_loop());
    }

    /// Requests a sync and resolves once a read that started after this call has read
    /// to the end (or the sync stopped: leadership lost, or closed).
    pub(super) fn until_synced(self: &Rc<Self>) -> JsFuture {
        self.request_sync();
        let mut st = self.st.borrow_mut();
        let wait = st.syncing;
        wait_in(&mut st.synced_waiters, wait)
    }

    async fn sync_loop(self: Rc<Self>) {
        // Those waiting for a read that started after they asked (`until_synced`).
        let mut waiting = Vec::new();
        loop {
            let (after, generation) = {
                let mut st = self.st.borrow_mut();
                waiting.append(&mut st.synced_waiters);
                (st.last_synced, st.generation)
            };
            // In chunks: a new leader reads most of a long outbox here, and the chunk is
            // what sits decoded in memory at once besides the records already kept.
            // Under the block policy, with the dead letters committed alongside (an import
            // elsewhere): read together, so a record is never taken in without the dead
            // letter ahead of it on its keys, even when the importer's word comes late.
            let block = self.dead_letters == DeadLetterPolicy::Block;
            let mut loaded = self.store.load_first(after, SYNC_CHUNK, block).await;
            // Undecodable records go to the dead letters before the chunk is taken in, as
            // part of the loading that `deadLetters()` waits for; their seqs count as read.
            let mut corrupt_top = None;
            if let Ok(l) = &mut loaded {
                let (taken, epoch) = {
                    let st = self.st.borrow();
                    // Under a leadership that changed during the read, nothing is moved
                    // (the check below starts over).
                    let epoch = st.epoch.filter(|_| st.generation == generation);
                    (st.last_synced.unwrap_or(0), epoch)
                };
                l.corrupt
                    .retain(|c| c.key.as_f64().is_some_and(|k| k > taken as f64));
                corrupt_top = l
                    .corrupt
                    .iter()
                    .filter_map(|c| c.key.as_f64())
                    .reduce(f64::max);
                if let (false, Some(epoch)) = (l.corrupt.is_empty(), epoch) {
                    let corrupt = std::mem::take(&mut l.corrupt);
                    if let Err(e) = self.store.quarantine(corrupt, js::now(), epoch).await {
                        self.report_error(None, &e);
                    }
                }
            }
            let mut st = self.st.borrow_mut();
            if st.generation != generation {
                // Leadership changed during the read. A new leadership's own request
                // found this loop running and left the reading to it: start over.
                if st.epoch.is_some() && !st.closed {
                    st.sync_again = false;
                    continue;
                }
                st.syncing = false;
                waiting.append(&mut st.synced_waiters);
                drop(st);
                resolve_all(waiting);
                return;
            }
            let mut more = false;
            match loaded {
                Ok(mut loaded) => {
                    more = loaded.more;
                    // Everything up to `last_synced` is taken in already: the leader's own
                    // enqueues can have moved it on during the read. Such a record may be
                    // acknowledged or folded by now, so no longer pending, and taking it
                    // in again would send it twice.
                    let taken = st.last_synced.unwrap_or(0);
                    loaded.metas.retain(|m| m.seq > Some(taken));
                    let top = loaded
                        .metas
                        .iter()
                        .filter_map(|m| m.seq)
                        .chain(corrupt_top.map(|f| f as Seq))
                        .max();
                    if let Some(top) = top {
                        st.last_synced = Some(st.last_synced.map_or(top, |l| l.max(top)));
                    }
                    for m in &loaded.dead {
                        super::backup::hold_dead(&mut st, m);
                    }
                    for m in loaded.metas {
                        let Some(seq) = m.seq else { continue };
                        if !st.pending.contains_key(&seq) {
                            self.insert_pending(&mut st, m);
                        }
                    }
                }
                Err(e) => {
                    drop(st);
                    self.report_error(None, &e);
                    st = self.st.borrow_mut();
                }
            }
            if more {
                // Let what was just read start going out before the next chunk.
                drop(st);
                self.pump();
                continue;
            }
            drop(st);
            resolve_all(std::mem::take(&mut waiting));
            st = self.st.borrow_mut();
            if st.taking_over {
                drop(st);
                self.finish_loading();
                st = self.st.borrow_mut();
            }
            if !std::mem::take(&mut st.sync_again) {
                st.syncing = false;
                break;
            }
        }
        self.pump();
    }

    fn load_revived(self: &Rc<Self>, seq: Seq) {
        let me = self.clone();
        js::spawn(async move {
            let generation = me.st.borrow().generation;
            match me.store.load_first(seq.checked_sub(1), 1, false).await {
                Ok(loaded) => {
                    let mut st = me.st.borrow_mut();
                    // The read spans the first seq after `seq - 1`: another one where
                    // `seq`'s record is gone already.
                    let found = loaded.metas.first().is_some_and(|m| m.seq == Some(seq));
                    if st.generation == generation && found {
                        for m in loaded.metas {
                            me.insert_pending(&mut st, m);
                        }
                    }
                }
                Err(e) => me.report_error(None, &e),
            }
            me.pump();
        });
    }

    /// An event from another context: to the local listeners, and what followers track
    /// (what is being sent, who waits on `settled`, counters).
    fn remote_event(self: &Rc<Self>, ev: &JsValue) {
        let kind = js::get(ev, "type").as_string().unwrap_or_default();
        let id = js::get(ev, "id").as_string();
        {
            let mut st = self.st.borrow_mut();
            if let Some(id) = &id {
                match kind.as_str() {
                    "sending" => {
                        st.remote_in_flight.insert(Rc::from(id.as_str()), 0);
                    }
                    "retry" => {
                        st.remote_in_flight.remove(id.as_str());
                        st.totals.retried += 1;
                    }
                    "sent" | "dead" | "removed" => {
                        st.remote_in_flight.remove(id.as_str());
                        match kind.as_str() {
                            "sent" => st.totals.sent += 1,
                            "dead" => st.totals.dead += 1,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(id) = id.as_deref().filter(|id| self.waiters.has(id)) {
            match kind.as_str() {
                "sent" => self.waiters.settle(id, true, &record::acknowledged(id)),
                "dead" => self.waiters.settle(id, false, &dead_error(id, &[])),
                "removed" => self.waiters.settle(id, false, &removed_error(id)),
                _ => {}
            }
        }
        self.listeners.deliver(ev);
    }

    /// Asks the leader to do `op`; the promise settles with its reply, or rejects after
    /// `timeout_ms` if no leader answers.
    pub(super) fn rpc(
        self: &Rc<Self>,
        op: &str,
        fields: &[(&'static str, JsValue)],
        timeout_ms: Option<u32>,
    ) -> Promise {
        let d = Deferred::new();
        let promise = d.promise.clone();
        let req = {
            let mut st = self.st.borrow_mut();
            st.next_id += 1;
            st.next_id
        };
        let timeout = timeout_ms.map(|ms| {
            let this = Rc::downgrade(self);
            Timeout::new(ms, move || {
                if let Some(e) = this.upgrade() {
                    // Out of the callback: removing the entry drops this very Timeout.
                    js::spawn(async move {
                        let entry = take_rpc(&mut e.st.borrow_mut().rpcs, req);
                        if let Some(r) = entry {
                            r.done.reject(&js::err(
                                ErrorCode::StorageUnavailable,
                                ["no leader answered within ", &decimal(ms.into()), " ms"].concat(),
                            ));
                        }
                    });
                }
            })
        });
        let mut all = vec![
            ("op", JsValue::from_str(op)),
            ("req", JsValue::from(req)),
            ("from", JsValue::from_f64(self.me as f64)),
        ];
        all.extend(fields.iter().cloned());
        let msg = message("rpc", &all);
        self.post(&msg);
        self.st.borrow_mut().rpcs.push(Rpc {
            req,
            done: d,
            _timeout: timeout,
            msg,
        });
        promise
    }

    /// The leader serves a follower's request and replies to it alone.
    pub(super) fn serve(self: &Rc<Self>, msg: JsValue) {
        let op = js::get(&msg, "op").as_string().unwrap_or_default();
        let (req, from) = (js::get(&msg, "req"), js::get(&msg, "from"));
        let me = self.clone();
        js::spawn(async move {
            let result: Result<JsValue> = match op.as_str() {
                "remove" => match js::get(&msg, "id").as_string() {
                    Some(id) => me.clone().remove(id).await.map(|_| JsValue::UNDEFINED),
                    None => Err(Error::new(
                        ErrorCode::InvalidTransaction,
                        "id must be a string",
                    )),
                },
                "drain" => {
                    let budget = js::get(&msg, "budgetMs").as_f64().map(|b| b as Millis);
                    JsFuture::from(me.drain(budget))
                        .await
                        .map_err(|e| js::from_js(&e))
                }
                _ => Err(Error::new(
                    ErrorCode::InvalidOptions,
                    ["unknown request \"", &op, "\""].concat(),
                )),
            };
            let mut fields = vec![
                ("req", req),
                ("to", from),
                ("ok", JsValue::from_bool(result.is_ok())),
            ];
            match result {
                Ok(v) => fields.push(("value", v)),
                Err(e) => {
                    fields.push(("code", JsValue::from_str(e.code.as_str())));
                    fields.push(("message", JsValue::from_str(&e.message)));
                }
            }
            let reply = message("reply", &fields);
            if js::get(&reply, "to").as_f64() == Some(me.me as f64) {
                me.take_reply(&reply);
            } else {
                me.post(&reply);
            }
        });
    }

    fn take_reply(&self, msg: &JsValue) {
        if js::get(msg, "to").as_f64() != Some(self.me as f64) {
            return;
        }
        let Some(req) = js::get(msg, "req").as_f64() else {
            return;
        };
        let ok = js::get(msg, "ok").as_bool() == Some(true);
        let code = js::get(msg, "code").as_string().unwrap_or_default();
        // A leader deposed while serving it: the next one is asked on its word.
        if !ok && code == ErrorCode::NotLeader.as_str() {
            return;
        }
        let Some(Rpc { done: d, .. }) = take_rpc(&mut self.st.borrow_mut().rpcs, req as u32) else {
            return;
        };
        if ok {
            d.resolve(&js::get(msg, "value"));
        } else {
            let message = js::get(msg, "message").as_string().unwrap_or_default();
            d.reject(&js::to_js(&Error::new(
                ErrorCode::parse(&code).unwrap_or(ErrorCode::StorageUnavailable),
                message,
            )));
        }
    }

    /// A follower's `drain`: the leader drains and reports. With a budget, an incomplete
    /// report comes back when it runs out, whatever the leader is doing.
    pub(super) fn drain_remote(self: &Rc<Self>, budget_ms: Option<Millis>) -> Promise {
        let fields = budget_ms.map_or_else(Vec::new, |b| {
            vec![("budgetMs", JsValue::from_f64(b as f64))]
        });
        let reply = self.rpc("drain", &fields, None);
        let Some(budget) = budget_ms else {
            return reply;
        };
        let out = Deferred::new();
        let promise = out.promise.clone();
        let started = js_sys::Date::now();
        // No answer within the budget (no leader, or a busy one): report what the store
        // holds, so a caller never reads "nothing remaining" off a follower's empty view.
        let timer = Timeout::new(budget.min(MAX_TIMER_MS) as u32, {
            let me = Rc::downgrade(self);
            let out_resolve = out.resolver();
            move || {
                let Some(me) = me.upgrade() else { return };
                js::spawn(async move {
                    let remaining = me.store.count_pending().await.unwrap_or(u32::MAX);
                    let o = Object::new();
                    for k in ["sent", "retried", "dead"] {
                        js::set(&o, k, &JsValue::from_f64(0.0));
                    }
                    js::set(&o, "remaining", &JsValue::from_f64(remaining as f64));
                    js::set(&o, "complete", &JsValue::FALSE);
                    js::set(
                        &o,
                        "durationMs",
                        &JsValue::from_f64(js_sys::Date::now() - started),
                    );
                    let _ = out_resolve.call1(&JsValue::UNDEFINED, &o);
                });
            }
        });
        js::spawn(async move {
            let result = JsFuture::from(reply).await;
            drop(timer);
            match result {
                Ok(v) => out.resolve(&v),
                Err(e) => out.reject(&e),
            }
        });
        promise
    }
}
