//! `/api/v1/instances`: register and manage WeWork instances, their configuration, heartbeats,
//! maintenance and sync.

use actix_web::{HttpResponse, web};
use entity::states::{InstanceKind, InstanceStatus};
use serde::{Deserialize, Serialize};
use service::{
    drivers::LoginQr,
    instances::{
        ConfigEntryView, InstanceView, accounts,
        configs::{self, ConfigPut},
        heartbeat::Beat,
        manage::{self, InstanceFilter, InstanceInput, InstancePatch},
    },
    pagination::{Page, PageRequest},
    rbac::perm,
    sync::{self, SyncRunView},
};

use super::{PageQuery, no_content};
use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, Id, IdempotencyKey, ValidJson, ValidQuery},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    /// Substring of the name.
    pub q: Option<String>,
    pub status: Option<InstanceStatus>,
    pub kind: Option<InstanceKind>,
    pub enabled: Option<bool>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/instances", tag = "instances", params(InstanceQuery),
    responses((status = 200, body = Page<InstanceView>), (status = 422, body = Problem)))]
pub async fn list_instances(
    auth: Authorized<perm::InstancesRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<InstanceQuery>,
) -> Result<web::Json<Page<InstanceView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = InstanceFilter {
        q: q.q,
        status: q.status,
        kind: q.kind,
        enabled: q.enabled,
    };
    Ok(web::Json(
        manage::list(&state.ctx, &auth.actor, filter, page).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/instances", tag = "instances", request_body = InstanceInput,
    responses((status = 201, body = InstanceView), (status = 409, body = Problem), (status = 422, description = "Invalid input, or a URL the outbound policy refuses", body = Problem)))]
pub async fn create_instance(
    auth: Authorized<perm::InstancesCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<InstanceInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "instances.create", body, |body| {
        manage::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = InstanceView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_instance(
    auth: Authorized<perm::InstancesRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<InstanceView>, ApiError> {
    Ok(web::Json(manage::get(&state.ctx, &auth.actor, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)), request_body = InstancePatch,
    responses((status = 200, body = InstanceView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_instance(
    auth: Authorized<perm::InstancesUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<InstancePatch>,
) -> Result<web::Json<InstanceView>, ApiError> {
    Ok(web::Json(
        manage::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_instance(
    auth: Authorized<perm::InstancesDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    manage::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceIn {
    /// `true` pauses heartbeats; `false` returns the instance to service.
    pub on: bool,
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/maintenance", tag = "instances", params(("id" = i64, Path)), request_body = MaintenanceIn,
    responses((status = 200, body = InstanceView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_maintenance(
    auth: Authorized<perm::InstancesControl>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<MaintenanceIn>,
) -> Result<web::Json<InstanceView>, ApiError> {
    Ok(web::Json(
        manage::set_maintenance(&state.ctx, &auth.actor, id, body.on).await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckOut {
    pub online: bool,
    pub latency_ms: Option<i32>,
    pub error: Option<String>,
    pub instance: InstanceView,
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/check", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, description = "A heartbeat run now", body = CheckOut), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn check_instance(
    auth: Authorized<perm::InstancesControl>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<CheckOut>, ApiError> {
    let (beat, instance) = manage::check(&state.ctx, &auth.actor, id).await?;
    Ok(web::Json(match beat {
        Beat::Online { latency_ms } => CheckOut {
            online: true,
            latency_ms: Some(latency_ms),
            error: None,
            instance,
        },
        Beat::Failed { error, .. } => CheckOut {
            online: false,
            latency_ms: None,
            error: Some(error),
            instance,
        },
    }))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/configs", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, description = "Secrets shown as ******", body = Vec<ConfigEntryView>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_configs(
    auth: Authorized<perm::InstancesRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<Vec<ConfigEntryView>>, ApiError> {
    Ok(web::Json(configs::list(&state.ctx, &auth.actor, id).await?))
}

fn config_key(req: &actix_web::HttpRequest) -> String {
    req.match_info().get("key").unwrap_or_default().to_owned()
}

#[utoipa::path(put, path = "/api/v1/instances/{id}/configs/{key}", tag = "instances", params(("id" = i64, Path), ("key" = String, Path)), request_body = ConfigPut,
    responses((status = 200, body = ConfigEntryView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_config(
    auth: Authorized<perm::InstancesUpdate>,
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    Id(id): Id,
    ValidJson(body): ValidJson<ConfigPut>,
) -> Result<web::Json<ConfigEntryView>, ApiError> {
    Ok(web::Json(
        configs::put(&state.ctx, &auth.actor, id, &config_key(&req), body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}/configs/{key}", tag = "instances", params(("id" = i64, Path), ("key" = String, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_config(
    auth: Authorized<perm::InstancesUpdate>,
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    configs::delete(&state.ctx, &auth.actor, id, &config_key(&req)).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/sync", tag = "instances", params(("id" = i64, Path)),
    responses((status = 202, description = "Queued (or the run already queued or running)", body = SyncRunView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn request_sync(
    auth: Authorized<perm::InstancesControl>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Accepted().json(sync::request(&state.ctx, &auth.actor, id).await?))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/sync-runs", tag = "instances", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Page<SyncRunView>), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_sync_runs(
    auth: Authorized<perm::InstancesRead>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<web::Json<Page<SyncRunView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        sync::list(&state.ctx, &auth.actor, id, page).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginQrIn {
    /// The account to log in again; omit for a new one.
    pub account_wxid: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/login-qr", tag = "instances", params(("id" = i64, Path)), request_body = LoginQrIn,
    responses((status = 200, description = "Scan it with the WeCom app", body = LoginQr), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, description = "The instance kind has no QR login", body = Problem), (status = 503, description = "The instance failed", body = Problem)))]
pub async fn login_qr(
    auth: Authorized<perm::AccountsControl>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<LoginQrIn>,
) -> Result<web::Json<LoginQr>, ApiError> {
    Ok(web::Json(
        accounts::login_qr(&state.ctx, &auth.actor, id, body.account_wxid).await?,
    ))
}
