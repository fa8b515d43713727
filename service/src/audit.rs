//! The audit log: who changed what, with old and new values (secrets masked), written in the same
//! transaction as the change so a change without its audit row cannot exist.

use crate::rbac::perm;
use chrono::NaiveDateTime;
use entity::audit_logs;
use entity::states::AuditResult;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    Context, ServiceError, ServiceResult,
    auth::actor::Actor,
    pagination::{Page, PageRequest},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationType {
    Create,
    Update,
    Delete,
    Security,
}

impl OperationType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Security => "SECURITY",
        }
    }
}

/// One audit row before it is written.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub operation: &'static str,
    pub operation_type: OperationType,
    pub resource_type: &'static str,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub old_values: Option<Value>,
    pub new_values: Option<Value>,
    pub error_message: Option<String>,
    pub extra: Option<Value>,
}

impl AuditEntry {
    pub fn new(
        operation: &'static str,
        operation_type: OperationType,
        resource_type: &'static str,
    ) -> Self {
        Self {
            operation,
            operation_type,
            resource_type,
            resource_id: None,
            resource_name: None,
            old_values: None,
            new_values: None,
            error_message: None,
            extra: None,
        }
    }

    pub fn resource(mut self, id: impl ToString, name: impl Into<String>) -> Self {
        self.resource_id = Some(id.to_string());
        self.resource_name = Some(name.into());
        self
    }

    /// The resource's id alone, for attempts that fail before its name is known.
    pub fn target(mut self, id: impl ToString) -> Self {
        self.resource_id = Some(id.to_string());
        self
    }

    pub fn old(mut self, value: &impl Serialize) -> Self {
        self.old_values = serde_json::to_value(value).ok();
        self
    }

    pub fn new_values(mut self, value: &impl Serialize) -> Self {
        self.new_values = serde_json::to_value(value).ok();
        self
    }

    pub fn extra(mut self, value: Value) -> Self {
        self.extra = Some(value);
        self
    }
}

/// Writes a successful change on `conn` (pass the change's transaction).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    entry: AuditEntry,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    insert(conn, actor, entry, AuditResult::Success, now).await
}

/// Audits a freshly created resource (its full view as the new values), commits the creating
/// transaction and hands the view back: the common tail of every `create`.
pub async fn commit_created<T: Serialize>(
    txn: DatabaseTransaction,
    actor: &Actor,
    entry: &AuditEntry,
    id: i64,
    name: impl Into<String>,
    created: T,
    now: NaiveDateTime,
) -> ServiceResult<T> {
    let entry = entry.clone().resource(id, name).new_values(&created);
    record(&txn, actor, entry, now).await?;
    txn.commit().await?;
    Ok(created)
}

/// Audits an update (old and new views), commits its transaction and hands the new view back.
#[allow(clippy::too_many_arguments)]
pub async fn commit_updated<T: Serialize>(
    txn: DatabaseTransaction,
    actor: &Actor,
    entry: &AuditEntry,
    id: i64,
    name: impl Into<String>,
    before: &impl Serialize,
    after: T,
    now: NaiveDateTime,
) -> ServiceResult<T> {
    let entry = entry
        .clone()
        .resource(id, name)
        .old(before)
        .new_values(&after);
    record(&txn, actor, entry, now).await?;
    txn.commit().await?;
    Ok(after)
}

/// Audits a deletion (the old view), commits its transaction.
pub async fn commit_deleted(
    txn: DatabaseTransaction,
    actor: &Actor,
    entry: &AuditEntry,
    id: i64,
    name: impl Into<String>,
    before: &impl Serialize,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let entry = entry.clone().resource(id, name).old(before);
    record(&txn, actor, entry, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Writes a refused or failed change. Best effort: a failure here is logged, never masks the
/// original error.
pub async fn record_failure(
    ctx: &Context,
    actor: &Actor,
    mut entry: AuditEntry,
    error: &ServiceError,
) {
    entry.error_message = Some(error.to_string());
    if let Err(e) = insert(
        &ctx.db,
        actor,
        entry,
        AuditResult::Failure,
        ctx.clock.now_db(),
    )
    .await
    {
        tracing::error!(error = %e, "could not write a failure audit entry");
    }
}

/// Runs `change`; when it fails for a reason worth auditing (refused, conflicting, missing) the
/// attempt is written as a FAILURE row. Malformed input is not audited: it changed nothing.
pub async fn guard<T>(
    ctx: &Context,
    actor: &Actor,
    entry: AuditEntry,
    change: impl std::future::Future<Output = ServiceResult<T>>,
) -> ServiceResult<T> {
    let result = change.await;
    if let Err(error) = &result
        && matches!(
            error,
            ServiceError::Forbidden(_) | ServiceError::Conflict { .. } | ServiceError::NotFound(_)
        )
    {
        record_failure(ctx, actor, entry, error).await;
    }
    result
}

async fn insert<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    entry: AuditEntry,
    result: AuditResult,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let row = audit_logs::ActiveModel {
        audit_uuid: Set(uuid::Uuid::now_v7()),
        user_id: Set(actor.user_id),
        username: Set(actor.username.clone()),
        operation: Set(entry.operation.to_owned()),
        resource_type: Set(entry.resource_type.to_owned()),
        resource_id: Set(entry.resource_id),
        resource_name: Set(entry.resource_name.map(|n| truncate(&n, 200))),
        operation_type: Set(entry.operation_type.as_str().to_owned()),
        old_values: Set(entry.old_values.map(mask)),
        new_values: Set(entry.new_values.map(mask)),
        result: Set(result),
        error_message: Set(entry.error_message),
        ip_address: Set(truncate(&actor.meta.ip, 45)),
        user_agent: Set(actor.meta.user_agent.as_deref().map(|u| truncate(u, 512))),
        session_id: Set(actor.session_uuid.clone()),
        request_id: Set(actor.meta.request_id.clone()),
        extra_info: Set(entry.extra.map(mask)),
        created_at: Set(now),
        ..Default::default()
    };
    audit_logs::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn truncate(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

const MASK: &str = "******";

/// Replaces the value of every key that names a secret, at any depth.
pub fn mask(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if is_secret_key(&k) {
                        (k, Value::String(MASK.to_owned()))
                    } else {
                        (k, mask(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(mask).collect()),
        other => other,
    }
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "private_key",
        "api_key",
        "aes_key",
        "master_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub operation: Option<String>,
    pub operation_type: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub result: Option<AuditResult>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: AuditFilter,
    page: PageRequest,
) -> ServiceResult<Page<audit_logs::Model>> {
    actor.require(perm::AuditLogsRead)?;
    let mut query = audit_logs::Entity::find();
    if let Some(v) = filter.user_id {
        query = query.filter(audit_logs::Column::UserId.eq(v));
    }
    if let Some(v) = filter.username {
        query = query.filter(audit_logs::Column::Username.eq(v));
    }
    if let Some(v) = filter.operation {
        query = query.filter(audit_logs::Column::Operation.eq(v));
    }
    if let Some(v) = filter.operation_type {
        query = query.filter(audit_logs::Column::OperationType.eq(v.to_ascii_uppercase()));
    }
    if let Some(v) = filter.resource_type {
        query = query.filter(audit_logs::Column::ResourceType.eq(v));
    }
    if let Some(v) = filter.resource_id {
        query = query.filter(audit_logs::Column::ResourceId.eq(v));
    }
    if let Some(v) = filter.result {
        query = query.filter(audit_logs::Column::Result.eq(v));
    }
    if let Some(v) = filter.from {
        query = query.filter(audit_logs::Column::CreatedAt.gte(v));
    }
    if let Some(v) = filter.to {
        query = query.filter(audit_logs::Column::CreatedAt.lt(v));
    }
    if let Some(before) = page.before {
        query = query.filter(audit_logs::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(audit_logs::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, |r| r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_keys_at_any_depth() {
        let masked = mask(serde_json::json!({
            "username": "a",
            "password": "p",
            "config": [{"corp_secret": "s", "config_key": "agent_id"}],
            "refresh_token": "t"
        }));
        assert_eq!(masked["username"], "a");
        assert_eq!(masked["password"], MASK);
        assert_eq!(masked["config"][0]["corp_secret"], MASK);
        assert_eq!(masked["config"][0]["config_key"], "agent_id");
        assert_eq!(masked["refresh_token"], MASK);
    }
}
