//! `/api/v1/permissions`: the catalogue of `resource:action` permissions.

use actix_web::web;
use service::rbac::{self, PermissionView, perm};

use crate::{error::ApiError, extract::Authorized, state::AppState};

#[utoipa::path(get, path = "/api/v1/permissions", tag = "roles",
    responses((status = 200, body = Vec<PermissionView>)))]
pub async fn list_permissions(
    auth: Authorized<perm::PermissionsRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<PermissionView>>, ApiError> {
    Ok(web::Json(rbac::catalogue(&state.ctx, &auth.actor).await?))
}
