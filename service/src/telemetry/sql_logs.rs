//! Logs in SQL, the embedded default: `system_logs`, `error_logs` and `access_logs`, written in
//! batches by the shipper (so a slow or briefly unavailable database spools them instead of
//! slowing requests).

use entity::{access_logs, error_logs, system_logs};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};

use super::{
    logs::{LogDoc, LogKind, from_ndjson, to_ndjson},
    shipper::Target,
};

pub struct SqlLogTarget(pub DatabaseConnection);

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn system_row(doc: &LogDoc) -> system_logs::ActiveModel {
    system_logs::ActiveModel {
        log_uuid: Set(doc.id),
        level: Set(cut(&doc.level, 10)),
        service: Set(cut(&doc.service, 50)),
        module: Set(doc.module.as_deref().map(|m| cut(m, 100))),
        message: Set(doc.message.clone()),
        context: Set(doc.context.clone()),
        trace_id: Set(doc.trace_id.as_deref().map(|t| cut(t, 100))),
        user_id: Set(doc.user_id),
        instance_id: Set(doc.instance_id),
        ip_address: Set(doc.ip.as_deref().map(|i| cut(i, 45))),
        created_at: Set(doc.timestamp.naive_utc()),
        ..Default::default()
    }
}

fn error_row(doc: &LogDoc) -> error_logs::ActiveModel {
    error_logs::ActiveModel {
        request_id: Set(doc.trace_id.as_deref().map(|t| cut(t, 100))),
        service: Set(cut(&doc.service, 50)),
        path: Set(doc
            .path
            .as_deref()
            .or(doc.module.as_deref())
            .map(|p| cut(p, 500))),
        message: Set(doc.message.clone()),
        detail: Set(doc.context.as_ref().map(ToString::to_string)),
        ip_address: Set(doc.ip.as_deref().map(|i| cut(i, 45))),
        user_agent: Set(doc.user_agent.as_deref().map(|u| cut(u, 512))),
        created_at: Set(doc.timestamp.naive_utc()),
        ..Default::default()
    }
}

fn access_row(doc: &LogDoc) -> access_logs::ActiveModel {
    access_logs::ActiveModel {
        request_id: Set(cut(doc.trace_id.as_deref().unwrap_or(""), 100)),
        user_id: Set(doc.user_id),
        method: Set(cut(doc.method.as_deref().unwrap_or(""), 10)),
        path: Set(cut(doc.path.as_deref().unwrap_or(""), 500)),
        route: Set(doc.module.as_deref().map(|r| cut(r, 200))),
        status: Set(doc.status.unwrap_or(0)),
        duration_ms: Set(doc.duration_ms.unwrap_or(0)),
        ip_address: Set(cut(doc.ip.as_deref().unwrap_or(""), 45)),
        user_agent: Set(doc.user_agent.as_deref().map(|u| cut(u, 512))),
        referer: Set(None),
        created_at: Set(doc.timestamp.naive_utc()),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl Target for SqlLogTarget {
    type Item = LogDoc;

    fn name(&self) -> &'static str {
        "sql logs"
    }

    fn encode(&self, items: &[LogDoc]) -> Vec<u8> {
        to_ndjson(items)
    }

    async fn send(&self, body: Vec<u8>) -> anyhow::Result<()> {
        let docs = from_ndjson(&body);
        let of = |kind: LogKind| docs.iter().filter(move |d| d.kind == kind);
        let system: Vec<_> = of(LogKind::System).map(system_row).collect();
        let errors: Vec<_> = of(LogKind::Error).map(error_row).collect();
        let access: Vec<_> = of(LogKind::Access).map(access_row).collect();
        // Audit copies exist only for Elasticsearch: in SQL the audit_logs row is the record.
        // One transaction: a batch that fails leaves nothing behind, so its replay duplicates
        // nothing (system lines are also unique by uuid).
        let txn = crate::db::begin(&self.0).await?;
        let on_uuid = sea_orm::sea_query::OnConflict::column(system_logs::Column::LogUuid)
            .update_column(system_logs::Column::LogUuid)
            .to_owned();
        for rows in system.chunks(crate::db::INSERT_BATCH_ROWS) {
            system_logs::Entity::insert_many(rows.to_vec())
                .on_conflict(on_uuid.clone())
                .exec_without_returning(&txn)
                .await?;
        }
        for rows in errors.chunks(crate::db::INSERT_BATCH_ROWS) {
            error_logs::Entity::insert_many(rows.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        for rows in access.chunks(crate::db::INSERT_BATCH_ROWS) {
            access_logs::Entity::insert_many(rows.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
