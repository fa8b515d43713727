//! `/api/v1/monitoring`: the health view — overview counts and metric series from SQL.

use actix_web::web;
use service::{
    monitoring::{self, Overview, Series, SeriesQuery},
    rbac::perm,
};

use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, ValidQuery},
    state::AppState,
};

#[utoipa::path(get, path = "/api/v1/monitoring/overview", tag = "monitoring",
    responses((status = 200, body = Overview)))]
pub async fn overview(
    auth: Authorized<perm::MonitoringRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<Overview>, ApiError> {
    Ok(web::Json(
        monitoring::overview(&state.ctx, &auth.actor).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/monitoring/series", tag = "monitoring", params(SeriesQuery),
    responses((status = 200, body = Series), (status = 422, body = Problem)))]
pub async fn series(
    auth: Authorized<perm::MonitoringRead>,
    state: web::Data<AppState>,
    ValidQuery(query): ValidQuery<SeriesQuery>,
) -> Result<web::Json<Series>, ApiError> {
    Ok(web::Json(
        monitoring::series(&state.ctx, &auth.actor, query).await?,
    ))
}
