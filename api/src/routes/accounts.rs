//! `/api/v1/accounts`: WeCom accounts synced from instances.

use actix_web::web;
use entity::states::AccountStatus;
use serde::Deserialize;
use service::{
    instances::accounts::{self, AccountFilter, AccountPatch, AccountView},
    pagination::{Page, PageRequest},
    rbac::perm,
};

use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, Id, ValidJson, ValidQuery},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    pub instance_id: Option<i64>,
    pub status: Option<AccountStatus>,
    /// Substring of wxid or nickname.
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", params(AccountQuery),
    responses((status = 200, body = Page<AccountView>), (status = 422, body = Problem)))]
pub async fn list_accounts(
    auth: Authorized<perm::AccountsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<AccountQuery>,
) -> Result<web::Json<Page<AccountView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = AccountFilter {
        instance_id: q.instance_id,
        status: q.status,
        q: q.q,
    };
    Ok(web::Json(
        accounts::list(&state.ctx, &auth.actor, filter, page).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "accounts", params(("id" = i64, Path)),
    responses((status = 200, body = AccountView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_account(
    auth: Authorized<perm::AccountsRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<AccountView>, ApiError> {
    Ok(web::Json(accounts::get(&state.ctx, &auth.actor, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/accounts/{id}", tag = "accounts", params(("id" = i64, Path)), request_body = AccountPatch,
    responses((status = 200, body = AccountView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_account(
    auth: Authorized<perm::AccountsUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<AccountPatch>,
) -> Result<web::Json<AccountView>, ApiError> {
    Ok(web::Json(
        accounts::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}
