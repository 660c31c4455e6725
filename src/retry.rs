//! The retry policy: how long to wait after a failed attempt, and when to give up.
//!
//! Exponential backoff (`base * 2^(attempt-1)`, capped) with jitter. Time and randomness
//! are arguments, so hours of retries replay in microseconds in tests.

use crate::model::Millis;

/// How the backoff delay is randomised, so that many clients failing together do not
/// retry together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, delay)`: spreads a thundering herd the most (the AWS recommendation).
    #[default]
    Full,
    /// Uniform in `[delay/2, delay)`: never retries too eagerly.
    Equal,
    /// Exactly the delay.
    None,
}

impl Jitter {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "equal" => Some(Self::Equal),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base_delay_ms: Millis,
    pub max_delay_ms: Millis,
    /// `None`: retry forever. A transaction is never dropped; past the limit it is dead.
    pub max_attempts: Option<u32>,
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay_ms: 1_000,
            max_delay_ms: 60_000,
            max_attempts: None,
            jitter: Jitter::Full,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    RetryAt(Millis),
    Dead,
}

impl RetryPolicy {
    /// The delay before the next attempt, after `attempts` failed ones (1 or more).
    /// `unit` is a uniform sample in `[0, 1)`.
    pub fn backoff(&self, attempts: u32, unit: f64) -> Millis {
        let exp = attempts.saturating_sub(1).min(63);
        let raw = self
            .base_delay_ms
            .checked_mul(1u64 << exp)
            .unwrap_or(Millis::MAX);
        let capped = raw.min(self.max_delay_ms);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self.jitter {
            Jitter::None => capped,
            Jitter::Full => (capped as f64 * unit) as Millis,
            Jitter::Equal => {
                let half = capped / 2;
                half + ((capped - half) as f64 * unit) as Millis
            }
        }
    }

    /// What to do after attempt number `attempts` failed at `now`. `retry_after` is the
    /// delay the failure asked for (a handler's `retryAfterMs`, a `Retry-After` header);
    /// it replaces the computed backoff.
    pub fn after_failure(
        &self,
        attempts: u32,
        retry_after: Option<Millis>,
        now: Millis,
        unit: f64,
    ) -> Decision {
        if self.max_attempts.is_some_and(|max| attempts >= max) {
            return Decision::Dead;
        }
        let delay = retry_after.unwrap_or_else(|| self.backoff(attempts, unit));
        Decision::RetryAt(now.saturating_add(delay))
    }
}

/// SplitMix64: a tiny, well-mixed generator for jitter. Seeded from the platform's
/// randomness by the caller; seeded by hand in tests.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn doubles_from_base_and_caps() {
        let p = policy(Jitter::None);
        let delays: Vec<Millis> = (1..=8).map(|a| p.backoff(a, 0.5)).collect();
        assert_eq!(
            delays,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(p.backoff(10_000, 0.5), 60_000);
    }

    #[test]
    fn full_jitter_spans_zero_to_delay_and_equal_keeps_half() {
        let full = policy(Jitter::Full);
        assert_eq!(full.backoff(3, 0.0), 0);
        assert_eq!(full.backoff(3, 0.5), 2_000);
        let equal = policy(Jitter::Equal);
        assert_eq!(equal.backoff(3, 0.0), 2_000);
        assert_eq!(equal.backoff(3, 0.999_999), 3_999);
    }

    #[test]
    fn retry_after_overrides_backoff() {
        let p = policy(Jitter::None);
        assert_eq!(
            p.after_failure(1, Some(7_500), 100, 0.3),
            Decision::RetryAt(7_600)
        );
    }

    #[test]
    fn unlimited_by_default_dead_past_max_attempts() {
        assert_eq!(
            policy(Jitter::None).after_failure(1_000_000, None, 0, 0.0),
            Decision::RetryAt(60_000)
        );
        let p = RetryPolicy {
            max_attempts: Some(3),
            ..policy(Jitter::None)
        };
        assert_eq!(p.after_failure(2, None, 0, 0.0), Decision::RetryAt(2_000));
        assert_eq!(p.after_failure(3, None, 0, 0.0), Decision::Dead);
    }

    #[test]
    fn a_day_of_retries_replays_instantly() {
        let p = RetryPolicy::default();
        let mut rng = Rng::new(42);
        let (mut now, mut attempts) = (0u64, 0u32);
        while now < 24 * 3_600_000 {
            attempts += 1;
            match p.after_failure(attempts, None, now, rng.unit()) {
                Decision::RetryAt(t) => now = t.max(now + 1),
                Decision::Dead => unreachable!("unlimited attempts"),
            }
        }
        // Full jitter averages half the 60 s cap once saturated: about 2,880 attempts a day.
        assert!((2_000..4_500).contains(&attempts), "{attempts}");
    }

    #[test]
    fn rng_is_deterministic_and_uniform_enough() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<f64> = (0..10_000).map(|_| a.unit()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x) && x == b.unit()));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }

    proptest! {
        #[test]
        fn delay_within_bounds(
            base in 0u64..100_000, max in 0u64..10_000_000, attempts in 1u32..200,
            unit in 0.0f64..1.0, jitter in 0usize..3,
        ) {
            let jitter = [Jitter::Full, Jitter::Equal, Jitter::None][jitter];
            let p = RetryPolicy { base_delay_ms: base, max_delay_ms: max, max_attempts: None, jitter };
            let d = p.backoff(attempts, unit);
            let ceiling = base.saturating_mul(1u64 << (attempts - 1).min(63)).min(max);
            prop_assert!(d <= ceiling);
            if jitter == Jitter::Equal { prop_assert!(d >= ceiling / 2); }
            if jitter == Jitter::None { prop_assert_eq!(d, ceiling); }
        }

        #[test]
        fn backoff_never_decreases_without_jitter(base in 1u64..10_000, a in 1u32..100) {
            let p = RetryPolicy { base_delay_ms: base, jitter: Jitter::None, ..RetryPolicy::default() };
            prop_assert!(p.backoff(a + 1, 0.0) >= p.backoff(a, 0.0));
        }
    }
}
