//! Recovery from the database, not from the queue: receivers whose lease expired (their worker
//! died) go back to `pending`, or are skipped when their run was cancelled; runs whose last receiver was written by a worker that died before
//! finishing them are finished.

use chrono::NaiveDateTime;
use entity::states::{ReceiverStatus, RunStatus};
use entity::{message_receivers, message_task_runs};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};

use crate::{Context, ServiceResult};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub released: u64,
    pub finished_checked: usize,
}

pub async fn sweep(ctx: &Context) -> ServiceResult<Swept> {
    let now = ctx.clock.now_db();
    let skipped = skip_expired_of_cancelled(ctx, now).await?;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "receivers of a dead worker in cancelled runs skipped"
        );
    }
    let released = super::lease_returned()
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value(ReceiverStatus::Pending),
        )
        .filter(super::status_is(ReceiverStatus::Claimed))
        .filter(message_receivers::Column::LeaseExpiresAt.lt(now))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    if released > 0 {
        tracing::warn!(released, "receivers of a dead worker returned to pending");
    }
    let running = message_task_runs::Entity::find()
        .filter(message_task_runs::Column::Status.eq(RunStatus::Running))
        .all(&ctx.db)
        .await?;
    record_progress(ctx, &running);
    for run in &running {
        super::finish::finish_if_done(ctx, run.id).await?;
    }
    Ok(Swept {
        released,
        finished_checked: running.len(),
    })
}

/// Receivers of cancelled runs whose lease expired (their worker died while or after the run
/// was cancelled) are skipped as `cancelled`, as cancelling did to the pending ones: put back to
/// pending, nothing would ever send them, and the task would show them pending for ever.
async fn skip_expired_of_cancelled(ctx: &Context, now: NaiveDateTime) -> ServiceResult<u64> {
    let expired = || {
        Condition::all()
            .add(super::status_is(ReceiverStatus::Claimed))
            .add(message_receivers::Column::LeaseExpiresAt.lt(now))
    };
    let runs: Vec<i64> = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::RunId)
        .distinct()
        .filter(expired())
        .into_tuple()
        .all(&ctx.db)
        .await?;
    if runs.is_empty() {
        return Ok(0);
    }
    let cancelled: Vec<(i64, i64)> = message_task_runs::Entity::find()
        .select_only()
        .column(message_task_runs::Column::Id)
        .column(message_task_runs::Column::TaskId)
        .filter(message_task_runs::Column::Id.is_in(runs))
        .filter(message_task_runs::Column::Status.eq(RunStatus::Cancelled))
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut skipped = 0;
    for (run_id, task_id) in cancelled {
        let txn = crate::db::begin(&ctx.db).await?;
        let moved = crate::tasks::control::as_cancelled(super::lease_returned(), now)
            .filter(message_receivers::Column::RunId.eq(run_id))
            .filter(expired())
            .exec(&txn)
            .await?
            .rows_affected;
        let change = super::finish::CountChange {
            skipped: i32::try_from(moved).unwrap_or(i32::MAX),
            ..Default::default()
        };
        super::finish::add_counts(&txn, task_id, run_id, change, now).await?;
        txn.commit().await?;
        skipped += moved;
    }
    Ok(skipped)
}

/// Progress of every running run, and the receivers still to send in all of them (the queue
/// depth), as metric points.
fn record_progress(ctx: &Context, running: &[message_task_runs::Model]) {
    let now = ctx.clock.now();
    let mut queued = 0i64;
    for run in running {
        let pending = i64::from(
            run.target_count
                - run.success_count
                - run.fail_count
                - run.skipped_count
                - run.awaiting_count,
        )
        .max(0);
        queued += pending;
        ctx.telemetry.metric(
            crate::telemetry::Point::new("task_progress", now)
                .tag("task", run.task_id)
                .tag("run", run.id)
                .int("target", i64::from(run.target_count))
                .int("success", i64::from(run.success_count))
                .int("failed", i64::from(run.fail_count))
                .int("skipped", i64::from(run.skipped_count))
                .int("pending", pending),
        );
    }
    ctx.telemetry.metric(
        crate::telemetry::Point::new("dispatch_queue", now)
            .int(
                "running_runs",
                i64::try_from(running.len()).unwrap_or(i64::MAX),
            )
            .int("pending_receivers", queued),
    );
}
