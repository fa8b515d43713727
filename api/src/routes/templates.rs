//! `/api/v1/templates`: message templates with variables and previews.

use actix_web::{HttpResponse, web};
use entity::states::{MessageType, TemplateStatus};
use serde::Deserialize;
use service::{
    pagination::{Page, PageRequest},
    rbac::perm,
    templates::{
        self, DraftPreview, Preview, TemplateFilter, TemplateInput, TemplatePatch, TemplateView,
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
pub struct TemplateQuery {
    /// Substring of the name or content.
    pub q: Option<String>,
    pub category: Option<String>,
    pub message_type: Option<MessageType>,
    pub status: Option<TemplateStatus>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "messaging", params(TemplateQuery),
    responses((status = 200, body = Page<TemplateView>), (status = 422, body = Problem)))]
pub async fn list_templates(
    auth: Authorized<perm::TemplatesRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<TemplateQuery>,
) -> Result<web::Json<Page<TemplateView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = TemplateFilter {
        q: q.q,
        category: q.category,
        message_type: q.message_type,
        status: q.status,
    };
    Ok(web::Json(
        templates::list(&state.ctx, &auth.actor, filter, page).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/templates", tag = "messaging", request_body = TemplateInput,
    responses((status = 201, body = TemplateView), (status = 422, description = "Invalid, or the template does not compile or uses undeclared variables", body = Problem)))]
pub async fn create_template(
    auth: Authorized<perm::TemplatesCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<TemplateInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "templates.create", body, |body| {
        templates::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 200, body = TemplateView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_template(
    auth: Authorized<perm::TemplatesRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<TemplateView>, ApiError> {
    Ok(web::Json(
        templates::get(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/templates/{id}", tag = "messaging", params(("id" = i64, Path)), request_body = TemplatePatch,
    responses((status = 200, body = TemplateView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_template(
    auth: Authorized<perm::TemplatesUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<TemplatePatch>,
) -> Result<web::Json<TemplateView>, ApiError> {
    Ok(web::Json(
        templates::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_template(
    auth: Authorized<perm::TemplatesDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    templates::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    /// Render for this contact, with its real fields (nickname, remark, tags, custom, account…)
    /// as a broadcast would; otherwise for sample data.
    pub contact_id: Option<i64>,
    /// Values overriding the sample data or the contact's fields (variables and contact fields).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub sample: serde_json::Map<String, serde_json::Value>,
}

#[utoipa::path(post, path = "/api/v1/templates/preview", tag = "messaging", request_body = DraftPreview,
    responses((status = 200, description = "The draft rendered (saved or not), for the editor's live preview", body = Preview), (status = 404, description = "No such contact (contact_id)", body = Problem), (status = 422, description = "The draft is invalid or does not render (the field at fault)", body = Problem)))]
pub async fn preview_template_draft(
    auth: Authorized<perm::TemplatesRead>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<DraftPreview>,
) -> Result<web::Json<Preview>, ApiError> {
    Ok(web::Json(
        templates::preview_draft(&state.ctx, &auth.actor, body).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/templates/{id}/preview", tag = "messaging", params(("id" = i64, Path)), request_body = PreviewIn,
    responses((status = 200, body = Preview), (status = 400, body = Problem), (status = 404, description = "No such template, or no such contact (contact_id)", body = Problem), (status = 422, description = "Rendering failed (field content or payload)", body = Problem)))]
pub async fn preview_template(
    auth: Authorized<perm::TemplatesRead>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<PreviewIn>,
) -> Result<web::Json<Preview>, ApiError> {
    Ok(web::Json(
        templates::preview(&state.ctx, &auth.actor, id, body.contact_id, body.sample).await?,
    ))
}
