use super::*;
use proptest::prelude::*;

fn sched(max: usize) -> Scheduler {
    Scheduler::new(Ordering::PerKey, max)
}

fn drain_now(s: &mut Scheduler, now: Millis) -> Vec<Seq> {
    std::iter::from_fn(|| s.start_next(now)).collect()
}

#[test]
fn same_key_waits_disjoint_keys_run_in_parallel() {
    let mut s = sched(8);
    s.insert(1, &["a"], Priority::Normal, 0).unwrap();
    s.insert(2, &["a"], Priority::Normal, 0).unwrap();
    s.insert(3, &["b"], Priority::Normal, 0).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![1, 3]);
    s.finish(1).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![2]);
}

#[test]
fn multi_key_transaction_waits_for_every_key() {
    let mut s = sched(8);
    s.insert(1, &["a"], Priority::Normal, 0).unwrap();
    s.insert(2, &["b"], Priority::Normal, 0).unwrap();
    s.insert(3, &["a", "b"], Priority::Normal, 0).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![1, 2]);
    s.finish(1).unwrap();
    assert_eq!(s.start_next(0), None);
    s.finish(2).unwrap();
    assert_eq!(s.start_next(0), Some(3));
}

#[test]
fn failing_head_blocks_only_its_own_keys() {
    let mut s = sched(8);
    s.insert(1, &["a"], Priority::Normal, 0).unwrap();
    s.insert(2, &["a"], Priority::Normal, 0).unwrap();
    s.insert(3, &["b"], Priority::Normal, 0).unwrap();
    assert_eq!(s.start_next(0), Some(1));
    s.retry(1, 1_000).unwrap();
    assert_eq!(drain_now(&mut s, 10), vec![3]);
    assert_eq!(s.next_due(), Some(1_000));
    assert_eq!(s.start_next(999), None);
    assert_eq!(s.start_next(1_000), Some(1));
}

#[test]
fn empty_keys_is_a_barrier() {
    let mut s = sched(8);
    s.insert(1, &["a"], Priority::Normal, 0).unwrap();
    s.insert(2, &[] as &[&str], Priority::Normal, 0).unwrap();
    s.insert(3, &["b"], Priority::High, 0).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![1]);
    s.finish(1).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![2]);
    s.finish(2).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![3]);
}

#[test]
fn fifo_runs_one_at_a_time_in_seq_order() {
    let mut s = Scheduler::new(Ordering::Fifo, 8);
    s.insert(1, &["a"], Priority::Low, 0).unwrap();
    s.insert(2, &["b"], Priority::High, 0).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![1]);
    s.finish(1).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![2]);
}

#[test]
fn priority_orders_runnable_but_never_same_key() {
    let mut s = sched(1);
    s.insert(1, &["a"], Priority::Low, 0).unwrap();
    s.insert(2, &["a"], Priority::High, 0).unwrap();
    s.insert(3, &["b"], Priority::High, 0).unwrap();
    assert_eq!(s.start_next(0), Some(3));
    s.finish(3).unwrap();
    assert_eq!(s.start_next(0), Some(1));
    s.finish(1).unwrap();
    assert_eq!(s.start_next(0), Some(2));
}

#[test]
fn concurrency_limit_holds() {
    let mut s = sched(2);
    for i in 0..5 {
        s.insert(i, &[format!("k{i}")], Priority::Normal, 0)
            .unwrap();
    }
    assert_eq!(drain_now(&mut s, 0).len(), 2);
    s.finish(0).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![2]);
}

#[test]
fn revived_transaction_takes_its_original_place() {
    let mut s = sched(8);
    s.insert(5, &["a"], Priority::Normal, 0).unwrap();
    s.insert(2, &["a"], Priority::Normal, 0).unwrap();
    assert_eq!(drain_now(&mut s, 0), vec![2]);
}

#[test]
fn revived_transaction_waits_for_a_later_one_in_flight() {
    let mut s = sched(8);
    s.insert(5, &["a"], Priority::Normal, 0).unwrap();
    assert_eq!(s.start_next(0), Some(5));
    s.insert(2, &["a"], Priority::Normal, 0).unwrap();
    assert_eq!(s.start_next(0), None);
    s.finish(5).unwrap();
    assert_eq!(s.start_next(0), Some(2));
}

#[test]
fn reset_delays_makes_everything_due() {
    let mut s = sched(8);
    s.insert(1, &["a"], Priority::Normal, 50_000).unwrap();
    assert_eq!(s.start_next(0), None);
    s.reset_delays();
    assert_eq!(s.start_next(0), Some(1));
}

#[test]
fn remove_refuses_in_flight_and_unblocks_successors() {
    let mut s = sched(8);
    s.insert(1, &["a"], Priority::Normal, 10).unwrap();
    s.insert(2, &["a"], Priority::Normal, 0).unwrap();
    s.remove(1).unwrap();
    assert_eq!(s.start_next(0), Some(2));
    assert_eq!(s.remove(2), Err(SchedError::InFlight(2)));
    assert_eq!(s.remove(9), Err(SchedError::Unknown(9)));
    assert_eq!(s.finish(9), Err(SchedError::Unknown(9)));
}

#[test]
fn errors_instead_of_panics_on_misuse() {
    let mut s = sched(8);
    s.insert(1, &["a"], Priority::Normal, 0).unwrap();
    assert_eq!(
        s.insert(1, &["b"], Priority::Normal, 0),
        Err(SchedError::Duplicate(1))
    );
    assert_eq!(s.finish(1), Err(SchedError::NotInFlight(1)));
    assert_eq!(s.retry(1, 0), Err(SchedError::NotInFlight(1)));
}

#[test]
fn key_queues_are_freed_when_empty() {
    let mut s = sched(8);
    for i in 0..100 {
        s.insert(i, &[format!("k{i}")], Priority::Normal, 0)
            .unwrap();
    }
    while let Some(seq) = s.start_next(0) {
        s.finish(seq).unwrap();
    }
    assert!(s.is_empty());
    assert!(s.keys.is_empty() && s.heads.is_empty() && s.timed.is_empty());
}

#[test]
fn hundred_thousand_pending_drain_without_rescans() {
    let mut s = sched(4);
    for i in 0..100_000u64 {
        let key = format!("k{}", i % 1000);
        s.insert(i, &[key], Priority::Normal, 0).unwrap();
    }
    let mut done = 0;
    while let Some(seq) = s.start_next(0) {
        s.finish(seq).unwrap();
        done += 1;
    }
    assert_eq!(done, 100_000);
}

/// The definition of runnable, evaluated by brute force over every pending transaction.
#[derive(Clone, Debug)]
struct NaiveTx {
    seq: Seq,
    keys: Vec<String>,
    priority: Priority,
    not_before: Millis,
    in_flight: bool,
    held: bool,
    rider: bool,
}

struct Naive {
    fifo: bool,
    max: usize,
    hold_low: bool,
    txs: Vec<NaiveTx>,
}

impl Naive {
    fn parked(&self, t: &NaiveTx) -> bool {
        self.hold_low && t.priority == Priority::Low
    }

    fn barrier(&self, t: &NaiveTx) -> bool {
        self.fifo || t.keys.is_empty()
    }

    fn free(&self, t: &NaiveTx) -> bool {
        if t.in_flight || t.held {
            return false;
        }
        if self.barrier(t) {
            return self.txs.iter().all(|o| o.seq >= t.seq && !o.in_flight);
        }
        self.txs.iter().all(|o| {
            if o.seq == t.seq {
                return true;
            }
            let shares = o.keys.iter().any(|k| t.keys.contains(k));
            let blocks_by_order = o.seq < t.seq && (shares || self.barrier(o));
            let blocks_in_flight = o.in_flight && (shares || self.barrier(o));
            !blocks_by_order && !blocks_in_flight
        })
    }

    fn start_next(&mut self, now: Millis) -> Option<Seq> {
        if self.txs.iter().filter(|t| t.in_flight && !t.rider).count() >= self.max {
            return None;
        }
        let best = self
            .txs
            .iter()
            .filter(|t| self.free(t) && t.not_before <= now && !self.parked(t))
            .min_by_key(|t| (t.priority, t.seq))?
            .seq;
        self.txs.iter_mut().find(|t| t.seq == best)?.in_flight = true;
        Some(best)
    }

    /// Runnable ones accepted by `fits`, best first, among the first `limit * 8`.
    fn start_riders(&mut self, now: Millis, limit: usize, fits: fn(Seq) -> bool) -> Vec<Seq> {
        let mut free: Vec<(Priority, Seq)> = self
            .txs
            .iter()
            .filter(|t| self.free(t) && t.not_before <= now && !self.parked(t))
            .map(|t| (t.priority, t.seq))
            .collect();
        free.sort();
        let picked: Vec<Seq> = free
            .into_iter()
            .take(limit * 8)
            .map(|(_, s)| s)
            .filter(|&s| fits(s))
            .take(limit)
            .collect();
        for t in self.txs.iter_mut().filter(|t| picked.contains(&t.seq)) {
            t.in_flight = true;
            t.rider = true;
        }
        picked
    }

    fn next_due(&self) -> Option<Millis> {
        self.txs
            .iter()
            .filter(|t| self.free(t))
            .map(|t| t.not_before)
            .min()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        keys: Vec<u8>,
        priority: u8,
        delay: u16,
    },
    Start {
        advance: u16,
    },
    Batch {
        advance: u16,
        limit: u8,
    },
    Succeed(usize),
    Fail(usize, u16),
    Remove(usize),
    Revive(usize),
    Hold(usize),
    HoldLow(bool),
    Unhold(usize),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::collection::vec(0u8..6, 0..3), 0u8..3, prop_oneof![Just(0u16), 0u16..500])
            .prop_map(|(keys, priority, delay)| Op::Insert { keys, priority, delay }),
        5 => (0u16..300).prop_map(|advance| Op::Start { advance }),
        2 => (0u16..300, 1u8..6).prop_map(|(advance, limit)| Op::Batch { advance, limit }),
        3 => any::<usize>().prop_map(Op::Succeed),
        2 => (any::<usize>(), 0u16..800).prop_map(|(i, d)| Op::Fail(i, d)),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::Revive),
        1 => any::<usize>().prop_map(Op::Hold),
        1 => any::<usize>().prop_map(Op::Unhold),
        1 => any::<bool>().prop_map(Op::HoldLow),
        1 => Just(Op::Reset),
    ]
}

fn run_against_naive(fifo: bool, max: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ordering = if fifo {
        Ordering::Fifo
    } else {
        Ordering::PerKey
    };
    let mut s = Scheduler::new(ordering, max);
    let mut n = Naive {
        fifo,
        max,
        hold_low: false,
        txs: Vec::new(),
    };
    let mut now: Millis = 0;
    let mut next_seq: Seq = 0;
    let mut finished: Vec<NaiveTx> = Vec::new();
    let prio = |p: u8| [Priority::High, Priority::Normal, Priority::Low][p as usize % 3];
    for op in ops {
        match op {
            Op::Insert {
                keys,
                priority,
                delay,
            } => {
                next_seq += 1;
                let keys: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
                s.insert(next_seq, &keys, prio(priority), now + delay as Millis)
                    .unwrap();
                let keys = TxMeta::dedup_keys(keys);
                n.txs.push(NaiveTx {
                    seq: next_seq,
                    keys: if fifo { Vec::new() } else { keys },
                    priority: prio(priority),
                    not_before: now + delay as Millis,
                    in_flight: false,
                    held: false,
                    rider: false,
                });
            }
            Op::Start { advance } => {
                now += advance as Millis;
                loop {
                    let a = s.start_next(now);
                    let b = n.start_next(now);
                    prop_assert_eq!(a, b, "start_next at {}", now);
                    if a.is_none() {
                        break;
                    }
                }
            }
            Op::Batch { advance, limit } => {
                now += advance as Millis;
                let a = s.start_next(now);
                prop_assert_eq!(a, n.start_next(now), "start_next at {}", now);
                if a.is_some() {
                    let even = |seq: Seq| seq % 2 == 0;
                    let riders = s.start_riders(now, limit as usize, even);
                    prop_assert_eq!(riders, n.start_riders(now, limit as usize, even));
                }
            }
            Op::Succeed(i) | Op::Fail(i, _) => {
                let flying: Vec<usize> = (0..n.txs.len()).filter(|&j| n.txs[j].in_flight).collect();
                if flying.is_empty() {
                    continue;
                }
                let j = flying[i % flying.len()];
                let seq = n.txs[j].seq;
                if let Op::Fail(_, d) = op {
                    s.retry(seq, now + d as Millis).unwrap();
                    n.txs[j].in_flight = false;
                    n.txs[j].rider = false;
                    n.txs[j].not_before = now + d as Millis;
                } else {
                    s.finish(seq).unwrap();
                    finished.push(n.txs.remove(j));
                }
            }
            Op::Remove(i) => {
                let idle: Vec<usize> = (0..n.txs.len()).filter(|&j| !n.txs[j].in_flight).collect();
                if idle.is_empty() {
                    continue;
                }
                let j = idle[i % idle.len()];
                s.remove(n.txs[j].seq).unwrap();
                finished.push(n.txs.remove(j));
            }
            Op::Revive(i) => {
                if finished.is_empty() {
                    continue;
                }
                let mut t = finished.remove(i % finished.len());
                t.in_flight = false;
                t.held = false;
                t.rider = false;
                t.not_before = now;
                s.insert(t.seq, &t.keys, t.priority, t.not_before).unwrap();
                n.txs.push(t);
            }
            Op::Hold(i) => {
                if n.txs.is_empty() {
                    continue;
                }
                let j = i % n.txs.len();
                s.hold(n.txs[j].seq).unwrap();
                n.txs[j].in_flight = false;
                n.txs[j].rider = false;
                n.txs[j].held = true;
            }
            Op::Unhold(i) => {
                let held: Vec<usize> = (0..n.txs.len()).filter(|&j| n.txs[j].held).collect();
                if held.is_empty() {
                    continue;
                }
                let j = held[i % held.len()];
                s.unhold(n.txs[j].seq).unwrap();
                n.txs[j].held = false;
                n.txs[j].not_before = 0;
            }
            Op::HoldLow(hold) => {
                s.set_hold_low(hold);
                n.hold_low = hold;
            }
            Op::Reset => {
                s.reset_delays();
                for t in n.txs.iter_mut().filter(|t| !t.in_flight && !t.held) {
                    t.not_before = 0;
                }
            }
        }
        // While low priority is held, next_due may name a parked one's time (a spurious
        // wake-up, harmless); the starts above are what must agree.
        if !n.hold_low {
            prop_assert_eq!(
                s.next_due().map(|t| t.max(now)),
                n.next_due().map(|t| t.max(now))
            );
        }
        prop_assert_eq!(s.len(), n.txs.len());
        prop_assert_eq!(s.in_flight(), n.txs.iter().filter(|t| t.in_flight).count());
    }
    Ok(())
}

use crate::model::TxMeta;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn per_key_matches_reference(max in 1usize..5, ops in prop::collection::vec(op(), 1..120)) {
        run_against_naive(false, max, ops)?;
    }

    #[test]
    fn fifo_matches_reference(max in 1usize..5, ops in prop::collection::vec(op(), 1..80)) {
        run_against_naive(true, max, ops)?;
    }
}

#[test]
fn riders_share_one_concurrency_slot_and_never_a_key() {
    let mut s = sched(1);
    for (seq, k) in [(1, "a"), (2, "a"), (3, "b"), (4, "c"), (5, "d")] {
        s.insert(seq, &[k], Priority::Normal, 0).unwrap();
    }
    assert_eq!(s.start_next(0), Some(1));
    // 2 shares key a with 1: not runnable, so not a rider.
    assert_eq!(s.start_riders(0, 2, |_| true), vec![3, 4]);
    assert_eq!(s.in_flight(), 3);
    assert_eq!(s.start_next(0), None, "the batch holds the one slot");
    s.finish(3).unwrap();
    s.finish(4).unwrap();
    assert_eq!(
        s.start_next(0),
        None,
        "the batch's first member still holds it"
    );
    s.finish(1).unwrap();
    assert_eq!(s.start_next(0), Some(2));
    assert_eq!(s.start_riders(0, 5, |seq| seq != 5), Vec::<Seq>::new());
}

#[test]
fn held_low_priority_waits_and_blocks_its_keys_only() {
    let mut s = sched(4);
    s.insert(1, &["a"], Priority::Low, 0).unwrap();
    s.insert(2, &["a"], Priority::High, 0).unwrap();
    s.insert(3, &["b"], Priority::Normal, 0).unwrap();
    s.insert(4, &["c"], Priority::Low, 50).unwrap();
    s.set_hold_low(true);
    assert_eq!(
        drain_now(&mut s, 0),
        vec![3],
        "2 waits behind the held 1 on key a"
    );
    assert_eq!(s.parked(), 1);
    assert!(!s.has_runnable(0));
    assert_eq!(s.next_due(), Some(50));
    assert_eq!(s.start_next(60), None, "4 became due while held");
    assert_eq!(s.parked(), 2);
    s.set_hold_low(false);
    assert_eq!(drain_now(&mut s, 60), vec![1, 4]);
    s.finish(1).unwrap();
    assert_eq!(s.start_next(60), Some(2));
    // Holding again parks what is runnable and low at that moment.
    s.insert(5, &["d"], Priority::Low, 0).unwrap();
    s.set_hold_low(true);
    assert_eq!(s.start_next(60), None);
    assert_eq!(s.remove(5), Ok(()));
    assert_eq!(s.parked(), 0);
}
