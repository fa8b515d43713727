//! `/api/v1/audit-logs`: who changed what, searchable.

use actix_web::web;
use chrono::{DateTime, Utc};
use entity::audit_logs;
use entity::states::AuditResult;
use serde::{Deserialize, Serialize};
use service::{
    audit::{self, AuditFilter},
    clock::to_utc,
    pagination::{Page, PageRequest},
    rbac::perm,
};

use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, ValidQuery},
    state::AppState,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLogOut {
    pub id: i64,
    pub audit_uuid: uuid::Uuid,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    /// Dotted name of the action, e.g. `user.create`.
    pub operation: String,
    /// CREATE, UPDATE, DELETE or SECURITY.
    pub operation_type: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    /// State before the change, secrets masked.
    pub old_values: Option<serde_json::Value>,
    /// State after the change, secrets masked.
    pub new_values: Option<serde_json::Value>,
    pub result: AuditResult,
    pub error_message: Option<String>,
    pub ip_address: String,
    pub user_agent: Option<String>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub extra_info: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl From<audit_logs::Model> for AuditLogOut {
    fn from(m: audit_logs::Model) -> Self {
        Self {
            id: m.id,
            audit_uuid: m.audit_uuid,
            user_id: m.user_id,
            username: m.username,
            operation: m.operation,
            operation_type: m.operation_type,
            resource_type: m.resource_type,
            resource_id: m.resource_id,
            resource_name: m.resource_name,
            old_values: m.old_values,
            new_values: m.new_values,
            result: m.result,
            error_message: m.error_message,
            ip_address: m.ip_address,
            user_agent: m.user_agent,
            session_id: m.session_id,
            request_id: m.request_id,
            extra_info: m.extra_info,
            created_at: to_utc(m.created_at),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    /// e.g. `role.create`.
    pub operation: Option<String>,
    /// CREATE, UPDATE, DELETE or SECURITY.
    pub operation_type: Option<String>,
    /// e.g. `user`, `role`.
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub result: Option<AuditResult>,
    /// Inclusive lower bound (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit-logs", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditLogOut>), (status = 422, body = Problem)))]
pub async fn list_audit_logs(
    auth: Authorized<perm::AuditLogsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<AuditQuery>,
) -> Result<web::Json<Page<AuditLogOut>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = AuditFilter {
        user_id: q.user_id,
        username: q.username,
        operation: q.operation,
        operation_type: q.operation_type,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        result: q.result,
        from: q.from.map(|t| t.naive_utc()),
        to: q.to.map(|t| t.naive_utc()),
    };
    let rows = audit::list(&state.ctx, &auth.actor, filter, page).await?;
    Ok(web::Json(Page {
        items: rows.items.into_iter().map(AuditLogOut::from).collect(),
        next_cursor: rows.next_cursor,
    }))
}
