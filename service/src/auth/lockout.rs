//! The login lockout state machine, kept pure so its rules are tested with explicit times.
//!
//! Failures count up per user; reaching the threshold locks the account for a fixed period and
//! resets the count, so the next period starts fresh. A success resets the count.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub threshold: i32,
    pub duration: TimeDelta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    Locked { until: DateTime<Utc> },
}

/// May this account try to log in now?
pub fn gate(locked_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Gate {
    match locked_until {
        Some(until) if until > now => Gate::Locked { until },
        _ => Gate::Open,
    }
}

/// State after one more failure, given the count before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    pub failed_count: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

pub fn after_failure(policy: LockoutPolicy, count_before: i32, now: DateTime<Utc>) -> AfterFailure {
    let count = count_before.saturating_add(1);
    if count >= policy.threshold {
        AfterFailure {
            failed_count: 0,
            locked_until: Some(now + policy.duration),
        }
    } else {
        AfterFailure {
            failed_count: count,
            locked_until: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn five_failures_lock_for_fifteen_minutes_then_a_fresh_count() {
        let policy = LockoutPolicy {
            threshold: 5,
            duration: TimeDelta::minutes(15),
        };
        let clock = ManualClock::at(1_700_000_000);
        let mut count = 0;
        let mut locked_until = None;
        for attempt in 1..=5 {
            assert_eq!(
                gate(locked_until, clock.now()),
                Gate::Open,
                "attempt {attempt}"
            );
            let next = after_failure(policy, count, clock.now());
            count = next.failed_count;
            locked_until = next.locked_until.or(locked_until);
            clock.advance(TimeDelta::seconds(1));
        }
        let until = locked_until.expect("locked after the fifth failure");
        assert_eq!(gate(locked_until, clock.now()), Gate::Locked { until });
        clock.advance(TimeDelta::minutes(14));
        assert!(matches!(
            gate(locked_until, clock.now()),
            Gate::Locked { .. }
        ));
        clock.advance(TimeDelta::minutes(1));
        assert_eq!(gate(locked_until, clock.now()), Gate::Open);
        assert_eq!(count, 0, "the count restarts after a lock");
        assert_eq!(after_failure(policy, count, clock.now()).locked_until, None);
    }
}
