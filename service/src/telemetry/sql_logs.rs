//! Logs in SQL, the embedded default: `system_logs`, `error_logs` and `access_logs`, written in
//! batches by the shipper (so a slow or briefly unavailable database spools them instead of
//! slowing requests).

use entity::{access_logs, error_logs, system_logs};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, Statement,
};

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

/// An `access_logs` row, cut to its columns' sizes. A missing value is left out of its JSON
/// form, which both databases read as NULL.
#[derive(serde::Serialize)]
struct AccessRow {
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<i64>,
    method: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<String>,
    status: i32,
    duration_ms: i32,
    ip_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    /// As `YYYY-MM-DD HH:MM:SS.ffffff`, which PostgreSQL and MySQL both read as a timestamp.
    #[serde(serialize_with = "as_sql_datetime")]
    created_at: chrono::NaiveDateTime,
}

fn as_sql_datetime<S: serde::Serializer>(
    at: &chrono::NaiveDateTime,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(&at.format("%Y-%m-%d %H:%M:%S%.6f"))
}

fn access_row(doc: &LogDoc) -> AccessRow {
    AccessRow {
        request_id: cut(doc.trace_id.as_deref().unwrap_or(""), 64),
        user_id: doc.user_id,
        method: cut(doc.method.as_deref().unwrap_or(""), 10),
        path: cut(doc.path.as_deref().unwrap_or(""), 500),
        route: doc.module.as_deref().map(|r| cut(r, 200)),
        status: doc.status.unwrap_or(0),
        duration_ms: doc.duration_ms.unwrap_or(0),
        ip_address: cut(doc.ip.as_deref().unwrap_or(""), 45),
        user_agent: doc.user_agent.as_deref().map(|u| cut(u, 512)),
        created_at: doc.timestamp.naive_utc(),
    }
}

impl AccessRow {
    fn into_model(self) -> access_logs::ActiveModel {
        access_logs::ActiveModel {
            request_id: Set(self.request_id),
            user_id: Set(self.user_id),
            method: Set(self.method),
            path: Set(self.path),
            route: Set(self.route),
            status: Set(self.status),
            duration_ms: Set(self.duration_ms),
            ip_address: Set(self.ip_address),
            user_agent: Set(self.user_agent),
            referer: Set(None),
            created_at: Set(self.created_at),
            ..Default::default()
        }
    }
}

/// Rows one access-log statement takes on PostgreSQL and MySQL: they go as one JSON parameter,
/// so the count is bounded by the statement's size, not by the number of bind parameters.
const ACCESS_ROWS_PER_STATEMENT: usize = 2000;

/// PostgreSQL's and MySQL's form of inserting access rows: one JSON array parameter unpacked by
/// the server. Every request writes a row, and the server shares the machine with the API;
/// in 50-row multi-row `INSERT`s PostgreSQL spent about twice as long on them. SQLite, in the
/// process, takes the rows as bound values.
fn access_insert(backend: DbBackend) -> Option<String> {
    const COLUMNS: &str = "request_id, user_id, method, path, route, status, duration_ms, \
                           ip_address, user_agent, created_at";
    let source = match backend {
        DbBackend::Postgres => {
            "json_to_recordset($1::json) AS r(request_id varchar, user_id bigint, \
             method varchar, path varchar, route varchar, status integer, duration_ms integer, \
             ip_address varchar, user_agent varchar, created_at timestamp)"
        }
        DbBackend::MySql => {
            "JSON_TABLE(?, '$[*]' COLUMNS (request_id varchar(64) PATH '$.request_id', \
             user_id bigint PATH '$.user_id', method varchar(10) PATH '$.method', \
             path varchar(1000) PATH '$.path', route varchar(200) PATH '$.route', \
             status int PATH '$.status', duration_ms int PATH '$.duration_ms', \
             ip_address varchar(45) PATH '$.ip_address', \
             user_agent varchar(512) PATH '$.user_agent', \
             created_at datetime(6) PATH '$.created_at')) AS r"
        }
        _ => return None,
    };
    Some(format!(
        "INSERT INTO access_logs ({COLUMNS}) SELECT {COLUMNS} FROM {source}"
    ))
}

async fn insert_access(txn: &DatabaseTransaction, rows: Vec<AccessRow>) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    let Some(sql) = access_insert(backend) else {
        let models: Vec<_> = rows.into_iter().map(AccessRow::into_model).collect();
        for chunk in models.chunks(crate::db::INSERT_BATCH_ROWS) {
            access_logs::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await?;
        }
        return Ok(());
    };
    for chunk in rows.chunks(ACCESS_ROWS_PER_STATEMENT) {
        let json = serde_json::to_string(chunk).map_err(|e| DbErr::Custom(e.to_string()))?;
        txn.execute_raw(Statement::from_sql_and_values(backend, &sql, [json.into()]))
            .await?;
    }
    Ok(())
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
        insert_access(&txn, access).await?;
        txn.commit().await?;
        Ok(())
    }
}
