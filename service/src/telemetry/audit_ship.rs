//! Copies audit log rows to Elasticsearch. Audit rows are written inside the transactions they
//! record, so they are shipped after the fact, by id: a pass resumes after the highest id
//! Elasticsearch already holds (asked once per process) or this process already queued, and
//! hands the next rows to the log shipper (spooled while Elasticsearch is down). Several workers
//! shipping the same row is harmless: a copy's document id is the row's `audit_uuid`.

use entity::states::AuditResult;
use std::sync::atomic::{AtomicI64, Ordering};

use entity::audit_logs;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use super::logs::{LogDoc, LogKind};
use crate::{Context, clock::to_utc};

/// Highest audit id queued by this process; -1 until Elasticsearch has been asked.
static QUEUED: AtomicI64 = AtomicI64::new(-1);

pub fn doc(row: audit_logs::Model) -> LogDoc {
    let message = format!(
        "{} {} {} {}",
        row.operation,
        row.resource_type,
        row.resource_name.clone().unwrap_or_default(),
        row.result
    );
    LogDoc {
        id: row.audit_uuid,
        timestamp: to_utc(row.created_at),
        module: Some(row.operation.clone()),
        trace_id: row.request_id.clone(),
        user_id: row.user_id,
        ip: Some(row.ip_address.clone()),
        user_agent: row.user_agent.clone(),
        audit_id: Some(row.id),
        context: Some(json!({
            "username": row.username,
            "operation_type": row.operation_type,
            "resource_type": row.resource_type,
            "resource_id": row.resource_id,
            "old_values": row.old_values,
            "new_values": row.new_values,
            "error_message": row.error_message,
            "session_id": row.session_id,
            "extra": row.extra_info,
        })),
        ..LogDoc::new(
            LogKind::Audit,
            if row.result == AuditResult::Success {
                "INFO"
            } else {
                "WARN"
            },
            "audit",
            message,
        )
    }
}

/// Queues up to `limit` audit rows not shipped yet; returns how many.
pub async fn run(ctx: &Context, limit: u64) -> anyhow::Result<usize> {
    let Some(store) = &ctx.telemetry.elastic else {
        return Ok(0);
    };
    let mut after = QUEUED.load(Ordering::Relaxed);
    if after < 0 {
        after = store.highest_audit_id().await?;
        QUEUED.fetch_max(after, Ordering::Relaxed);
    }
    let rows = audit_logs::Entity::find()
        .filter(audit_logs::Column::Id.gt(after))
        .order_by_asc(audit_logs::Column::Id)
        .limit(limit)
        .all(&ctx.db)
        .await?;
    let count = rows.len();
    if let Some(last) = rows.last().map(|r| r.id) {
        for row in rows {
            ctx.telemetry.log(doc(row));
        }
        QUEUED.fetch_max(last, Ordering::Relaxed);
    }
    Ok(count)
}
