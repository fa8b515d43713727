//! A run of failures of one background loop (the feeder, the apalis worker) while a dependency
//! such as Redis is down: the loop waits longer after each failure, up to a cap, and says so in
//! the log once when it starts failing, once a minute while it goes on and once when it
//! recovers — not at every attempt, which during an hour-long outage would flood the log store.

use std::time::{Duration, Instant};

/// How often a continuing failure is repeated in the log.
const REMIND_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct FailureStreak {
    what: &'static str,
    base: Duration,
    max: Duration,
    failures: u32,
    last_logged: Option<Instant>,
}

impl FailureStreak {
    /// `base` is the pause of a healthy loop; failures double it up to `max`.
    pub fn new(what: &'static str, base: Duration, max: Duration) -> Self {
        Self {
            what,
            base,
            max,
            failures: 0,
            last_logged: None,
        }
    }

    /// A pass failed: logs when due and returns how long to wait before the next one.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let due = self
            .last_logged
            .is_none_or(|at| at.elapsed() >= REMIND_EVERY);
        if due {
            tracing::warn!(
                failures = self.failures,
                error = %error,
                "{} failing; retrying with backoff",
                self.what
            );
            self.last_logged = Some(Instant::now());
        }
        self.pause()
    }

    /// A pass succeeded: logs the recovery after a streak and returns the healthy pause.
    pub fn succeeded(&mut self) -> Duration {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "{} recovered", self.what);
        }
        self.failures = 0;
        self.last_logged = None;
        self.base
    }

    /// Forgets the streak without a word: for a loop that learns only at its next failure that
    /// it had been healthy meanwhile (the feeder's own streak already said when dispatch
    /// recovered).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.last_logged = None;
    }

    /// The wait after the current number of failures.
    pub fn pause(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_double_the_pause_up_to_the_cap_and_success_resets_it() {
        let mut streak =
            FailureStreak::new("feed", Duration::from_millis(250), Duration::from_secs(5));
        let pauses: Vec<u128> = (0..8).map(|_| streak.failed(&"down").as_millis()).collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(streak.succeeded(), Duration::from_millis(250));
        assert_eq!(streak.failed(&"down"), Duration::from_millis(250));
        streak.failed(&"down");
        streak.reset();
        assert_eq!(streak.failed(&"down"), Duration::from_millis(250));
    }

    #[test]
    fn a_long_streak_does_not_overflow() {
        let mut streak =
            FailureStreak::new("feed", Duration::from_secs(1), Duration::from_secs(10));
        for _ in 0..100_000 {
            streak.failed(&"down");
        }
        assert_eq!(streak.pause(), Duration::from_secs(10));
    }
}
