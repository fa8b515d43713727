//! Periodic clean-up: expired sessions and rotated tokens, old login history and logs, lapsed
//! idempotency keys, Elasticsearch log indices past retention, and — when configured — chat
//! messages and broadcast receiver records past their retention. Tables that grow with traffic
//! are purged in batches of ids (`purge`), so a large backlog never sits in one long delete that
//! locks the table. Idempotent, so any number of workers may run it.

use chrono::TimeDelta;
use entity::{
    access_logs, error_logs, idempotency_keys, inbound_events, instance_monitors, login_logs,
    message_receivers, message_task_runs, messages, session_rotated_tokens, system_logs,
    user_sessions,
};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Query,
};
use serde::Serialize;

use crate::{Context, ServiceResult};

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub rotated_tokens: u64,
    pub login_logs: u64,
    pub idempotency_keys: u64,
    pub metric_samples: u64,
    /// Raw metric samples folded into rollups.
    pub rolled_up: u64,
    pub inbound_events: u64,
    /// Service-desk events older than a week (streams resume from at most the last 5,000).
    pub desk_events: u64,
    /// system, error and access log rows in SQL.
    pub log_rows: u64,
    pub log_indices: usize,
    /// Chat messages past `worker.message_retention_days`.
    pub messages: u64,
    /// Receiver records of runs ended before `worker.receiver_retention_days`.
    pub receivers: u64,
}

/// Rows deleted per statement.
pub const PURGE_BATCH: u64 = 5000;

/// Deletes the rows of `E` that `old` selects, `PURGE_BATCH` ids at a time.
async fn purge<E: EntityTrait>(
    db: &DatabaseConnection,
    id: E::Column,
    old: Condition,
) -> ServiceResult<u64> {
    let mut total = 0;
    loop {
        let ids: Vec<i64> = E::find()
            .select_only()
            .column(id)
            .filter(old.clone())
            .order_by_asc(id)
            .limit(PURGE_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(total);
        }
        let full = ids.len() as u64 == PURGE_BATCH;
        total += E::delete_many()
            .filter(id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
        if !full {
            return Ok(total);
        }
    }
}

pub async fn sweep(ctx: &Context) -> ServiceResult<Swept> {
    let now = ctx.clock.now_db();
    // Keep ended sessions a day for the owner's "recent sessions" view and investigations.
    let ended_before = now - TimeDelta::days(1);
    let rotated_tokens = session_rotated_tokens::Entity::delete_many()
        .filter(session_rotated_tokens::Column::ExpiresAt.lt(ended_before))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let sessions = user_sessions::Entity::delete_many()
        .filter(
            Condition::any()
                .add(user_sessions::Column::AbsoluteExpiresAt.lt(ended_before))
                .add(user_sessions::Column::RefreshExpiresAt.lt(ended_before))
                .add(user_sessions::Column::RevokedAt.lt(ended_before)),
        )
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let retention = now - TimeDelta::days(ctx.settings.worker.log_retention_days);
    let login_logs = purge::<login_logs::Entity>(
        &ctx.db,
        login_logs::Column::Id,
        Condition::all().add(login_logs::Column::CreatedAt.lt(retention)),
    )
    .await?;
    let idempotency_keys = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::ExpiresAt.lt(now))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let metrics_before = now - TimeDelta::days(ctx.settings.instances.metrics_retention_days);
    let mut rolled_up = 0;
    for _ in 0..20 {
        let folded = crate::monitoring::roll_up(ctx, 5000).await?;
        rolled_up += folded;
        if folded < 5000 {
            break;
        }
    }
    let metric_samples = purge::<instance_monitors::Entity>(
        &ctx.db,
        instance_monitors::Column::Id,
        Condition::all().add(instance_monitors::Column::CollectedAt.lt(metrics_before)),
    )
    .await?;
    let inbound_events = purge::<inbound_events::Entity>(
        &ctx.db,
        inbound_events::Column::Id,
        Condition::all().add(inbound_events::Column::ProcessedAt.lt(retention)),
    )
    .await?;
    let desk_events = purge::<entity::desk_events::Entity>(
        &ctx.db,
        entity::desk_events::Column::Id,
        Condition::all()
            .add(entity::desk_events::Column::CreatedAt.lt(now - crate::desk::events::RETENTION)),
    )
    .await?;
    let mut log_rows = 0;
    log_rows += purge::<system_logs::Entity>(
        &ctx.db,
        system_logs::Column::Id,
        Condition::all().add(system_logs::Column::CreatedAt.lt(retention)),
    )
    .await?;
    log_rows += purge::<error_logs::Entity>(
        &ctx.db,
        error_logs::Column::Id,
        Condition::all().add(error_logs::Column::CreatedAt.lt(retention)),
    )
    .await?;
    log_rows += purge::<access_logs::Entity>(
        &ctx.db,
        access_logs::Column::Id,
        Condition::all().add(access_logs::Column::CreatedAt.lt(retention)),
    )
    .await?;
    let messages = match ctx.settings.worker.message_retention_days {
        0 => 0,
        days => {
            let before = now - TimeDelta::days(days);
            purge::<messages::Entity>(
                &ctx.db,
                messages::Column::Id,
                Condition::all().add(messages::Column::CreatedAt.lt(before)),
            )
            .await?
        }
    };
    let receivers = match ctx.settings.worker.receiver_retention_days {
        0 => 0,
        days => {
            let ended = Query::select()
                .column(message_task_runs::Column::Id)
                .from(message_task_runs::Entity)
                .and_where(message_task_runs::Column::CompletedAt.lt(now - TimeDelta::days(days)))
                .to_owned();
            purge::<message_receivers::Entity>(
                &ctx.db,
                message_receivers::Column::Id,
                Condition::all().add(message_receivers::Column::RunId.in_subquery(ended)),
            )
            .await?
        }
    };
    let log_indices = match &ctx.telemetry.elastic {
        Some(store) => match store
            .delete_older_than(ctx.settings.elasticsearch.retention_days)
            .await
        {
            Ok(deleted) => deleted.len(),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not apply the log index retention");
                0
            }
        },
        None => 0,
    };
    Ok(Swept {
        rolled_up,
        log_rows,
        log_indices,
        sessions,
        rotated_tokens,
        login_logs,
        idempotency_keys,
        metric_samples,
        inbound_events,
        desk_events,
        messages,
        receivers,
    })
}
