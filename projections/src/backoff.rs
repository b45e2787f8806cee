//! Exponential backoff: the one retry schedule of the workspace (the projection runner,
//! the event listener, the gate's result caching, the event store's lost races, the
//! notification reconciler's sends, upstream reconnects). It lives in this crate because
//! it is the lowest one that waits on I/O.

use std::time::Duration;

/// A schedule: `initial` after the first failure, doubling per further failure, never
/// more than `max`; with jitter, each delay is half fixed and half random ("equal
/// jitter"), so that many callers failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: bool,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, jitter: false }
    }

    pub const fn with_jitter(self) -> Self {
        Backoff { jitter: true, ..self }
    }

    /// The delay after `failures` consecutive failures (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.max(1).saturating_sub(1).min(30);
        let delay = self.initial.saturating_mul(1 << exponent).min(self.max);
        if self.jitter {
            let half = delay / 2;
            half + half.mul_f64(rand::random::<f64>())
        } else {
            delay
        }
    }

    /// A counter of consecutive failures on this schedule.
    pub fn retries(&self) -> Retries {
        Retries { backoff: *self, failures: 0 }
    }
}

/// Consecutive failures so far, and the delay each new one earns.
#[derive(Debug, Clone)]
pub struct Retries {
    backoff: Backoff,
    failures: u32,
}

impl Retries {
    /// Counts a failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.backoff.delay(self.failures)
    }

    /// A success: the next failure waits the initial delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = Backoff::new(SECOND, 60 * SECOND);
        let delays: Vec<u64> = (1..=8).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff.delay(0), SECOND, "no failure yet waits like the first");
        assert_eq!(backoff.delay(u32::MAX), 60 * SECOND);
    }

    #[test]
    fn jitter_keeps_half_and_spreads_the_rest() {
        let backoff = Backoff::new(SECOND, 60 * SECOND).with_jitter();
        for _ in 0..100 {
            let fourth = backoff.delay(4);
            assert!(fourth >= 4 * SECOND && fourth <= 8 * SECOND, "{fourth:?}");
        }
        let spread: std::collections::HashSet<u128> = (0..20).map(|_| backoff.delay(5).as_nanos()).collect();
        assert!(spread.len() > 1, "jitter spreads retries");
    }

    #[test]
    fn retries_count_failures_until_reset() {
        let mut retries = Backoff::new(SECOND, 10 * SECOND).retries();
        assert_eq!(
            [retries.next_delay(), retries.next_delay(), retries.next_delay()],
            [SECOND, 2 * SECOND, 4 * SECOND]
        );
        assert_eq!(retries.failures(), 3);
        retries.reset();
        assert_eq!(retries.next_delay(), SECOND);
    }
}
