//! `/api/v1/tags`: local tags (synced WeCom tags are listed too, read-only).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use service::{
    contacts::tags::{self, TagInput, TagPatch, TagView},
    pagination::{Page, PageRequest},
    rbac::perm,
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
pub struct TagQuery {
    /// Only this instance's synced tags; 0 for local tags.
    pub instance_id: Option<i64>,
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tags", tag = "contacts", params(TagQuery),
    responses((status = 200, body = Page<TagView>), (status = 422, body = Problem)))]
pub async fn list_tags(
    auth: Authorized<perm::TagsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<TagQuery>,
) -> Result<web::Json<Page<TagView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        tags::list(&state.ctx, &auth.actor, q.instance_id, q.q, page).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tags", tag = "contacts", request_body = TagInput,
    responses((status = 201, body = TagView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_tag(
    auth: Authorized<perm::TagsCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<TagInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "tags.create", body, |body| {
        tags::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(patch, path = "/api/v1/tags/{id}", tag = "contacts", params(("id" = i64, Path)), request_body = TagPatch,
    responses((status = 200, body = TagView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_tag(
    auth: Authorized<perm::TagsUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<TagPatch>,
) -> Result<web::Json<TagView>, ApiError> {
    Ok(web::Json(
        tags::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_tag(
    auth: Authorized<perm::TagsDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    tags::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}
