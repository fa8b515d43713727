//! `/api/v1/logs`: search system, error and access logs — in Elasticsearch when configured,
//! in SQL otherwise.

use actix_web::web;
use service::{
    logs::{self, LogPage, LogQuery},
    rbac::perm,
};

use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, ValidQuery},
    state::AppState,
};

#[utoipa::path(get, path = "/api/v1/logs", tag = "logs", params(LogQuery),
    responses((status = 200, body = LogPage),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn search_logs(
    auth: Authorized<perm::LogsRead>,
    state: web::Data<AppState>,
    ValidQuery(query): ValidQuery<LogQuery>,
) -> Result<web::Json<LogPage>, ApiError> {
    Ok(web::Json(
        logs::search(&state.ctx, &auth.actor, query).await?,
    ))
}
