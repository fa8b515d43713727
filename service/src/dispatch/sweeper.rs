//! Recovery from the database, not from the queue: receivers whose lease expired (their worker
//! died) go back to `pending`, or are skipped when their run was cancelled; runs whose last
//! receiver was written by a worker that died before finishing them are finished.

use chrono::NaiveDateTime;
use entity::states::{ReceiverStatus, RunStatus};
use entity::{message_receivers, message_task_runs};
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, LockBehavior, LockType},
};

use crate::{Context, ServiceResult};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub released: u64,
    pub finished_checked: usize,
}

pub async fn sweep(ctx: &Context) -> ServiceResult<Swept> {
    let now = ctx.clock.now_db();
    let mut returned = Returned::default();
    for run_id in runs_with_expired_leases(ctx, now).await? {
        let run =
            crate::db::retry_lock_conflicts("lease sweep", || return_expired(ctx, run_id, now))
                .await?;
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

/// What one sweep did with expired leases.
#[derive(Debug, Default, Clone, Copy)]
struct Returned {
    /// Back to `pending`, for another worker to send.
    released: u64,
    /// Skipped as `cancelled`: their run was cancelled.
    skipped: u64,
}

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

/// Returns one run's expired leases in one transaction, under the run's row lock: the lock a
/// cancel takes before it skips the run's pending receivers (`tasks::control::stop_run`). A
/// cancel that committed first is seen here, and the receivers are skipped as `cancelled`, as it
/// skipped the pending ones (put back to pending, nothing would ever send them, and the task
/// would show them pending for ever); a cancel that comes after finds them pending. Receivers
/// whose late worker is recording them right now (their rows locked) are left to it: its
/// outcome wins, and waiting for it here while holding the run could deadlock with it.
async fn return_expired(ctx: &Context, run_id: i64, now: NaiveDateTime) -> ServiceResult<Returned> {
    let txn = crate::db::begin_read_committed(&ctx.db).await?;
    let Some(run) = super::finish::lock_run(&txn, run_id).await? else {
        txn.rollback().await?;
        return Ok(Returned::default());
    };
    let ids = expired_unlocked(&txn, run_id, now).await?;
    if ids.is_empty() {
        txn.rollback().await?;
        return Ok(Returned::default());
    }
    let of_these = || {
        Condition::all()
            .add(message_receivers::Column::Id.is_in(ids.iter().copied()))
            .add(expired(now))
    };
    let returned = if run.status == RunStatus::Cancelled {
        let skipped = crate::tasks::control::as_cancelled(super::lease_returned(), now)
            .filter(of_these())
            .exec(&txn)
            .await?
            .rows_affected;
        let change = super::finish::CountChange {
            skipped: i32::try_from(skipped).unwrap_or(i32::MAX),
            ..Default::default()
        };
        super::finish::add_counts(&txn, run.task_id, run_id, change, now).await?;
        Returned {
            skipped,
            ..Default::default()
        }
    } else {
        let released = super::lease_returned()
            .col_expr(
                message_receivers::Column::SendStatus,
                Expr::value(ReceiverStatus::Pending),
            )
            .filter(of_these())
            .exec(&txn)
            .await?
            .rows_affected;
        Returned {
            released,
            ..Default::default()
        }
    };
    txn.commit().await?;
    Ok(returned)
}

/// The run's receivers whose lease expired, locked, skipping those another transaction holds.
async fn expired_unlocked(
    txn: &DatabaseTransaction,
    run_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<Vec<i64>> {
    let mut query = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::Id)
        .filter(message_receivers::Column::RunId.eq(run_id))
        .filter(expired(now))
        .order_by_asc(message_receivers::Column::Id);
    if crate::db::row_locks(txn) {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(query.into_tuple().all(txn).await?)
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
