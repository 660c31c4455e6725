//! Leader election over a broadcast medium, for contexts without Web Locks: a heartbeat
//! lease with claims. A plain state machine: the caller delivers messages and timer
//! ticks with the current time, and performs the actions it returns.
//!
//! - The leader broadcasts a heartbeat every `heartbeat_ms`.
//! - A follower that hears none for `lease_ms` (its watchdog) claims leadership and
//!   listens for `claim_ms`; among the contexts that claimed, the lowest id wins
//!   (deterministic: every claimant decides the same). A heartbeat ends a claim.
//! - A leader that resigns (closes) says so, and followers claim at once.
//! - A leader that hears another leader's heartbeat demotes itself unless its epoch is
//!   newer (ties go to the lower id). Epochs come from the store, where they also fence
//!   writes, so a leader that has not heard the news yet still cannot write.

use crate::model::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    Heartbeat {
        from: u64,
        epoch: u64,
    },
    Claim {
        from: u64,
    },
    Resign {
        from: u64,
    },
    /// A new context asks whether a leader exists; the leader answers with a heartbeat.
    Who {
        from: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Msg),
    BecomeLeader,
    BecomeFollower,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat_ms: Millis,
    pub lease_ms: Millis,
    pub claim_ms: Millis,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_ms: 200,
            lease_ms: 800,
            claim_ms: 150,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Follower,
    Claiming { since: Millis, best: u64 },
    Leader { beat_at: Millis },
    Stopped,
}

#[derive(Clone, Debug)]
pub struct Lease {
    me: u64,
    timing: Timing,
    role: Role,
    heard_at: Millis,
    epoch: u64,
}

impl Lease {
    /// A new participant. It asks who leads and claims if nobody answers within a claim
    /// window.
    pub fn start(me: u64, timing: Timing, now: Millis) -> (Self, Vec<Action>) {
        let lease = Self {
            me,
            timing,
            role: Role::Follower,
            // Pretend the last heartbeat was just long enough ago that the watchdog fires
            // after one claim window of silence.
            heard_at: now
                .saturating_add(timing.claim_ms)
                .saturating_sub(timing.lease_ms),
            epoch: 0,
        };
        (lease, vec![Action::Send(Msg::Who { from: me })])
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// The epoch this leader obtained from the store; sent with heartbeats.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// When `tick` should be called next.
    pub fn next_tick(&self) -> Option<Millis> {
        match self.role {
            Role::Follower => Some(self.heard_at.saturating_add(self.timing.lease_ms)),
            Role::Claiming { since, .. } => Some(since.saturating_add(self.timing.claim_ms)),
            Role::Leader { beat_at } => Some(beat_at.saturating_add(self.timing.heartbeat_ms)),
            Role::Stopped => None,
        }
    }

    pub fn tick(&mut self, now: Millis) -> Vec<Action> {
        match self.role {
            Role::Follower if now >= self.heard_at.saturating_add(self.timing.lease_ms) => {
                self.role = Role::Claiming {
                    since: now,
                    best: self.me,
                };
                vec![Action::Send(Msg::Claim { from: self.me })]
            }
            Role::Claiming { since, best } if now >= since.saturating_add(self.timing.claim_ms) => {
                if best == self.me {
                    self.role = Role::Leader { beat_at: now };
                    vec![Action::BecomeLeader, self.heartbeat()]
                } else {
                    // Someone lower claimed: give the winner a lease to show up.
                    self.role = Role::Follower;
                    self.heard_at = now;
                    Vec::new()
                }
            }
            Role::Leader { beat_at } if now >= beat_at.saturating_add(self.timing.heartbeat_ms) => {
                self.role = Role::Leader { beat_at: now };
                vec![self.heartbeat()]
            }
            _ => Vec::new(),
        }
    }

    fn heartbeat(&self) -> Action {
        Action::Send(Msg::Heartbeat {
            from: self.me,
            epoch: self.epoch,
        })
    }

    pub fn on_message(&mut self, msg: Msg, now: Millis) -> Vec<Action> {
        match (self.role, msg) {
            (Role::Stopped, _) => Vec::new(),
            (Role::Leader { .. }, Msg::Heartbeat { from, epoch }) if from != self.me => {
                if (epoch, std::cmp::Reverse(from)) > (self.epoch, std::cmp::Reverse(self.me)) {
                    self.role = Role::Follower;
                    self.heard_at = now;
                    vec![Action::BecomeFollower]
                } else {
                    vec![self.heartbeat()]
                }
            }
            (Role::Leader { .. }, Msg::Claim { .. } | Msg::Who { .. }) => vec![self.heartbeat()],
            (Role::Leader { .. }, _) => Vec::new(),
            (_, Msg::Heartbeat { .. }) => {
                self.role = Role::Follower;
                self.heard_at = now;
                Vec::new()
            }
            (Role::Claiming { since, best }, Msg::Claim { from }) => {
                self.role = Role::Claiming {
                    since,
                    best: best.min(from),
                };
                Vec::new()
            }
            (Role::Follower, Msg::Claim { from }) => {
                if now >= self.heard_at.saturating_add(self.timing.lease_ms) {
                    // The leader is gone for us too: join the election.
                    self.role = Role::Claiming {
                        since: now,
                        best: self.me.min(from),
                    };
                    vec![Action::Send(Msg::Claim { from: self.me })]
                } else {
                    Vec::new()
                }
            }
            (Role::Follower, Msg::Resign { .. }) => {
                self.role = Role::Claiming {
                    since: now,
                    best: self.me,
                };
                vec![Action::Send(Msg::Claim { from: self.me })]
            }
            _ => Vec::new(),
        }
    }

    /// A leader found out (through a fenced write) that a newer leader exists: it follows
    /// and gives the newer one a full lease.
    pub fn step_down(&mut self, now: Millis) {
        if self.is_leader() {
            self.role = Role::Follower;
            self.heard_at = now;
        }
    }

    /// Leaves the election (the outbox closes); a leader tells the others.
    pub fn stop(&mut self) -> Vec<Action> {
        let was_leader = self.is_leader();
        self.role = Role::Stopped;
        if was_leader {
            vec![Action::Send(Msg::Resign { from: self.me })]
        } else {
            Vec::new()
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Several participants on one lossless broadcast medium, driven by simulated time.
    struct Net {
        nodes: Vec<Option<Lease>>,
        epochs: u64,
        now: Millis,
        leader_changes: Vec<(Millis, usize, bool)>,
    }

    impl Net {
        fn new() -> Self {
            Self {
                nodes: Vec::new(),
                epochs: 0,
                now: 1_700_000_000_000,
                leader_changes: Vec::new(),
            }
        }

        fn join(&mut self, id: u64) -> usize {
            let (lease, actions) = Lease::start(id, Timing::default(), self.now);
            self.nodes.push(Some(lease));
            let i = self.nodes.len() - 1;
            self.perform(i, actions);
            i
        }

        fn perform(&mut self, i: usize, actions: Vec<Action>) {
            let mut queue: Vec<(usize, Action)> = actions.into_iter().map(|a| (i, a)).collect();
            while !queue.is_empty() {
                let (from, action) = queue.remove(0);
                match action {
                    Action::Send(msg) => {
                        for j in 0..self.nodes.len() {
                            if j == from {
                                continue;
                            }
                            if let Some(node) = self.nodes[j].as_mut() {
                                let out = node.on_message(msg, self.now);
                                queue.extend(out.into_iter().map(|a| (j, a)));
                            }
                        }
                    }
                    Action::BecomeLeader => {
                        self.epochs += 1;
                        let epoch = self.epochs;
                        if let Some(node) = self.nodes[from].as_mut() {
                            node.set_epoch(epoch);
                        }
                        self.leader_changes.push((self.now, from, true));
                    }
                    Action::BecomeFollower => self.leader_changes.push((self.now, from, false)),
                }
            }
        }

        fn advance(&mut self, ms: Millis) {
            let end = self.now + ms;
            while self.now < end {
                self.now += 5;
                for i in 0..self.nodes.len() {
                    let due = self.nodes[i]
                        .as_ref()
                        .and_then(|n| n.next_tick())
                        .is_some_and(|t| t <= self.now);
                    if due {
                        let actions = self.nodes[i].as_mut().unwrap().tick(self.now);
                        self.perform(i, actions);
                    }
                }
            }
        }

        fn leaders(&self) -> Vec<usize> {
            (0..self.nodes.len())
                .filter(|&i| self.nodes[i].as_ref().is_some_and(|n| n.is_leader()))
                .collect()
        }

        fn close(&mut self, i: usize) {
            if let Some(mut node) = self.nodes[i].take() {
                let actions = node.stop();
                self.nodes[i] = Some(node);
                self.perform(i, actions);
                self.nodes[i] = None;
            }
        }

        fn crash(&mut self, i: usize) {
            self.nodes[i] = None;
        }
    }

    #[test]
    fn a_lone_context_leads_after_one_claim_window() {
        let mut net = Net::new();
        net.join(7);
        net.advance(100);
        assert!(net.leaders().is_empty());
        net.advance(300);
        assert_eq!(net.leaders(), vec![0]);
    }

    #[test]
    fn lowest_id_wins_a_simultaneous_start() {
        let mut net = Net::new();
        for id in [30, 10, 20] {
            net.join(id);
        }
        net.advance(1_000);
        assert_eq!(net.leaders(), vec![1]);
    }

    #[test]
    fn a_late_joiner_does_not_take_over() {
        let mut net = Net::new();
        net.join(50);
        net.advance(500);
        net.join(1);
        net.advance(2_000);
        assert_eq!(net.leaders(), vec![0]);
    }

    #[test]
    fn resign_hands_over_within_a_claim_window() {
        let mut net = Net::new();
        net.join(1);
        net.advance(500);
        net.join(2);
        net.join(3);
        net.advance(500);
        net.close(0);
        let at = net.now;
        net.advance(300);
        assert_eq!(net.leaders(), vec![1]);
        let (when, who, _) = *net.leader_changes.last().unwrap();
        assert_eq!(who, 1);
        assert!(when - at <= 200, "{}", when - at);
    }

    #[test]
    fn crash_is_detected_by_the_watchdog_within_lease_plus_claim() {
        let mut net = Net::new();
        net.join(1);
        net.advance(500);
        net.join(2);
        net.advance(500);
        net.crash(0);
        let at = net.now;
        net.advance(2_000);
        assert_eq!(net.leaders(), vec![1]);
        let (when, _, _) = *net.leader_changes.last().unwrap();
        let t = Timing::default();
        assert!(
            when - at <= t.lease_ms + t.heartbeat_ms + t.claim_ms,
            "{}",
            when - at
        );
    }

    #[test]
    fn duplicate_leaders_resolve_to_the_newer_epoch() {
        let t = Timing::default();
        let t0 = 1_700_000_000_000;
        let (mut a, _) = Lease::start(1, t, t0);
        let (mut b, _) = Lease::start(2, t, t0);
        a.tick(t0 + 150);
        a.tick(t0 + 300);
        b.tick(t0 + 150);
        b.tick(t0 + 300);
        assert!(a.is_leader() && b.is_leader());
        a.set_epoch(4);
        b.set_epoch(5);
        assert_eq!(
            a.on_message(Msg::Heartbeat { from: 2, epoch: 5 }, t0 + 310),
            vec![Action::BecomeFollower]
        );
        assert_eq!(
            b.on_message(Msg::Heartbeat { from: 1, epoch: 4 }, t0 + 310),
            vec![Action::Send(Msg::Heartbeat { from: 2, epoch: 5 })]
        );
        assert!(!a.is_leader() && b.is_leader());
    }

    proptest! {
        /// Contexts join, close and crash at random; once things settle there is exactly
        /// one leader among the living.
        #[test]
        fn converges_to_one_leader(events in prop::collection::vec((0u8..3, 0u16..600), 1..25)) {
            let mut net = Net::new();
            let mut next_id = 100u64;
            net.join(next_id);
            for (kind, wait) in events {
                match kind {
                    0 => { next_id += 1; net.join(next_id); }
                    1 => { if let Some(&l) = net.leaders().first() { net.close(l); } }
                    _ => { if let Some(&l) = net.leaders().first() { net.crash(l); } }
                }
                net.advance(wait as Millis);
            }
            net.advance(3_000);
            let alive = net.nodes.iter().filter(|n| n.is_some()).count();
            prop_assert_eq!(net.leaders().len(), usize::from(alive > 0));
        }
    }
}
