//! `/api/v1/users`: user administration.

use actix_web::{HttpResponse, web};
use entity::states::UserStatus;
use serde::Deserialize;
use service::{
    auth::sessions::{self, SessionView},
    pagination::{Page, PageRequest},
    rbac::{
        perm,
        users::{self as user_service, RoleGrant, UserFilter, UserInput, UserPatch, UserView},
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
pub struct UserQuery {
    /// Substring of username, email or nickname.
    pub q: Option<String>,
    pub status: Option<UserStatus>,
    /// Only users holding this role.
    pub role_id: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = Page<UserView>), (status = 422, body = Problem)))]
pub async fn list_users(
    auth: Authorized<perm::UsersRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<UserQuery>,
) -> Result<web::Json<Page<UserView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = UserFilter {
        q: q.q,
        status: q.status,
        role_id: q.role_id,
    };
    Ok(web::Json(
        user_service::list(&state.ctx, &auth.actor, filter, page).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserInput,
    responses((status = 201, body = UserView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    auth: Authorized<perm::UsersCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<UserInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "users.create", body, |body| {
        user_service::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    auth: Authorized<perm::UsersRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        user_service::get(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_user(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<UserPatch>,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        user_service::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 204, description = "Soft-deleted; the username can be reused"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_user(
    auth: Authorized<perm::UsersDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    user_service::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, description = "Disabled and signed out everywhere", body = UserView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn disable_user(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        user_service::set_status(&state.ctx, &auth.actor, id, false).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn enable_user(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        user_service::set_status(&state.ctx, &auth.actor, id, true).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, description = "Lockout lifted", body = UserView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn unlock_user(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        user_service::unlock(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/reset-totp", tag = "users", params(("id" = i64, Path)),
    responses((status = 204, description = "2FA removed; the user is signed out everywhere"), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn reset_totp(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    user_service::reset_totp(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordIn {
    /// 12 to 128 characters.
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = i64, Path)), request_body = SetPasswordIn,
    responses((status = 204, description = "Password set; the user is signed out everywhere"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_password(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<SetPasswordIn>,
) -> Result<HttpResponse, ApiError> {
    user_service::reset_password(&state.ctx, &auth.actor, id, &body.password).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesIn {
    /// The complete set of grants; roles not listed are removed.
    pub roles: Vec<RoleGrant>,
}

#[utoipa::path(put, path = "/api/v1/users/{id}/roles", tag = "users", params(("id" = i64, Path)), request_body = SetRolesIn,
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_roles(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<SetRolesIn>,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        user_service::set_roles(&state.ctx, &auth.actor, id, body.roles).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetInstancesIn {
    /// The complete set of instances assigned to the user (what a role with data scope
    /// `assigned` or `own` reaches); instances not listed are unassigned. Only instances you
    /// see can be assigned.
    #[schema(max_items = 1000)]
    pub instance_ids: Vec<i64>,
}

#[utoipa::path(put, path = "/api/v1/users/{id}/instances", tag = "users", params(("id" = i64, Path)), request_body = SetInstancesIn,
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_instances(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<SetInstancesIn>,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(
        user_service::set_instances(&state.ctx, &auth.actor, id, body.instance_ids).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<SessionView>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn list_user_sessions(
    auth: Authorized<perm::UsersRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<Vec<SessionView>>, ApiError> {
    Ok(web::Json(
        sessions::list_for_user(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions", tag = "users", params(("id" = i64, Path)),
    responses((status = 204, description = "Signed out everywhere"), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_user_sessions(
    auth: Authorized<perm::UsersUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    sessions::revoke_all_for_user(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}
