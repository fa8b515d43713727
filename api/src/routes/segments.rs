//! `/api/v1/segments`: saved audience filters with a live count, used by tasks
//! (`audience.segment_id`) and the contact list (`segment_id`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use service::{
    pagination::{Page, PageRequest},
    rbac::perm,
    segments::{self, SegmentCount, SegmentInput, SegmentPatch, SegmentView},
    tasks::spec::AudienceFilter,
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
pub struct SegmentQuery {
    /// Substring of the name or description.
    #[param(max_length = 100)]
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/segments", tag = "contacts", params(SegmentQuery),
    responses((status = 200, body = Page<SegmentView>), (status = 422, body = Problem)))]
pub async fn list_segments(
    auth: Authorized<perm::SegmentsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<SegmentQuery>,
) -> Result<web::Json<Page<SegmentView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        segments::list(&state.ctx, &auth.actor, q.q, page).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/segments", tag = "contacts", request_body = SegmentInput,
    responses((status = 201, body = SegmentView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_segment(
    auth: Authorized<perm::SegmentsCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<SegmentInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "segments.create", body, |body| {
        segments::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/segments/count", tag = "contacts", request_body = AudienceFilter,
    responses((status = 200, description = "How many live contacts in your reach the filter selects now (the segment editor's live count)", body = SegmentCount), (status = 422, body = Problem)))]
pub async fn count_segment_draft(
    auth: Authorized<perm::SegmentsRead>,
    state: web::Data<AppState>,
    ValidJson(filter): ValidJson<AudienceFilter>,
) -> Result<web::Json<SegmentCount>, ApiError> {
    Ok(web::Json(
        segments::count_draft(&state.ctx, &auth.actor, filter).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 200, body = SegmentView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_segment(
    auth: Authorized<perm::SegmentsRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<SegmentView>, ApiError> {
    Ok(web::Json(segments::get(&state.ctx, &auth.actor, id).await?))
}

#[utoipa::path(get, path = "/api/v1/segments/{id}/count", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 200, description = "How many live contacts in your reach the segment selects now", body = SegmentCount), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn count_segment(
    auth: Authorized<perm::SegmentsRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<SegmentCount>, ApiError> {
    Ok(web::Json(
        segments::count(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "contacts", params(("id" = i64, Path)), request_body = SegmentPatch,
    responses((status = 200, body = SegmentView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_segment(
    auth: Authorized<perm::SegmentsUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<SegmentPatch>,
) -> Result<web::Json<SegmentView>, ApiError> {
    Ok(web::Json(
        segments::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, description = "Tasks that may still run use the segment", body = Problem)))]
pub async fn delete_segment(
    auth: Authorized<perm::SegmentsDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    segments::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}
