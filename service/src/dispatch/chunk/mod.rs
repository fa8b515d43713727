//! One chunk: claim, prepare, send, record.

mod claim;
mod prepare;
mod record;
mod send;
mod still_running;

use entity::states::{ReceiverStatus, RunStatus, TaskStatus};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use chrono::NaiveDateTime;
use entity::{message_receivers, message_task_runs, message_tasks, wework_accounts};
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Map, Value};

pub use self::claim::ready as ready_receivers;
use self::{
    claim::{claim, ready_ids, release},
    prepare::prepare,
    record::{record, record_send_metrics},
    send::{send_mass_chunk, send_one},
};
use super::finish;
use crate::{
    Context, ServiceResult,
    drivers::{Channel, InstanceDriver},
    tasks::{
        self,
        spec::{FrequencyCap, TaskSettings},
    },
};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkReport {
    pub claimed: usize,
    pub sent: usize,
    pub awaiting: usize,
    pub failed: usize,
    pub skipped: usize,
    pub retried: usize,
    /// More receivers of the run are ready now.
    pub more: bool,
    /// The highest receiver id claimed so far: pass it as `after` to the next chunk.
    pub last_id: i64,
    /// Recorded outcomes per sending account.
    pub per_account: BTreeMap<i64, AccountTally>,
    /// Where the chunk's time went.
    pub phases: Phases,
}

/// Where a chunk's time went, for `wework bench broadcast`'s breakdown. The chunk-wide phases
/// are wall time; the per-receiver ones are summed over the chunk's receivers, which run
/// `dispatch.concurrency` at a time, so they add up to more than the chunk's sending time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// Reading the run and task, and claiming the receivers.
    pub claim: Duration,
    /// Loading what the sends share: templates, accounts, drivers.
    pub prepare: Duration,
    /// From the first send's start to the last one's answer.
    pub sending: Duration,
    /// The transaction that writes the outcomes, counters and messages.
    pub record: Duration,
    /// Settling the run when it may be done, and looking for more work.
    pub finish: Duration,
    /// Per receiver: the checks (account, frequency cap, quota) and rendering.
    pub render_and_checks: Duration,
    /// Per receiver: waiting for the rate limiter's slot.
    pub rate_limiter: Duration,
    /// Per receiver: the instance's answer to the send.
    pub send: Duration,
}

impl std::ops::Add for Phases {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        Self {
            claim: self.claim + o.claim,
            prepare: self.prepare + o.prepare,
            sending: self.sending + o.sending,
            record: self.record + o.record,
            finish: self.finish + o.finish,
            render_and_checks: self.render_and_checks + o.render_and_checks,
            rate_limiter: self.rate_limiter + o.rate_limiter,
            send: self.send + o.send,
        }
    }
}

impl Phases {
    fn add_sends(&mut self, times: SendTimes) {
        self.render_and_checks += times.render_and_checks;
        self.rate_limiter += times.rate_limiter;
        self.send += times.send;
    }
}

/// One receiver's share of `Phases`.
#[derive(Debug, Default, Clone, Copy)]
struct SendTimes {
    render_and_checks: Duration,
    rate_limiter: Duration,
    send: Duration,
}

/// What one sending account's receivers came to in a chunk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AccountTally {
    pub sent: i64,
    pub failed: i64,
    pub retried: i64,
    /// Of the retried, those held back for sending too fast.
    pub rate_limited: i64,
}

#[derive(Debug, Clone)]
enum Outcome {
    Sent {
        remote: Option<String>,
        awaiting: bool,
        content: String,
    },
    Failed {
        code: String,
        message: String,
    },
    Skipped {
        reason: &'static str,
    },
    /// Back to pending at `at`; `counts` says whether it used up a retry.
    Retry {
        at: NaiveDateTime,
        code: String,
        message: String,
        counts: bool,
        /// Held back for sending too fast (our limiter or the instance's), for the metrics.
        rate_limited: bool,
    },
}

/// One content and the values of its variables.
#[derive(Debug, Clone)]
struct Body {
    content: String,
    payload: Option<Value>,
    /// The template's variable defaults.
    defaults: Map<String, Value>,
    /// The task's (or variant's) values.
    variables: Map<String, Value>,
}

/// What every send of the chunk shares.
struct Shared {
    task: message_tasks::Model,
    /// The task's content (its first variant's when it has variants).
    body: Body,
    /// Contents by variant key, when the task has A/B variants.
    variant_bodies: HashMap<String, Body>,
    accounts: HashMap<i64, wework_accounts::Model>,
    drivers: HashMap<i64, Arc<dyn InstanceDriver>>,
    frequency_cap: Option<FrequencyCap>,
    /// Receivers of this chunk put back to wait for a slot, per rate key (to space them out).
    deferred: std::sync::Mutex<HashMap<String, u32>>,
    /// No send of the chunk waits for a slot beyond this: the chunk ends well within its lease,
    /// so the sweeper never hands receivers it still sends to another worker.
    send_until: tokio::time::Instant,
    /// Asked by sends that waited for their slot, so a pause or cancel holds within the chunk.
    status: still_running::TaskStatusCheck,
}

fn is_held(r: &message_receivers::Model) -> bool {
    r.variant.as_deref() == Some(tasks::variants::HOLD)
}

/// Receivers held for an A/B test's winner: with the winner decided they get it and go on;
/// while the test runs they go back to wait (no retry used) and the rest of the chunk goes on.
/// Only those still leased to `token` go back: one whose lease ran out and another chunk took
/// is that chunk's.
async fn release_held(
    ctx: &Context,
    run: &message_task_runs::Model,
    task: &message_tasks::Model,
    token: &str,
    mut claimed: Vec<message_receivers::Model>,
) -> ServiceResult<Vec<message_receivers::Model>> {
    if let Some(winner) = tasks::variants::decide(ctx, run, task).await? {
        for r in claimed.iter_mut().filter(|r| is_held(r)) {
            r.variant = Some(winner.clone());
        }
        return Ok(claimed);
    }
    let (held, rest): (Vec<_>, Vec<_>) = claimed.into_iter().partition(is_held);
    let again = ctx.clock.now_db() + chrono::TimeDelta::seconds(HELD_RECHECK_SECS);
    let these = Condition::all()
        .add(message_receivers::Column::Id.is_in(held.iter().map(|r| r.id)))
        .add(message_receivers::Column::LeaseOwner.eq(token));
    super::give_back::give_back(ctx, run.id, these, Some(again)).await?;
    // Every other held receiver of the run waits with them in one statement, rather than being
    // claimed and given back chunk by chunk until the sample settles.
    message_receivers::Entity::update_many()
        .col_expr(message_receivers::Column::NextAttemptAt, Expr::value(again))
        .filter(message_receivers::Column::RunId.eq(run.id))
        .filter(message_receivers::Column::Variant.eq(tasks::variants::HOLD))
        .filter(super::status_is(ReceiverStatus::Pending))
        .filter(message_receivers::Column::NextAttemptAt.lt(again))
        .exec(&ctx.db)
        .await?;
    Ok(rest)
}

/// How often receivers held for a test's winner look again while the sample is still sending.
const HELD_RECHECK_SECS: i64 = 30;

impl Shared {
    /// The content a receiver gets: its variant's, else the task's.
    fn body_for(&self, receiver: &message_receivers::Model) -> &Body {
        receiver
            .variant
            .as_ref()
            .and_then(|v| self.variant_bodies.get(v))
            .unwrap_or(&self.body)
    }
}

/// Claims up to a chunk of ready receivers of `run_id`, sends them, records the outcomes.
/// `after` is the highest receiver id this worker claimed in the run so far (0 at first): ready
/// receivers are claimed in id order, so looking above it first keeps each claim cheap however
/// many receivers are already done, whatever the planner's statistics say. Receivers below it
/// (retries, leases returned by the sweeper) are found when nothing is left above.
pub async fn run_chunk(
    ctx: &Context,
    run_id: i64,
    worker: &str,
    after: i64,
) -> ServiceResult<ChunkReport> {
    let mut report = ChunkReport::default();
    let started = std::time::Instant::now();
    let Some(run) = message_task_runs::Entity::find_by_id(run_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(report);
    };
    if run.status != RunStatus::Running {
        return Ok(report);
    }
    let task = tasks::find(&ctx.db, run.task_id).await?;
    if task.status != TaskStatus::Running {
        return Ok(report);
    }
    let now = ctx.clock.now_db();
    let settings = match TaskSettings::of(&task) {
        Ok(settings) => settings,
        Err(why) => {
            tracing::error!(task.id = task.id, %why, "a stored task setting is unreadable");
            finish::pause_with_reason(ctx, task.id, format!("paused: {why}")).await?;
            return Ok(report);
        }
    };
    if let Some(quiet) = &settings.quiet_hours
        && let Some(end) = quiet.ends_after(ctx.clock.now())
    {
        // Nothing goes out in the quiet window: pending receivers wait for its end.
        message_receivers::Entity::update_many()
            .col_expr(
                message_receivers::Column::NextAttemptAt,
                Expr::value(end.naive_utc()),
            )
            .filter(message_receivers::Column::RunId.eq(run_id))
            .filter(super::status_is(ReceiverStatus::Pending))
            .filter(
                Condition::any()
                    .add(message_receivers::Column::NextAttemptAt.is_null())
                    .add(message_receivers::Column::NextAttemptAt.lt(end.naive_utc())),
            )
            .exec(&ctx.db)
            .await?;
        return Ok(report);
    }
    let token = format!("{worker}:{}", uuid::Uuid::new_v4().simple());
    // Sends wait for slots only within the first half of the lease taken now.
    let send_until = tokio::time::Instant::now()
        + Duration::from_secs(u64::try_from(ctx.settings.dispatch.lease_secs / 2).unwrap_or(5));
    let limit = if task.channel == Channel::CustomerMass {
        ctx.settings.dispatch.mass_chunk_size
    } else {
        ctx.settings.dispatch.chunk_size
    };
    let mut claimed = claim(ctx, run_id, after, limit, &token, now).await?;
    if claimed.is_empty() && after > 0 {
        claimed = claim(ctx, run_id, 0, limit, &token, now).await?;
    }
    report.claimed = claimed.len();
    report.last_id = claimed.iter().map(|r| r.id).max().unwrap_or(after);
    report.phases.claim = started.elapsed();
    if claimed.is_empty() {
        finish::finish_if_done(ctx, run_id).await?;
        return Ok(report);
    }
    if claimed.iter().any(is_held) {
        claimed = release_held(ctx, &run, &task, &token, claimed).await?;
        if claimed.is_empty() {
            return Ok(report);
        }
    }
    let task_id = task.id;
    let preparing = std::time::Instant::now();
    let shared = match prepare(ctx, task, settings.frequency_cap, &claimed, send_until).await {
        Ok(Ok(shared)) => Arc::new(shared),
        Ok(Err(why)) => {
            release(ctx, run_id, &token).await?;
            tracing::error!(task.id = task_id, %why, "the task's template is unreadable");
            finish::pause_with_reason(ctx, task_id, format!("paused: {why}")).await?;
            return Ok(report);
        }
        Err(e) => {
            release(ctx, run_id, &token).await?;
            return Err(e);
        }
    };
    report.phases.prepare = preparing.elapsed();
    let concurrency = ctx.settings.dispatch.concurrency;
    let sending = std::time::Instant::now();
    let outcomes: Vec<(message_receivers::Model, Outcome)> =
        if shared.task.channel == Channel::CustomerMass {
            send_mass_chunk(ctx, &shared, claimed).await
        } else {
            let sent: Vec<_> = futures_util::stream::iter(claimed)
                .map(|r| {
                    let shared = shared.clone();
                    async move {
                        let (outcome, times) = send_one(ctx, &shared, &r).await;
                        (r, outcome, times)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            sent.into_iter()
                .map(|(r, outcome, times)| {
                    report.phases.add_sends(times);
                    (r, outcome)
                })
                .collect()
        };
    report.phases.sending = sending.elapsed();
    let recording = std::time::Instant::now();
    record(ctx, &shared, run_id, &token, outcomes, &mut report).await?;
    report.phases.record = recording.elapsed();
    let finishing = std::time::Instant::now();
    record_send_metrics(ctx, &shared, &report);
    if let Some(rule) = settings.auto_pause {
        finish::auto_pause(ctx, &shared.task, run_id, rule).await?;
    }
    if report.claimed as u64 == limit {
        report.more = true;
    } else {
        finish::finish_if_done(ctx, run_id).await?;
        report.more = !ready_ids(ctx, run_id, 0, 1).await?.is_empty();
    }
    report.phases.finish = finishing.elapsed();
    Ok(report)
}
