//! One chunk: claim, send, record.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::{NaiveDateTime, TimeDelta};
use entity::{
    message_receivers, message_task_runs, message_tasks, messages, wework_accounts,
    wework_instances,
};
use futures_util::StreamExt;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{CaseStatement, Expr, ExprTrait},
    sea_query::{LockBehavior, LockType},
};
use serde_json::{Map, Value};

use super::{finish, limits, ratelimit::Slot};
use crate::{
    Context, ServiceResult,
    drivers::{Channel, DriverError, InstanceDriver, MassMessage, OutboundMessage},
    tasks::{
        self,
        spec::{FrequencyCap, TaskSettings, stored},
    },
    templates::{self, render},
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
    /// Recorded outcomes per sending account: [sent, failed, retried, rate limited].
    pub per_account: BTreeMap<i64, [i64; 4]>,
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

/// What every send of the chunk shares.
struct Shared {
    task: message_tasks::Model,
    content: String,
    payload: Option<Value>,
    defaults: Map<String, Value>,
    accounts: HashMap<i64, wework_accounts::Model>,
    drivers: HashMap<i64, Arc<dyn InstanceDriver>>,
    frequency_cap: Option<FrequencyCap>,
    /// Receivers of this chunk put back to wait for a slot, per rate key (to space them out).
    deferred: std::sync::Mutex<HashMap<String, u32>>,
    /// No send of the chunk waits for a slot beyond this: the chunk ends well within its lease,
    /// so the sweeper never hands receivers it still sends to another worker.
    send_until: tokio::time::Instant,
}

fn channel_of(name: &str) -> Channel {
    match name {
        "app_message" => Channel::AppMessage,
        "app_chat" => Channel::AppChat,
        "customer_mass" => Channel::CustomerMass,
        "robot" => Channel::Robot,
        _ => Channel::Direct,
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
    let Some(run) = message_task_runs::Entity::find_by_id(run_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(report);
    };
    if run.status != "running" {
        return Ok(report);
    }
    let task = tasks::find(&ctx.db, run.task_id).await?;
    if task.status != "running" {
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
            .filter(message_receivers::Column::SendStatus.eq("pending"))
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
    let limit = if task.channel == "customer_mass" {
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
    if claimed.is_empty() {
        finish::finish_if_done(ctx, run_id).await?;
        return Ok(report);
    }
    let task_id = task.id;
    let shared = match prepare(ctx, task, settings.frequency_cap, &claimed, send_until).await {
        Ok(Ok(shared)) => Arc::new(shared),
        Ok(Err(why)) => {
            release(ctx, &token).await?;
            tracing::error!(task.id = task_id, %why, "the task's template is unreadable");
            finish::pause_with_reason(ctx, task_id, format!("paused: {why}")).await?;
            return Ok(report);
        }
        Err(e) => {
            release(ctx, &token).await?;
            return Err(e);
        }
    };
    let concurrency = ctx.settings.dispatch.concurrency;
    let outcomes: Vec<(message_receivers::Model, Outcome)> =
        if shared.task.channel == "customer_mass" {
            send_mass_chunk(ctx, &shared, claimed).await
        } else {
            futures_util::stream::iter(claimed)
                .map(|r| {
                    let shared = shared.clone();
                    async move {
                        let outcome = send_one(ctx, &shared, &r).await;
                        (r, outcome)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await
        };
    record(ctx, &shared.task, run_id, &token, outcomes, &mut report).await?;
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
    Ok(report)
}

/// Ids of the run's receivers ready to send now, oldest first.
fn ready(
    ctx: &Context,
    run_id: i64,
    after: i64,
    limit: u64,
) -> sea_orm::Select<message_receivers::Entity> {
    let now = ctx.clock.now_db();
    message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::Id)
        .filter(message_receivers::Column::RunId.eq(run_id))
        .filter(message_receivers::Column::Id.gt(after))
        .filter(message_receivers::Column::SendStatus.eq("pending"))
        .filter(
            Condition::any()
                .add(message_receivers::Column::NextAttemptAt.is_null())
                .add(message_receivers::Column::NextAttemptAt.lte(now)),
        )
        .order_by_asc(message_receivers::Column::Id)
        .limit(limit)
}

async fn ready_ids(ctx: &Context, run_id: i64, after: i64, limit: u64) -> ServiceResult<Vec<i64>> {
    Ok(ready(ctx, run_id, after, limit)
        .into_tuple()
        .all(&ctx.db)
        .await?)
}

/// Marks up to a chunk of ready receivers as ours (unique token) and returns exactly those won.
async fn claim(
    ctx: &Context,
    run_id: i64,
    after: i64,
    limit: u64,
    token: &str,
    now: NaiveDateTime,
) -> ServiceResult<Vec<message_receivers::Model>> {
    // Workers draining one run must not queue behind each other's rows: on MySQL/MariaDB and
    // PostgreSQL each takes ready rows the others have not locked (SKIP LOCKED). SQLite has one
    // writer at a time; a claim that lost the race to another worker tries the next rows.
    let sqlite = ctx.db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite;
    for _ in 0..5 {
        let won = if sqlite {
            let ids = ready_ids(ctx, run_id, after, limit).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            mark_claimed(&ctx.db, ids, token, ctx.settings.dispatch.lease_secs, now).await?
        } else {
            let txn = crate::db::begin(&ctx.db).await?;
            let ids: Vec<i64> = ready(ctx, run_id, after, limit)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .into_tuple()
                .all(&txn)
                .await?;
            if ids.is_empty() {
                txn.commit().await?;
                // Everything ready may be locked by other workers' claims right now.
                if ready_ids(ctx, run_id, after, 1).await?.is_empty() {
                    return Ok(Vec::new());
                }
                continue;
            }
            let won = mark_claimed(&txn, ids, token, ctx.settings.dispatch.lease_secs, now).await?;
            txn.commit().await?;
            won
        };
        if won > 0 {
            break;
        }
    }
    Ok(message_receivers::Entity::find()
        .filter(message_receivers::Column::LeaseOwner.eq(token))
        .filter(message_receivers::Column::SendStatus.eq("claimed"))
        .order_by_asc(message_receivers::Column::Id)
        .all(&ctx.db)
        .await?)
}

/// Leases the still-pending receivers among `ids` to `token`; returns how many it got.
async fn mark_claimed<C: sea_orm::ConnectionTrait>(
    conn: &C,
    ids: Vec<i64>,
    token: &str,
    lease_secs: i64,
    now: NaiveDateTime,
) -> ServiceResult<u64> {
    Ok(message_receivers::Entity::update_many()
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value("claimed"),
        )
        .col_expr(message_receivers::Column::LeaseOwner, Expr::value(token))
        .col_expr(
            message_receivers::Column::LeaseExpiresAt,
            Expr::value(now + TimeDelta::seconds(lease_secs)),
        )
        .filter(message_receivers::Column::Id.is_in(ids))
        .filter(message_receivers::Column::SendStatus.eq("pending"))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Gives claimed receivers back untouched (the chunk could not start).
async fn release(ctx: &Context, token: &str) -> ServiceResult<()> {
    message_receivers::Entity::update_many()
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value("pending"),
        )
        .col_expr(
            message_receivers::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            message_receivers::Column::LeaseExpiresAt,
            Expr::value(Option::<NaiveDateTime>::None),
        )
        .filter(message_receivers::Column::LeaseOwner.eq(token))
        .filter(message_receivers::Column::SendStatus.eq("claimed"))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// What every send of the chunk shares, or why the task's template cannot be used.
async fn prepare(
    ctx: &Context,
    task: message_tasks::Model,
    frequency_cap: Option<FrequencyCap>,
    claimed: &[message_receivers::Model],
    send_until: tokio::time::Instant,
) -> ServiceResult<Result<Shared, String>> {
    let (content, payload, defaults) = match task.template_id {
        Some(id) => {
            let t = templates::find(&ctx.db, id).await?;
            let spec: Vec<templates::VariableSpec> = match stored(t.variables.as_ref(), "variables")
            {
                Ok(spec) => spec.unwrap_or_default(),
                Err(why) => return Ok(Err(format!("template {id}: {why}"))),
            };
            let defaults = spec
                .into_iter()
                .filter_map(|s| s.default.map(|d| (s.name, d)))
                .collect();
            (t.content, t.payload, defaults)
        }
        None => (
            task.message_content.clone().unwrap_or_default(),
            task.message_payload.clone(),
            Map::new(),
        ),
    };
    let account_ids: Vec<i64> = claimed.iter().filter_map(|r| r.account_id).collect();
    let accounts: HashMap<i64, wework_accounts::Model> = wework_accounts::Entity::find()
        .filter(wework_accounts::Column::Id.is_in(account_ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let instance_ids: Vec<i64> = accounts.values().map(|a| a.instance_id).collect();
    let mut drivers = HashMap::new();
    for instance in wework_instances::Entity::find()
        .filter(wework_instances::Column::Id.is_in(instance_ids))
        .all(&ctx.db)
        .await?
    {
        match crate::drivers::for_instance(ctx, &instance).await {
            Ok(driver) => {
                drivers.insert(instance.id, Arc::from(driver));
            }
            Err(e) => {
                tracing::warn!(instance.id = instance.id, error = %e, "no driver for the instance; its receivers fail")
            }
        }
    }
    Ok(Ok(Shared {
        task,
        content,
        payload,
        defaults,
        accounts,
        drivers,
        frequency_cap,
        deferred: std::sync::Mutex::default(),
        send_until,
    }))
}

/// Defaults, then the task's values, then the receiver's snapshot.
fn context_for(shared: &Shared, receiver: &message_receivers::Model) -> Value {
    let mut context = shared.defaults.clone();
    if let Some(Value::Object(vars)) = &shared.task.template_variables {
        context.extend(vars.clone());
    }
    if let Some(Value::Object(vars)) = &receiver.variables {
        context.extend(
            vars.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    Value::Object(context)
}

async fn send_one(ctx: &Context, shared: &Shared, r: &message_receivers::Model) -> Outcome {
    let prepared = match prepare_send(ctx, shared, r).await {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(outcome)) => return outcome,
        Err(e) => return internal_retry(ctx, &e),
    };
    let account = &shared.accounts[&prepared.account_id];
    let rates = limits::send_rates(ctx, &shared.task, account, &r.receiver_wxid);
    if let Some(later) = await_slot(ctx, shared, &rates).await {
        return later;
    }
    match prepared.driver.send(&prepared.message).await {
        Ok(receipt) => Outcome::Sent {
            remote: receipt.remote_msg_id,
            awaiting: receipt.awaiting_confirmation,
            content: prepared.content,
        },
        Err(e) => {
            penalize(ctx, prepared.account_id, &e).await;
            failure_outcome(ctx, &shared.task, r.retry_count, e)
        }
    }
}

/// Customer mass messages: one `add_msg_template` per account and content for the whole chunk,
/// so the member confirms once per chunk rather than once per customer.
async fn send_mass_chunk(
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
            msgtype: first.message.msgtype.clone(),
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

/// A receiver that passed its checks, with its message rendered.
struct Prepared {
    account_id: i64,
    driver: Arc<dyn InstanceDriver>,
    message: OutboundMessage,
    content: String,
}

/// A database hiccup while checking caps: try again shortly, without using a retry.
fn internal_retry(ctx: &Context, e: &crate::ServiceError) -> Outcome {
    Outcome::Retry {
        at: ctx.clock.now_db() + TimeDelta::seconds(10),
        code: "internal".into(),
        message: e.to_string(),
        counts: false,
        rate_limited: false,
    }
}

/// Checks the receiver (account, caps, quota) and renders its message; `Err` is the final
/// outcome when it must not be sent.
async fn prepare_send(
    ctx: &Context,
    shared: &Shared,
    r: &message_receivers::Model,
) -> ServiceResult<Result<Prepared, Outcome>> {
    let task = &shared.task;
    let Some(account) = r.account_id.and_then(|a| shared.accounts.get(&a)) else {
        return Ok(Err(Outcome::Failed {
            code: "no_account".into(),
            message: "the sending account no longer exists".into(),
        }));
    };
    let Some(driver) = shared.drivers.get(&account.instance_id) else {
        return Ok(Err(Outcome::Failed {
            code: "no_instance".into(),
            message: "the account's instance is gone or misconfigured".into(),
        }));
    };
    if let Some(contact) = r.contact_id {
        if let Some(reason) = limits::capped(ctx, shared.frequency_cap, contact).await? {
            return Ok(Err(Outcome::Skipped { reason }));
        }
        if task.channel == "customer_mass" && limits::over_monthly_quota(ctx, contact).await? {
            return Ok(Err(Outcome::Skipped {
                reason: "monthly_quota",
            }));
        }
    }
    let context = context_for(shared, r);
    let render_failed = |e: render::RenderError| Outcome::Failed {
        code: "render_error".into(),
        message: e.message,
    };
    let content = match render::render(&shared.content, &context) {
        Ok(text) => text,
        Err(e) => return Ok(Err(render_failed(e))),
    };
    let payload = match &shared.payload {
        Some(p) => match render::render_payload(p, &context) {
            Ok(mut rendered) => {
                if task.message_type == "text"
                    && let Some(map) = rendered.as_object_mut()
                {
                    map.insert("content".into(), Value::String(content.clone()));
                }
                rendered
            }
            Err(e) => return Ok(Err(render_failed(e))),
        },
        None => serde_json::json!({ "content": content }),
    };
    let key = r
        .variables
        .as_ref()
        .and_then(|v| v.get("_idempotency_key"))
        .and_then(Value::as_str)
        .map_or_else(|| r.message_uuid.to_string(), str::to_owned);
    Ok(Ok(Prepared {
        account_id: account.id,
        driver: driver.clone(),
        message: OutboundMessage {
            account_wxid: account.wxid.clone(),
            to: r.receiver_wxid.clone(),
            to_group: r.receiver_type == "group",
            channel: channel_of(&task.channel),
            msgtype: task.message_type.clone(),
            payload,
            idempotency_key: key,
        },
        content,
    }))
}

/// Books a send slot on every limit and waits for it when it is within
/// `dispatch.max_slot_wait_secs` and before the chunk's sending window (half its lease) closes.
/// A slot further away is not booked: the receiver goes back to pending until shortly before its
/// turn comes (spaced behind the chunk's other receivers already put back on the same account),
/// so the chunk neither outlives its lease nor takes capacity that later sends need.
async fn await_slot(
    ctx: &Context,
    shared: &Shared,
    rates: &[(String, super::ratelimit::Rate)],
) -> Option<Outcome> {
    let max_wait = std::cmp::min(
        Duration::from_secs(ctx.settings.dispatch.max_slot_wait_secs),
        shared
            .send_until
            .saturating_duration_since(tokio::time::Instant::now()),
    );
    let wait = match ctx.limiter.acquire(rates, max_wait).await {
        Slot::Booked(wait) => {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            return None;
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
async fn penalize(ctx: &Context, account_id: i64, e: &DriverError) {
    if let DriverError::RateLimited { retry_after, .. } = e {
        let pause = retry_after.unwrap_or(Duration::from_secs(60));
        ctx.limiter
            .penalize(&format!("account:{account_id}"), pause)
            .await;
    }
}

/// What a failed send means for the receiver: a later retry, or a final failure.
fn failure_outcome(
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
            if retry_count >= 20 {
                Outcome::Failed {
                    code,
                    message: format!("still rate limited after 20 tries: {message}"),
                }
            } else {
                let pause = retry_after.unwrap_or(Duration::from_secs(60));
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

/// Records the chunk; a transaction that lost a lock conflict (a deadlock on MySQL, a busy
/// SQLite) is simply run again — it only touches rows this chunk still leases.
async fn record(
    ctx: &Context,
    task: &message_tasks::Model,
    run_id: i64,
    token: &str,
    outcomes: Vec<(message_receivers::Model, Outcome)>,
    report: &mut ChunkReport,
) -> ServiceResult<()> {
    let mut attempt = 0u64;
    loop {
        match record_once(ctx, task, run_id, token, outcomes.clone(), report).await {
            Err(e) if attempt < 4 && e.is_lock_conflict() => {
                attempt += 1;
                tracing::debug!(run.id = run_id, attempt, error = %e, "chunk record retried");
                tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Writes every outcome of the chunk, the counters and the outbound message rows in one
/// transaction, with one statement per kind of outcome rather than one per receiver. Rows are
/// only touched while this chunk still holds their lease.
async fn record_once(
    ctx: &Context,
    task: &message_tasks::Model,
    run_id: i64,
    token: &str,
    outcomes: Vec<(message_receivers::Model, Outcome)>,
    report: &mut ChunkReport,
) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let ids: Vec<i64> = outcomes.iter().map(|(r, _)| r.id).collect();
    let still_ours = || {
        Condition::all()
            .add(message_receivers::Column::LeaseOwner.eq(token))
            .add(message_receivers::Column::SendStatus.eq("claimed"))
    };
    // The first statement writes: it takes SQLite's write lock and locks the rows on MySQL and
    // PostgreSQL, so the set read next cannot change before the commit.
    message_receivers::Entity::update_many()
        .col_expr(message_receivers::Column::UpdatedAt, Expr::value(now))
        .filter(message_receivers::Column::Id.is_in(ids.clone()))
        .filter(still_ours())
        .exec(&txn)
        .await?;
    let owned: HashSet<i64> = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::Id)
        .filter(message_receivers::Column::Id.is_in(ids))
        .filter(still_ours())
        .into_tuple::<i64>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    // A receiver whose lease expired belongs to another worker now: its outcome wins.
    let outcomes: Vec<_> = outcomes
        .into_iter()
        .filter(|(r, _)| owned.contains(&r.id))
        .collect();
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    let mut retried = Vec::new();
    for (r, outcome) in &outcomes {
        match outcome {
            Outcome::Sent { .. } => sent.push((r, outcome)),
            Outcome::Failed { .. } => failed.push((r, outcome)),
            Outcome::Skipped { .. } => skipped.push((r, outcome)),
            Outcome::Retry { .. } => retried.push((r, outcome)),
        }
    }
    let released = |rows: &[(&message_receivers::Model, &Outcome)]| {
        message_receivers::Entity::update_many()
            .col_expr(
                message_receivers::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                message_receivers::Column::LeaseExpiresAt,
                Expr::value(Option::<NaiveDateTime>::None),
            )
            .filter(message_receivers::Column::Id.is_in(rows.iter().map(|(r, _)| r.id)))
    };
    let per_row =
        |rows: &[(&message_receivers::Model, &Outcome)],
         value: &dyn Fn(&message_receivers::Model, &Outcome) -> sea_orm::Value| {
            rows.iter()
                .fold(CaseStatement::new(), |case, (r, outcome)| {
                    case.case(
                        message_receivers::Column::Id.eq(r.id),
                        Expr::val(value(r, outcome)),
                    )
                })
                .finally(Expr::val(value(rows[0].0, rows[0].1)))
        };
    let awaiting_count = sent
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Sent { awaiting: true, .. }))
        .count();
    if !sent.is_empty() {
        released(&sent)
            .col_expr(
                message_receivers::Column::SendStatus,
                per_row(&sent, &|_, o| {
                    let waits = matches!(o, Outcome::Sent { awaiting: true, .. });
                    (if waits {
                        "awaiting_confirmation"
                    } else {
                        "sent"
                    })
                    .into()
                })
                .into(),
            )
            .col_expr(
                message_receivers::Column::RemoteMsgId,
                per_row(&sent, &|_, o| match o {
                    Outcome::Sent { remote, .. } => remote
                        .as_ref()
                        .map(|m| m.chars().take(100).collect::<String>())
                        .into(),
                    _ => Option::<String>::None.into(),
                })
                .into(),
            )
            .col_expr(message_receivers::Column::SendTime, Expr::value(now))
            .col_expr(
                message_receivers::Column::ErrorCode,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                message_receivers::Column::ErrorMessage,
                Expr::value(Option::<String>::None),
            )
            .exec(&txn)
            .await?;
    }
    let error_of = |o: &Outcome| match o {
        Outcome::Failed { code, message } | Outcome::Retry { code, message, .. } => {
            (code.chars().take(50).collect::<String>(), message.clone())
        }
        _ => (String::new(), String::new()),
    };
    if !failed.is_empty() {
        released(&failed)
            .col_expr(message_receivers::Column::SendStatus, Expr::value("failed"))
            .col_expr(
                message_receivers::Column::ErrorCode,
                per_row(&failed, &|_, o| error_of(o).0.into()).into(),
            )
            .col_expr(
                message_receivers::Column::ErrorMessage,
                per_row(&failed, &|_, o| error_of(o).1.into()).into(),
            )
            .exec(&txn)
            .await?;
    }
    if !skipped.is_empty() {
        released(&skipped)
            .col_expr(
                message_receivers::Column::SendStatus,
                Expr::value("skipped"),
            )
            .col_expr(
                message_receivers::Column::SkipReason,
                per_row(&skipped, &|_, o| match o {
                    Outcome::Skipped { reason } => (*reason).into(),
                    _ => "".into(),
                })
                .into(),
            )
            .exec(&txn)
            .await?;
    }
    if !retried.is_empty() {
        released(&retried)
            .col_expr(
                message_receivers::Column::SendStatus,
                Expr::value("pending"),
            )
            .col_expr(
                message_receivers::Column::NextAttemptAt,
                per_row(&retried, &|_, o| match o {
                    Outcome::Retry { at, .. } => (*at).into(),
                    _ => now.into(),
                })
                .into(),
            )
            .col_expr(
                message_receivers::Column::ErrorCode,
                per_row(&retried, &|_, o| error_of(o).0.into()).into(),
            )
            .col_expr(
                message_receivers::Column::ErrorMessage,
                per_row(&retried, &|_, o| error_of(o).1.into()).into(),
            )
            .col_expr(
                message_receivers::Column::RetryCount,
                per_row(&retried, &|r, o| {
                    let uses_a_retry = matches!(o, Outcome::Retry { counts: true, .. });
                    (r.retry_count + i32::from(uses_a_retry)).into()
                })
                .into(),
            )
            .exec(&txn)
            .await?;
    }
    let mut per_account: BTreeMap<i64, i64> = BTreeMap::new();
    let mut message_rows = Vec::new();
    for (r, outcome) in &sent {
        if let (
            Outcome::Sent {
                remote,
                awaiting,
                content,
            },
            Some(account),
        ) = (outcome, r.account_id)
        {
            *per_account.entry(account).or_default() += 1;
            message_rows.push(message_row(
                task, r, account, remote, *awaiting, content, now,
            ));
        }
    }
    // Lock order, the same in every chunk: receivers (above), accounts by id, then the message
    // rows (whose foreign-key checks on those accounts then need no further lock on MySQL), then
    // the run and the task. Concurrent chunks cannot deadlock on it.
    for (account, n) in per_account {
        wework_accounts::Entity::update_many()
            .col_expr(
                wework_accounts::Column::TotalMessages,
                Expr::col(wework_accounts::Column::TotalMessages).add(n),
            )
            .col_expr(
                wework_accounts::Column::TodayMessages,
                Expr::col(wework_accounts::Column::TodayMessages).add(n),
            )
            .filter(wework_accounts::Column::Id.eq(account))
            .exec(&txn)
            .await?;
    }
    if !message_rows.is_empty() {
        fill_instances(&txn, &mut message_rows).await?;
        let on_conflict = sea_orm::sea_query::OnConflict::column(messages::Column::MessageUuid)
            .update_column(messages::Column::MessageUuid)
            .to_owned();
        for chunk in message_rows.chunks(crate::db::INSERT_BATCH_ROWS) {
            messages::Entity::insert_many(chunk.to_vec())
                .on_conflict(on_conflict.clone())
                .exec_without_returning(&txn)
                .await?;
        }
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let delivered = sent.len() - awaiting_count;
    finish::add_counts(
        &txn,
        task.id,
        run_id,
        count(delivered),
        count(failed.len()),
        count(skipped.len()),
        count(awaiting_count),
        now,
    )
    .await?;
    txn.commit().await?;
    report.per_account = tally(&outcomes);
    report.sent = delivered;
    report.awaiting = awaiting_count;
    report.failed = failed.len();
    report.skipped = skipped.len();
    report.retried = retried.len();
    Ok(())
}

/// Outcomes per sending account: [sent, failed, retried, rate limited].
fn tally(outcomes: &[(message_receivers::Model, Outcome)]) -> BTreeMap<i64, [i64; 4]> {
    let mut tallies: BTreeMap<i64, [i64; 4]> = BTreeMap::new();
    for (r, outcome) in outcomes {
        let tally = tallies.entry(r.account_id.unwrap_or(0)).or_default();
        match outcome {
            Outcome::Sent { .. } => tally[0] += 1,
            Outcome::Failed { .. } => tally[1] += 1,
            Outcome::Retry { rate_limited, .. } => {
                tally[2] += 1;
                tally[3] += i64::from(*rate_limited);
            }
            Outcome::Skipped { .. } => {}
        }
    }
    tallies
}

/// The chunk's send counters as metric points, one per instance and account.
fn record_send_metrics(ctx: &Context, shared: &Shared, report: &ChunkReport) {
    let now = ctx.clock.now();
    for (account, [sent, failed, retried, rate_limited]) in &report.per_account {
        let instance = shared.accounts.get(account).map(|a| a.instance_id);
        ctx.telemetry.metric(
            crate::telemetry::Point::new("dispatch_sends", now)
                .tag("task", shared.task.id)
                .tag(
                    "instance",
                    instance.map(|i| i.to_string()).unwrap_or_default(),
                )
                .tag("account", account)
                .int("sent", *sent)
                .int("failed", *failed)
                .int("retried", *retried)
                .int("rate_limited", *rate_limited),
        );
    }
}

/// The outbound message row of a sent receiver (the conversation log).
fn message_row(
    task: &message_tasks::Model,
    r: &message_receivers::Model,
    account: i64,
    remote: &Option<String>,
    awaiting: bool,
    content: &str,
    now: NaiveDateTime,
) -> messages::ActiveModel {
    messages::ActiveModel {
        message_uuid: Set(r.message_uuid),
        direction: Set("out".to_owned()),
        instance_id: Set(r
            .variables
            .as_ref()
            .and_then(|v| v.get("_instance"))
            .and_then(Value::as_i64)
            .unwrap_or(0)),
        account_id: Set(account),
        chat_type: Set(if r.receiver_type == "group" {
            "group"
        } else {
            "private"
        }
        .to_owned()),
        chat_wxid: Set(r.receiver_wxid.clone()),
        contact_id: Set(r.contact_id),
        group_id: Set(r.group_id),
        remote_msg_id: Set(remote.clone().map(|m| m.chars().take(100).collect())),
        message_type: Set(task.message_type.clone()),
        message_content: Set(Some(content.to_owned())),
        send_status: Set(if awaiting {
            "awaiting_confirmation"
        } else {
            "sent"
        }
        .to_owned()),
        send_time: Set(Some(now)),
        retry_count: Set(r.retry_count),
        task_id: Set(Some(task.id)),
        is_scheduled: Set(task.scheduled_time.is_some()),
        created_by: Set(Some(task.created_by)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Fills `instance_id` of message rows from their accounts.
async fn fill_instances<C: sea_orm::ConnectionTrait>(
    conn: &C,
    rows: &mut [messages::ActiveModel],
) -> ServiceResult<()> {
    let ids: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.account_id.clone().take())
        .collect();
    let instances: HashMap<i64, i64> = wework_accounts::Entity::find()
        .select_only()
        .column(wework_accounts::Column::Id)
        .column(wework_accounts::Column::InstanceId)
        .filter(wework_accounts::Column::Id.is_in(ids))
        .into_tuple::<(i64, i64)>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    for row in rows {
        if let Some(account) = row.account_id.clone().take()
            && let Some(instance) = instances.get(&account)
        {
            row.instance_id = Set(*instance);
        }
    }
    Ok(())
}
