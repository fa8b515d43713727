//! Counters, run completion and auto-pause.

use chrono::NaiveDateTime;
use entity::states::{ReceiverStatus, RunStatus, TaskStatus};
use entity::{message_receivers, message_task_runs, message_tasks};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use crate::{Context, ServiceResult, tasks::spec::AutoPause};

/// How much each counter of a run (and its task) moves; negative moves take receivers out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CountChange {
    pub sent: i32,
    pub failed: i32,
    pub skipped: i32,
    pub awaiting: i32,
}

/// The run, locked for the rest of `txn` where the database has row locks. Every path that
/// changes a run's receivers together with the run takes this lock first (a cancel, a resume,
/// giving leased receivers back, an expansion batch; a chunk's record after the receivers it
/// leases), so none of them deadlock on the run.
pub(crate) async fn lock_run(
    txn: &DatabaseTransaction,
    run_id: i64,
) -> ServiceResult<Option<message_task_runs::Model>> {
    let mut query = message_task_runs::Entity::find_by_id(run_id);
    if crate::db::row_locks(txn) {
        query = query.lock_exclusive();
    }
    Ok(query.one(txn).await?)
}

/// Moves a run's and its task's counters, inside the transaction that moved the receivers.
pub async fn add_counts<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    run_id: i64,
    change: CountChange,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let CountChange {
        sent,
        failed,
        skipped,
        awaiting,
    } = change;
    message_task_runs::Entity::update_many()
        .col_expr(
            message_task_runs::Column::SuccessCount,
            Expr::col(message_task_runs::Column::SuccessCount).add(sent),
        )
        .col_expr(
            message_task_runs::Column::FailCount,
            Expr::col(message_task_runs::Column::FailCount).add(failed),
        )
        .col_expr(
            message_task_runs::Column::SkippedCount,
            Expr::col(message_task_runs::Column::SkippedCount).add(skipped),
        )
        .col_expr(
            message_task_runs::Column::AwaitingCount,
            Expr::col(message_task_runs::Column::AwaitingCount).add(awaiting),
        )
        .col_expr(message_task_runs::Column::LastActivityAt, Expr::value(now))
        .col_expr(message_task_runs::Column::UpdatedAt, Expr::value(now))
        .filter(message_task_runs::Column::Id.eq(run_id))
        .exec(conn)
        .await?;
    message_tasks::Entity::update_many()
        .col_expr(
            message_tasks::Column::SuccessCount,
            Expr::col(message_tasks::Column::SuccessCount).add(sent),
        )
        .col_expr(
            message_tasks::Column::FailCount,
            Expr::col(message_tasks::Column::FailCount).add(failed),
        )
        .col_expr(
            message_tasks::Column::SkippedCount,
            Expr::col(message_tasks::Column::SkippedCount).add(skipped),
        )
        .col_expr(
            message_tasks::Column::AwaitingCount,
            Expr::col(message_tasks::Column::AwaitingCount).add(awaiting),
        )
        .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(message_tasks::Column::Id.eq(task_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Whether receivers of the run are still to be sent (pending or claimed). Existence checks,
/// not a count: it runs after every chunk that did not fill. One per status, so that each is
/// answered from its partial index, in one snapshot: a receiver moving between the two (a
/// claim, a lease given back) is seen in one of them.
pub async fn unfinished(ctx: &Context, run_id: i64) -> ServiceResult<bool> {
    let snapshot = crate::db::snapshot(&ctx.db).await?;
    let mut open = false;
    for status in [ReceiverStatus::Pending, ReceiverStatus::Claimed] {
        open = message_receivers::Entity::find()
            .select_only()
            .column(message_receivers::Column::Id)
            .filter(message_receivers::Column::RunId.eq(run_id))
            .filter(super::status_is(status))
            .limit(1)
            .into_tuple::<i64>()
            .one(&snapshot)
            .await?
            .is_some();
        if open {
            break;
        }
    }
    snapshot.commit().await?;
    Ok(open)
}

/// Completes the run once nothing is left to send (or moves it to `awaiting_confirmation` while
/// customer mass messages wait for members), and settles its task: a one-shot task completes,
/// a recurring one waits for its next firing. Conditional updates make this happen once.
pub async fn finish_if_done(ctx: &Context, run_id: i64) -> ServiceResult<()> {
    if unfinished(ctx, run_id).await? {
        return Ok(());
    }
    let Some(run) = message_task_runs::Entity::find_by_id(run_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(());
    };
    let awaiting = message_receivers::Entity::find()
        .filter(message_receivers::Column::RunId.eq(run_id))
        .filter(super::status_is(ReceiverStatus::AwaitingConfirmation))
        .count(&ctx.db)
        .await?;
    let now = ctx.clock.now_db();
    let next = if awaiting > 0 {
        RunStatus::AwaitingConfirmation
    } else {
        RunStatus::Completed
    };
    let txn = crate::db::begin(&ctx.db).await?;
    let moved = message_task_runs::Entity::update_many()
        .col_expr(message_task_runs::Column::Status, Expr::value(next))
        .col_expr(
            message_task_runs::Column::CompletedAt,
            Expr::value(if awaiting > 0 { None } else { Some(now) }),
        )
        .col_expr(message_task_runs::Column::UpdatedAt, Expr::value(now))
        .filter(message_task_runs::Column::Id.eq(run_id))
        .filter(
            message_task_runs::Column::Status
                .is_in([RunStatus::Running, RunStatus::AwaitingConfirmation]),
        )
        .filter(message_task_runs::Column::Status.ne(next))
        .exec(&txn)
        .await?;
    if moved.rows_affected == 1 && next == RunStatus::Completed {
        settle_task(&txn, run.task_id, run_id, now).await?;
        tracing::info!(run.id = run_id, task.id = run.task_id, "task run completed");
    } else if moved.rows_affected == 1 {
        await_confirmations(&txn, run.task_id, run_id, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The task, when `run_id` is still its current run and it is in one of `statuses`.
async fn task_of_run<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    run_id: i64,
    statuses: &[TaskStatus],
) -> ServiceResult<Option<message_tasks::Model>> {
    Ok(message_tasks::Entity::find_by_id(task_id)
        .one(conn)
        .await?
        .filter(|t| t.current_run_id == Some(run_id) && statuses.contains(&t.status)))
}

async fn settle_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    run_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let Some(task) = task_of_run(
        conn,
        task_id,
        run_id,
        &[TaskStatus::Running, TaskStatus::AwaitingConfirmation],
    )
    .await?
    else {
        return Ok(());
    };
    let (status, completed_at) = if task.cron_expression.is_some() {
        (TaskStatus::Scheduled, None)
    } else {
        (TaskStatus::Completed, Some(now))
    };
    message_tasks::Entity::update_many()
        .col_expr(message_tasks::Column::Status, Expr::value(status))
        .col_expr(
            message_tasks::Column::CompletedAt,
            Expr::value(completed_at),
        )
        .col_expr(message_tasks::Column::Progress, Expr::value(100.0))
        .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(message_tasks::Column::Id.eq(task_id))
        .filter(
            message_tasks::Column::Status
                .is_in([TaskStatus::Running, TaskStatus::AwaitingConfirmation]),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// Everything went out but members still have to confirm: a one-shot task shows that it waits
/// for them; a recurring one is free to fire again (its run keeps collecting confirmations).
async fn await_confirmations<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    run_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let Some(task) = task_of_run(conn, task_id, run_id, &[TaskStatus::Running]).await? else {
        return Ok(());
    };
    let status = if task.cron_expression.is_some() {
        TaskStatus::Scheduled
    } else {
        TaskStatus::AwaitingConfirmation
    };
    message_tasks::Entity::update_many()
        .col_expr(message_tasks::Column::Status, Expr::value(status))
        .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(message_tasks::Column::Id.eq(task_id))
        .filter(message_tasks::Column::Status.eq(TaskStatus::Running))
        .exec(conn)
        .await?;
    Ok(())
}

/// Pauses the task when too many of the run's last sends failed.
pub async fn auto_pause(
    ctx: &Context,
    task: &message_tasks::Model,
    run_id: i64,
    rule: AutoPause,
) -> ServiceResult<()> {
    let recent: Vec<ReceiverStatus> = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::SendStatus)
        .filter(message_receivers::Column::RunId.eq(run_id))
        .filter(message_receivers::Column::SendStatus.is_in([
            ReceiverStatus::Sent,
            ReceiverStatus::Failed,
            ReceiverStatus::AwaitingConfirmation,
        ]))
        .order_by_desc(message_receivers::Column::UpdatedAt)
        .order_by_desc(message_receivers::Column::Id)
        .limit(u64::from(rule.window))
        .into_tuple()
        .all(&ctx.db)
        .await?;
    if recent.len() < rule.window as usize {
        return Ok(());
    }
    let failed = recent
        .iter()
        .filter(|s| **s == ReceiverStatus::Failed)
        .count();
    let rate = failed as f64 / recent.len() as f64;
    if rate <= rule.failure_rate {
        return Ok(());
    }
    let reason = format!(
        "auto-paused: {failed} of the last {} sends failed ({:.0}% > {:.0}%)",
        recent.len(),
        rate * 100.0,
        rule.failure_rate * 100.0
    );
    pause_with_reason(ctx, task.id, reason).await
}

/// Pauses a running task, saying why (shown as its `pause_reason`); an operator resumes or
/// cancels it.
pub async fn pause_with_reason(ctx: &Context, task_id: i64, reason: String) -> ServiceResult<()> {
    let paused = message_tasks::Entity::update_many()
        .col_expr(
            message_tasks::Column::Status,
            Expr::value(TaskStatus::Paused),
        )
        .col_expr(
            message_tasks::Column::PauseReason,
            Expr::value(reason.clone()),
        )
        .col_expr(
            message_tasks::Column::UpdatedAt,
            Expr::value(ctx.clock.now_db()),
        )
        .filter(message_tasks::Column::Id.eq(task_id))
        .filter(message_tasks::Column::Status.eq(TaskStatus::Running))
        .exec(&ctx.db)
        .await?;
    if paused.rows_affected == 1 {
        tracing::warn!(task.id = task_id, %reason, "task paused");
    }
    Ok(())
}
