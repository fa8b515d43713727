//! Claiming a chunk: the ready receivers of a run, leased to one worker by a unique token.

use chrono::{NaiveDateTime, TimeDelta};
use entity::message_receivers;
use entity::states::ReceiverStatus;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
    sea_query::{LockBehavior, LockType},
};

use crate::{Context, ServiceResult};

/// Ids of the run's receivers ready to send now, oldest first.
pub(super) fn ready(
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
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Pending))
        .filter(
            Condition::any()
                .add(message_receivers::Column::NextAttemptAt.is_null())
                .add(message_receivers::Column::NextAttemptAt.lte(now)),
        )
        .order_by_asc(message_receivers::Column::Id)
        .limit(limit)
}

pub(super) async fn ready_ids(
    ctx: &Context,
    run_id: i64,
    after: i64,
    limit: u64,
) -> ServiceResult<Vec<i64>> {
    Ok(ready(ctx, run_id, after, limit)
        .into_tuple()
        .all(&ctx.db)
        .await?)
}

/// Marks up to a chunk of ready receivers as ours (unique token) and returns exactly those won.
pub(super) async fn claim(
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
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Claimed))
        .order_by_asc(message_receivers::Column::Id)
        .all(&ctx.db)
        .await?)
}

/// Leases the still-pending receivers among `ids` to `token`; returns how many it got.
pub(super) async fn mark_claimed<C: sea_orm::ConnectionTrait>(
    conn: &C,
    ids: Vec<i64>,
    token: &str,
    lease_secs: i64,
    now: NaiveDateTime,
) -> ServiceResult<u64> {
    Ok(message_receivers::Entity::update_many()
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value(ReceiverStatus::Claimed),
        )
        .col_expr(message_receivers::Column::LeaseOwner, Expr::value(token))
        .col_expr(
            message_receivers::Column::LeaseExpiresAt,
            Expr::value(now + TimeDelta::seconds(lease_secs)),
        )
        .filter(message_receivers::Column::Id.is_in(ids))
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Pending))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Gives claimed receivers back untouched (the chunk could not start).
pub(super) async fn release(ctx: &Context, token: &str) -> ServiceResult<()> {
    crate::dispatch::lease_returned()
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value(ReceiverStatus::Pending),
        )
        .filter(message_receivers::Column::LeaseOwner.eq(token))
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Claimed))
        .exec(&ctx.db)
        .await?;
    Ok(())
}
