//! `/api/v1/login-logs`: every login attempt.

use actix_web::web;
use chrono::{DateTime, Utc};
use entity::login_logs;
use serde::{Deserialize, Serialize};
use service::{
    auth::login_log::{self, LoginLogFilter},
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
pub struct LoginLogOut {
    pub id: i64,
    pub user_id: Option<i64>,
    /// The name or email that was typed.
    pub login_name: String,
    pub ip_address: String,
    pub user_agent: Option<String>,
    /// `success` or `failure`.
    pub result: String,
    /// Why it failed: unknown_user, bad_password, bad_totp, totp_required, locked, disabled, ip_throttled.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<login_logs::Model> for LoginLogOut {
    fn from(m: login_logs::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            login_name: m.login_name,
            ip_address: m.ip_address,
            user_agent: m.user_agent,
            result: m.result,
            reason: m.reason,
            created_at: to_utc(m.created_at),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LoginLogQuery {
    pub user_id: Option<i64>,
    pub ip: Option<String>,
    /// `success` or `failure`.
    pub result: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/login-logs", tag = "audit", params(LoginLogQuery),
    responses((status = 200, body = Page<LoginLogOut>), (status = 422, body = Problem)))]
pub async fn list_login_logs(
    auth: Authorized<perm::LoginLogsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<LoginLogQuery>,
) -> Result<web::Json<Page<LoginLogOut>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = LoginLogFilter {
        user_id: q.user_id,
        ip: q.ip,
        result: q.result,
        from: q.from.map(|t| t.naive_utc()),
        to: q.to.map(|t| t.naive_utc()),
    };
    let rows = login_log::list(&state.ctx, &auth.actor, filter, page).await?;
    Ok(web::Json(Page {
        items: rows.items.into_iter().map(LoginLogOut::from).collect(),
        next_cursor: rows.next_cursor,
    }))
}
