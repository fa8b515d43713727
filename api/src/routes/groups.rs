//! `/api/v1/groups`: customer groups and their members.

use actix_web::web;
use serde::Deserialize;
use service::{
    contacts::groups::{self, GroupFilter, GroupPatch, GroupView, MemberView},
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
pub struct GroupQuery {
    /// Substring of the name or group id.
    pub q: Option<String>,
    pub account_id: Option<i64>,
    pub instance_id: Option<i64>,
    /// Only the groups this contact is currently a member of.
    pub contact_id: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "contacts", params(GroupQuery),
    responses((status = 200, body = Page<GroupView>), (status = 404, description = "No such contact (contact_id)", body = Problem), (status = 422, body = Problem)))]
pub async fn list_groups(
    auth: Authorized<perm::GroupsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<GroupQuery>,
) -> Result<web::Json<Page<GroupView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = GroupFilter {
        q: q.q,
        account_id: q.account_id,
        instance_id: q.instance_id,
        contact_id: q.contact_id,
    };
    Ok(web::Json(
        groups::list(&state.ctx, &auth.actor, filter, page).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 200, body = GroupView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_group(
    auth: Authorized<perm::GroupsRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<GroupView>, ApiError> {
    Ok(web::Json(groups::get(&state.ctx, &auth.actor, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "contacts", params(("id" = i64, Path)), request_body = GroupPatch,
    responses((status = 200, body = GroupView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_group(
    auth: Authorized<perm::GroupsUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<GroupPatch>,
) -> Result<web::Json<GroupView>, ApiError> {
    Ok(web::Json(
        groups::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// Include members who left.
    pub include_left: Option<bool>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/groups/{id}/members", tag = "contacts", params(("id" = i64, Path), MemberQuery),
    responses((status = 200, body = Page<MemberView>), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_members(
    auth: Authorized<perm::GroupsRead>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(q): ValidQuery<MemberQuery>,
) -> Result<web::Json<Page<MemberView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        groups::members(
            &state.ctx,
            &auth.actor,
            id,
            q.include_left.unwrap_or(false),
            page,
        )
        .await?,
    ))
}
