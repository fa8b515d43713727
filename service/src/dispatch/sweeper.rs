//! Recovery from the database, not from the queue: receivers whose lease expired (their worker
//! died) go back to `pending`, or are skipped when their run was cancelled; runs whose last
//! receiver was written by a worker that died before finishing them are finished.

use chrono::NaiveDateTime;
use entity::states::{ReceiverStatus, RunStatus};
use entity::{message_receivers, message_task_runs};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};

use super::give_back::{GivenBack, give_back};
use crate::{Context, ServiceResult};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub released: u64,
    pub finished_checked: usize,
}

pub async fn sweep(ctx: &Context) -> ServiceResult<Swept> {
    let now = ctx.clock.now_db();
    let mut returned = GivenBack::default();
    for run_id in runs_with_expired_leases(ctx, now).await? {
        let run = give_back(ctx, run_id, expired(now), None).await?;
        returned.released += run.released;
        returned.skipped += run.skipped;
    }
    if returned.skipped > 0 {
        tracing::warn!(
            skipped = returned.skipped,
            "receivers of a dead worker in cancelled runs skipped"
        );
    }
    if returned.released > 0 {
        tracing::warn!(
            released = returned.released,
            "receivers of a dead worker returned to pending"
        );
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
        released: returned.released,
        finished_checked: running.len(),
    })
}

/// Claimed receivers whose lease expired: their worker died, or is so late that another one
/// may send them. Each run's are given back under its lock (`give_back`), so a cancel racing
/// the sweep never leaves them pending in a cancelled run.
fn expired(now: NaiveDateTime) -> Condition {
    Condition::all()
        .add(super::status_is(ReceiverStatus::Claimed))
        .add(message_receivers::Column::LeaseExpiresAt.lt(now))
}

async fn runs_with_expired_leases(ctx: &Context, now: NaiveDateTime) -> ServiceResult<Vec<i64>> {
    Ok(message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::RunId)
        .distinct()
        .filter(expired(now))
        .into_tuple()
        .all(&ctx.db)
        .await?)
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
