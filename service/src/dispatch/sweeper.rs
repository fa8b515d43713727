//! Recovery from the database, not from the queue: receivers whose lease expired (their worker
//! died) go back to `pending`; runs whose last receiver was written by a worker that died before
//! finishing them are finished.

use entity::states::{ReceiverStatus, RunStatus};
use entity::{message_receivers, message_task_runs};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};

use crate::{Context, ServiceResult};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub released: u64,
    pub finished_checked: usize,
}

pub async fn sweep(ctx: &Context) -> ServiceResult<Swept> {
    let now = ctx.clock.now_db();
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
