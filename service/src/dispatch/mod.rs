//! The broadcast engine's sending side. The receivers table is the truth: a chunk claims pending
//! receivers with a lease (a conditional UPDATE with a unique token), sends each through the
//! driver with the receiver's stable idempotency key, and writes every outcome in one
//! transaction that also moves the run's and task's counters — so counters always equal what
//! the receivers say. A worker that dies leaves leases that expire; the sweeper returns those
//! receivers to `pending` and the resend carries the same key.

pub mod chunk;
pub mod confirm;
pub mod finish;
mod give_back;
pub mod limits;
pub mod ratelimit;
pub mod sweeper;

pub use chunk::{ChunkReport, Phases, run_chunk};

use entity::states::{ReceiverStatus, RunStatus, TaskStatus};
use entity::{message_receivers, message_task_runs, message_tasks};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};

use crate::{Context, ServiceResult};

/// Runs that are `running` (their task too) and have receivers ready to send now, best
/// priority first. Runs in `busy` (this process drains them already) are not checked again.
pub async fn ready_runs(
    ctx: &Context,
    limit: u64,
    busy: &std::collections::HashSet<i64>,
) -> ServiceResult<Vec<i64>> {
    let now = ctx.clock.now_db();
    let runs: Vec<i64> = message_task_runs::Entity::find()
        .select_only()
        .column(message_task_runs::Column::Id)
        .join(
            JoinType::InnerJoin,
            message_task_runs::Relation::MessageTasks.def(),
        )
        .filter(message_task_runs::Column::Status.eq(RunStatus::Running))
        .filter(message_tasks::Column::Status.eq(TaskStatus::Running))
        .order_by_asc(message_tasks::Column::Priority)
        .order_by_asc(message_task_runs::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut ready = Vec::new();
    for run in runs.into_iter().filter(|r| !busy.contains(r)) {
        let has = message_receivers::Entity::find()
            .select_only()
            .column(message_receivers::Column::Id)
            .filter(message_receivers::Column::RunId.eq(run))
            .filter(status_is(ReceiverStatus::Pending))
            .filter(
                Condition::any()
                    .add(message_receivers::Column::NextAttemptAt.is_null())
                    .add(message_receivers::Column::NextAttemptAt.lte(now)),
            )
            .limit(1)
            .into_tuple::<i64>()
            .one(&ctx.db)
            .await?
            .is_some();
        if has {
            ready.push(run);
        }
    }
    Ok(ready)
}

/// Sends chunk after chunk of a run until nothing is ready (paused, done, or waiting on retries).
pub async fn drain(ctx: &Context, run_id: i64, worker: &str) -> ServiceResult<u64> {
    let mut total = 0;
    let mut after = 0;
    loop {
        let report = run_chunk(ctx, run_id, worker, after).await?;
        after = report.last_id;
        total += report.claimed as u64;
        if !report.more {
            return Ok(total);
        }
    }
}

/// An update of receivers that returns their leases: every path that lets go of a receiver
/// (recording an outcome, giving an unstarted chunk back, the sweeper) starts from it.
pub(crate) fn lease_returned() -> sea_orm::UpdateMany<entity::message_receivers::Entity> {
    use entity::message_receivers::{Column, Entity};
    use sea_orm::{EntityTrait, sea_query::Expr};
    Entity::update_many()
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LeaseExpiresAt,
            Expr::value(Option::<chrono::NaiveDateTime>::None),
        )
}

/// `send_status = '<status>'` with the status written into the statement, not bound. The
/// lookups by status read partial indexes (`… WHERE send_status = 'pending'`, migration
/// `m20261206_000027`), and PostgreSQL, once it plans a prepared statement without its values
/// (its generic plan, used after a few runs), can use such an index only if the condition names
/// the same constant. (SQLite re-plans for the bound value.) The statuses are fixed identifiers.
pub(crate) fn status_is(status: ReceiverStatus) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait};
    Expr::col((
        message_receivers::Entity,
        message_receivers::Column::SendStatus,
    ))
    .eq(Expr::cust(format!("'{}'", status.as_str())))
}
