//! The per-key scheduler: which pending transaction may start next.
//!
//! A plain state machine with no I/O: the caller feeds it inserts, starts, successes,
//! failures and the current time, and it answers with the next `seq` to dispatch.
//!
//! Rules (DESIGN.md, invariant 2):
//! - a transaction runs only when every earlier transaction sharing one of its keys is
//!   finished (acknowledged or dead) and no transaction on its keys is in flight;
//! - a transaction with no keys is a barrier: it waits for every earlier transaction and
//!   no later one starts before it finishes; in `fifo` ordering every transaction is one;
//! - among runnable transactions, higher priority first, then lower `seq`;
//! - at most `max_concurrency` handler calls at once; a batch handler's call carries
//!   "riders" that take no slot of their own.
//!
//! Cost: every operation touches only the transaction concerned and the heads of its
//! keys' queues, O(k log n) for k keys. Nothing rescans the queue, so choosing the next
//! transaction stays cheap at 100,000 pending. The one exception is a change of the
//! earliest barrier, which revisits the key heads before it (each at most once per change).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use crate::model::{Millis, Ordering, Priority, Seq};
use crate::ordset::OrdSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting on an earlier transaction (a key, a barrier or the concurrency of another).
    Blocked,
    /// Free of every ordering constraint; in `timed`, waiting for `not_before`.
    Timed,
    /// Runnable now; in `ready`.
    Ready,
    InFlight,
    /// Runnable but low priority while low priority is held (a network policy); in
    /// `parked`.
    Parked,
    /// A dead letter under the `block` policy: never runs, keeps its keys (and, for a
    /// barrier, everything later) waiting until revived or discarded.
    Held,
}

#[derive(Debug)]
struct Entry {
    keys: Box<[Rc<str>]>,
    barrier: bool,
    priority: Priority,
    not_before: Millis,
    state: State,
    /// Started by [`Scheduler::start_riders`]: in flight without a concurrency slot.
    rider: bool,
}

#[derive(Debug, Default)]
struct KeyQueue {
    /// Seqs of unfinished transactions on this key, ascending.
    queue: VecDeque<Seq>,
    /// The transaction on this key that is in flight. Usually the head; a revived dead
    /// letter can sit ahead of it, and must then wait for it.
    busy: Option<Seq>,
}

/// Why a call was refused. Never reached by a caller that only passes seqs it got from
/// the scheduler, but the store may hand us anything, so these are errors, not panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    Duplicate(Seq),
    Unknown(Seq),
    NotInFlight(Seq),
    InFlight(Seq),
    NotHeld(Seq),
}

/// Every ordered set here is this one type. A set of plain seqs holds `(0, seq)`.
type Set = OrdSet;

fn rank(p: Priority) -> u64 {
    p as u64
}

/// The seqs of a set's elements.
fn seqs_of(set: &Set) -> impl Iterator<Item = Seq> + '_ {
    set.iter().map(|&(_, s)| s)
}

/// Consecutive seqs land in consecutive slots (the low bits pick the slot) and stay
/// apart in hashbrown's 7-bit tag (the top bits): the scheduler touches seqs mostly in
/// order, so its lookups stay in cache where a mixing hash scatters them.
#[derive(Default)]
struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0 | self.0 << 57
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug)]
pub struct Scheduler {
    ordering: Ordering,
    max_concurrency: usize,
    /// Hashed: the order lives in `all`, and a hash map is quicker to look up.
    entries: HashMap<Seq, Entry, BuildHasherDefault<SeqHasher>>,
    /// Every unfinished seq, as `(0, seq)`.
    all: Set,
    keys: FxHashMap<Rc<str>, KeyQueue>,
    /// Unfinished barriers.
    barriers: Set,
    /// Non-barrier transactions that are the head of every one of their keys and not in
    /// flight: the candidates when a barrier constraint lifts.
    heads: Set,
    /// By `not_before`.
    timed: Set,
    /// By priority (`rank`).
    ready: Set,
    parked: Set,
    hold_low: bool,
    in_flight: usize,
    /// In flight as riders of a batch: not counted against `max_concurrency`.
    riders: usize,
    in_flight_barriers: usize,
}

impl Scheduler {
    pub fn new(ordering: Ordering, max_concurrency: usize) -> Self {
        Self {
            ordering,
            max_concurrency: max_concurrency.max(1),
            entries: HashMap::default(),
            all: Set::new(),
            keys: FxHashMap::default(),
            barriers: Set::new(),
            heads: Set::new(),
            timed: Set::new(),
            ready: Set::new(),
            parked: Set::new(),
            hold_low: false,
            in_flight: 0,
            riders: 0,
            in_flight_barriers: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn contains(&self, seq: Seq) -> bool {
        self.entries.contains_key(&seq)
    }

    pub fn is_in_flight(&self, seq: Seq) -> bool {
        self.entries
            .get(&seq)
            .is_some_and(|e| e.state == State::InFlight)
    }

    /// Adds a pending transaction. `keys` may repeat; an empty list makes a barrier.
    /// A `seq` lower than ones already present (a revived dead letter) takes its original
    /// place in every key's order.
    pub fn insert<K: AsRef<str>>(
        &mut self,
        seq: Seq,
        keys: &[K],
        priority: Priority,
        not_before: Millis,
    ) -> Result<(), SchedError> {
        if self.entries.contains_key(&seq) {
            return Err(SchedError::Duplicate(seq));
        }
        let mut interned: Vec<Rc<str>> = Vec::with_capacity(keys.len());
        // In fifo order keys constrain nothing beyond the global order, so none are kept.
        let keys = if self.ordering == Ordering::Fifo {
            &[]
        } else {
            keys
        };
        for k in keys {
            let k = k.as_ref();
            if interned.iter().any(|x| &**x == k) {
                continue;
            }
            let rc = match self.keys.get_key_value(k) {
                Some((rc, _)) => rc.clone(),
                None => Rc::from(k),
            };
            interned.push(rc);
        }
        let barrier = self.ordering == Ordering::Fifo || interned.is_empty();
        let old_min = self.first_seq();
        let old_barrier = self.first_barrier();
        let mut displaced = Vec::new();
        for k in &interned {
            let q = self.keys.entry(k.clone()).or_default();
            let pos = q.queue.partition_point(|&s| s < seq);
            if pos == 0 {
                if let Some(&front) = q.queue.front() {
                    displaced.push(front);
                }
            }
            q.queue.insert(pos, seq);
        }
        self.entries.insert(
            seq,
            Entry {
                keys: interned.into_boxed_slice(),
                barrier,
                priority,
                not_before,
                state: State::Blocked,
                rider: false,
            },
        );
        self.all.insert((0, seq));
        if barrier {
            self.barriers.insert((0, seq));
        }
        self.sync(seq);
        for s in displaced {
            self.sync(s);
        }
        if let Some(m) = old_min {
            self.sync(m);
        }
        if barrier && old_barrier.is_none_or(|b| seq < b) {
            // A new earliest barrier revokes every later transaction that was free to run.
            let later: Vec<Seq> = seqs_of(&self.timed)
                .chain(seqs_of(&self.ready))
                .chain(seqs_of(&self.parked))
                .filter(|&s| s > seq)
                .collect();
            for s in later {
                self.sync(s);
            }
        }
        Ok(())
    }

    /// Moves every transaction due at `now` into the runnable set and starts the best one,
    /// if the concurrency limit allows. The returned transaction is in flight until
    /// [`finish`](Self::finish) or [`retry`](Self::retry).
    pub fn start_next(&mut self, now: Millis) -> Option<Seq> {
        if self.in_flight - self.riders >= self.max_concurrency {
            return None;
        }
        self.promote_due(now);
        let (_, seq) = self.ready.pop_first()?;
        self.mark_in_flight(seq);
        Some(seq)
    }

    /// Starts, alongside one just started, up to `limit` more runnable transactions that
    /// `fits` accepts, best first: one batch handler call sends them together, so they
    /// take no concurrency slot. Runnable transactions never share a key (each is the head
    /// of all its keys), so neither do the members of a batch. At most `limit * 8`
    /// candidates are looked at, so a batch costs no scan of a large runnable set.
    pub fn start_riders(
        &mut self,
        now: Millis,
        limit: usize,
        mut fits: impl FnMut(Seq) -> bool,
    ) -> Vec<Seq> {
        self.promote_due(now);
        let picked: Vec<(u64, Seq)> = self
            .ready
            .iter()
            .take(limit.saturating_mul(8))
            .filter(|&&(_, s)| fits(s))
            .take(limit)
            .copied()
            .collect();
        for &(p, seq) in &picked {
            self.ready.remove(&(p, seq));
            self.mark_in_flight(seq);
            if let Some(e) = self.entries.get_mut(&seq) {
                e.rider = true;
            }
            self.riders += 1;
        }
        picked.into_iter().map(|(_, s)| s).collect()
    }

    /// The runnable transactions at `now`, best first, without starting any: what the
    /// next calls to [`start_next`](Self::start_next) would return, capacity permitting.
    pub fn upcoming(&mut self, now: Millis, limit: usize) -> Vec<Seq> {
        self.promote_due(now);
        seqs_of(&self.ready).take(limit).collect()
    }

    /// The transaction finished for good: acknowledged, or moved to the dead letters.
    pub fn finish(&mut self, seq: Seq) -> Result<(), SchedError> {
        match self.entries.get(&seq) {
            None => Err(SchedError::Unknown(seq)),
            Some(e) if e.state != State::InFlight => Err(SchedError::NotInFlight(seq)),
            Some(_) => {
                self.detach(seq);
                Ok(())
            }
        }
    }

    /// Drops a pending transaction that is not in flight (cancelled, or found corrupt).
    pub fn remove(&mut self, seq: Seq) -> Result<(), SchedError> {
        match self.entries.get(&seq) {
            None => Err(SchedError::Unknown(seq)),
            Some(e) if e.state == State::InFlight => Err(SchedError::InFlight(seq)),
            Some(_) => {
                self.detach(seq);
                Ok(())
            }
        }
    }

    /// The attempt failed and will be retried no earlier than `not_before`. The
    /// transaction keeps its place: later transactions on its keys still wait for it.
    pub fn retry(&mut self, seq: Seq, not_before: Millis) -> Result<(), SchedError> {
        let e = self.entries.get_mut(&seq).ok_or(SchedError::Unknown(seq))?;
        if e.state != State::InFlight {
            return Err(SchedError::NotInFlight(seq));
        }
        e.state = State::Blocked;
        e.not_before = not_before;
        let (barrier, rider) = (e.barrier, std::mem::take(&mut e.rider));
        let keys = e.keys.clone();
        self.release(seq, &keys, barrier, rider);
        self.sync(seq);
        Ok(())
    }

    /// Parks a transaction for good (it died under the `block` policy): it leaves the
    /// runnable sets and, if in flight, frees the concurrency slot, but stays at its
    /// place in its keys' queues, so everything after it on those keys waits.
    pub fn hold(&mut self, seq: Seq) -> Result<(), SchedError> {
        let e = self.entries.get_mut(&seq).ok_or(SchedError::Unknown(seq))?;
        let (state, priority, not_before) = (e.state, e.priority, e.not_before);
        e.state = State::Held;
        match state {
            State::InFlight => {
                let (keys, barrier) = (e.keys.clone(), e.barrier);
                let rider = std::mem::take(&mut e.rider);
                self.release(seq, &keys, barrier, rider);
            }
            State::Timed => {
                self.timed.remove(&(not_before, seq));
            }
            State::Ready => {
                self.ready.remove(&(rank(priority), seq));
            }
            State::Parked => {
                self.parked.remove(&(0, seq));
            }
            State::Blocked | State::Held => {}
        }
        self.heads.remove(&(0, seq));
        Ok(())
    }

    /// Undoes [`hold`](Self::hold): the transaction runs again from its place, due now.
    pub fn unhold(&mut self, seq: Seq) -> Result<(), SchedError> {
        let e = self.entries.get_mut(&seq).ok_or(SchedError::Unknown(seq))?;
        if e.state != State::Held {
            return Err(SchedError::NotHeld(seq));
        }
        e.state = State::Blocked;
        e.not_before = 0;
        self.sync(seq);
        Ok(())
    }

    pub fn is_held(&self, seq: Seq) -> bool {
        self.entries
            .get(&seq)
            .is_some_and(|e| e.state == State::Held)
    }

    /// Holds (or releases) low-priority work: while held, a runnable low-priority
    /// transaction waits in `parked`; everything else runs as usual.
    pub fn set_hold_low(&mut self, hold: bool) {
        if hold == self.hold_low {
            return;
        }
        self.hold_low = hold;
        if hold {
            let low: Vec<(u64, Seq)> = self.ready.from((rank(Priority::Low), 0)).copied().collect();
            for (p, seq) in low {
                self.ready.remove(&(p, seq));
                self.parked.insert((0, seq));
                self.set_state(seq, State::Parked);
            }
        } else {
            for &(_, seq) in std::mem::take(&mut self.parked).iter() {
                self.ready.insert((rank(Priority::Low), seq));
                self.set_state(seq, State::Ready);
            }
        }
    }

    /// Runnable low-priority transactions held back by [`set_hold_low`](Self::set_hold_low).
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Makes every pending transaction due now (the network came back).
    pub fn reset_delays(&mut self) {
        for e in self.entries.values_mut() {
            if e.state != State::InFlight && e.state != State::Held {
                e.not_before = 0;
            }
        }
        let timed = std::mem::take(&mut self.timed);
        for &(_, seq) in timed.iter() {
            self.timed.insert((0, seq));
        }
    }

    /// When the earliest transaction free of ordering constraints is due (0 when one is
    /// runnable already). Callers set one timer for it.
    pub fn next_due(&self) -> Option<Millis> {
        if self.ready.is_empty() {
            self.timed.first().map(|&(t, _)| t)
        } else {
            Some(0)
        }
    }

    /// Whether a call to `start_next(now)` could start something if capacity allowed.
    pub fn has_runnable(&self, now: Millis) -> bool {
        !self.ready.is_empty() || self.timed.first().is_some_and(|&(t, _)| t <= now)
    }

    /// All unfinished seqs in ascending order.
    pub fn seqs(&self) -> impl Iterator<Item = Seq> + '_ {
        seqs_of(&self.all)
    }

    fn first_seq(&self) -> Option<Seq> {
        self.all.first().map(|&(_, s)| s)
    }

    fn first_barrier(&self) -> Option<Seq> {
        self.barriers.first().map(|&(_, s)| s)
    }

    fn promote_due(&mut self, now: Millis) {
        while let Some(&(t, seq)) = self.timed.first() {
            if t > now {
                break;
            }
            self.timed.pop_first();
            if let Some(e) = self.entries.get_mut(&seq) {
                if self.hold_low && e.priority == Priority::Low {
                    e.state = State::Parked;
                    self.parked.insert((0, seq));
                } else {
                    e.state = State::Ready;
                    self.ready.insert((rank(e.priority), seq));
                }
            }
        }
    }

    fn mark_in_flight(&mut self, seq: Seq) {
        let Some(e) = self.entries.get_mut(&seq) else {
            return;
        };
        e.state = State::InFlight;
        if e.barrier {
            self.in_flight_barriers += 1;
        }
        for k in e.keys.iter() {
            if let Some(q) = self.keys.get_mut(k) {
                q.busy = Some(seq);
            }
        }
        self.in_flight += 1;
        self.heads.remove(&(0, seq));
    }

    /// Clears what an in-flight transaction held, then wakes whoever it held up.
    fn release(&mut self, seq: Seq, keys: &[Rc<str>], barrier: bool, rider: bool) {
        self.in_flight -= 1;
        if rider {
            self.riders -= 1;
        }
        let mut wake = Vec::with_capacity(keys.len() + 1);
        for k in keys {
            if let Some(q) = self.keys.get_mut(k) {
                if q.busy == Some(seq) {
                    q.busy = None;
                }
                match q.queue.front() {
                    Some(&h) => wake.push(h),
                    None => {
                        self.keys.remove(k);
                    }
                }
            }
        }
        for s in wake {
            self.sync(s);
        }
        if barrier {
            self.in_flight_barriers -= 1;
            self.sync_heads_before_barrier();
        }
        if self.in_flight == 0 {
            if let Some(m) = self.first_seq() {
                self.sync(m);
            }
        }
    }

    /// Removes a transaction entirely and wakes its successors.
    fn detach(&mut self, seq: Seq) {
        let Some(e) = self.entries.remove(&seq) else {
            return;
        };
        self.all.remove(&(0, seq));
        match e.state {
            State::Timed => {
                self.timed.remove(&(e.not_before, seq));
            }
            State::Ready => {
                self.ready.remove(&(rank(e.priority), seq));
            }
            State::Parked => {
                self.parked.remove(&(0, seq));
            }
            State::Blocked | State::InFlight | State::Held => {}
        }
        self.heads.remove(&(0, seq));
        for k in e.keys.iter() {
            if let Some(q) = self.keys.get_mut(k) {
                if let Ok(pos) = q.queue.binary_search(&seq) {
                    q.queue.remove(pos);
                }
                if q.queue.is_empty() && q.busy.is_none() {
                    self.keys.remove(k);
                }
            }
        }
        if e.barrier {
            self.barriers.remove(&(0, seq));
        }
        if e.state == State::InFlight {
            self.release(seq, &e.keys, e.barrier, e.rider);
        } else {
            for k in e.keys.iter() {
                if let Some(&h) = self.keys.get(k).and_then(|q| q.queue.front()) {
                    self.sync(h);
                }
            }
            if e.barrier {
                self.sync_heads_before_barrier();
            }
        }
        if let Some(m) = self.first_seq() {
            self.sync(m);
        }
    }

    fn sync_heads_before_barrier(&mut self) {
        let limit = self.first_barrier().unwrap_or(Seq::MAX);
        let heads: Vec<Seq> = seqs_of(&self.heads).take_while(|&s| s < limit).collect();
        for s in heads {
            self.sync(s);
        }
        if let Some(b) = self.first_barrier() {
            self.sync(b);
        }
    }

    /// Recomputes whether `seq` is free of ordering constraints and files it accordingly.
    fn sync(&mut self, seq: Seq) {
        let Some(e) = self.entries.get(&seq) else {
            return;
        };
        if matches!(e.state, State::InFlight | State::Held) {
            return;
        }
        let free = if e.barrier {
            self.in_flight == 0 && self.first_seq() == Some(seq)
        } else {
            let head = e.keys.iter().all(|k| {
                self.keys
                    .get(k)
                    .is_some_and(|q| q.queue.front() == Some(&seq) && q.busy.is_none())
            });
            if head {
                self.heads.insert((0, seq));
            } else {
                self.heads.remove(&(0, seq));
            }
            head && self.in_flight_barriers == 0 && self.first_barrier().is_none_or(|b| b > seq)
        };
        let (state, priority, not_before) = (e.state, e.priority, e.not_before);
        match (free, state) {
            (true, State::Blocked) => {
                self.timed.insert((not_before, seq));
                self.set_state(seq, State::Timed);
            }
            (false, State::Timed) => {
                self.timed.remove(&(not_before, seq));
                self.set_state(seq, State::Blocked);
            }
            (false, State::Ready) => {
                self.ready.remove(&(rank(priority), seq));
                self.set_state(seq, State::Blocked);
            }
            (false, State::Parked) => {
                self.parked.remove(&(0, seq));
                self.set_state(seq, State::Blocked);
            }
            _ => {}
        }
    }

    fn set_state(&mut self, seq: Seq, state: State) {
        if let Some(e) = self.entries.get_mut(&seq) {
            e.state = state;
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
