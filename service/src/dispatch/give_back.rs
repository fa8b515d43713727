//! Giving leased receivers back without an outcome: to `pending` for another chunk, or skipped
//! as `cancelled` when their run was cancelled meanwhile. A cancel skips the run's pending
//! receivers and leaves the claimed ones to whoever holds them; put back to pending after that,
//! nothing would ever send them and the task would show them pending for ever. So the run's row
//! is locked first — the lock a cancel takes before its skip (`tasks::control::stop_run`) — and
//! one of the two always sees the other.

use chrono::NaiveDateTime;
use entity::message_receivers;
use entity::states::{ReceiverStatus, RunStatus};
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, LockBehavior, LockType},
};

use crate::{Context, ServiceResult};

/// What giving back did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GivenBack {
    /// Back to `pending`, for another chunk to send.
    pub released: u64,
    /// Skipped as `cancelled`: their run was cancelled.
    pub skipped: u64,
}

/// Gives back the run's claimed receivers that `which` picks, in one transaction under the
/// run's lock (retried on a lock conflict). `retry_at`, when given, is when they may be claimed
/// again. Rows another transaction holds are left alone: a late worker recording them wins.
pub(crate) async fn give_back(
    ctx: &Context,
    run_id: i64,
    which: Condition,
    retry_at: Option<NaiveDateTime>,
) -> ServiceResult<GivenBack> {
    crate::db::retry_lock_conflicts("give back receivers", || {
        give_back_once(ctx, run_id, which.clone(), retry_at)
    })
    .await
}

async fn give_back_once(
    ctx: &Context,
    run_id: i64,
    which: Condition,
    retry_at: Option<NaiveDateTime>,
) -> ServiceResult<GivenBack> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin_read_committed(&ctx.db).await?;
    let Some(run) = super::finish::lock_run(&txn, run_id).await? else {
        txn.rollback().await?;
        return Ok(GivenBack::default());
    };
    let ids = claimed_unlocked(&txn, run_id, which).await?;
    if ids.is_empty() {
        txn.rollback().await?;
        return Ok(GivenBack::default());
    }
    let these = Condition::all()
        .add(message_receivers::Column::Id.is_in(ids))
        .add(super::status_is(ReceiverStatus::Claimed));
    let given = if run.status == RunStatus::Cancelled {
        let skipped = crate::tasks::control::as_cancelled(super::lease_returned(), now)
            .filter(these)
            .exec(&txn)
            .await?
            .rows_affected;
        let change = super::finish::CountChange {
            skipped: i32::try_from(skipped).unwrap_or(i32::MAX),
            ..Default::default()
        };
        super::finish::add_counts(&txn, run.task_id, run_id, change, now).await?;
        GivenBack {
            skipped,
            ..GivenBack::default()
        }
    } else {
        let mut update = super::lease_returned().col_expr(
            message_receivers::Column::SendStatus,
            Expr::value(ReceiverStatus::Pending),
        );
        if let Some(at) = retry_at {
            update = update.col_expr(message_receivers::Column::NextAttemptAt, Expr::value(at));
        }
        GivenBack {
            released: update.filter(these).exec(&txn).await?.rows_affected,
            ..GivenBack::default()
        }
    };
    txn.commit().await?;
    Ok(given)
}

/// The run's claimed receivers `which` picks, locked, skipping those another transaction holds.
async fn claimed_unlocked(
    txn: &DatabaseTransaction,
    run_id: i64,
    which: Condition,
) -> ServiceResult<Vec<i64>> {
    let mut query = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::Id)
        .filter(message_receivers::Column::RunId.eq(run_id))
        .filter(super::status_is(ReceiverStatus::Claimed))
        .filter(which)
        .order_by_asc(message_receivers::Column::Id);
    if crate::db::row_locks(txn) {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(query.into_tuple().all(txn).await?)
}
