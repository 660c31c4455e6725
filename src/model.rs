//! The transaction model: what the outbox stores about each transaction besides its payload,
//! and the options that shape scheduling. Plain data, no web types.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as `Date.now()` gives them.
pub type Millis = u64;

/// Position in the global order. Allocated by IndexedDB inside the enqueue write, so it is
/// consistent across every context that shares the database.
pub type Seq = u64;

/// Which runnable transactions go first (key order still holds). `Ord` sorts `High`
/// first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Before every normal and low one that is runnable.
    High,
    /// The default.
    #[default]
    Normal,
    /// After the others; held back on a metered connection under the `wifi-preferred`
    /// network policy.
    Low,
}

impl Priority {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "high" => Some(Self::High),
            "normal" => Some(Self::Normal),
            "low" => Some(Self::Low),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

/// How transactions are ordered against each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ordering {
    /// A transaction waits only for earlier transactions that share one of its keys.
    #[default]
    PerKey,
    /// Strict global order: one transaction at a time, in `seq` order.
    Fifo,
}

impl Ordering {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "per-key" => Some(Self::PerKey),
            "fifo" => Some(Self::Fifo),
            _ => None,
        }
    }
}

/// What later transactions on a dead transaction's keys do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeadLetterPolicy {
    /// They run: the dead one no longer holds its keys.
    #[default]
    Skip,
    /// They wait until the dead one is retried (`retryDead`) or discarded (`discardDead`).
    Block,
}

impl DeadLetterPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "skip" => Some(Self::Skip),
            "block" => Some(Self::Block),
            _ => None,
        }
    }
}

/// Where a transaction is in its life. `Acknowledged` is never stored: an acknowledged
/// record leaves the outbox; the status only appears in what `settled` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Waiting to be sent (or retried).
    Pending,
    /// Being sent now.
    InFlight,
    /// In the dead letters.
    Dead,
    /// A handler acknowledged it.
    Acknowledged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in-flight",
            Self::Dead => "dead",
            Self::Acknowledged => "acknowledged",
        }
    }
}

/// Why a transaction is in the dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadReason {
    /// The handler threw `NonRetriableError`.
    HandlerRejected,
    /// Attempts reached `maxAttempts`.
    MaxAttempts,
    /// The stored record could not be decoded.
    Corrupt,
    /// Older than `maxAgeMs` before it could be sent.
    Expired,
}

impl DeadReason {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "handler-rejected" => Some(Self::HandlerRejected),
            "max-attempts" => Some(Self::MaxAttempts),
            "corrupt" => Some(Self::Corrupt),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HandlerRejected => "handler-rejected",
            Self::MaxAttempts => "max-attempts",
            Self::Corrupt => "corrupt",
            Self::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    pub name: String,
    pub message: String,
}

/// How one attempt ended, as the executor acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acknowledged,
    /// Try again; `after` is a delay the failure asked for (it replaces the backoff).
    Retry {
        error: LastError,
        after: Option<Millis>,
    },
    /// Never retry: to the dead letters.
    Reject(LastError),
}

/// The key of the group record of the transaction with `seq`, written `group` below it
/// (see [`TxMeta::group`]); `None` when it was written on its own.
pub fn group_key(seq: Seq, group: u32) -> Option<Seq> {
    (group != 0).then(|| seq.saturating_sub(group.into()))
}

/// The scheduling metadata of one transaction: everything but `mutations` and `metadata`,
/// which live in a separate store and are read only when the transaction is dispatched.
#[derive(Clone, Debug, PartialEq)]
pub struct TxMeta {
    /// Absent until IndexedDB allocates it on the first write.
    pub seq: Option<Seq>,
    pub id: std::rc::Rc<str>,
    pub handler: String,
    pub keys: Vec<String>,
    /// `None` when it is the id (the default): the key is not held twice in memory, which
    /// at 100,000 pending is some 4 MB.
    pub idempotency_key: Option<String>,
    pub priority: Priority,
    pub attempts: u32,
    pub created_at: Millis,
    pub next_attempt_at: Millis,
    /// Boxed: most transactions never fail, and `None` then takes 4 bytes instead of 24.
    pub last_error: Option<Box<LastError>>,
    /// Set only on records in the dead letters.
    pub dead_reason: Option<DeadReason>,
    pub dead_at: Option<Millis>,
    /// Approximate stored size of `mutations` and `metadata` (0 in records written before
    /// sizes were kept).
    pub bytes: u64,
    /// Enqueues with the same coalesce key fold into the pending one (see the engine).
    pub coalesce_key: Option<String>,
    /// Ids of transactions folded into this one: they settle with it.
    pub aliases: Vec<String>,
    /// Where the transaction was written by a group commit: how far below its seq the
    /// group's record lies (0: written on its own, also once a failed attempt or a fold
    /// has written it on its own since; the store's group edits are harmless if that
    /// write failed and this says 0 too early).
    pub group: u32,
}

impl TxMeta {
    /// The key the server dedupes on: the same on every attempt.
    pub fn idempotency_key(&self) -> &str {
        self.idempotency_key.as_deref().unwrap_or(&*self.id)
    }

    /// Sets the idempotency key, holding it only when it differs from the id.
    pub fn set_idempotency_key(&mut self, key: String) {
        self.idempotency_key = (*key != *self.id).then_some(key);
    }

    /// The transaction's id followed by those of the transactions folded into it: they
    /// settle together and are known by the store as this one.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.id).chain(self.aliases.iter().map(String::as_str))
    }

    /// The key of the group record this transaction was written in, if any.
    pub fn group_key(&self) -> Option<Seq> {
        group_key(self.seq?, self.group)
    }

    /// Keys in first-seen order without repeats, as `readTransaction` gives them: what
    /// the native tests model an enqueue with.
    #[cfg(test)]
    pub fn dedup_keys(keys: Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(keys.len());
        for k in keys {
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }
}

/// Sorted seqs folded into `[lo, hi]` runs of consecutive values, so a batch can be
/// removed with one key-range delete per run.
pub fn seq_runs(seqs: &[Seq]) -> Vec<(Seq, Seq)> {
    let mut out: Vec<(Seq, Seq)> = Vec::new();
    for &s in seqs {
        match out.last_mut() {
            Some((_, hi)) if *hi == s => {}
            Some((_, hi)) if hi.checked_add(1) == Some(s) => *hi = s,
            _ => out.push((s, s)),
        }
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn priority_round_trips_and_sorts_high_first() {
        for p in [Priority::High, Priority::Normal, Priority::Low] {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
        assert!(Priority::High < Priority::Normal && Priority::Normal < Priority::Low);
        assert_eq!(Priority::parse("urgent"), None);
    }

    #[test]
    fn dead_reason_round_trips() {
        for r in [
            DeadReason::HandlerRejected,
            DeadReason::MaxAttempts,
            DeadReason::Corrupt,
            DeadReason::Expired,
        ] {
            assert_eq!(DeadReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(DeadReason::parse("max_attempts"), None);
    }

    #[test]
    fn idempotency_key_defaults_to_the_id_and_is_held_only_when_different() {
        let mut m = TxMeta {
            seq: None,
            id: "a".into(),
            handler: "h".into(),
            keys: Vec::new(),
            idempotency_key: None,
            priority: Priority::Normal,
            attempts: 0,
            created_at: 0,
            next_attempt_at: 0,
            last_error: None,
            dead_reason: None,
            dead_at: None,
            bytes: 0,
            coalesce_key: None,
            aliases: Vec::new(),
            group: 0,
        };
        assert_eq!(m.idempotency_key(), "a");
        m.set_idempotency_key("k".into());
        assert_eq!(
            (m.idempotency_key(), m.idempotency_key.as_deref()),
            ("k", Some("k"))
        );
        m.set_idempotency_key("a".into());
        assert_eq!(
            (m.idempotency_key(), m.idempotency_key.as_deref()),
            ("a", None)
        );
        // Written on its own, or not written yet: no group record.
        assert_eq!(m.group_key(), None);
        m.seq = Some(10);
        assert_eq!(m.group_key(), None);
        m.group = 3;
        assert_eq!(m.group_key(), Some(7));
        m.seq = None;
        assert_eq!(m.group_key(), None);
    }

    #[test]
    fn ordering_parses_only_known_names() {
        assert_eq!(Ordering::parse("per-key"), Some(Ordering::PerKey));
        assert_eq!(Ordering::parse("fifo"), Some(Ordering::Fifo));
        assert_eq!(Ordering::parse("FIFO"), None);
    }

    #[test]
    fn seq_runs_fold_consecutive_values() {
        assert_eq!(
            seq_runs(&[1, 2, 3, 5, 7, 8, 8, 9]),
            [(1, 3), (5, 5), (7, 9)]
        );
        assert_eq!(seq_runs(&[]), []);
        assert_eq!(
            seq_runs(&[u64::MAX - 1, u64::MAX]),
            [(u64::MAX - 1, u64::MAX)]
        );
    }

    #[test]
    fn dedup_keeps_first_occurrence_order() {
        let keys = ["b", "a", "b", "c", "a"].map(String::from).to_vec();
        assert_eq!(TxMeta::dedup_keys(keys), ["b", "a", "c"]);
    }
}
