//! Periodic clean-up: expired sessions and rotated tokens, old login history and logs, lapsed
//! idempotency keys, Elasticsearch log indices past retention. Idempotent, so any number of
//! workers may run it.

use chrono::TimeDelta;
use entity::{
    access_logs, error_logs, idempotency_keys, inbound_events, instance_monitors, login_logs,
    session_rotated_tokens, system_logs, user_sessions,
};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
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
    let login_logs = login_logs::Entity::delete_many()
        .filter(login_logs::Column::CreatedAt.lt(retention))
        .exec(&ctx.db)
        .await?
        .rows_affected;
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
    let metric_samples = instance_monitors::Entity::delete_many()
        .filter(instance_monitors::Column::CollectedAt.lt(metrics_before))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let inbound_events = inbound_events::Entity::delete_many()
        .filter(inbound_events::Column::ProcessedAt.lt(retention))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let desk_events = entity::desk_events::Entity::delete_many()
        .filter(entity::desk_events::Column::CreatedAt.lt(now - crate::desk::events::RETENTION))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let mut log_rows = 0;
    log_rows += system_logs::Entity::delete_many()
        .filter(system_logs::Column::CreatedAt.lt(retention))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    log_rows += error_logs::Entity::delete_many()
        .filter(error_logs::Column::CreatedAt.lt(retention))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    log_rows += access_logs::Entity::delete_many()
        .filter(access_logs::Column::CreatedAt.lt(retention))
        .exec(&ctx.db)
        .await?
        .rows_affected;
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
    })
}
