//! Send metrics: attempt latency percentiles, the success rate of attempts, and the
//! progress of the current run of work (from leaving idle to the next `drained`).
//! Pure: durations and outcomes are passed in.

/// Latencies kept for the percentiles: the most recent attempts.
const WINDOW: usize = 1_024;

#[derive(Debug, Default)]
pub struct Metrics {
    /// A ring: once full, `next` is where the next latency replaces the oldest.
    latencies: Vec<f64>,
    next: usize,
    succeeded: u64,
    failed: u64,
    /// Transactions settled (acknowledged or dead) in the current run.
    run_done: u64,
}

/// What a `progress` event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

impl Metrics {
    /// One attempt ended after `ms`; `ok` when the handler acknowledged.
    pub fn record(&mut self, ms: f64, ok: bool) {
        let ms = if ms > 0.0 { ms } else { 0.0 };
        if self.latencies.len() < WINDOW {
            self.latencies.push(ms);
        } else {
            self.latencies[self.next] = ms;
        }
        self.next = (self.next + 1) % WINDOW;
        if ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
    }

    /// Nearest-rank percentile (`p` in 0..=100) of the recent attempt latencies.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        // Latencies are never negative, and the bits of non-negative floats sort as the
        // floats do: sorting them reuses the integer sort the store links anyway.
        let mut sorted: Vec<u64> = self.latencies.iter().map(|l| l.to_bits()).collect();
        sorted.sort_unstable();
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
        Some(f64::from_bits(sorted[rank.clamp(1, sorted.len()) - 1]))
    }

    /// Acknowledged attempts over all finished attempts since open.
    pub fn success_rate(&self) -> Option<f64> {
        let all = self.succeeded + self.failed;
        (all > 0).then(|| self.succeeded as f64 / all as f64)
    }

    /// A transaction settled; `remaining` are still in the outbox.
    pub fn settled(&mut self, remaining: usize) -> Progress {
        self.run_done += 1;
        Progress {
            done: self.run_done,
            total: self.run_done + remaining as u64,
        }
    }

    /// The outbox went idle: the next settlement starts a new run.
    pub fn end_run(&mut self) {
        self.run_done = 0;
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut m = Metrics::default();
        assert_eq!(m.percentile(50.0), None);
        for ms in [40.0, 10.0, 30.0, 20.0, 50.0] {
            m.record(ms, true);
        }
        assert_eq!(m.percentile(0.0), Some(10.0));
        assert_eq!(m.percentile(50.0), Some(30.0));
        assert_eq!(m.percentile(90.0), Some(50.0));
        assert_eq!(m.percentile(100.0), Some(50.0));
    }

    #[test]
    fn only_the_recent_window_counts_for_latency() {
        let mut m = Metrics::default();
        for _ in 0..WINDOW {
            m.record(1_000.0, true);
        }
        for _ in 0..WINDOW {
            m.record(1.0, false);
        }
        assert_eq!(m.percentile(99.0), Some(1.0));
        assert_eq!(m.success_rate(), Some(0.5));
    }

    #[test]
    fn each_new_latency_replaces_the_oldest() {
        let mut m = Metrics::default();
        for i in 0..WINDOW {
            m.record(i as f64, true);
        }
        for _ in 0..10 {
            m.record(1e9, true);
        }
        assert_eq!(m.percentile(0.0), Some(10.0));
        assert_eq!(m.percentile(100.0), Some(1e9));
    }

    #[test]
    fn progress_counts_one_run_at_a_time() {
        let mut m = Metrics::default();
        assert_eq!(m.settled(2), Progress { done: 1, total: 3 });
        assert_eq!(m.settled(5), Progress { done: 2, total: 7 });
        m.end_run();
        assert_eq!(m.settled(0), Progress { done: 1, total: 1 });
    }

    proptest! {
        #[test]
        fn percentile_is_a_recorded_value_and_monotone(
            xs in prop::collection::vec(0.0f64..1e6, 1..200),
            a in 0.0f64..100.0,
            b in 0.0f64..100.0,
        ) {
            let mut m = Metrics::default();
            for &x in &xs {
                m.record(x, true);
            }
            let (lo, hi) = (a.min(b), a.max(b));
            let (pl, ph) = (m.percentile(lo).unwrap(), m.percentile(hi).unwrap());
            prop_assert!(xs.contains(&pl) && xs.contains(&ph));
            prop_assert!(pl <= ph);
        }
    }
}
