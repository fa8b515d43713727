//! Operator controls: pause, resume, cancel, retry the failed receivers as a new run, delete.
//! Pause and cancel are states in the database that every chunk reads before it claims, so they
//! take effect within one chunk and survive restarts.

use crate::rbac::perm;
use entity::states::{Channel, ReceiverStatus, RunStatus, TaskStatus};
use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use entity::{message_receivers, message_task_runs, message_tasks};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};

use super::{TaskView, find, find_visible, schedule, view};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    dispatch::{confirm, finish},
};

/// Where a transition takes the task.
#[derive(Clone, Copy)]
enum Target {
    To(TaskStatus),
    /// Whatever the current run says (see `RunStatus::task_status`), read under a lock in
    /// the transition's transaction, so a run that ends meanwhile settles the task either way.
    AfterRun,
}

async fn transition(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    operation: &'static str,
    from: fn(TaskStatus) -> bool,
    target: Target,
    reason: Option<String>,
) -> ServiceResult<TaskView> {
    let entry = AuditEntry::new(operation, OperationType::Update, "task").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TasksControl)?;
        // The scheduler or a worker may move the task between this read and the update (a task
        // created a moment ago starting now): read it again and decide again.
        for _ in 0..3 {
            let task = find_visible(&ctx.db, actor, id).await?;
            if !from(task.status) {
                return Err(ServiceError::conflict(
                    "status",
                    format!(
                        "a {} task cannot be {}",
                        task.status,
                        operation.trim_start_matches("task.")
                    ),
                ));
            }
            let applied = crate::db::retry_lock_conflicts(operation, || {
                let change = Change {
                    target,
                    reason: reason.clone(),
                    entry: entry.clone(),
                };
                apply(ctx, actor, &task, change)
            })
            .await?;
            let Some(to) = applied else { continue };
            if to == TaskStatus::Scheduled {
                ctx.schedule_signal.raise(ctx).await;
            }
            return view(ctx, &ctx.db, find(&ctx.db, id).await?).await;
        }
        Err(changed_meanwhile())
    })
    .await
}

/// What an operator's transition does to the task, and its audit entry.
struct Change {
    target: Target,
    reason: Option<String>,
    entry: AuditEntry,
}

/// One attempt at a transition in its own transaction: the status it left the task in, or
/// `None` when something else moved the task since it was read.
async fn apply(
    ctx: &Context,
    actor: &Actor,
    task: &message_tasks::Model,
    change: Change,
) -> ServiceResult<Option<TaskStatus>> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    // A resume locks the run before the task: the order in which a chunk's record and a cancel
    // lock them, so a resume never deadlocks with them.
    let run = match change.target {
        Target::AfterRun => lock_current_run(&txn, task).await?,
        Target::To(_) => None,
    };
    let first = match change.target {
        Target::To(status) => status,
        Target::AfterRun => TaskStatus::Running,
    };
    let moved = Move {
        to: first,
        pause_reason: change.reason.clone(),
        reopen: false,
    };
    if !move_task(&txn, task, moved, now).await? {
        txn.rollback().await?;
        return Ok(None);
    }
    let to = match change.target {
        Target::To(status) => status,
        Target::AfterRun => follow_current_run(&txn, task, run, now).await?,
    };
    let entry = change
        .entry
        .resource(task.id, task.task_name.clone().unwrap_or_default())
        .old(&serde_json::json!({ "status": task.status }))
        .new_values(&serde_json::json!({ "status": to, "reason": change.reason }));
    audit::record(&txn, actor, entry, now).await?;
    txn.commit().await?;
    Ok(Some(to))
}

fn changed_meanwhile() -> ServiceError {
    ServiceError::conflict("status", "the task changed meanwhile; reload and retry")
}

/// A task's move by an operator.
struct Move {
    to: TaskStatus,
    pause_reason: Option<String>,
    /// A retry: the task is no longer completed.
    reopen: bool,
}

/// Moves `task` from the status it was read in, in `txn`; false when something else moved it
/// meanwhile (the caller reads it again and decides again).
async fn move_task(
    txn: &DatabaseTransaction,
    task: &message_tasks::Model,
    change: Move,
    now: NaiveDateTime,
) -> ServiceResult<bool> {
    let mut update = message_tasks::Entity::update_many()
        .col_expr(message_tasks::Column::Status, Expr::value(change.to))
        .col_expr(
            message_tasks::Column::PauseReason,
            Expr::value(change.pause_reason),
        )
        .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now));
    if change.reopen {
        update = update.col_expr(
            message_tasks::Column::CompletedAt,
            Expr::value(Option::<NaiveDateTime>::None),
        );
    }
    let moved = update
        .filter(message_tasks::Column::Id.eq(task.id))
        .filter(message_tasks::Column::Status.eq(task.status))
        .exec(txn)
        .await?;
    Ok(moved.rows_affected == 1)
}

/// The task's current run, locked for the rest of `txn` where the database has row locks.
async fn lock_current_run(
    txn: &DatabaseTransaction,
    task: &message_tasks::Model,
) -> ServiceResult<Option<message_task_runs::Model>> {
    let Some(run_id) = task.current_run_id else {
        return Ok(None);
    };
    finish::lock_run(txn, run_id).await
}

/// Inside a resume: the task (claimed as `running`) takes the state of its current `run` —
/// still sending, or done while it was paused — or goes back to `scheduled` when it has not run
/// yet.
async fn follow_current_run(
    txn: &DatabaseTransaction,
    task: &message_tasks::Model,
    run: Option<message_task_runs::Model>,
    now: NaiveDateTime,
) -> ServiceResult<TaskStatus> {
    let Some(run) = run else {
        set_status(txn, task.id, TaskStatus::Scheduled, now).await?;
        return Ok(TaskStatus::Scheduled);
    };
    let status = run.status.task_status(task.cron_expression.is_some());
    if status != TaskStatus::Running {
        schedule::set_status_after_run(txn, task.id, &run, status, now).await?;
    }
    Ok(status)
}

async fn set_status(
    txn: &DatabaseTransaction,
    task_id: i64,
    status: TaskStatus,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    message_tasks::Entity::update_many()
        .col_expr(message_tasks::Column::Status, Expr::value(status))
        .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(message_tasks::Column::Id.eq(task_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Holds the task: chunks claim nothing more, and sends waiting for their slot go back to
/// pending with no retry used.
pub async fn pause(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    reason: Option<String>,
) -> ServiceResult<TaskView> {
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| r.chars().take(500).collect())
        .or_else(|| {
            Some(format!(
                "paused by {}",
                actor.username.clone().unwrap_or_default()
            ))
        });
    transition(
        ctx,
        actor,
        id,
        "task.pause",
        TaskStatus::is_pausable,
        Target::To(TaskStatus::Paused),
        reason,
    )
    .await
}

/// Back to `running` when its run is still in progress; a run that ended while the task was
/// paused settles it (`completed`, or `scheduled` for a recurring task); a task that has not run
/// yet goes back to `scheduled`.
pub async fn resume(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<TaskView> {
    transition(
        ctx,
        actor,
        id,
        "task.resume",
        |s| s == TaskStatus::Paused,
        Target::AfterRun,
        None,
    )
    .await
}

/// Stops the task: receivers not yet sent are skipped (`cancelled`); the counters stay whole.
pub async fn cancel(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<TaskView> {
    transition(
        ctx,
        actor,
        id,
        "task.cancel",
        TaskStatus::is_cancellable,
        Target::To(TaskStatus::Cancelled),
        None,
    )
    .await?;
    withdraw_unconfirmed(ctx, id).await?;
    let runs = message_task_runs::Entity::find()
        .filter(message_task_runs::Column::TaskId.eq(id))
        .filter(message_task_runs::Column::Status.is_in([RunStatus::Expanding, RunStatus::Running]))
        .all(&ctx.db)
        .await?;
    for run in runs {
        crate::db::retry_lock_conflicts("task cancel", || stop_run(ctx, id, run.id)).await?;
    }
    view(ctx, &ctx.db, find(&ctx.db, id).await?).await
}

/// Cancels one run of a cancelled task in one transaction: its pending receivers are skipped,
/// the counters say so and the run ends. Claimed receivers are left to their chunk (it may be
/// sending right now; what it would put back to pending it skips, see `dispatch::chunk::record`)
/// or, if their worker died, to the sweeper. The run is locked first: a sweep putting expired
/// leases back to pending holds it, so its receivers are pending when they are skipped here, or
/// it comes after and sees the run cancelled. At read committed, MariaDB's skip passes over the
/// claimed rows a chunk's record holds (their committed status is not `pending`) instead of
/// waiting for them while this holds the run the record is about to lock.
async fn stop_run(ctx: &Context, task_id: i64, run_id: i64) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin_read_committed(&ctx.db).await?;
    finish::lock_run(&txn, run_id).await?;
    let skipped = skip_pending_as_cancelled(&txn, run_id, now).await?;
    let change = finish::CountChange {
        skipped: i32::try_from(skipped).unwrap_or(i32::MAX),
        ..Default::default()
    };
    finish::add_counts(&txn, task_id, run_id, change, now).await?;
    message_task_runs::Entity::update_many()
        .col_expr(
            message_task_runs::Column::Status,
            Expr::value(RunStatus::Cancelled),
        )
        .col_expr(message_task_runs::Column::CompletedAt, Expr::value(now))
        .filter(message_task_runs::Column::Id.eq(run_id))
        .filter(message_task_runs::Column::Status.is_in([RunStatus::Expanding, RunStatus::Running]))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// `update` also skips its receivers as `cancelled`.
pub(crate) fn as_cancelled(
    update: sea_orm::UpdateMany<message_receivers::Entity>,
    now: NaiveDateTime,
) -> sea_orm::UpdateMany<message_receivers::Entity> {
    update
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value(ReceiverStatus::Skipped),
        )
        .col_expr(
            message_receivers::Column::SkipReason,
            Expr::value("cancelled"),
        )
        .col_expr(message_receivers::Column::UpdatedAt, Expr::value(now))
}

/// The run's receivers still pending are skipped as `cancelled`; returns how many.
pub(crate) async fn skip_pending_as_cancelled(
    txn: &DatabaseTransaction,
    run_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<u64> {
    Ok(as_cancelled(message_receivers::Entity::update_many(), now)
        .filter(message_receivers::Column::RunId.eq(run_id))
        .filter(crate::dispatch::status_is(ReceiverStatus::Pending))
        .exec(txn)
        .await?
        .rows_affected)
}

/// Customer mass messages of the task that members have not confirmed are withdrawn; what they
/// did confirm stays sent.
async fn withdraw_unconfirmed(ctx: &Context, task_id: i64) -> ServiceResult<()> {
    for (msgid, account, ..) in unconfirmed(ctx, task_id).await? {
        if let Err(e) = confirm::check(ctx, &msgid, account, confirm::Mode::Withdraw).await {
            tracing::warn!(task.id = task_id, msgid = %msgid, error = %e, "could not withdraw a mass message");
        }
    }
    Ok(())
}

/// The task's remote messages still awaiting confirmation: (msgid, account, reminders sent in
/// the current 24-hour window, when the last one went).
async fn unconfirmed(
    ctx: &Context,
    task_id: i64,
) -> ServiceResult<Vec<(String, i64, i32, Option<NaiveDateTime>)>> {
    let rows: Vec<(String, Option<i64>, i32, Option<NaiveDateTime>)> =
        message_receivers::Entity::find()
            .select_only()
            .column(message_receivers::Column::RemoteMsgId)
            .column(message_receivers::Column::AccountId)
            .column(message_receivers::Column::RemindCount)
            .column(message_receivers::Column::LastRemindedAt)
            .filter(message_receivers::Column::TaskId.eq(task_id))
            .filter(crate::dispatch::status_is(
                ReceiverStatus::AwaitingConfirmation,
            ))
            .filter(message_receivers::Column::RemoteMsgId.is_not_null())
            .distinct()
            .into_tuple()
            .all(&ctx.db)
            .await?;
    let mut seen: BTreeMap<(String, i64), (i32, Option<NaiveDateTime>)> = BTreeMap::new();
    for (msgid, account, count, last) in rows {
        let Some(account) = account else { continue };
        let entry = seen.entry((msgid, account)).or_insert((count, last));
        *entry = (std::cmp::max(entry.0, count), std::cmp::max(entry.1, last));
    }
    Ok(seen
        .into_iter()
        .map(|((msgid, account), (count, last))| (msgid, account, count, last))
        .collect())
}

/// WeCom takes at most this many reminders per mass message in 24 hours.
pub const REMINDERS_PER_DAY: i32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemindReport {
    /// Mass messages whose members were reminded.
    pub reminded: usize,
    /// Mass messages skipped: already reminded 3 times in the last 24 hours.
    pub limited: usize,
    /// Mass messages WeCom would not remind for, with its answer.
    pub failed: Vec<RemindFailure>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemindFailure {
    pub msgid: String,
    pub error: String,
}

/// Reminds the members to confirm the task's customer mass messages (WeCom
/// `remind_groupmsg_send`), within WeCom's 3 reminders per message per 24 hours.
pub async fn remind(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<RemindReport> {
    let entry = AuditEntry::new("task.remind", OperationType::Update, "task").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TasksControl)?;
        let task = find_visible(&ctx.db, actor, id).await?;
        if task.channel != Channel::CustomerMass {
            return Err(ServiceError::conflict(
                "channel",
                "only customer mass messages wait for members to confirm",
            ));
        }
        let pending = unconfirmed(ctx, id).await?;
        if pending.is_empty() {
            return Err(ServiceError::conflict(
                "id",
                "no message of this task is waiting for confirmation",
            ));
        }
        let now = ctx.clock.now_db();
        let window_start = now - chrono::TimeDelta::hours(24);
        let mut report = RemindReport {
            reminded: 0,
            limited: 0,
            failed: Vec::new(),
        };
        for (msgid, account, count, last) in pending {
            let used = if last.is_some_and(|t| t > window_start) {
                count
            } else {
                0
            };
            if used >= REMINDERS_PER_DAY {
                report.limited += 1;
                continue;
            }
            let Some(driver) = confirm::driver_for(ctx, account).await else {
                report.failed.push(RemindFailure {
                    msgid,
                    error: "the account's instance is gone or misconfigured".into(),
                });
                continue;
            };
            match driver.mass_remind(&msgid).await {
                Ok(()) => {
                    message_receivers::Entity::update_many()
                        .col_expr(
                            message_receivers::Column::RemindCount,
                            Expr::value(used + 1),
                        )
                        .col_expr(message_receivers::Column::LastRemindedAt, Expr::value(now))
                        .filter(message_receivers::Column::TaskId.eq(id))
                        .filter(message_receivers::Column::RemoteMsgId.eq(msgid.as_str()))
                        .filter(message_receivers::Column::AccountId.eq(account))
                        .exec(&ctx.db)
                        .await?;
                    report.reminded += 1;
                }
                Err(e) => report.failed.push(RemindFailure {
                    msgid,
                    error: e.to_string(),
                }),
            }
        }
        let entry = entry
            .clone()
            .resource(id, task.task_name.clone().unwrap_or_default())
            .extra(serde_json::json!({ "reminded": report.reminded, "limited": report.limited, "failed": report.failed.len() }));
        audit::record(&ctx.db, actor, entry, now).await?;
        Ok(report)
    })
    .await
}

/// A new run whose receivers are the failed receivers of the task's latest run. Each keeps its
/// original idempotency key, so an attempt that did reach the receiver is not delivered twice.
///
/// The task's claim, the run (born `running`, never `expanding`: no expander may snapshot the
/// task's audience into it) and every copied receiver commit in one transaction, so workers see
/// the run whole or not at all, and two concurrent calls make one run.
pub async fn retry_failed(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<TaskView> {
    let entry = AuditEntry::new("task.retry_failed", OperationType::Update, "task").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TasksControl)?;
        // As with the other controls: a task moved between the read and the claim is read
        // again (a second retry at the same moment then finds it running).
        let mut claimed = None;
        for _ in 0..3 {
            let task = find_visible(&ctx.db, actor, id).await?;
            if !task.status.allows_retry() {
                return Err(wait_for_the_run());
            }
            let now = ctx.clock.now_db();
            let txn = crate::db::begin(&ctx.db).await?;
            let change = Move {
                to: TaskStatus::Running,
                pause_reason: None,
                reopen: true,
            };
            if move_task(&txn, &task, change, now).await? {
                claimed = Some((task, txn, now));
                break;
            }
            txn.rollback().await?;
        }
        let Some((task, txn, now)) = claimed else {
            return Err(changed_meanwhile());
        };
        let Some(last) = message_task_runs::Entity::find()
            .filter(message_task_runs::Column::TaskId.eq(id))
            .order_by_desc(message_task_runs::Column::Id)
            .one(&txn)
            .await?
        else {
            return Err(ServiceError::conflict("id", "the task has not run yet"));
        };
        if last.status.is_in_progress() {
            return Err(wait_for_the_run());
        }
        let taken = message_task_runs::Entity::find()
            .filter(message_task_runs::Column::TaskId.eq(id))
            .filter(message_task_runs::Column::ScheduledFor.eq(now))
            .count(&txn)
            .await?;
        if taken > 0 {
            return Err(ServiceError::conflict(
                "id",
                "a run for this moment exists; retry in a second",
            ));
        }
        let run_id = super::schedule::insert_run(&txn, &task, now, RunStatus::Running, now).await?;
        let copied = copy_failed(&txn, last.id, run_id, now).await?;
        if copied == 0 {
            return Err(ServiceError::conflict(
                "id",
                "the latest run has no failed receivers",
            ));
        }
        let target = i32::try_from(copied).unwrap_or(i32::MAX);
        message_task_runs::Entity::update_many()
            .col_expr(message_task_runs::Column::TargetCount, Expr::value(target))
            .filter(message_task_runs::Column::Id.eq(run_id))
            .exec(&txn)
            .await?;
        message_tasks::Entity::update_many()
            .col_expr(
                message_tasks::Column::TargetCount,
                Expr::col(message_tasks::Column::TargetCount).add(target),
            )
            .filter(message_tasks::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        let entry = entry
            .clone()
            .resource(id, task.task_name.clone().unwrap_or_default())
            .extra(serde_json::json!({ "run": run_id, "receivers": copied }));
        audit::record(&txn, actor, entry, now).await?;
        txn.commit().await?;
        tracing::info!(
            task.id = id,
            run.id = run_id,
            receivers = copied,
            "retry run started"
        );
        view(ctx, &ctx.db, find(&ctx.db, id).await?).await
    })
    .await
}

/// An operator's choice of an A/B test's winner.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WinnerChoice {
    /// `A`…`E`.
    #[schema(pattern = "^[A-E]$")]
    pub variant: String,
    /// The run whose test it decides (default: the current run).
    pub run_id: Option<i64>,
}

/// Decides a run's A/B test now: its held receivers get `variant` and go out.
pub async fn pick_winner(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    choice: WinnerChoice,
) -> ServiceResult<TaskView> {
    let entry = AuditEntry::new("task.pick_winner", OperationType::Update, "task").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TasksControl)?;
        let task = find_visible(&ctx.db, actor, id).await?;
        let Some(run_id) = choice.run_id.or(task.current_run_id) else {
            return Err(ServiceError::conflict("run_id", "the task has not run yet"));
        };
        let winner = super::variants::pick(ctx, &task, run_id, &choice.variant).await?;
        let entry = entry
            .clone()
            .resource(id, task.task_name.clone().unwrap_or_default())
            .extra(serde_json::json!({ "run": run_id, "winner": winner }));
        audit::record(&ctx.db, actor, entry, ctx.clock.now_db()).await?;
        view(ctx, &ctx.db, find(&ctx.db, id).await?).await
    })
    .await
}

fn wait_for_the_run() -> ServiceError {
    ServiceError::conflict("status", "wait for the current run to finish")
}

/// Copies the failed receivers of run `from` into run `to` as pending, each with its original
/// idempotency key; returns how many.
async fn copy_failed(
    txn: &DatabaseTransaction,
    from: i64,
    to: i64,
    now: NaiveDateTime,
) -> ServiceResult<u64> {
    let mut after = 0i64;
    let mut copied = 0u64;
    loop {
        let rows = message_receivers::Entity::find()
            .filter(message_receivers::Column::RunId.eq(from))
            .filter(crate::dispatch::status_is(ReceiverStatus::Failed))
            .filter(message_receivers::Column::Id.gt(after))
            .order_by_asc(message_receivers::Column::Id)
            .limit(500)
            .all(txn)
            .await?;
        let Some(last_id) = rows.last().map(|r| r.id) else {
            return Ok(copied);
        };
        after = last_id;
        copied += rows.len() as u64;
        let copies: Vec<_> = rows
            .into_iter()
            .map(|r| {
                let mut variables = r.variables.clone().unwrap_or_else(|| serde_json::json!({}));
                if let Some(map) = variables.as_object_mut() {
                    let key = map
                        .get("_idempotency_key")
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!(r.message_uuid.to_string()));
                    map.insert("_idempotency_key".into(), key);
                }
                message_receivers::ActiveModel {
                    task_id: Set(r.task_id),
                    run_id: Set(to),
                    receiver_type: Set(r.receiver_type),
                    contact_id: Set(r.contact_id),
                    group_id: Set(r.group_id),
                    account_id: Set(r.account_id),
                    receiver_wxid: Set(r.receiver_wxid),
                    receiver_name: Set(r.receiver_name),
                    message_uuid: Set(crate::messages::new_message_uuid()),
                    send_status: Set(ReceiverStatus::Pending),
                    retry_count: Set(0),
                    remind_count: Set(0),
                    variables: Set(Some(variables)),
                    // The retry sends the same content the receiver was meant to get.
                    variant: Set(r.variant.clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
            })
            .collect();
        for chunk in copies.chunks(crate::db::INSERT_BATCH_ROWS) {
            message_receivers::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await?;
        }
    }
}

/// Soft delete of a task that is not running.
pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("task.delete", OperationType::Delete, "task").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TasksDelete)?;
        let task = find_visible(&ctx.db, actor, id).await?;
        if task.status == TaskStatus::Running {
            return Err(ServiceError::conflict(
                "status",
                "pause or cancel the task first",
            ));
        }
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        message_tasks::Entity::update(message_tasks::ActiveModel {
            id: Set(id),
            deleted_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        audit::record(
            &txn,
            actor,
            entry
                .clone()
                .resource(id, task.task_name.clone().unwrap_or_default()),
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    })
    .await
}
