//! The login lockout state machine, kept pure so its rules are tested with explicit times.
//!
//! An attempt is counted when it is admitted, before its password is checked: "may I try?" and
//! "count the failure" are one step, so however many guesses arrive at once, at most `threshold`
//! of them are ever evaluated before the lock. The attempt that reaches the threshold locks the
//! account as it is admitted; if it then proves to be right, the lock is lifted again. A success
//! resets the count; an attempt that was right but could not finish (a missing TOTP code, a
//! disabled account) is given back.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub threshold: i32,
    pub duration: TimeDelta,
}

/// What the `users` row says about past failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockState {
    pub failed_count: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

/// The answer to "may I try?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Locked: do not evaluate the password.
    Refused { until: DateTime<Utc> },
    /// Evaluate it; `next` is stored first. `locks` says this attempt reached the threshold and
    /// put the lock in place (lifted again if it succeeds).
    Admitted { next: LockState, locks: bool },
}

/// Admits one attempt and counts it as a failure until it proves otherwise.
pub fn admit(policy: LockoutPolicy, state: LockState, now: DateTime<Utc>) -> Admission {
    if let Some(until) = state.locked_until.filter(|until| *until > now) {
        return Admission::Refused { until };
    }
    let count = state.failed_count.max(0).saturating_add(1);
    if count >= policy.threshold {
        Admission::Admitted {
            next: LockState {
                failed_count: 0,
                locked_until: Some(now + policy.duration),
            },
            locks: true,
        }
    } else {
        Admission::Admitted {
            next: LockState {
                failed_count: count,
                locked_until: None,
            },
            locks: false,
        }
    }
}

/// The state after an admitted attempt that was right but could not finish: its count is given
/// back, and a lock it placed is lifted with the count one short of the threshold.
pub fn give_back(policy: LockoutPolicy, state: LockState, locked_by_it: bool) -> LockState {
    if locked_by_it {
        LockState {
            failed_count: policy.threshold - 1,
            locked_until: None,
        }
    } else {
        LockState {
            failed_count: (state.failed_count - 1).max(0),
            locked_until: state.locked_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const POLICY: LockoutPolicy = LockoutPolicy {
        threshold: 5,
        duration: TimeDelta::minutes(15),
    };

    /// Admits attempts one after another, none of them finishing: the racing case, where every
    /// guess is admitted before any is evaluated.
    fn admit_all(state: &mut LockState, n: usize, now: DateTime<Utc>) -> Vec<Admission> {
        (0..n)
            .map(|_| {
                let admission = admit(POLICY, *state, now);
                if let Admission::Admitted { next, .. } = admission {
                    *state = next;
                }
                admission
            })
            .collect()
    }

    #[test]
    fn five_failures_lock_for_fifteen_minutes_then_a_fresh_count() {
        let clock = ManualClock::at(1_700_000_000);
        let mut state = LockState {
            failed_count: 0,
            locked_until: None,
        };
        for attempt in 1..=5 {
            let admission = admit(POLICY, state, clock.now());
            let Admission::Admitted { next, locks } = admission else {
                panic!("attempt {attempt} refused");
            };
            assert_eq!(locks, attempt == 5, "attempt {attempt}");
            state = next;
            clock.advance(TimeDelta::seconds(1));
        }
        let until = state.locked_until.expect("locked by the fifth attempt");
        assert_eq!(
            admit(POLICY, state, clock.now()),
            Admission::Refused { until }
        );
        clock.advance(TimeDelta::minutes(14));
        assert!(matches!(
            admit(POLICY, state, clock.now()),
            Admission::Refused { .. }
        ));
        clock.advance(TimeDelta::minutes(1));
        let Admission::Admitted { next, locks } = admit(POLICY, state, clock.now()) else {
            panic!("open again after the lock");
        };
        assert!(!locks);
        assert_eq!(next.failed_count, 1, "the count restarts after a lock");
    }

    #[test]
    fn parallel_guesses_evaluate_at_most_the_threshold() {
        let now = ManualClock::at(1_700_000_000).now();
        let mut state = LockState {
            failed_count: 0,
            locked_until: None,
        };
        let admissions = admit_all(&mut state, 30, now);
        let admitted = admissions
            .iter()
            .filter(|a| matches!(a, Admission::Admitted { .. }))
            .count();
        assert_eq!(admitted, 5);
        assert!(
            admissions[5..]
                .iter()
                .all(|a| matches!(a, Admission::Refused { .. }))
        );
    }

    #[test]
    fn a_right_attempt_that_cannot_finish_is_given_back() {
        let now = ManualClock::at(1_700_000_000).now();
        let mut state = LockState {
            failed_count: 3,
            locked_until: None,
        };
        admit_all(&mut state, 1, now);
        assert_eq!(give_back(POLICY, state, false).failed_count, 3);
        admit_all(&mut state, 1, now);
        assert!(state.locked_until.is_some(), "the fifth attempt locks");
        let back = give_back(POLICY, state, true);
        assert_eq!(back.locked_until, None);
        assert_eq!(back.failed_count, 4, "the next failure locks again");
    }
}
