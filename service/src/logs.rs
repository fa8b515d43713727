//! Log search for `GET /api/v1/logs`: Elasticsearch when logs go there, the SQL log tables
//! otherwise. Newest first, paged by the timestamp of the last line seen.

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::{access_logs, audit_logs, error_logs, system_logs};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};

use crate::{
    Context, ServiceError, ServiceResult,
    auth::actor::Actor,
    clock::to_utc,
    telemetry::{LogDoc, LogKind},
    validate::Violations,
};

/// The query string of `GET /api/v1/logs`.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Text to find in the message (a phrase; Chinese works), or in the path of access lines.
    pub q: Option<String>,
    /// Default: all; audit lines need `audit_logs:read`.
    #[param(value_type = Option<LogKind>)]
    pub kind: Option<String>,
    /// ERROR, WARN, INFO or DEBUG (any case).
    #[param(
        pattern = "^([Ee][Rr][Rr][Oo][Rr]|[Ww][Aa][Rr][Nn]|[Ii][Nn][Ff][Oo]|[Dd][Ee][Bb][Uu][Gg])$"
    )]
    pub level: Option<String>,
    /// api, worker or serve.
    pub service: Option<String>,
    pub instance_id: Option<i64>,
    pub user_id: Option<i64>,
    /// Request id (the `x-request-id` header of the request that logged it).
    pub trace_id: Option<String>,
    /// Inclusive lower bound (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Only lines older than this: the previous page's `next_before`.
    pub before: Option<DateTime<Utc>>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LogPage {
    pub items: Vec<LogDoc>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<DateTime<Utc>>,
    /// `elasticsearch` or `sql`.
    pub source: String,
}

struct Checked {
    kinds: Vec<LogKind>,
    level: Option<String>,
    limit: u64,
}

/// Audit lines are for those who may read the audit log: asked for by name they need
/// `audit_logs:read`, and a search of every kind leaves them out for anyone else.
fn check(query: &LogQuery, actor: &Actor) -> ServiceResult<Checked> {
    let mut v = Violations::new();
    let kinds = match query.kind.as_deref() {
        None if actor.has(perm::AuditLogsRead) => vec![
            LogKind::System,
            LogKind::Error,
            LogKind::Access,
            LogKind::Audit,
        ],
        None => vec![LogKind::System, LogKind::Error, LogKind::Access],
        Some(text) => match LogKind::parse(text) {
            Some(LogKind::Audit) => {
                actor.require(perm::AuditLogsRead)?;
                vec![LogKind::Audit]
            }
            Some(kind) => vec![kind],
            None => {
                v.add("kind", "must be system, error, access or audit");
                Vec::new()
            }
        },
    };
    let level = query.level.as_deref().map(str::to_ascii_uppercase);
    if level
        .as_deref()
        .is_some_and(|l| !["ERROR", "WARN", "INFO", "DEBUG"].contains(&l))
    {
        v.add("level", "must be ERROR, WARN, INFO or DEBUG");
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        v.add("limit", "must be between 1 and 500");
    }
    if query.q.as_deref().is_some_and(|q| q.chars().count() > 200) {
        v.add("q", "must be at most 200 characters");
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        v.add("to", "must not be before from");
    }
    v.finish()?;
    Ok(Checked {
        kinds,
        level,
        limit,
    })
}

pub async fn search(ctx: &Context, actor: &Actor, query: LogQuery) -> ServiceResult<LogPage> {
    actor.require(perm::LogsRead)?;
    let checked = check(&query, actor)?;
    let mut items = match &ctx.telemetry.elastic {
        Some(store) => search_elastic(store, &query, &checked).await?,
        None => search_sql(ctx, &query, &checked).await?,
    };
    let more = items.len() as u64 > checked.limit;
    items.truncate(usize::try_from(checked.limit).unwrap_or(usize::MAX));
    Ok(LogPage {
        next_before: more.then(|| items.last().map(|d| d.timestamp)).flatten(),
        items,
        source: if ctx.telemetry.elastic.is_some() {
            "elasticsearch"
        } else {
            "sql"
        }
        .to_owned(),
    })
}

async fn search_elastic(
    store: &crate::telemetry::elastic::ElasticStore,
    query: &LogQuery,
    checked: &Checked,
) -> ServiceResult<Vec<LogDoc>> {
    let mut must = Vec::new();
    if let Some(q) = query.q.as_deref().filter(|q| !q.trim().is_empty()) {
        must.push(json!({ "match_phrase": { "message": q } }));
    }
    let mut filter = vec![
        json!({ "terms": { "kind": checked.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>() } }),
    ];
    let mut term = |field: &str, value: Value| filter.push(json!({ "term": { field: value } }));
    if let Some(level) = &checked.level {
        term("level", json!(level));
    }
    if let Some(service) = &query.service {
        term("service", json!(service));
    }
    if let Some(id) = query.instance_id {
        term("instance_id", json!(id));
    }
    if let Some(id) = query.user_id {
        term("user_id", json!(id));
    }
    if let Some(trace) = &query.trace_id {
        term("trace_id", json!(trace));
    }
    let mut range = serde_json::Map::new();
    if let Some(from) = query.from {
        range.insert("gte".into(), json!(from.to_rfc3339()));
    }
    if let Some(to) = query.to {
        range.insert("lt".into(), json!(to.to_rfc3339()));
    }
    if let Some(before) = query.before {
        range.insert("lt".into(), json!(before.to_rfc3339()));
    }
    if !range.is_empty() {
        filter.push(json!({ "range": { "@timestamp": range } }));
    }
    let body = json!({
        "query": { "bool": { "must": must, "filter": filter } },
        "sort": [{ "@timestamp": { "order": "desc" } }],
        "size": checked.limit + 1,
    });
    let answer = store
        .search(body)
        .await
        .map_err(|e| ServiceError::Unavailable(format!("log search: {e:#}")))?;
    Ok(answer["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hit| serde_json::from_value(hit["_source"].clone()).ok())
        .collect())
}

/// Up to `limit + 1` newest lines of each selected table, merged.
async fn search_sql(
    ctx: &Context,
    query: &LogQuery,
    checked: &Checked,
) -> ServiceResult<Vec<LogDoc>> {
    let fetch = checked.limit + 1;
    let upper = match (query.to, query.before) {
        (Some(to), Some(before)) => Some(to.min(before)),
        (to, before) => to.or(before),
    }
    .map(|t| t.naive_utc());
    let lower = query.from.map(|t| t.naive_utc());
    let text = query.q.as_deref().filter(|q| !q.trim().is_empty());
    let mut docs = Vec::new();
    for kind in &checked.kinds {
        match kind {
            LogKind::System => {
                let mut select = system_logs::Entity::find();
                if let Some(q) = text {
                    select = select.filter(system_logs::Column::Message.contains(q));
                }
                if let Some(level) = &checked.level {
                    select = select.filter(system_logs::Column::Level.eq(level.as_str()));
                }
                if let Some(service) = &query.service {
                    select = select.filter(system_logs::Column::Service.eq(service.as_str()));
                }
                if let Some(id) = query.instance_id {
                    select = select.filter(system_logs::Column::InstanceId.eq(id));
                }
                if let Some(id) = query.user_id {
                    select = select.filter(system_logs::Column::UserId.eq(id));
                }
                if let Some(trace) = &query.trace_id {
                    select = select.filter(system_logs::Column::TraceId.eq(trace.as_str()));
                }
                if let Some(t) = lower {
                    select = select.filter(system_logs::Column::CreatedAt.gte(t));
                }
                if let Some(t) = upper {
                    select = select.filter(system_logs::Column::CreatedAt.lt(t));
                }
                let rows = select
                    .order_by_desc(system_logs::Column::CreatedAt)
                    .limit(fetch)
                    .all(&ctx.db)
                    .await?;
                docs.extend(rows.into_iter().map(|r| LogDoc {
                    id: r.log_uuid,
                    module: r.module,
                    context: r.context,
                    trace_id: r.trace_id,
                    user_id: r.user_id,
                    instance_id: r.instance_id,
                    ip: r.ip_address,
                    timestamp: to_utc(r.created_at),
                    ..LogDoc::new(LogKind::System, &r.level, &r.service, r.message)
                }));
            }
            LogKind::Error => {
                // Error lines carry no level, instance or user columns in SQL.
                if checked.level.as_deref().is_some_and(|l| l != "ERROR")
                    || query.instance_id.is_some()
                    || query.user_id.is_some()
                {
                    continue;
                }
                let mut select = error_logs::Entity::find();
                if let Some(q) = text {
                    select = select.filter(error_logs::Column::Message.contains(q));
                }
                if let Some(service) = &query.service {
                    select = select.filter(error_logs::Column::Service.eq(service.as_str()));
                }
                if let Some(trace) = &query.trace_id {
                    select = select.filter(error_logs::Column::RequestId.eq(trace.as_str()));
                }
                if let Some(t) = lower {
                    select = select.filter(error_logs::Column::CreatedAt.gte(t));
                }
                if let Some(t) = upper {
                    select = select.filter(error_logs::Column::CreatedAt.lt(t));
                }
                let rows = select
                    .order_by_desc(error_logs::Column::CreatedAt)
                    .limit(fetch)
                    .all(&ctx.db)
                    .await?;
                docs.extend(rows.into_iter().map(|r| LogDoc {
                    id: uuid::Uuid::nil(),
                    module: r.path.clone(),
                    path: r.path,
                    context: r.detail.map(Value::String),
                    trace_id: r.request_id,
                    ip: r.ip_address,
                    user_agent: r.user_agent,
                    timestamp: to_utc(r.created_at),
                    ..LogDoc::new(LogKind::Error, "ERROR", &r.service, r.message)
                }));
            }
            LogKind::Audit => {
                if query.instance_id.is_some() {
                    continue;
                }
                let mut select = audit_logs::Entity::find();
                if let Some(m) = crate::search::contains_any(
                    &[
                        audit_logs::Column::Operation,
                        audit_logs::Column::ResourceType,
                        audit_logs::Column::ResourceName,
                    ],
                    text,
                ) {
                    select = select.filter(m);
                }
                match checked.level.as_deref() {
                    Some("INFO") => {
                        select = select.filter(audit_logs::Column::Result.eq("SUCCESS"))
                    }
                    Some("WARN") => {
                        select = select.filter(audit_logs::Column::Result.ne("SUCCESS"))
                    }
                    Some(_) => continue,
                    None => {}
                }
                if let Some(id) = query.user_id {
                    select = select.filter(audit_logs::Column::UserId.eq(id));
                }
                if let Some(trace) = &query.trace_id {
                    select = select.filter(audit_logs::Column::RequestId.eq(trace.as_str()));
                }
                if let Some(t) = lower {
                    select = select.filter(audit_logs::Column::CreatedAt.gte(t));
                }
                if let Some(t) = upper {
                    select = select.filter(audit_logs::Column::CreatedAt.lt(t));
                }
                let rows = select
                    .order_by_desc(audit_logs::Column::Id)
                    .limit(fetch)
                    .all(&ctx.db)
                    .await?;
                docs.extend(rows.into_iter().map(crate::telemetry::audit_ship::doc));
            }
            LogKind::Access => {
                if checked.level.is_some() || query.instance_id.is_some() {
                    continue;
                }
                let mut select = access_logs::Entity::find();
                if let Some(q) = text {
                    select = select.filter(access_logs::Column::Path.contains(q));
                }
                if let Some(id) = query.user_id {
                    select = select.filter(access_logs::Column::UserId.eq(id));
                }
                if let Some(trace) = &query.trace_id {
                    select = select.filter(access_logs::Column::RequestId.eq(trace.as_str()));
                }
                if let Some(t) = lower {
                    select = select.filter(access_logs::Column::CreatedAt.gte(t));
                }
                if let Some(t) = upper {
                    select = select.filter(access_logs::Column::CreatedAt.lt(t));
                }
                let rows = select
                    .order_by_desc(access_logs::Column::CreatedAt)
                    .limit(fetch)
                    .all(&ctx.db)
                    .await?;
                docs.extend(rows.into_iter().map(access_doc));
            }
        }
    }
    docs.sort_by_key(|d| std::cmp::Reverse(d.timestamp));
    Ok(docs)
}

fn access_doc(r: access_logs::Model) -> LogDoc {
    let message = format!("{} {} {}", r.method, r.path, r.status);
    LogDoc {
        id: uuid::Uuid::nil(),
        module: r.route,
        trace_id: Some(r.request_id),
        user_id: r.user_id,
        ip: Some(r.ip_address),
        method: Some(r.method),
        path: Some(r.path),
        status: Some(r.status),
        duration_ms: Some(r.duration_ms),
        user_agent: r.user_agent,
        timestamp: to_utc(r.created_at),
        ..LogDoc::new(LogKind::Access, access_level(r.status), "api", message)
    }
}

/// Access lines by status class: 5xx ERROR, 4xx WARN, else INFO.
pub fn access_level(status: i32) -> &'static str {
    match status {
        500.. => "ERROR",
        400..=499 => "WARN",
        _ => "INFO",
    }
}
