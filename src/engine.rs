//! The executor: drives the scheduler with IndexedDB writes, handler calls and timers.
//!
//! Every context that opens an outbox runs an engine; the one that leads (see
//! [`crate::leader`]) holds the in-memory view of the outbox (the metadata of every pending
//! transaction) and sends. The others are followers: they enqueue durably and learn what
//! happens over the channel (`sync`). Background tasks: the enqueue group commit, the
//! batched removal of acknowledged records, payload prefetch, the retry timer.
//!
//! State sits in one `RefCell`; no borrow is held across an `.await` or across a call into
//! JS that could re-enter the outbox (listeners, handlers), so no borrow can fail.

mod backup;
mod query;
mod sync;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::{Rc, Weak};

use rustc_hash::FxHashMap;

use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal};

use crate::error::{decimal, Error, ErrorCode, Result};
use crate::js::{self, Deferred};
use crate::leader::{self, Channel, HeldLock, LockRequest, Mode, ReplyOrLock};
use crate::lease::{Lease, Timing};
use crate::metrics::{Metrics, Progress};
use crate::model::{
    DeadLetterPolicy, DeadReason, LastError, Millis, Outcome, Priority, Seq, Status, TxMeta,
};
use crate::options::{Capacity, Handler, Handlers, NewTransaction, Options, WifiPreferred};
use crate::ordset::OrdSet;
use crate::record;
use crate::retry::{Decision, RetryPolicy, Rng};
use crate::scheduler::Scheduler;
use crate::storage_manager;
use crate::store::{self, Append, Payloads, Store};
use crate::timer::Timeout;
use crate::triggers::{self, Trigger};

/// How many payloads the cache holds ahead of dispatch: the loader reads this many
/// upcoming ones at a time, so a drain costs one IndexedDB read per window, not per
/// transaction.
const WINDOW: usize = 512;
/// Seqs read before a new leader starts sending (see `gain`).
const FIRST_LOAD: u32 = 16;
/// Acknowledged transactions remembered for `settled` after they leave the store.
const RECENT_LIMIT: usize = 1_000;
/// About how many payloads one sweep write deletes (see `sweep`): some 50 ms of
/// IndexedDB time, which is what work arriving meanwhile may wait for its reads.
const SWEEP_PAYLOADS: u32 = 500;
/// Acknowledged payloads left unswept after which sweeping no longer waits for idle, so
/// an outbox that is never idle does not keep them without bound.
const SWEEP_BACKLOG: usize = 50_000;
/// setTimeout fires at once past 2^31-1 ms; longer waits re-arm on wake-up.
const MAX_TIMER_MS: Millis = i32::MAX as Millis;

#[derive(Clone, Copy, Default)]
struct Totals {
    sent: u64,
    retried: u64,
    dead: u64,
}

struct Enqueue {
    meta: TxMeta,
    payload: JsValue,
    snapshot: Option<JsValue>,
    /// What is written instead of the snapshot when payloads are sealed.
    sealed: Option<JsValue>,
    deferred: Deferred,
}

/// An enqueue whose payload is being sealed (compressed, encrypted): `None` until done.
/// They join the group commit in call order, so seqs follow the order of `enqueue` calls.
type Sealing = VecDeque<(u64, Option<Result<Enqueue>>)>;

/// What the store needs to find a payload: the transaction's id, and the group record it
/// was written in, if any.
type PayloadKey = (Rc<str>, Option<Seq>);

/// A wait added to `waiters` (settled by `resolve_all`), or none unless `wait`.
fn wait_in(waiters: &mut Vec<Deferred>, wait: bool) -> JsFuture {
    let p = if wait {
        let d = Deferred::new();
        let p = d.promise.clone();
        waiters.push(d);
        p
    } else {
        Promise::resolve(&JsValue::UNDEFINED)
    };
    JsFuture::from(p)
}

fn resolve_all(waiters: Vec<Deferred>) {
    for w in waiters {
        w.resolve(&JsValue::UNDEFINED);
    }
}

fn payload_key(meta: &TxMeta) -> PayloadKey {
    (meta.id.clone(), meta.group_key())
}

struct DrainWait {
    id: u32,
    deferred: Deferred,
    start: Totals,
    started_at: f64,
    _budget: Option<Timeout>,
}

/// A follower's request to the leader (`rpc`).
struct Rpc {
    req: u32,
    done: Deferred,
    /// Rejects it when no leader answers in time; dropped with it.
    _timeout: Option<Timeout>,
    /// Posted again when a new leader announces itself, or served here on gaining.
    msg: JsValue,
}

fn take_rpc(rpcs: &mut Vec<Rpc>, req: u32) -> Option<Rpc> {
    let at = rpcs.iter().position(|r| r.req == req)?;
    Some(rpcs.swap_remove(at))
}

impl State {
    /// Whether `older` has folds queued or under way.
    fn folding_into(&self, older: Seq) -> bool {
        self.fold_queue.contains(&(older, older))
    }

    /// Drops the folds queued and not started. Each counted as a write under way (see
    /// `insert_pending`) that only its fold would have ended: left counted, `close()`
    /// waited for it forever once a change of leader or the close itself meant it never
    /// ran. The newer records stay stored on their own; a later leader folds them.
    fn drop_queued_folds(&mut self) {
        self.writes -= self.folding.len() as u32;
        self.folding.clear();
        self.folds.clear();
        self.fold_queue.clear();
        for (_, d) in std::mem::take(&mut self.fold_waits) {
            d.resolve(&JsValue::UNDEFINED);
        }
    }

    /// A write is under way (or about to be): an enqueue being sealed or committed, an
    /// acknowledgement, a metadata update.
    fn writing(&self) -> bool {
        !self.sealing.is_empty()
            || self.open_append.is_some()
            || self.appends > 0
            || self.ack_busy
            || self.writes > 0
    }

    /// Takes `meta` into `pending` (replacing what `seq` held), keeping the totals that
    /// the capacity and network checks read in step, so neither scans the outbox.
    fn put_pending(&mut self, seq: Seq, meta: Box<TxMeta>) {
        self.pending_bytes += meta.bytes;
        if meta.priority == Priority::Low {
            self.low_by_age.insert((meta.created_at, seq));
        }
        if let Some(old) = self.pending.insert(seq, meta) {
            self.untrack(seq, &old);
        }
    }

    fn take_pending(&mut self, seq: Seq) -> Option<Box<TxMeta>> {
        let meta = self.pending.remove(&seq)?;
        self.untrack(seq, &meta);
        Some(meta)
    }

    fn untrack(&mut self, seq: Seq, meta: &TxMeta) {
        self.pending_bytes = self.pending_bytes.saturating_sub(meta.bytes);
        if meta.priority == Priority::Low {
            self.low_by_age.remove(&(meta.created_at, seq));
        }
    }
}

struct State {
    closed: bool,
    /// `Some` while this context leads: the epoch its fenced writes carry.
    epoch: Option<u64>,
    /// Bumped on every change of leadership; an attempt started under an older one is
    /// ignored when it ends.
    generation: u64,
    /// Aborts the handlers of this leadership (on close or loss of leadership).
    handler_abort: AbortController,
    /// The highest seq this leader has read from the store; others' enqueues lie above.
    last_synced: Option<Seq>,
    syncing: bool,
    sync_again: bool,
    /// A new leader is still reading the records that were there when it took over:
    /// queries that answer from memory wait (`until_loaded`) rather than report a part.
    taking_over: bool,
    /// A new leader's sync waits for its first payload read: run together, the two reads
    /// compete, and the first send waits on the longer one.
    sync_deferred: bool,
    loaded_waiters: Vec<Deferred>,
    /// What waits for the next sync read to start and read to the end (`until_synced`).
    synced_waiters: Vec<Deferred>,
    lock: Option<LockRequest>,
    lease: Option<Lease>,
    lease_timer: Option<Timeout>,
    channel: Option<Channel>,
    /// Events for the other contexts, posted together once per task.
    outgoing: Vec<JsValue>,
    outgoing_timer: Option<Timeout>,
    /// The leader's start-up when the lock was free at open.
    gaining: Option<Promise>,
    /// Followers: ids the leader is sending now (from its events). The values mean
    /// nothing: this is the map type `ids` compiles in already.
    remote_in_flight: FxHashMap<Rc<str>, Seq>,
    /// Other contexts known to be open (they said hello or answered ours). Ordinary
    /// events are broadcast only when there is someone to hear them. A list: one entry
    /// per open tab or worker.
    peers: Vec<u64>,
    /// Followers: requests to the leader awaiting its reply (`remove`, `drain`). A list:
    /// few are out at a time, and a map type of its own is its own hash-table code.
    rpcs: Vec<Rpc>,
    sched: Scheduler,
    /// Entries come and go only through `put_pending` and `take_pending` (or all at
    /// once, with the totals, in `forget_pending`).
    pending: FxHashMap<Seq, Box<TxMeta>>,
    /// What the pending transactions' payloads take in storage (estimated at enqueue).
    pending_bytes: u64,
    /// Pending low-priority transactions by age (the network policy's oldest held one).
    low_by_age: OrdSet,
    ids: FxHashMap<Rc<str>, Seq>,
    rng: Rng,
    next_id: u32,
    recent: VecDeque<TxMeta>,
    /// The group commit open in this task: every enqueue of the task adds its records to
    /// this one IndexedDB transaction; a microtask seals it. Each enqueue is kept with the
    /// record it wrote, which its resolved info is made from.
    open_append: Option<(Append, Vec<(Enqueue, Object)>)>,
    sealing: Sealing,
    /// Numbers the entries of `sealing`.
    sealing_next: u64,
    /// Group commits sealed and not yet committed.
    appends: u32,
    acks: Vec<TxMeta>,
    ack_busy: bool,
    /// Acknowledged payloads not yet deleted (`None`: unknown, as for a new leader).
    unswept: Option<usize>,
    sweeping: bool,
    /// Removal marks past [`store::REMOVED_KEPT_MS`] are pruned once per leadership, by
    /// its first sweep.
    prune_due: bool,
    /// Acknowledged, out of `pending`, and not yet reported `sent` (their removal is
    /// committing): progress still counts them as remaining.
    unreported: usize,
    /// Metadata rewrites and dead-letter moves under way.
    writes: u32,
    /// Payloads read (or enqueued here) ahead of dispatch.
    cache: FxHashMap<Seq, JsValue>,
    /// Started transactions whose payload is not read yet.
    awaiting_payload: Vec<Seq>,
    /// A payload read is under way.
    loading: bool,
    timer: Option<(Millis, Timeout)>,
    drains: Vec<DrainWait>,
    quiet: Vec<Deferred>,
    totals: Totals,
    metrics: Metrics,
    /// Something ran since the last `drained` event.
    active: bool,
    triggers: Option<triggers::Listening>,
    network_watch: Option<triggers::Listening>,
    /// `drain()` sends low-priority work the network policy would hold.
    force_low: bool,
    /// The network policy's last verdict (it asks the browser about the connection, and
    /// every pump would, so it is kept until the connection changes, work is enqueued,
    /// or `hold_until` passes).
    hold_verdict: Option<bool>,
    /// When the oldest held transaction reaches `maxHoldMs`.
    hold_until: Option<Millis>,
    /// Coalesce key -> the latest pending transaction carrying it.
    coalesce: FxHashMap<Rc<str>, Seq>,
    /// Records to fold into an earlier one, kept out of the scheduler meanwhile.
    folding: FxHashMap<Seq, Box<TxMeta>>,
    /// Folds to start, by the older transaction.
    folds: Vec<Seq>,
    /// Older transaction -> newer ones waiting to fold into it, as `(older, newer)` pairs
    /// in seq order, and `(older, older)` while the older has folds queued or under way
    /// (it is held meanwhile).
    fold_queue: OrdSet,
    /// Counts the folds that rewrote a payload. A payload read started before one may
    /// return the payload as it was, read under the key it had then (a group member's
    /// place in its group's payload record); such a read must not fill the cache.
    payload_rewrites: u64,
    /// `remove` calls waiting for the folds into a transaction to end (see
    /// `Engine::folds_done`).
    fold_waits: Vec<(Seq, Deferred)>,
    /// The database went away under the outbox (deleted, evicted, or upgraded elsewhere).
    lost: bool,
    /// Whether storage is persistent, once known.
    persisted: Option<bool>,
    /// 0 below 80 % of the capacity, 1 from 80 %, 2 from 100 %: events fire on the way up.
    capacity_level: u8,
    capacity_dirty: bool,
}

pub struct Engine {
    name: String,
    store: Store,
    handlers: Handlers,
    retry: RetryPolicy,
    ordering: crate::model::Ordering,
    max_concurrency: usize,
    max_age_ms: Option<Millis>,
    /// 0: no limit.
    attempt_timeout_ms: u32,
    dead_letters: DeadLetterPolicy,
    wifi_preferred: Option<WifiPreferred>,
    capacity: Capacity,
    mode: Mode,
    /// This context's id in the election and on the channel.
    me: u64,
    /// Itself, for timers and tasks started from `&self`.
    this: Weak<Engine>,
    /// Who waits on `settled(id)`.
    waiters: js::Waiters,
    /// The functions `subscribe` registered.
    pub listeners: js::Listeners,
    st: RefCell<State>,
}

fn abort_controller() -> Result<AbortController> {
    AbortController::new().map_err(|_| {
        Error::new(
            ErrorCode::StorageUnavailable,
            "AbortController is not available",
        )
    })
}

/// A `TransactionInfo` object for JS.
pub fn info(meta: &TxMeta, status: Status, payload: Option<&JsValue>) -> JsValue {
    record::info(&record::encode(meta), None, status.as_str(), payload)
}

/// What `settled(id)` rejects with once the transaction is dead, with `why` after it
/// where the context knows why.
fn dead_error(id: &str, why: &[&str]) -> JsValue {
    let mut message = ["transaction ", id, " is dead"].concat();
    message.extend(why.iter().copied());
    js::err(ErrorCode::Dead, message)
}

/// What `settled(id)` rejects with once the transaction was removed, here or elsewhere.
fn removed_error(id: &str) -> JsValue {
    js::err(
        ErrorCode::Removed,
        ["transaction \"", id, "\" was removed"].concat(),
    )
}

fn event(kind: &str, id: Option<&str>) -> Object {
    let o = Object::new();
    js::set(&o, "type", &JsValue::from_str(kind));
    if let Some(id) = id {
        js::set(&o, "id", &JsValue::from_str(id));
    }
    o
}

fn payload_record(mutations: &JsValue, metadata: &JsValue) -> JsValue {
    let o = Object::new();
    js::set(&o, "mutations", mutations);
    js::set(&o, "metadata", metadata);
    o.into()
}

impl Engine {
    pub async fn open(opts: Options) -> Result<Rc<Engine>> {
        let store = Store::open(&opts.name).await?;
        store.set_sealing(opts.compress, opts.encrypt).await?;
        let mode = leader::mode(opts.leader_election);
        if mode == Mode::WebLocks && !leader::locks_available() {
            return Err(Error::new(
                ErrorCode::InvalidOptions,
                "leaderElection 'web-locks': navigator.locks is not available in this context",
            ));
        }
        let handler_abort = abort_controller()?;
        let engine = Rc::new_cyclic(|this| Engine {
            this: this.clone(),
            store,
            handlers: opts.handlers,
            retry: opts.retry,
            ordering: opts.ordering,
            max_concurrency: opts.max_concurrency,
            max_age_ms: opts.max_age_ms,
            attempt_timeout_ms: opts.attempt_timeout_ms,
            dead_letters: opts.dead_letters,
            wifi_preferred: opts.wifi_preferred,
            capacity: opts.capacity,
            mode,
            me: leader::context_id(),
            st: RefCell::new(State {
                closed: false,
                epoch: None,
                generation: 0,
                handler_abort,
                last_synced: None,
                syncing: false,
                sync_again: false,
                taking_over: false,
                sync_deferred: false,
                loaded_waiters: Vec::new(),
                synced_waiters: Vec::new(),
                lock: None,
                lease: None,
                lease_timer: None,
                channel: None,
                outgoing: Vec::new(),
                outgoing_timer: None,
                gaining: None,
                remote_in_flight: FxHashMap::default(),
                peers: Vec::new(),
                rpcs: Vec::new(),
                sched: Scheduler::new(opts.ordering, opts.max_concurrency),
                pending: FxHashMap::default(),
                pending_bytes: 0,
                low_by_age: OrdSet::new(),
                ids: FxHashMap::default(),
                rng: Rng::new(js::random_bits()),
                next_id: 0,
                recent: VecDeque::new(),
                open_append: None,
                sealing: VecDeque::new(),
                sealing_next: 0,
                appends: 0,
                acks: Vec::new(),
                ack_busy: false,
                unswept: None,
                prune_due: false,
                sweeping: false,
                unreported: 0,
                writes: 0,
                cache: FxHashMap::default(),
                awaiting_payload: Vec::new(),
                loading: false,
                timer: None,
                drains: Vec::new(),
                quiet: Vec::new(),
                totals: Totals::default(),
                metrics: Metrics::default(),
                active: false,
                triggers: None,
                network_watch: None,
                force_low: false,
                hold_verdict: None,
                hold_until: None,
                coalesce: FxHashMap::default(),
                folding: FxHashMap::default(),
                folds: Vec::new(),
                fold_queue: OrdSet::new(),
                fold_waits: Vec::new(),
                payload_rewrites: 0,
                lost: false,
                persisted: None,
                capacity_level: 0,
                capacity_dirty: false,
            }),
            name: opts.name,
            waiters: js::Waiters::new(),
            listeners: js::Listeners::new(),
        });
        engine.join_channel();
        if mode == Mode::Lease && engine.st.borrow().channel.is_none() {
            return Err(Error::new(
                ErrorCode::InvalidOptions,
                "leaderElection 'broadcast-channel': BroadcastChannel is not available in this context",
            ));
        }
        let w = Rc::downgrade(&engine);
        let triggers = triggers::install(move |t| {
            let Some(e) = w.upgrade() else { return };
            match t {
                Trigger::Online => e.notify_online(),
                Trigger::Visible => e.wake(),
                // A message reaching a page in the back-forward cache evicts it: the
                // channel closes with the page hidden, once its last words are out.
                Trigger::Hidden => {
                    e.leave_election();
                    e.flush_outgoing();
                    e.st.borrow_mut().channel = None;
                }
                Trigger::Restored => {
                    e.join_channel();
                    // What was said while the page was frozen went unheard.
                    e.rejoin();
                    js::spawn(async move { e.start_election().await });
                }
            }
        });
        engine.st.borrow_mut().triggers = Some(triggers);
        let w = Rc::downgrade(&engine);
        engine.store.watch_loss(move |reason| {
            if let Some(e) = w.upgrade() {
                e.storage_lost(reason);
            }
        });
        let w = Rc::downgrade(&engine);
        let request = opts.persist;
        js::spawn(async move {
            let persisted = JsFuture::from(storage_manager::persist(request)).await;
            let persisted = persisted.ok().and_then(|p| p.as_bool());
            if let Some(e) = w.upgrade() {
                e.st.borrow_mut().persisted = persisted;
            }
        });
        if engine.wifi_preferred.is_some() {
            let w = Rc::downgrade(&engine);
            engine.st.borrow_mut().network_watch = triggers::watch_network(move || {
                if let Some(e) = w.upgrade() {
                    e.st.borrow_mut().hold_verdict = None;
                    e.pump();
                }
            });
        }
        engine.start_election().await;
        Ok(engine)
    }

    /// Opens the outbox's channel, delivering to this engine while it lives, and says hello
    /// on it.
    fn join_channel(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let channel = Channel::open(&Store::database_name(&self.name), move |msg| {
            if let Some(e) = weak.upgrade() {
                e.on_message(msg);
            }
        });
        self.st.borrow_mut().channel = channel;
        self.say("hello");
    }

    /// Joins the election. Resolves once it is known whether this context leads right
    /// away (then after its start-up), so `isLeader` is meaningful when `open` resolves;
    /// with the lease that takes a claim window, so it resolves at once as a follower.
    async fn start_election(self: &Rc<Self>) {
        match self.mode {
            Mode::Always => self.clone().gain().await,
            Mode::OnDemand => {}
            Mode::WebLocks => {
                let lock = self.request_lock();
                let immediate = lock.immediate();
                self.st.borrow_mut().lock = Some(lock);
                if JsFuture::from(immediate)
                    .await
                    .ok()
                    .and_then(|v| v.as_bool())
                    == Some(true)
                {
                    let gaining = self.st.borrow().gaining.clone();
                    if let Some(p) = gaining {
                        let _ = JsFuture::from(p).await;
                    }
                }
            }
            Mode::Lease => {
                let (lease, actions) = Lease::start(self.me, Timing::default(), js::now());
                self.st.borrow_mut().lease = Some(lease);
                self.lease_actions(actions);
            }
        }
    }

    /// Queues for the leader lock; this context leads once it is granted.
    fn request_lock(self: &Rc<Self>) -> LockRequest {
        let weak = Rc::downgrade(self);
        LockRequest::request(&Store::database_name(&self.name), move || {
            if let Some(e) = weak.upgrade() {
                e.on_granted();
            }
        })
    }

    fn on_granted(self: &Rc<Self>) {
        let done = Deferred::new();
        self.st.borrow_mut().gaining = Some(done.promise.clone());
        let me = self.clone();
        js::spawn(async move {
            me.gain().await;
            done.resolve(&JsValue::UNDEFINED);
        });
    }

    /// Takes over as leader: bumps the epoch (fencing out any earlier leader), loads the
    /// outbox and starts sending. In-flight transactions of a leader that died are simply
    /// pending here and go out again, with their idempotency keys.
    async fn gain(self: Rc<Self>) {
        if self.st.borrow().closed {
            return;
        }
        let started = async {
            // The lowest seqs first, so sending starts before a long outbox is read: a
            // record can only wait for lower seqs, so what is loaded can be ordered
            // already. The rest follows through the sync loop (`request_sync` below).
            // Under the block policy the dead letters hold their keys (see `hold_dead`).
            let block = self.dead_letters == DeadLetterPolicy::Block;
            let (epoch, loaded) = self.store.take_over(FIRST_LOAD, block).await?;
            let read_all = !loaded.more;
            if !loaded.corrupt.is_empty() {
                self.store
                    .quarantine(loaded.corrupt, js::now(), epoch)
                    .await?;
            }
            Ok::<_, Error>((epoch, loaded.metas, loaded.dead, read_all))
        }
        .await;
        let (epoch, metas, held, read_all) = match started {
            Ok(v) => v,
            Err(e) => {
                self.report_error(None, &e);
                return;
            }
        };
        {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.epoch = Some(epoch);
            st.generation += 1;
            if let Ok(a) = abort_controller() {
                st.handler_abort = a;
            }
            self.forget_pending(&mut st);
            st.last_synced = metas.iter().filter_map(|m| m.seq).max();
            st.taking_over = true;
            // An earlier leader may have left acknowledged payloads to sweep.
            st.unswept = None;
            st.prune_due = true;
            // What the last leader was sending, as its events told: pending here now.
            st.remote_in_flight.clear();
            for m in metas {
                self.insert_pending(&mut st, m);
            }
            for m in &held {
                backup::hold_dead(&mut st, m);
            }
            if let Some(lease) = st.lease.as_mut() {
                lease.set_epoch(epoch);
            }
        }
        // Fewer than asked for: that was the whole outbox, and queries need not wait for
        // the sync (which only picks up what others commit meanwhile).
        if read_all {
            self.finish_loading();
        }
        self.emit_leader(true);
        // Requests posted while no one led were heard by no one: followers post theirs
        // again on this word, and this context's own are served here. Followers also check
        // their `settled` waits against the store, as this context does once it has read
        // the outbox: the last leader may have gone before its last outcomes went out.
        self.say("lead");
        let own: Vec<JsValue> = self
            .st
            .borrow()
            .rpcs
            .iter()
            .map(|r| r.msg.clone())
            .collect();
        for msg in own {
            self.serve(msg);
        }
        self.expire_old();
        // Sending starts first, so its payload read is not queued behind the rest of a
        // long outbox; then the rest, and anything committed by others while we loaded.
        self.pump();
        let deferred = {
            let mut st = self.st.borrow_mut();
            st.sync_deferred = st.loading;
            st.sync_deferred
        };
        if !deferred {
            self.request_sync();
        }
        self.settle_from_store();
    }

    fn is_expired(&self, meta: &TxMeta, now: Millis) -> bool {
        self.max_age_ms
            .is_some_and(|max| now.saturating_sub(meta.created_at) >= max)
    }

    fn expired_error(&self) -> LastError {
        LastError {
            name: "Expired".into(),
            message: [
                "not sent within maxAgeMs (",
                &decimal(self.max_age_ms.unwrap_or(0)),
                " ms)",
            ]
            .concat(),
        }
    }

    /// Moves every pending transaction older than `maxAgeMs` to the dead letters, blocked
    /// ones included (a transaction stuck behind a failing head expires too). Nothing is
    /// dropped silently: each gets a `dead` event with reason `expired`.
    fn expire_old(self: &Rc<Self>) {
        if self.max_age_ms.is_none() {
            return;
        }
        let now = js::now();
        let expired: Vec<(Seq, u32)> = {
            let mut st = self.st.borrow_mut();
            let old: Vec<(Seq, u32)> = st
                .pending
                .iter()
                .filter(|(s, m)| self.is_expired(m, now) && !st.sched.is_in_flight(**s))
                .map(|(s, m)| (*s, m.attempts))
                .collect();
            // Out of the scheduler first, so none of them starts meanwhile.
            for (seq, _) in &old {
                let _ = st.sched.remove(*seq);
            }
            old
        };
        for (seq, attempts) in expired {
            let error = self.expired_error();
            js::spawn(self.clone().bury(seq, DeadReason::Expired, error, attempts));
        }
    }

    /// Drops the leader's in-memory view of the outbox (on gaining leadership, before
    /// loading it afresh, and on losing it).
    fn forget_pending(&self, st: &mut State) {
        st.sched = Scheduler::new(self.ordering, self.max_concurrency);
        st.pending.clear();
        st.pending_bytes = 0;
        st.low_by_age.clear();
        st.coalesce.clear();
        st.drop_queued_folds();
        st.ids.clear();
        st.cache.clear();
        st.awaiting_payload.clear();
    }

    /// Stops leading: in-flight handlers are aborted and their outcomes ignored; the
    /// records stay pending for the next leader.
    fn demote(self: &Rc<Self>) {
        let drains = {
            let mut st = self.st.borrow_mut();
            if st.epoch.take().is_none() {
                return;
            }
            st.generation += 1;
            st.handler_abort.abort();
            self.forget_pending(&mut st);
            st.timer = None;
            std::mem::take(&mut st.drains)
        };
        let totals = self.st.borrow().totals;
        for d in drains {
            d.deferred.resolve(&report(&d, totals, 0, false));
        }
        self.finish_loading();
        self.settle_quiet();
        self.emit_leader(false);
    }

    /// The store's records as of taking over are all read (or this context no longer
    /// leads): queries waiting for that go on.
    pub(super) fn finish_loading(&self) {
        let waiters = {
            let mut st = self.st.borrow_mut();
            st.taking_over = false;
            std::mem::take(&mut st.loaded_waiters)
        };
        resolve_all(waiters);
    }

    /// Waits while a new leader is still reading what was stored before it took over.
    pub(super) fn until_loaded(&self) -> JsFuture {
        let mut st = self.st.borrow_mut();
        let wait = st.taking_over && st.epoch.is_some();
        wait_in(&mut st.loaded_waiters, wait)
    }

    /// A fenced write failed: another context leads now. Step down, and queue for the
    /// lock again (or follow the lease) so this context can take over later.
    fn lost_fence(self: &Rc<Self>) {
        self.demote();
        match self.mode {
            Mode::WebLocks => {
                let lock = self.request_lock();
                // Dropping the old request releases the lock we held.
                let old = self.st.borrow_mut().lock.replace(lock);
                drop(old);
            }
            Mode::Lease => {
                if let Some(lease) = self.st.borrow_mut().lease.as_mut() {
                    lease.step_down(js::now());
                }
                self.arm_lease_timer();
            }
            Mode::Always | Mode::OnDemand => {}
        }
    }

    /// The page is going away: hand leadership over now rather than when the watchdogs
    /// notice (the lock would go with the page anyway; the lease needs a resignation).
    fn leave_election(self: &Rc<Self>) {
        let (lock, actions) = {
            let mut st = self.st.borrow_mut();
            let actions = st.lease.take().map(|mut l| l.stop()).unwrap_or_default();
            st.lease_timer = None;
            (st.lock.take(), actions)
        };
        self.demote();
        drop(lock);
        self.say("bye");
        for a in actions {
            if let crate::lease::Action::Send(m) = a {
                self.post(&leader::encode_lease(m));
            }
        }
    }

    /// Takes a pending record into the scheduler, or, when it carries the coalesce key of
    /// an earlier pending transaction that is not in flight (same handler, same keys),
    /// queues it to be folded into that one instead (see [`Engine::fold`]).
    fn insert_pending(&self, st: &mut State, m: TxMeta) {
        let Some(seq) = m.seq else { return };
        // Once closed, no pump starts a fold: a fold queued then would count as a write
        // under way forever, and `close()` waits for those.
        if let Some(key) = m.coalesce_key.as_ref().filter(|_| !st.closed) {
            let target = st.coalesce.get(key.as_str()).copied().filter(|&older| {
                older < seq
                    && !st.sched.is_in_flight(older)
                    && (!st.sched.is_held(older) || st.folding_into(older))
                    && st.pending.get(&older).is_some_and(|o| {
                        // Keys are deduplicated at enqueue: same length and
                        // containment is set equality.
                        o.handler == m.handler
                            && o.keys.len() == m.keys.len()
                            && m.keys.iter().all(|k| o.keys.contains(k))
                    })
            });
            if let Some(older) = target {
                st.folding.insert(seq, Box::new(m));
                st.writes += 1;
                if !st.folding_into(older) {
                    let _ = st.sched.hold(older);
                    st.fold_queue.insert((older, older));
                    st.folds.push(older);
                }
                st.fold_queue.insert((older, seq));
                return;
            }
            if st.coalesce.get(key.as_str()).is_none_or(|&s| s < seq) {
                st.coalesce.insert(Rc::from(key.as_str()), seq);
            }
        }
        // A dead letter revived under the block policy: it leaves its hold and runs.
        if st.sched.is_held(seq) {
            let _ = st.sched.remove(seq);
        }
        st.hold_verdict = None;
        st.capacity_dirty = true;
        if st
            .sched
            .insert(seq, &m.keys, m.priority, m.next_attempt_at)
            .is_ok()
        {
            // Ids folded into it (coalescing) name it too: `remove` and `settled` take them.
            for alias in &m.aliases {
                st.ids.insert(Rc::from(alias.as_str()), seq);
            }
            st.ids.insert(m.id.clone(), seq);
            st.put_pending(seq, Box::new(m));
        }
    }

    /// The error as `{ code, message }`, which each context's listeners get as an
    /// `OutboxError` (`listeners.js`).
    fn report_error(&self, id: Option<&str>, e: &Error) {
        self.emit(|| {
            let error = Object::new();
            js::set(&error, "code", &JsValue::from_str(e.code.as_str()));
            js::set(&error, "message", &JsValue::from_str(&e.message));
            let ev = event("error", id);
            js::set(&ev, "error", &error);
            ev
        });
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Background Sync tag of this outbox.
    fn sync_tag(&self) -> String {
        ["offline-outbox:", &self.name].concat()
    }

    /// This context runs handlers now.
    pub fn is_leader(&self) -> bool {
        let st = self.st.borrow();
        !st.closed && st.epoch.is_some()
    }

    fn closed_error() -> Error {
        Error::new(ErrorCode::Closed, "the outbox is closed")
    }

    fn check_open(&self) -> Result<()> {
        let st = self.st.borrow();
        if st.lost {
            Err(Error::new(
                ErrorCode::StorageUnavailable,
                "the outbox's database went away (site data cleared, evicted, or upgraded by a newer version); open the outbox again",
            ))
        } else if st.closed {
            Err(Self::closed_error())
        } else {
            Ok(())
        }
    }

    /// The database went away: say so with what this context knew was waiting (an
    /// evicted store must not pass for an empty queue), then shut down.
    fn storage_lost(self: &Rc<Self>, reason: &'static str) {
        let pending = {
            let mut st = self.st.borrow_mut();
            if st.lost || st.closed {
                return;
            }
            st.lost = true;
            st.pending.len()
        };
        self.emit(|| {
            let ev = event("storage-lost", None);
            js::set(&ev, "reason", &JsValue::from_str(reason));
            js::set(&ev, "pending", &JsValue::from_f64(pending as f64));
            ev
        });
        js::spawn(self.clone().close());
    }

    /// `capacity` events when the outbox crosses 80 % or 100 % of a soft limit on the way
    /// up. Nothing is refused: an outbox must not lose writes for being full.
    fn check_capacity(&self) {
        let Capacity {
            max_count,
            max_bytes,
        } = self.capacity;
        if max_count.is_none() && max_bytes.is_none() {
            return;
        }
        let (count, bytes, ratio, level, rose) = {
            let mut st = self.st.borrow_mut();
            if !std::mem::take(&mut st.capacity_dirty) {
                return;
            }
            let count = st.pending.len() as u64;
            let bytes = st.pending_bytes;
            let part = |n: u64, max: Option<u64>| max.map_or(0.0, |m| n as f64 / m as f64);
            let ratio = part(count, max_count).max(part(bytes, max_bytes));
            let level = match ratio {
                r if r >= 1.0 => 2,
                r if r >= 0.8 => 1,
                _ => 0,
            };
            let rose = level > st.capacity_level;
            st.capacity_level = level;
            (count, bytes, ratio, level, rose)
        };
        if rose {
            self.emit(|| {
                let ev = event("capacity", None);
                let name = if level == 2 { "full" } else { "warning" };
                js::set(&ev, "level", &JsValue::from_str(name));
                js::set(&ev, "count", &JsValue::from_f64(count as f64));
                js::set(&ev, "bytes", &JsValue::from_f64(bytes as f64));
                js::set(&ev, "ratio", &JsValue::from_f64(ratio));
                ev
            });
        }
    }

    /// An event of this context: to the local listeners and to the other contexts.
    /// Builds nothing when nobody could hear it.
    fn emit(&self, build: impl FnOnce() -> Object) {
        self.emit_to(false, build);
    }

    /// An outcome (`sent`, `dead`, `removed`): broadcast even when no peer is known yet,
    /// since a context that has just opened may be waiting on it in `settled`.
    fn emit_outcome(&self, build: impl FnOnce() -> Object) {
        self.emit_to(true, build);
    }

    /// Builds the event only if someone hears it. The generic part stays this small: it is
    /// compiled once per event builder.
    fn emit_to(&self, always_broadcast: bool, build: impl FnOnce() -> Object) {
        if let Some(audience) = self.audience(always_broadcast) {
            self.send_event(audience, build());
        }
    }

    /// Whether to broadcast; `None` when no one would hear.
    fn audience(&self, always_broadcast: bool) -> Option<bool> {
        let st = self.st.borrow();
        let broadcast = st.channel.is_some() && (always_broadcast || !st.peers.is_empty());
        (self.listeners.any() || broadcast).then_some(broadcast)
    }

    fn send_event(&self, broadcast: bool, ev: Object) {
        if broadcast {
            self.queue_outgoing(ev.clone().into());
        }
        self.listeners.deliver(&ev);
    }

    /// The `leader` event concerns only this context.
    fn emit_leader(&self, is_leader: bool) {
        if self.listeners.any() {
            let ev = event("leader", None);
            js::set(&ev, "isLeader", &JsValue::from_bool(is_leader));
            self.listeners.deliver(&ev);
        }
    }

    // ---- enqueue: validate, write at once, commit with the rest of this task's ----------

    pub fn enqueue(self: &Rc<Self>, tx: &JsValue) -> Promise {
        let item = match self.prepare(tx) {
            Ok(item) => item,
            Err(e) => return Promise::reject(&js::to_js(&e)),
        };
        let promise = item.deferred.promise.clone();
        if self.store.seals_async() {
            self.seal(item);
        } else {
            self.append(item);
        }
        promise
    }

    /// Encrypts (and maybe compresses) the payload, which waits on WebCrypto, then hands
    /// the enqueue to the group commit after every earlier one.
    fn seal(self: &Rc<Self>, mut item: Enqueue) {
        let ticket = {
            let mut st = self.st.borrow_mut();
            st.sealing_next += 1;
            let ticket = st.sealing_next;
            st.sealing.push_back((ticket, None));
            ticket
        };
        let me = self.clone();
        js::spawn(async move {
            let plain = item.snapshot.as_ref().unwrap_or(&item.payload);
            let done = match me.store.seal(plain, &item.meta.id).await {
                Ok(sealed) => {
                    if let Some(s) = &sealed {
                        item.meta.bytes = js::size_of(s);
                    }
                    item.sealed = sealed;
                    Ok(item)
                }
                Err(e) => {
                    item.deferred.reject(&js::to_js(&e));
                    Err(e)
                }
            };
            let ready = {
                let mut st = me.st.borrow_mut();
                if let Some(slot) = st.sealing.iter_mut().find(|(t, _)| *t == ticket) {
                    slot.1 = Some(done);
                }
                let mut ready = Vec::new();
                while st.sealing.front().is_some_and(|(_, d)| d.is_some()) {
                    if let Some((_, Some(Ok(item)))) = st.sealing.pop_front() {
                        ready.push(item);
                    }
                }
                ready
            };
            for item in ready {
                me.append(item);
            }
            me.settle_quiet();
        });
    }

    /// Adds the enqueue to the group commit of this task (opening it if needed).
    fn append(self: &Rc<Self>, item: Enqueue) {
        let opened = {
            let mut st = self.st.borrow_mut();
            let opened = st.open_append.is_none();
            if opened {
                match self.store.begin_append() {
                    Ok(append) => st.open_append = Some((append, Vec::new())),
                    Err(e) => {
                        drop(st);
                        item.deferred.reject(&js::to_js(&e));
                        return;
                    }
                }
            }
            if let Some((append, items)) = st.open_append.as_mut() {
                let stored = item.sealed.as_ref().or(item.snapshot.as_ref());
                let record = append.add(&item.meta, stored.unwrap_or(&item.payload));
                items.push((item, record));
            }
            opened
        };
        if opened {
            js::spawn(self.clone().seal_append());
        }
    }

    fn prepare(&self, tx: &JsValue) -> Result<Enqueue> {
        self.check_open()?;
        let NewTransaction {
            handler,
            keys,
            payload,
            priority,
            idempotency_key,
            coalesce_key,
        } = crate::options::parse_transaction(tx, &self.handlers)?;
        // The snapshot is what IndexedDB will hold: later changes by the caller to the
        // objects it passed do not reach the handler.
        let snapshot = js::clone_for_storage(&payload)?;
        let plain = snapshot.as_ref().unwrap_or(&payload);
        // Compression alone is done here, at once; encryption waits (see `seal`).
        let sealed = if self.store.seals_async() {
            None
        } else {
            self.store.seal_now(plain)?
        };
        let id = js::uuid_v4();
        let now = js::now();
        let mut meta = TxMeta {
            seq: None,
            idempotency_key: None,
            id: id.into(),
            handler,
            keys,
            priority,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: None,
            dead_reason: None,
            dead_at: None,
            bytes: js::size_of(sealed.as_ref().unwrap_or(plain)),
            coalesce_key,
            aliases: Vec::new(),
            group: 0,
        };
        if let Some(key) = idempotency_key {
            meta.set_idempotency_key(key);
        }
        Ok(Enqueue {
            meta,
            payload,
            snapshot,
            sealed,
            deferred: Deferred::new(),
        })
    }

    /// The group commit: every enqueue of the task that opened it went into one IndexedDB
    /// transaction; commit it. Each `enqueue` resolves only after its write commits.
    async fn seal_append(self: Rc<Self>) {
        let Some((append, batch)) = ({
            let mut st = self.st.borrow_mut();
            let open = st.open_append.take();
            if open.is_some() {
                st.appends += 1;
            }
            open
        }) else {
            return;
        };
        let result = append.commit().await;
        self.st.borrow_mut().appends -= 1;
        {
            match result {
                Ok(seqs) => {
                    let mut done = Vec::with_capacity(batch.len());
                    let (leading, unread_below) = {
                        let mut st = self.st.borrow_mut();
                        let leading = st.epoch.is_some();
                        let mut unread_below = false;
                        for ((mut item, written), (seq, group)) in batch.into_iter().zip(seqs) {
                            item.meta.seq = Some(seq);
                            item.meta.group = group;
                            if leading {
                                let fresh = !st.pending.contains_key(&seq);
                                if let (true, Some(snap)) = (fresh, item.snapshot.take()) {
                                    if st.cache.len() < WINDOW || item.meta.coalesce_key.is_some() {
                                        st.cache.insert(seq, snap);
                                    }
                                }
                                // Taken in at once only right after what was synced: then
                                // nothing of another context's lies below it. Otherwise
                                // another tab may have committed records in between, and
                                // ours would run ahead of them on a shared key: the sync
                                // reads both, in seq order.
                                // A group's first member follows its group record's key.
                                let below = seq - 1 - Seq::from(group == 1);
                                if st.last_synced.map_or(below == 0, |l| below == l) {
                                    self.insert_pending(&mut st, item.meta.clone());
                                    st.last_synced = Some(seq);
                                } else if fresh {
                                    unread_below = true;
                                }
                            }
                            done.push((item, written));
                        }
                        (leading, unread_below)
                    };
                    if !leading {
                        self.post(&leader::message("wake", &[]));
                    }
                    if unread_below {
                        self.request_sync();
                    }
                    // A worker leads only for a sync event, and `onLine` says true on a
                    // network that reaches nothing: what a worker queues (a page's failed
                    // fetch) would wait for the next page to open.
                    if leader::is_offline() || self.mode == Mode::OnDemand {
                        leader::register_sync(&self.sync_tag());
                    }
                    for (item, written) in done {
                        let pending = Status::Pending.as_str();
                        let payload = Some(&item.payload);
                        item.deferred.resolve(&record::info(
                            &written,
                            item.meta.seq,
                            pending,
                            payload,
                        ));
                        self.emit(|| {
                            let ev = event("enqueued", Some(&item.meta.id));
                            js::set(
                                &ev,
                                "seq",
                                &JsValue::from_f64(item.meta.seq.unwrap_or(0) as f64),
                            );
                            ev
                        });
                    }
                }
                Err(e) => {
                    let err = js::to_js(&e);
                    for (item, _) in batch {
                        item.deferred.reject(&err);
                    }
                }
            }
            self.pump();
        }
        self.settle_quiet();
        self.check_idle();
    }

    // ---- dispatch ------------------------------------------------------------------------

    /// Starts every transaction that may run now, up to the concurrency limit, and sets
    /// the timer for the next one that will become due.
    pub fn pump(self: &Rc<Self>) {
        let now = js::now();
        let mut ready = Vec::new();
        let mut batches = Vec::new();
        {
            let mut st = self.st.borrow_mut();
            if st.closed || st.epoch.is_none() {
                return;
            }
            let hold = self.hold_low(&mut st, now);
            st.sched.set_hold_low(hold);
            // While the browser knows it is offline an attempt could only fail and spend
            // one of the transaction's attempts; the `online` event drains.
            let offline = leader::is_offline();
            while let Some(seq) = (!offline).then(|| st.sched.start_next(now)).flatten() {
                st.active = true;
                let handler = st.pending.get(&seq).map(|m| m.handler.clone());
                let size = handler
                    .as_ref()
                    .and_then(|h| self.handlers.get(h))
                    .map_or(1, Handler::batch_size);
                if let (true, Some(handler)) = (size > 1, handler) {
                    let st = &mut *st;
                    let pending = &st.pending;
                    let riders = st.sched.start_riders(now, size - 1, |s| {
                        pending.get(&s).is_some_and(|m| m.handler == handler)
                    });
                    let group: Vec<(Seq, Option<JsValue>)> = std::iter::once(seq)
                        .chain(riders)
                        .map(|s| (s, st.cache.remove(&s)))
                        .collect();
                    batches.push(group);
                    continue;
                }
                match st.cache.remove(&seq) {
                    Some(p) => ready.push((seq, p)),
                    None => st.awaiting_payload.push(seq),
                }
            }
        }
        for (seq, payload) in ready {
            js::spawn(self.clone().attempt(seq, Some(payload)));
        }
        for group in batches {
            js::spawn(self.clone().attempt_batch(group));
        }
        let folds = std::mem::take(&mut self.st.borrow_mut().folds);
        for older in folds {
            js::spawn(self.clone().fold_all(older));
        }
        self.load_payloads();
        self.arm_timer(now);
        self.check_capacity();
        self.check_idle();
    }

    /// The `wifi-preferred` policy: hold low-priority work on a metered connection until
    /// the oldest of it is `maxHoldMs` old or the outbox holds more than `maxHoldBytes`,
    /// or the app calls `drain()`.
    fn hold_low(&self, st: &mut State, now: Millis) -> bool {
        let Some(policy) = self.wifi_preferred else {
            return false;
        };
        if st.force_low {
            return false;
        }
        if let Some(verdict) = st.hold_verdict {
            if st.hold_until.is_none_or(|u| now < u) {
                return verdict;
            }
        }
        st.hold_until = None;
        let verdict = triggers::metered() && {
            let oldest_low = st.low_by_age.first().map(|&(t, _)| t);
            let until = oldest_low.map(|t| t.saturating_add(policy.max_hold_ms));
            st.hold_until = until;
            until.is_some_and(|u| now < u) && st.pending_bytes <= policy.max_hold_bytes
        };
        st.hold_verdict = Some(verdict);
        verdict
    }

    fn arm_timer(self: &Rc<Self>, now: Millis) {
        let mut st = self.st.borrow_mut();
        let release = st.hold_until.filter(|_| st.sched.parked() > 0);
        let next = match (st.sched.next_due(), release) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let due = match next {
            Some(t) if t > now && t != Millis::MAX => t,
            _ => {
                st.timer = None;
                return;
            }
        };
        if st.timer.as_ref().is_some_and(|(at, _)| *at == due) {
            return;
        }
        let weak: Weak<Engine> = Rc::downgrade(self);
        let delay = (due - now).min(MAX_TIMER_MS) as u32;
        let timeout = Timeout::new(delay, move || {
            if let Some(e) = weak.upgrade() {
                // Run outside the callback: re-arming drops this very Timeout.
                js::spawn(async move {
                    e.st.borrow_mut().timer = None;
                    e.pump();
                });
            }
        });
        st.timer = Some((due, timeout));
    }

    /// Starts a payload read when a started transaction waits for one, or when the cache
    /// has run low: the transactions waiting, then the runnable ones (priority order), then
    /// the rest in seq order (what a chain on one key runs next), up to the window.
    fn load_payloads(self: &Rc<Self>) {
        let (batch, rewrites) = {
            let mut st = self.st.borrow_mut();
            if st.loading || st.closed {
                return;
            }
            // Read ahead only while work is flowing; a queue blocked behind a failing head
            // must not cost reads.
            let now = js::now();
            if st.awaiting_payload.is_empty()
                && (st.cache.len() >= WINDOW / 4 || !st.sched.has_runnable(now))
            {
                return;
            }
            // Transactions started with nothing read ahead (a new leader's first sends)
            // wait on this read: it fetches theirs alone, and the read-ahead follows.
            let room = if st.cache.is_empty() && !st.awaiting_payload.is_empty() {
                0
            } else {
                WINDOW.saturating_sub(st.cache.len())
            };
            // The runnable ones in priority order, then what comes next in seq order (a
            // chain on one key runs in seq order).
            let upcoming = st.sched.upcoming(now, room);
            // A runnable one is among the next in seq order too: skipped there. (Sets of
            // seqs here are sorted lists: a set type of its own is its own wasm code.)
            let mut runnable = upcoming.clone();
            runnable.sort_unstable();
            let st = &mut *st;
            let (cache, sched) = (&st.cache, &st.sched);
            let mut seqs: Vec<Seq> = st.awaiting_payload.clone();
            let in_order = sched
                .seqs()
                .filter(|s| {
                    !cache.contains_key(s)
                        && !sched.is_in_flight(*s)
                        && runnable.binary_search(s).is_err()
                })
                .take(room);
            // The awaiting ones are in flight, so neither list holds them.
            for s in upcoming.into_iter().chain(in_order) {
                if seqs.len() >= st.awaiting_payload.len() + room {
                    break;
                }
                if !cache.contains_key(&s) {
                    seqs.push(s);
                }
            }
            let batch: Vec<(Seq, PayloadKey)> = seqs
                .into_iter()
                .filter_map(|s| Some((s, payload_key(st.pending.get(&s)?))))
                .collect();
            if batch.is_empty() {
                return;
            }
            st.loading = true;
            (batch, st.payload_rewrites)
        };
        js::spawn(self.clone().read_payloads(batch, rewrites));
    }

    async fn read_payloads(self: Rc<Self>, batch: Vec<(Seq, PayloadKey)>, rewrites: u64) {
        let ids: Vec<PayloadKey> = batch.iter().map(|(_, key)| key.clone()).collect();
        let result = self.store.payloads(&ids).await;
        let (run, failed) = {
            let mut st = self.st.borrow_mut();
            st.loading = false;
            let awaiting = std::mem::take(&mut st.awaiting_payload);
            let mut asked: Vec<Seq> = batch.iter().map(|(s, _)| *s).collect();
            asked.sort_unstable();
            let mut run = Vec::new();
            let mut failed = Vec::new();
            match result {
                Ok(found) => {
                    let mut by_seq: FxHashMap<Seq, JsValue> = batch
                        .iter()
                        .filter_map(|(s, (id, _))| Some((*s, found.get(id)?)))
                        .collect();
                    // Used only if no fold rewrote a payload meanwhile: the fold's own
                    // result went to the cache, but a send may have taken it out again
                    // since, and this read may hold the payload from before the fold
                    // (sent so, the folded-in mutations were lost). Otherwise the ones
                    // waiting are read again.
                    let current = st.payload_rewrites == rewrites;
                    for seq in awaiting {
                        match by_seq.remove(&seq).filter(|_| current) {
                            Some(p) => run.push((seq, Some(p))),
                            // Asked for and absent: the payload record is missing.
                            None if current && asked.binary_search(&seq).is_ok() => {
                                run.push((seq, None))
                            }
                            None => st.awaiting_payload.push(seq),
                        }
                    }
                    for (seq, p) in by_seq {
                        if current
                            && st.pending.contains_key(&seq)
                            && !st.sched.is_in_flight(seq)
                            && !st.cache.contains_key(&seq)
                        {
                            st.cache.insert(seq, p);
                        }
                    }
                }
                Err(e) => {
                    for seq in awaiting {
                        if asked.binary_search(&seq).is_ok() {
                            failed.push((seq, e.message.clone()));
                        } else {
                            st.awaiting_payload.push(seq);
                        }
                    }
                }
            }
            (run, failed)
        };
        for (seq, p) in run {
            js::spawn(self.clone().attempt(seq, p));
        }
        if std::mem::take(&mut self.st.borrow_mut().sync_deferred) {
            self.request_sync();
        }
        for (seq, message) in failed {
            self.clone().unreadable(seq, message).await;
        }
        self.load_payloads();
    }

    /// What every attempt checks first: the payload is there, the transaction has not
    /// expired, this context has its handler. `None` when it was dealt with instead.
    async fn admit(&self, seq: Seq, payload: Option<JsValue>) -> Option<(TxMeta, JsValue)> {
        let meta = self.st.borrow().pending.get(&seq).cloned()?;
        let Some(payload) = payload else {
            let err = LastError {
                name: "MissingPayload".into(),
                message: "the payload record of this transaction is missing".into(),
            };
            self.rc()?
                .bury(seq, DeadReason::Corrupt, err, meta.attempts)
                .await;
            return None;
        };
        if let Some(reason) = js::get(&payload, "$unreadable").as_string() {
            let err = LastError {
                name: "UnreadablePayload".into(),
                message: reason,
            };
            self.rc()?
                .bury(seq, DeadReason::Corrupt, err, meta.attempts)
                .await;
            return None;
        }
        if self.is_expired(&meta, js::now()) {
            let error = self.expired_error();
            self.rc()?
                .bury(seq, DeadReason::Expired, error, meta.attempts)
                .await;
            return None;
        }
        if self.handlers.get(&meta.handler).is_none() {
            // Written by a context that has this handler: leave it for one that has it.
            // It keeps its place (and blocks its keys) without spending attempts.
            let _ = self.st.borrow_mut().sched.retry(seq, Millis::MAX);
            self.check_idle();
            return None;
        }
        Some((*meta, payload))
    }

    fn rc(&self) -> Option<Rc<Self>> {
        self.this.upgrade()
    }

    fn emit_sending(&self, meta: &TxMeta, attempt: u32) {
        self.emit(|| {
            let ev = event("sending", Some(&meta.id));
            js::set(&ev, "attempt", &JsValue::from(attempt));
            ev
        });
    }

    /// A started transaction whose payload could not be read: one failed attempt, retried.
    fn unreadable(self: Rc<Self>, seq: Seq, message: String) -> impl Future<Output = ()> {
        let error = LastError {
            name: "StorageUnavailable".into(),
            message,
        };
        let attempts = self.st.borrow().pending.get(&seq).map_or(0, |m| m.attempts);
        self.finish_attempt(
            seq,
            attempts.saturating_add(1),
            Outcome::Retry { error, after: None },
        )
    }

    async fn attempt(self: Rc<Self>, seq: Seq, payload: Option<JsValue>) {
        let (generation, signal) = {
            let st = self.st.borrow();
            (st.generation, st.handler_abort.signal())
        };
        let Some((meta, payload)) = self.admit(seq, payload).await else {
            return;
        };
        let attempt = meta.attempts.saturating_add(1);
        self.emit_sending(&meta, attempt);
        let started = js_sys::Date::now();
        // `admit` has checked that the handler is registered.
        let Some(handler) = self.handlers.get(&meta.handler) else {
            return;
        };
        let ctx = handler_context(&meta, &payload, attempt);
        let outcome = match handler {
            Handler::Js(f) | Handler::Http(f) => match self.call(f, &ctx, &signal).await {
                Ok(_) => Outcome::Acknowledged,
                Err(e)
                    if matches!(handler, Handler::Http(_)) && js::get(&e, "final").is_truthy() =>
                {
                    Outcome::Reject(js::describe(&e))
                }
                Err(e) => failure(&e),
            },
            // A batch handler's transaction started alone (its batch size is 1).
            Handler::Batch { f, .. } => {
                batch_outcomes(self.call(f, &Array::of1(&ctx), &signal).await, 1).remove(0)
            }
        };
        if self.st.borrow().generation != generation {
            // Closed, or leadership changed meanwhile: the record is still pending in the
            // store and whoever leads now sends it again.
            return;
        }
        self.st.borrow_mut().metrics.record(
            js_sys::Date::now() - started,
            outcome == Outcome::Acknowledged,
        );
        self.finish_attempt(seq, attempt, outcome).await;
    }

    /// One call of a batch handler with transactions started together (no two share a
    /// key). Payloads not read ahead are read here, in one request.
    async fn attempt_batch(self: Rc<Self>, group: Vec<(Seq, Option<JsValue>)>) {
        let (generation, signal) = {
            let st = self.st.borrow();
            (st.generation, st.handler_abort.signal())
        };
        let wanted: Vec<PayloadKey> = {
            let st = self.st.borrow();
            group
                .iter()
                .filter(|(_, p)| p.is_none())
                .filter_map(|(s, _)| Some(payload_key(st.pending.get(s)?)))
                .collect()
        };
        let mut read = Payloads::empty();
        if !wanted.is_empty() {
            match self.store.payloads(&wanted).await {
                Ok(found) => read = found,
                Err(e) => {
                    // Retry the whole batch, as one attempt that failed.
                    for (seq, _) in &group {
                        self.clone().unreadable(*seq, e.message.clone()).await;
                    }
                    return;
                }
            }
        }
        let mut members = Vec::with_capacity(group.len());
        for (seq, payload) in group {
            let payload = payload.or_else(|| {
                let id = self.st.borrow().pending.get(&seq)?.id.clone();
                read.get(&id)
            });
            if let Some((meta, payload)) = self.admit(seq, payload).await {
                members.push((seq, meta, payload));
            }
        }
        let Some(Handler::Batch { f, .. }) = members
            .first()
            .and_then(|(_, m, _)| self.handlers.get(&m.handler))
        else {
            return;
        };
        let ctxs = Array::new();
        for (_, meta, payload) in &members {
            let attempt = meta.attempts.saturating_add(1);
            self.emit_sending(meta, attempt);
            ctxs.push(&handler_context(meta, payload, attempt));
        }
        let started = js_sys::Date::now();
        let result = self.call(f, &ctxs, &signal).await;
        if self.st.borrow().generation != generation {
            return;
        }
        let elapsed = js_sys::Date::now() - started;
        let outcomes = batch_outcomes(result, members.len());
        for ((seq, meta, _), outcome) in members.into_iter().zip(outcomes) {
            self.st
                .borrow_mut()
                .metrics
                .record(elapsed, outcome == Outcome::Acknowledged);
            self.clone()
                .finish_attempt(seq, meta.attempts.saturating_add(1), outcome)
                .await;
        }
    }

    /// Calls handler `f` with `arg` (a context or a batch of them) under `signal`, within
    /// `attemptTimeoutMs`.
    fn call(&self, f: &Function, arg: &JsValue, signal: &AbortSignal) -> JsFuture {
        JsFuture::from(js::call_handler(f, arg, signal, self.attempt_timeout_ms))
    }

    async fn finish_attempt(self: Rc<Self>, seq: Seq, attempt: u32, outcome: Outcome) {
        if self.st.borrow().closed {
            return;
        }
        match outcome {
            Outcome::Acknowledged => self.acknowledge(seq),
            Outcome::Reject(err) => {
                self.bury(seq, DeadReason::HandlerRejected, err, attempt)
                    .await
            }
            Outcome::Retry { error, after } => {
                let now = js::now();
                let decision = {
                    let mut st = self.st.borrow_mut();
                    let unit = st.rng.unit();
                    self.retry.after_failure(attempt, after, now, unit)
                };
                match decision {
                    Decision::Dead => {
                        self.bury(seq, DeadReason::MaxAttempts, error, attempt)
                            .await
                    }
                    Decision::RetryAt(at) => self.schedule_retry(seq, attempt, error, at),
                }
            }
        }
    }

    fn acknowledge(self: &Rc<Self>, seq: Seq) {
        let start = {
            let mut st = self.st.borrow_mut();
            if st.sched.finish(seq).is_err() {
                return;
            }
            let Some(meta) = st.take_pending(seq) else {
                return;
            };
            for id in meta.ids() {
                st.ids.remove(id);
            }
            st.totals.sent += 1;
            st.unreported += 1;
            st.capacity_dirty = true;
            st.acks.push(*meta);
            !std::mem::replace(&mut st.ack_busy, true)
        };
        if start {
            js::spawn(self.clone().flush_acks());
        }
        self.pump();
    }

    /// Removes acknowledged records in batches; `sent` and `settled` follow the commit.
    async fn flush_acks(self: Rc<Self>) {
        loop {
            let batch = {
                let mut st = self.st.borrow_mut();
                if st.acks.is_empty() {
                    st.ack_busy = false;
                    break;
                }
                std::mem::take(&mut st.acks)
            };
            let epoch = self.st.borrow().epoch;
            let removed = match epoch {
                Some(epoch) => self.store.delete(&batch, epoch).await,
                None => Err(Error::new(ErrorCode::NotLeader, "no longer the leader")),
            };
            match removed {
                Ok(to_sweep) => {
                    let mut st = self.st.borrow_mut();
                    let unswept = st.unswept.unwrap_or(0) + to_sweep;
                    st.unswept = Some(unswept);
                    drop(st);
                    if unswept >= SWEEP_BACKLOG {
                        self.sweep();
                    }
                }
                Err(e) if e.code == ErrorCode::NotLeader => {
                    // Another context leads: it sends these again (same idempotency keys)
                    // and reports them; this one must not touch the records.
                    let mut st = self.st.borrow_mut();
                    st.unreported = st.unreported.saturating_sub(batch.len());
                    drop(st);
                    self.lost_fence();
                    continue;
                }
                // The handler did acknowledge; a record that could not be removed is sent
                // again by the next leader, with the same idempotency key.
                Err(e) => self.report_error(None, &e),
            }
            for meta in batch {
                {
                    let mut st = self.st.borrow_mut();
                    if st.recent.len() >= RECENT_LIMIT {
                        st.recent.pop_front();
                    }
                    st.recent.push_back(meta.clone());
                    st.unreported = st.unreported.saturating_sub(1);
                }
                if meta.ids().any(|id| self.waiters.has(id)) {
                    let settled = info(&meta, Status::Acknowledged, None);
                    for id in meta.ids() {
                        self.waiters.settle(id, true, &settled);
                    }
                }
                for id in meta.ids() {
                    self.emit_outcome(|| event("sent", Some(id)));
                }
                self.emit_progress();
            }
        }
        self.settle_quiet();
        self.check_idle();
    }

    fn schedule_retry(self: &Rc<Self>, seq: Seq, attempt: u32, error: LastError, at: Millis) {
        let meta = {
            let mut st = self.st.borrow_mut();
            let Some(meta) = st.pending.get_mut(&seq) else {
                return;
            };
            meta.attempts = attempt;
            meta.next_attempt_at = at;
            meta.last_error = Some(Box::new(error.clone()));
            let written = meta.clone();
            // The write takes it out of its group (see `Store::update`).
            meta.group = 0;
            let meta = written;
            if st.sched.retry(seq, at).is_err() {
                return;
            }
            st.totals.retried += 1;
            st.writes += 1;
            meta
        };
        // Spawned before the next dispatch can be, so this write is ordered before any
        // later write about the same record.
        let me = self.clone();
        let record = meta.clone();
        let epoch = self.st.borrow().epoch.unwrap_or(0);
        js::spawn(async move {
            match me.store.update(&record, epoch).await {
                Ok(()) => {}
                Err(e) if e.code == ErrorCode::NotLeader => me.lost_fence(),
                Err(e) => me.report_error(Some(&record.id), &e),
            }
            me.st.borrow_mut().writes -= 1;
            me.settle_quiet();
            me.check_idle();
        });
        // If this context goes away before the retry, a service worker can send it.
        leader::register_sync(&self.sync_tag());
        self.emit(|| {
            let ev = event("retry", Some(&meta.id));
            js::set(&ev, "attempt", &JsValue::from(attempt));
            js::set(&ev, "nextAttemptAt", &JsValue::from_f64(at as f64));
            js::set(&ev, "error", &record::last_error(&error));
            ev
        });
        self.pump();
    }

    /// Moves an in-flight transaction to the dead letters. Its keys stay blocked until the
    /// move commits, so a crash cannot let later transactions overtake it silently.
    async fn bury(self: Rc<Self>, seq: Seq, reason: DeadReason, error: LastError, attempts: u32) {
        let meta = {
            let mut st = self.st.borrow_mut();
            let Some(meta) = st.pending.get(&seq) else {
                return;
            };
            let mut meta = meta.clone();
            meta.attempts = attempts;
            meta.last_error = Some(Box::new(error.clone()));
            meta.dead_reason = Some(reason);
            meta.dead_at = Some(js::now());
            st.writes += 1;
            meta
        };
        let epoch = self.st.borrow().epoch.unwrap_or(0);
        let stored = self.store.bury(&meta, epoch).await;
        if stored
            .as_ref()
            .is_err_and(|e| e.code == ErrorCode::NotLeader)
        {
            self.st.borrow_mut().writes -= 1;
            self.lost_fence();
            self.settle_quiet();
            return;
        }
        {
            let mut st = self.st.borrow_mut();
            st.writes -= 1;
            if stored.is_ok() {
                let _ = match self.dead_letters {
                    DeadLetterPolicy::Skip => st.sched.finish(seq),
                    DeadLetterPolicy::Block => st.sched.hold(seq),
                };
                st.take_pending(seq);
                st.cache.remove(&seq);
                st.totals.dead += 1;
                st.capacity_dirty = true;
                for id in meta.ids() {
                    st.ids.remove(id);
                }
            }
        }
        match stored {
            Ok(()) => {
                let err = dead_error(&meta.id, &[": ", &error.name, ": ", &error.message]);
                for id in meta.ids() {
                    self.waiters.settle(id, false, &err);
                }
                for id in meta.ids() {
                    self.emit_outcome(|| {
                        let ev = event("dead", Some(id));
                        js::set(&ev, "reason", &JsValue::from_str(reason.as_str()));
                        js::set(&ev, "error", &record::last_error(&error));
                        ev
                    });
                }
                self.emit_progress();
                self.settle_quiet();
                self.pump();
            }
            Err(e) => {
                // Could not record the death: keep it pending and try again later.
                self.emit(|| {
                    let ev = event("error", Some(&meta.id));
                    js::set(&ev, "error", &js::to_js(&e));
                    ev
                });
                let at = js::now().saturating_add(self.retry.max_delay_ms);
                self.schedule_retry(seq, attempts, error, at);
                // After the retry's write is counted, so a waiting close() waits for it.
                self.settle_quiet();
            }
        }
    }

    /// Resets backoff delays and drains now; a follower asks the leader to.
    pub fn notify_online(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            if st.epoch.is_none() {
                drop(st);
                self.post(&leader::message("online", &[]));
                return;
            }
            st.sched.reset_delays();
            let now = js::now();
            for m in st.pending.values_mut() {
                m.next_attempt_at = m.next_attempt_at.min(now);
            }
        }
        self.pump();
    }

    /// Folds a newer pending transaction into an older one with the same coalesce key:
    /// the older keeps its place and takes the newer's mutations (or what the handler's
    /// `merge(older, newer)` returns), metadata and idempotency key; the newer settles with
    /// it. The older is held meanwhile, so what is sent is never half old, half new.
    async fn fold_all(self: Rc<Self>, older: Seq) {
        loop {
            let (next, waits) = {
                let mut st = self.st.borrow_mut();
                let next = st
                    .fold_queue
                    .from((older, older + 1))
                    .next()
                    .filter(|&&(o, _)| o == older)
                    .copied();
                let mut waits = Vec::new();
                if let Some(pair) = next {
                    st.fold_queue.remove(&pair);
                } else {
                    st.fold_queue.remove(&(older, older));
                    let _ = st.sched.unhold(older);
                    let (done, rest) = std::mem::take(&mut st.fold_waits)
                        .into_iter()
                        .partition(|(s, _)| *s == older);
                    st.fold_waits = rest;
                    waits = done;
                }
                (next, waits)
            };
            for (_, d) in waits {
                d.resolve(&JsValue::UNDEFINED);
            }
            match next {
                Some((_, newer)) => self.clone().fold(older, newer).await,
                None => break,
            }
        }
        self.pump();
    }

    async fn fold(self: Rc<Self>, older: Seq, newer: Seq) {
        let (old_meta, new_meta, epoch) = {
            let mut st = self.st.borrow_mut();
            let new_meta = st.folding.remove(&newer);
            (st.pending.get(&older).cloned(), new_meta, st.epoch)
        };
        let (old_meta, new_meta, epoch) = match (old_meta, new_meta, epoch) {
            (Some(o), Some(n), Some(e)) => (o, n, e),
            (_, new_meta, epoch) => {
                {
                    let mut st = self.st.borrow_mut();
                    st.writes -= 1;
                    // The older one went (removed meanwhile): the newer runs on its own.
                    if let (Some(mut m), Some(_)) = (new_meta, epoch) {
                        m.coalesce_key = None;
                        self.insert_pending(&mut st, *m);
                    }
                }
                self.settle_quiet();
                return;
            }
        };
        let folded = async {
            let cached = {
                let mut st = self.st.borrow_mut();
                (st.cache.remove(&older), st.cache.remove(&newer))
            };
            let (old_payload, new_payload) = match cached {
                (Some(a), Some(b)) => (a, b),
                (a, b) => {
                    let ids = [payload_key(&old_meta), payload_key(&new_meta)];
                    let read = self.store.payloads(&ids).await?;
                    let missing = || Error::new(ErrorCode::StorageUnavailable, "payload missing");
                    (
                        a.or_else(|| read.get(&ids[0].0)).ok_or_else(missing)?,
                        b.or_else(|| read.get(&ids[1].0)).ok_or_else(missing)?,
                    )
                }
            };
            let newer_mutations = js::get(&new_payload, "mutations");
            let mutations = match self.handlers.merge(&new_meta.handler) {
                Some(merge) => merge
                    .call2(
                        &JsValue::UNDEFINED,
                        &js::get(&old_payload, "mutations"),
                        &newer_mutations,
                    )
                    .map_err(|e| js::describe(&e))
                    .and_then(|m| {
                        js::clone_for_storage(&m)
                            .map(|c| c.unwrap_or(m))
                            .map_err(|e| LastError {
                                name: "NotSerializable".into(),
                                message: e.message,
                            })
                    })
                    .map_err(|e| {
                        Error::new(
                            ErrorCode::InvalidTransaction,
                            ["merge threw ", &e.name, ": ", &e.message].concat(),
                        )
                    })?,
                None => newer_mutations,
            };
            let payload = payload_record(&mutations, &js::get(&new_payload, "metadata"));
            let mut meta = old_meta.clone();
            // The folded content goes out under the newer idempotency key: if an earlier
            // leader did deliver the older content, a server deduping on the old key must
            // not swallow the new one.
            meta.set_idempotency_key(new_meta.idempotency_key().to_owned());
            meta.aliases.push(String::from(&*new_meta.id));
            meta.aliases.extend(new_meta.aliases.iter().cloned());
            self.store
                .coalesce(&mut meta, &payload, (newer, &new_meta), epoch)
                .await?;
            meta.group = 0;
            Ok::<_, Error>((meta, payload))
        }
        .await;
        let fenced = matches!(&folded, Err(e) if e.code == ErrorCode::NotLeader);
        {
            let mut st = self.st.borrow_mut();
            st.writes -= 1;
            match &folded {
                Ok((meta, payload)) => {
                    for id in new_meta.ids() {
                        st.ids.insert(Rc::from(id), older);
                    }
                    st.put_pending(older, meta.clone());
                    st.cache.insert(older, payload.clone());
                    st.payload_rewrites += 1;
                    st.hold_verdict = None;
                    st.capacity_dirty = true;
                    self.waiters.move_to(&new_meta.id, &meta.id);
                }
                // Not folded: it runs as a transaction of its own.
                Err(_) if !fenced => {
                    let mut m = new_meta.clone();
                    m.coalesce_key = None;
                    self.insert_pending(&mut st, *m);
                }
                Err(_) => {}
            }
        }
        self.settle_quiet();
        match folded {
            Ok(_) => self.emit(|| {
                let ev = event("coalesced", Some(&new_meta.id));
                js::set(&ev, "into", &JsValue::from_str(&old_meta.id));
                ev
            }),
            Err(_) if fenced => self.lost_fence(),
            Err(e) => self.report_error(Some(&new_meta.id), &e),
        }
    }

    /// `progress {done, total}` after each settlement: a drain's progress bar.
    fn emit_progress(&self) {
        let Progress { done, total } = {
            let mut st = self.st.borrow_mut();
            let remaining = st.pending.len() + st.unreported;
            st.metrics.settled(remaining)
        };
        self.emit(|| {
            let ev = event("progress", None);
            js::set(&ev, "done", &JsValue::from_f64(done as f64));
            js::set(&ev, "total", &JsValue::from_f64(total as f64));
            ev
        });
    }

    // ---- quiescence: drain() and the `drained` event -----------------------------------

    fn is_idle(st: &State, now: Millis) -> bool {
        st.sched.in_flight() == 0
            && (!st.sched.has_runnable(now) || leader::is_offline())
            && st.acks.is_empty()
            && !st.writing()
            // Records another context (or an import) just wrote are being read in.
            && !st.syncing
    }

    /// Deletes acknowledged payloads (see `Store::sweep`) while the outbox is idle, or
    /// regardless past `SWEEP_BACKLOG`: about `SWEEP_PAYLOADS` per write, so work that
    /// arrives meanwhile waits for one short write at most.
    fn sweep(&self) {
        let Some(me) = self.rc() else { return };
        {
            let mut st = self.st.borrow_mut();
            if st.sweeping || st.unswept == Some(0) || st.epoch.is_none() || st.closed {
                return;
            }
            st.sweeping = true;
        }
        js::spawn(async move {
            if std::mem::take(&mut me.st.borrow_mut().prune_due) {
                let before = js::now().saturating_sub(store::REMOVED_KEPT_MS);
                if let Err(e) = me.store.prune_removed(before).await {
                    me.report_error(None, &e);
                }
            }
            loop {
                let epoch = {
                    let st = me.st.borrow();
                    let due = Self::is_idle(&st, js::now())
                        || st.unswept.is_some_and(|n| n >= SWEEP_BACKLOG);
                    match st.epoch {
                        Some(epoch) if due && !st.closed => epoch,
                        _ => break,
                    }
                };
                match me.store.sweep(epoch, SWEEP_PAYLOADS).await {
                    Ok((swept, left)) => {
                        let mut st = me.st.borrow_mut();
                        st.unswept = match st.unswept {
                            None if !left => Some(0),
                            n => n.map(|n| n.saturating_sub(swept as usize)),
                        };
                        if !left {
                            break;
                        }
                    }
                    Err(e) => {
                        if e.code == ErrorCode::NotLeader {
                            me.lost_fence();
                        } else {
                            me.report_error(None, &e);
                        }
                        break;
                    }
                }
            }
            me.st.borrow_mut().sweeping = false;
        });
    }

    fn check_idle(&self) {
        let (drains, drained, remaining, totals) = {
            let mut st = self.st.borrow_mut();
            if !Self::is_idle(&st, js::now()) {
                return;
            }
            let drained = std::mem::replace(&mut st.active, false);
            st.force_low = false;
            st.metrics.end_run();
            (
                std::mem::take(&mut st.drains),
                drained,
                st.sched.len(),
                st.totals,
            )
        };
        for d in drains {
            d.deferred.resolve(&report(&d, totals, remaining, true));
        }
        self.sweep();
        if drained {
            self.emit(|| {
                let ev = event("drained", None);
                js::set(&ev, "remaining", &JsValue::from_f64(remaining as f64));
                ev
            });
        }
    }

    /// Runs until nothing is runnable now, or the budget passes. A follower asks the
    /// leader and reports what the leader did.
    pub fn drain(self: &Rc<Self>, budget_ms: Option<Millis>) -> Promise {
        if let Err(e) = self.check_open() {
            return Promise::reject(&js::to_js(&e));
        }
        if !self.is_leader() {
            if self.mode == Mode::OnDemand {
                return self.drain_on_demand(budget_ms);
            }
            return self.drain_remote(budget_ms);
        }
        self.drain_local(budget_ms)
    }

    /// A service worker's drain: lead for its duration if no live context holds the lock,
    /// otherwise let the leader drain. Pending backoff delays are reset first.
    fn drain_on_demand(self: &Rc<Self>, budget_ms: Option<Millis>) -> Promise {
        let me = self.clone();
        js::promise(async move {
            let name = Store::database_name(&me.name);
            let lock = match HeldLock::try_take(&name).await {
                Some(lock) => lock,
                // A page leads and drains, unless it is on its way out (a tab closing as
                // the sync event fires): then the lock comes here first, and this drains.
                None => match HeldLock::or_reply(&name, &me.drain_remote(budget_ms)).await? {
                    ReplyOrLock::Reply(report) => return Ok(report),
                    ReplyOrLock::Lock(lock) => lock,
                },
            };
            me.clone().gain().await;
            let report = if me.is_leader() {
                // The worker drains when the network is back (a sync event, `online`, its
                // start): backoff delays from before are moot, as on `online`.
                me.notify_online();
                JsFuture::from(me.drain_local(budget_ms)).await
            } else {
                Err(js::err(
                    ErrorCode::StorageUnavailable,
                    "could not take over the outbox",
                ))
            };
            me.demote();
            drop(lock);
            report
        })
    }

    fn drain_local(self: &Rc<Self>, budget_ms: Option<Millis>) -> Promise {
        self.expire_old();
        let deferred = Deferred::new();
        let promise = deferred.promise.clone();
        {
            let mut st = self.st.borrow_mut();
            st.next_id += 1;
            let id = st.next_id;
            let budget = budget_ms.map(|ms| {
                let weak = Rc::downgrade(self);
                Timeout::new(ms.min(MAX_TIMER_MS) as u32, move || {
                    if let Some(e) = weak.upgrade() {
                        js::spawn(async move { e.end_drain(id) });
                    }
                })
            });
            let start = st.totals;
            st.force_low = true;
            st.drains.push(DrainWait {
                id,
                deferred,
                start,
                started_at: js_sys::Date::now(),
                _budget: budget,
            });
        }
        self.pump();
        promise
    }

    fn end_drain(&self, id: u32) {
        let (d, totals, remaining) = {
            let mut st = self.st.borrow_mut();
            let Some(pos) = st.drains.iter().position(|d| d.id == id) else {
                return;
            };
            (st.drains.remove(pos), st.totals, st.sched.len())
        };
        d.deferred.resolve(&report(&d, totals, remaining, false));
    }

    /// Resolves close()'s wait once no write is under way.
    fn settle_quiet(&self) {
        let quiet = {
            let mut st = self.st.borrow_mut();
            if st.writing() {
                return;
            }
            std::mem::take(&mut st.quiet)
        };
        for q in quiet {
            q.resolve(&JsValue::UNDEFINED);
        }
    }

    /// Stops sending, waits for every write under way (so nothing enqueued or
    /// acknowledged is lost), leaves the election, then closes the database.
    pub async fn close(self: Rc<Self>) {
        let (quiet, lease_actions) = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.triggers = None;
            st.timer = None;
            st.cache.clear();
            st.lease_timer = None;
            let lease_actions = st.lease.as_mut().map(|l| l.stop()).unwrap_or_default();
            // No pump runs from here on, so no queued fold would start.
            st.drop_queued_folds();
            let quiet = if st.writing() {
                let d = Deferred::new();
                let p = d.promise.clone();
                st.quiet.push(d);
                Some(p)
            } else {
                None
            };
            (quiet, lease_actions)
        };
        self.st.borrow().handler_abort.abort();
        if let Some(p) = quiet {
            let _ = JsFuture::from(p).await;
        }
        // The lock goes only now: the next leader must not start before our last writes.
        let lock = self.st.borrow_mut().lock.take();
        drop(lock);
        self.lease_actions(lease_actions);
        self.flush_outgoing();
        self.say("bye");
        let (drains, rpcs, totals, remaining) = {
            let mut st = self.st.borrow_mut();
            st.epoch = None;
            st.generation += 1;
            st.channel = None;
            (
                std::mem::take(&mut st.drains),
                std::mem::take(&mut st.rpcs),
                st.totals,
                st.sched.len(),
            )
        };
        self.finish_loading();
        let err = js::to_js(&Self::closed_error());
        self.waiters.reject_all(&err);
        for r in rpcs {
            r.done.reject(&err);
        }
        for d in drains {
            d.deferred.resolve(&report(&d, totals, remaining, false));
        }
        self.store.close();
    }
}

fn report(d: &DrainWait, now: Totals, remaining: usize, complete: bool) -> JsValue {
    let o = Object::new();
    js::set(
        &o,
        "sent",
        &JsValue::from_f64((now.sent - d.start.sent) as f64),
    );
    js::set(
        &o,
        "retried",
        &JsValue::from_f64((now.retried - d.start.retried) as f64),
    );
    js::set(
        &o,
        "dead",
        &JsValue::from_f64((now.dead - d.start.dead) as f64),
    );
    js::set(&o, "remaining", &JsValue::from_f64(remaining as f64));
    js::set(&o, "complete", &JsValue::from_bool(complete));
    js::set(
        &o,
        "durationMs",
        &JsValue::from_f64(js_sys::Date::now() - d.started_at),
    );
    o.into()
}

/// The context a handler receives for one transaction, but its `signal`, which
/// `js::call_handler` sets.
fn handler_context(meta: &TxMeta, payload: &JsValue, attempt: u32) -> JsValue {
    let keys: Array = meta.keys.iter().map(|k| JsValue::from_str(k)).collect();
    js::handler_context(&meta.id, meta.idempotency_key(), &keys, payload, attempt)
}

/// What a thrown value means: `NonRetriableError` dead-letters, anything else retries.
fn failure(e: &JsValue) -> Outcome {
    if js::is_non_retriable(e) {
        Outcome::Reject(js::describe(e))
    } else {
        Outcome::Retry {
            error: js::describe(e),
            after: js::retry_after_ms(e),
        }
    }
}

/// A batch handler's result, one outcome per transaction: a throw fails all alike; a
/// resolved array gives each its own (`undefined`, `null` or `true` acknowledges, an
/// error means what throwing it would); anything else acknowledges all. A transaction
/// the array has no entry for is retried: silence is not an acknowledgement.
fn batch_outcomes(result: std::result::Result<JsValue, JsValue>, n: usize) -> Vec<Outcome> {
    match result {
        Err(e) => vec![failure(&e); n],
        Ok(v) if Array::is_array(&v) => {
            let arr: Array = v.unchecked_into();
            (0..n as u32)
                .map(|i| {
                    let entry = arr.get(i);
                    if i >= arr.length() {
                        Outcome::Retry {
                            error: LastError {
                                name: "BatchOutcomeMissing".into(),
                                message: [
                                    "the batch handler returned ",
                                    &decimal(arr.length().into()),
                                    " outcomes for ",
                                    &decimal(n as u64),
                                    " transactions",
                                ]
                                .concat(),
                            },
                            after: None,
                        }
                    } else if entry.is_undefined() || entry.is_null() || entry == JsValue::TRUE {
                        Outcome::Acknowledged
                    } else {
                        failure(&entry)
                    }
                })
                .collect()
        }
        Ok(_) => vec![Outcome::Acknowledged; n],
    }
}
