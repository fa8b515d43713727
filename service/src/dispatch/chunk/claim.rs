//! Claiming a chunk: the ready receivers of a run, leased to one worker by a unique token.

use chrono::{NaiveDateTime, TimeDelta};
use entity::message_receivers;
use entity::states::ReceiverStatus;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::Expr,
    sea_query::{LockBehavior, LockType},
};

use crate::{Context, ServiceResult};

/// Ids of the run's receivers ready to send now, oldest first: the lookup every claim makes,
/// answered from the partial index of pending receivers (public so that tests can check the
/// plan).
pub fn ready(
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
        .filter(crate::dispatch::status_is(ReceiverStatus::Pending))
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

/// Marks up to a chunk of ready receivers as ours (unique token) and returns exactly those won,
/// in id order. SQLite does it in one statement. MySQL/MariaDB and PostgreSQL lock the ready
/// rows first (`SKIP LOCKED`, so workers draining one run never queue behind each other's rows)
/// and mark them in the same transaction; PostgreSQL's UPDATE returns the rows, MySQL's are read
/// back. (PostgreSQL is not given the one-statement form: a `LIMIT … SKIP LOCKED` subquery may
/// be run again inside the UPDATE's plan and then leases more rows than the limit.)
pub(super) async fn claim(
    ctx: &Context,
    run_id: i64,
    after: i64,
    limit: u64,
    token: &str,
    now: NaiveDateTime,
) -> ServiceResult<Vec<message_receivers::Model>> {
    let lease = LeaseTo {
        token,
        until: now + TimeDelta::seconds(ctx.settings.dispatch.lease_secs),
    };
    if !crate::db::row_locks(&ctx.db) {
        let picked = ready(ctx, run_id, after, limit).into_query();
        let update = lease
            .update()
            .filter(message_receivers::Column::Id.in_subquery(picked));
        let _turn = ctx.write_turns.take().await;
        return Ok(by_id(crate::db::update_returning(&ctx.db, update).await?));
    }
    for _ in 0..5 {
        let txn = crate::db::begin_read_committed(&ctx.db).await?;
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
        let update = lease
            .update()
            .filter(message_receivers::Column::Id.is_in(ids));
        if crate::db::update_returns(&txn) {
            let won = crate::db::update_returning(&txn, update).await?;
            txn.commit().await?;
            return Ok(by_id(won));
        }
        let won = update.exec(&txn).await?.rows_affected;
        txn.commit().await?;
        if won > 0 {
            break;
        }
    }
    Ok(message_receivers::Entity::find()
        .filter(message_receivers::Column::LeaseOwner.eq(token))
        .filter(crate::dispatch::status_is(ReceiverStatus::Claimed))
        .order_by_asc(message_receivers::Column::Id)
        .all(&ctx.db)
        .await?)
}

fn by_id(mut won: Vec<message_receivers::Model>) -> Vec<message_receivers::Model> {
    won.sort_unstable_by_key(|r| r.id);
    won
}

/// A lease of receivers to one chunk.
struct LeaseTo<'a> {
    token: &'a str,
    until: NaiveDateTime,
}

impl LeaseTo<'_> {
    /// Leases the still-pending receivers the caller's filter picks.
    fn update(&self) -> sea_orm::UpdateMany<message_receivers::Entity> {
        message_receivers::Entity::update_many()
            .col_expr(
                message_receivers::Column::SendStatus,
                Expr::value(ReceiverStatus::Claimed),
            )
            .col_expr(
                message_receivers::Column::LeaseOwner,
                Expr::value(self.token),
            )
            .col_expr(
                message_receivers::Column::LeaseExpiresAt,
                Expr::value(self.until),
            )
            .filter(crate::dispatch::status_is(ReceiverStatus::Pending))
    }
}

/// Gives the chunk's receivers back untouched (the chunk could not start): to pending, or
/// skipped if the run was cancelled meanwhile (`dispatch::give_back`).
pub(super) async fn release(ctx: &Context, run_id: i64, token: &str) -> ServiceResult<()> {
    let ours = Condition::all().add(message_receivers::Column::LeaseOwner.eq(token));
    crate::dispatch::give_back::give_back(ctx, run_id, ours, None).await?;
    Ok(())
}
