//! Sending: one receiver at a time, or a customer mass message per account, within the
//! rate limits.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use chrono::TimeDelta;
use entity::{message_receivers, message_tasks};

use super::prepare::{Prepared, internal_retry, prepare_send};
use super::{Outcome, SendTimes, Shared};
use crate::{
    Context,
    dispatch::{
        limits,
        ratelimit::{Rate, Slot},
    },
    drivers::{DriverError, MassMessage},
};

/// A receiver the instance keeps refusing for sending too fast fails after this many tries
/// (they do not use up its `max_retry`, which is for transient errors).
const RATE_LIMITED_TRIES: i32 = 20;
/// How long a rate-limited account waits when the answer names no `Retry-After`.
const RATE_LIMITED_PAUSE: Duration = Duration::from_secs(60);

/// Checks, renders and sends one receiver's message; says how long each step took.
pub(super) async fn send_one(
    ctx: &Context,
    shared: &Shared,
    r: &message_receivers::Model,
) -> (Outcome, SendTimes) {
    let mut times = SendTimes::default();
    let step = std::time::Instant::now();
    let prepared = prepare_send(ctx, shared, r).await;
    times.render_and_checks = step.elapsed();
    let prepared = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(outcome)) => return (outcome, times),
        Err(e) => return (internal_retry(ctx, &e), times),
    };
    let step = std::time::Instant::now();
    let account = &shared.accounts[&prepared.account_id];
    let rates = limits::send_rates(ctx, &shared.task, account, &r.receiver_wxid);
    let later = await_slot(ctx, shared, &rates).await;
    times.rate_limiter = step.elapsed();
    if let Some(later) = later {
        return (later, times);
    }
    let step = std::time::Instant::now();
    let answer = prepared.driver.send(&prepared.message).await;
    times.send = step.elapsed();
    let outcome = match answer {
        Ok(receipt) => Outcome::Sent {
            remote: receipt.remote_msg_id,
            awaiting: receipt.awaiting_confirmation,
            content: prepared.content,
        },
        Err(e) => {
            penalize(ctx, prepared.account_id, &e).await;
            failure_outcome(ctx, &shared.task, r.retry_count, e)
        }
    };
    (outcome, times)
}

/// Customer mass messages: one `add_msg_template` per account and content for the whole chunk,
/// so the member confirms once per chunk rather than once per customer.
pub(super) async fn send_mass_chunk(
    ctx: &Context,
    shared: &Shared,
    claimed: Vec<message_receivers::Model>,
) -> Vec<(message_receivers::Model, Outcome)> {
    let mut outcomes = Vec::with_capacity(claimed.len());
    let mut batches: BTreeMap<(i64, bool, String), Vec<(message_receivers::Model, Prepared)>> =
        BTreeMap::new();
    for r in claimed {
        match prepare_send(ctx, shared, &r).await {
            Ok(Ok(prepared)) => {
                let key = (
                    prepared.account_id,
                    prepared.message.to_group,
                    prepared.message.payload.to_string(),
                );
                batches.entry(key).or_default().push((r, prepared));
            }
            Ok(Err(outcome)) => outcomes.push((r, outcome)),
            Err(e) => outcomes.push((r, internal_retry(ctx, &e))),
        }
    }
    for ((account_id, to_group, _), batch) in batches {
        let account = &shared.accounts[&account_id];
        let rates = limits::send_rates(ctx, &shared.task, account, "");
        if let Some(later) = await_slot(ctx, shared, &rates).await {
            outcomes.extend(batch.into_iter().map(|(r, _)| (r, later.clone())));
            continue;
        }
        let first = &batch[0].1;
        let message = MassMessage {
            account_wxid: account.wxid.clone(),
            targets: batch.iter().map(|(r, _)| r.receiver_wxid.clone()).collect(),
            to_group,
            msgtype: first.message.msgtype,
            payload: first.message.payload.clone(),
        };
        match first.driver.send_mass(&message).await {
            Ok(receipt) => {
                let rejected: HashSet<&str> = receipt.rejected.iter().map(String::as_str).collect();
                for (r, prepared) in batch {
                    let outcome = if rejected.contains(r.receiver_wxid.as_str()) {
                        Outcome::Failed {
                            code: "40096".into(),
                            message: "WeCom refused this receiver (not a customer of the member)"
                                .into(),
                        }
                    } else {
                        Outcome::Sent {
                            remote: Some(receipt.msgid.clone()),
                            awaiting: true,
                            content: prepared.content,
                        }
                    };
                    outcomes.push((r, outcome));
                }
            }
            Err(e) => {
                penalize(ctx, account_id, &e).await;
                for (r, _) in batch {
                    let outcome = failure_outcome(ctx, &shared.task, r.retry_count, e.clone());
                    outcomes.push((r, outcome));
                }
            }
        }
    }
    outcomes
}

/// Books a send slot on every limit and waits for it when it is within
/// `dispatch.max_slot_wait_secs` and before the chunk's sending window (half its lease) closes.
/// A slot further away is not booked: the receiver goes back to pending until shortly before its
/// turn comes (spaced behind the chunk's other receivers already put back on the same account),
/// so the chunk neither outlives its lease nor takes capacity that later sends need. A send that
/// waited asks whether the task still runs before it goes (see `still_running`).
pub(super) async fn await_slot(
    ctx: &Context,
    shared: &Shared,
    rates: &[(String, Rate)],
) -> Option<Outcome> {
    let max_wait = std::cmp::min(
        Duration::from_secs(ctx.settings.dispatch.max_slot_wait_secs),
        shared
            .send_until
            .saturating_duration_since(tokio::time::Instant::now()),
    );
    let wait = match ctx.limiter.acquire(rates, max_wait).await {
        Slot::Booked(wait) if wait.is_zero() => return None,
        Slot::Booked(wait) => {
            tokio::time::sleep(wait).await;
            // The task may have been paused or cancelled while this send waited.
            return shared.status.stopped(ctx).await;
        }
        Slot::Later(wait) => wait,
    };
    let queued = rates.first().map_or(0, |(key, _)| {
        let mut deferred = shared
            .deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = deferred.entry(key.clone()).or_default();
        *n += 1;
        *n - 1
    });
    let interval = rates.iter().map(|(_, r)| r.interval()).fold(0.0, f64::max);
    // Ready a little before its turn (half the longest slot wait), so claiming it again overlaps
    // the wait instead of adding to it.
    let lead = Duration::from_secs(ctx.settings.dispatch.max_slot_wait_secs) / 2;
    let later = (wait + Duration::from_secs_f64(interval * f64::from(queued))).saturating_sub(lead);
    Some(Outcome::Retry {
        at: ctx.clock.now_db() + TimeDelta::from_std(later).unwrap_or(TimeDelta::seconds(60)),
        code: "rate_limit".into(),
        message: "waiting for a send slot".into(),
        counts: false,
        rate_limited: true,
    })
}

/// After a rate-limit answer every worker backs off this account, not just this send.
pub(super) async fn penalize(ctx: &Context, account_id: i64, e: &DriverError) {
    if let DriverError::RateLimited { retry_after, .. } = e {
        let pause = retry_after.unwrap_or(RATE_LIMITED_PAUSE);
        ctx.limiter
            .penalize(&format!("account:{account_id}"), pause)
            .await;
    }
}

/// What a failed send means for the receiver: a later retry, or a final failure.
pub(super) fn failure_outcome(
    ctx: &Context,
    task: &message_tasks::Model,
    retry_count: i32,
    e: DriverError,
) -> Outcome {
    let now = ctx.clock.now_db();
    match e {
        DriverError::RateLimited {
            code,
            message,
            retry_after,
        } => {
            if retry_count >= RATE_LIMITED_TRIES {
                Outcome::Failed {
                    code,
                    message: format!(
                        "still rate limited after {RATE_LIMITED_TRIES} tries: {message}"
                    ),
                }
            } else {
                let pause = retry_after.unwrap_or(RATE_LIMITED_PAUSE);
                Outcome::Retry {
                    at: now + TimeDelta::from_std(pause).unwrap_or(TimeDelta::seconds(60)),
                    code,
                    message,
                    counts: true,
                    rate_limited: true,
                }
            }
        }
        DriverError::Transient { code, message, .. } if retry_count < task.max_retry => {
            let delay = limits::backoff(retry_count);
            Outcome::Retry {
                at: now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::seconds(30)),
                code,
                message,
                counts: true,
                rate_limited: false,
            }
        }
        e => Outcome::Failed {
            code: e.code().chars().take(50).collect(),
            message: e.to_string(),
        },
    }
}
