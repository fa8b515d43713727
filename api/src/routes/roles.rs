//! `/api/v1/roles`: roles and their permissions.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use service::{
    pagination::{Page, PageRequest},
    rbac::{
        perm,
        roles::{self as role_service, RoleInput, RolePatch, RoleView},
    },
};

use super::no_content;
use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, Id, IdempotencyKey, ValidJson, ValidQuery},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RoleQuery {
    /// Substring of the name or display name.
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", params(RoleQuery),
    responses((status = 200, body = Page<RoleView>), (status = 422, body = Problem)))]
pub async fn list_roles(
    auth: Authorized<perm::RolesRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<RoleQuery>,
) -> Result<web::Json<Page<RoleView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        role_service::list(&state.ctx, &auth.actor, q.q, page).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = RoleInput,
    responses((status = 201, body = RoleView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_role(
    auth: Authorized<perm::RolesCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<RoleInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "roles.create", body, |body| {
        role_service::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = i64, Path)),
    responses((status = 200, body = RoleView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_role(
    auth: Authorized<perm::RolesRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<RoleView>, ApiError> {
    Ok(web::Json(
        role_service::get(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = i64, Path)), request_body = RolePatch,
    responses((status = 200, body = RoleView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_role(
    auth: Authorized<perm::RolesUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<RolePatch>,
) -> Result<web::Json<RoleView>, ApiError> {
    Ok(web::Json(
        role_service::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/roles/{id}", tag = "roles", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted; its grants are removed"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_role(
    auth: Authorized<perm::RolesDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    role_service::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPermissionsIn {
    /// The complete set of permission names.
    #[schema(value_type = Vec<perm::PermissionName>)]
    pub permissions: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/roles/{id}/permissions", tag = "roles", params(("id" = i64, Path)), request_body = SetPermissionsIn,
    responses((status = 200, body = RoleView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_permissions(
    auth: Authorized<perm::RolesUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<SetPermissionsIn>,
) -> Result<web::Json<RoleView>, ApiError> {
    Ok(web::Json(
        role_service::set_permissions(&state.ctx, &auth.actor, id, body.permissions).await?,
    ))
}
