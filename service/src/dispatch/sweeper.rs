//! Recovery from the database, not from the queue: receivers whose lease expired (their worker
//! died) go back to `pending`; runs whose last receiver was written by a worker that died before
//! finishing them are finished.

use entity::{message_receivers, message_task_runs};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};

use crate::{Context, ServiceResult};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub released: u64,
    pub finished_checked: usize,
}

pub async fn sweep(ctx: &Context) -> ServiceResult<Swept> {
    let now = ctx.clock.now_db();
    let released = message_receivers::Entity::update_many()
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value("pending"),
        )
        .col_expr(
            message_receivers::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            message_receivers::Column::LeaseExpiresAt,
            Expr::value(Option::<chrono::NaiveDateTime>::None),
        )
        .filter(message_receivers::Column::SendStatus.eq("claimed"))
        .filter(message_receivers::Column::LeaseExpiresAt.lt(now))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    if released > 0 {
        tracing::warn!(released, "receivers of a dead worker returned to pending");
    }
    let running: Vec<i64> = message_task_runs::Entity::find()
        .select_only()
        .column(message_task_runs::Column::Id)
        .filter(message_task_runs::Column::Status.eq("running"))
        .into_tuple()
        .all(&ctx.db)
        .await?;
    for run in &running {
        super::finish::finish_if_done(ctx, *run).await?;
    }
    Ok(Swept {
        released,
        finished_checked: running.len(),
    })
}
