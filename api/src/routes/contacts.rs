//! `/api/v1/contacts`: search, edit, tag, import and export contacts.

use actix_web::{HttpRequest, HttpResponse, web};
use entity::states::{ContactType, FriendStatus};
use futures_util::StreamExt;
use serde::Deserialize;
use service::{
    contacts::{
        self as contact_service, ContactFilter, ContactInput, ContactPatch, ContactView, export,
        import::{self, Format, ImportReport},
        opt_out::{self, OptOutInput},
        tags::{self, BulkTagging, BulkTaggingResult},
    },
    pagination::{Page, PageRequest},
    rbac::perm,
};

use super::no_content;
use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, Id, IdempotencyKey, ValidJson, ValidQuery, body},
    state::AppState,
};

/// Filters of [`ContactFilter`] plus paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Substring of nickname, remark, wxid or phone.
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Comma-separated tag ids (at most 50): at least one.
    #[param(pattern = r"^ *([1-9][0-9]{0,17} *(, *[1-9][0-9]{0,17} *){0,49})?$")]
    pub tags_any: Option<String>,
    /// Comma-separated tag ids (at most 50): all of them.
    #[param(pattern = r"^ *([1-9][0-9]{0,17} *(, *[1-9][0-9]{0,17} *){0,49})?$")]
    pub tags_all: Option<String>,
    pub contact_type: Option<ContactType>,
    pub friend_status: Option<FriendStatus>,
    pub account_id: Option<i64>,
    pub instance_id: Option<i64>,
    pub is_blocked: Option<bool>,
    pub is_star: Option<bool>,
    /// `true`: the opt-out list (contacts who opted out of marketing); `false`: the others.
    pub unsubscribed: Option<bool>,
    /// RFC 3339.
    pub updated_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only contacts a saved segment selects (needs `segments:read`).
    pub segment_id: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

impl ContactQuery {
    fn split(self) -> (ContactFilter, Option<u64>, Option<String>) {
        let filter = ContactFilter {
            q: self.q,
            tags_any: self.tags_any,
            tags_all: self.tags_all,
            contact_type: self.contact_type,
            friend_status: self.friend_status,
            account_id: self.account_id,
            instance_id: self.instance_id,
            is_blocked: self.is_blocked,
            is_star: self.is_star,
            unsubscribed: self.unsubscribed,
            updated_since: self.updated_since,
            segment_id: self.segment_id,
        };
        (filter, self.limit, self.cursor)
    }
}

#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, body = Page<ContactView>), (status = 422, body = Problem)))]
pub async fn list_contacts(
    auth: Authorized<perm::ContactsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<ContactQuery>,
) -> Result<web::Json<Page<ContactView>>, ApiError> {
    let (filter, limit, cursor) = q.split();
    let page = PageRequest::parse(limit, cursor.as_deref())?;
    Ok(web::Json(
        contact_service::list(&state.ctx, &auth.actor, &filter, page).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = ContactInput,
    responses((status = 201, body = ContactView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_contact(
    auth: Authorized<perm::ContactsCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<ContactInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "contacts.create", body, |body| {
        contact_service::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 200, body = ContactView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_contact(
    auth: Authorized<perm::ContactsRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<ContactView>, ApiError> {
    Ok(web::Json(
        contact_service::get(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = i64, Path)), request_body = ContactPatch,
    responses((status = 200, body = ContactView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_contact(
    auth: Authorized<perm::ContactsUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<ContactPatch>,
) -> Result<web::Json<ContactView>, ApiError> {
    Ok(web::Json(
        contact_service::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_contact(
    auth: Authorized<perm::ContactsDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    contact_service::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/opt-out", tag = "contacts", params(("id" = i64, Path)), request_body = OptOutInput,
    responses((status = 200, description = "The contact, opted out of marketing broadcasts (already opted out: unchanged)", body = ContactView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn opt_out_contact(
    auth: Authorized<perm::ContactsUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<OptOutInput>,
) -> Result<web::Json<ContactView>, ApiError> {
    Ok(web::Json(
        opt_out::opt_out(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/contacts/{id}/opt-in", tag = "contacts", params(("id" = i64, Path)),
    responses((status = 200, description = "The contact, subscribed to marketing broadcasts again", body = ContactView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn opt_in_contact(
    auth: Authorized<perm::ContactsUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<ContactView>, ApiError> {
    Ok(web::Json(
        opt_out::opt_in(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/contacts/tags", tag = "contacts", request_body = BulkTagging,
    responses((status = 200, body = BulkTaggingResult), (status = 422, body = Problem)))]
pub async fn bulk_tag(
    auth: Authorized<perm::ContactsUpdate>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<BulkTagging>,
) -> Result<web::Json<BulkTaggingResult>, ApiError> {
    Ok(web::Json(tags::bulk(&state.ctx, &auth.actor, body).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The account the contacts belong to.
    pub account_id: i64,
    /// `csv` or `xlsx`; taken from Content-Type when omitted.
    pub format: Option<String>,
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn format_of(req: &HttpRequest, requested: Option<&str>) -> Result<Format, ApiError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match requested.map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("xlsx") => Ok(Format::Xlsx),
        Some(other) => Err(ApiError::Validation(vec![service::FieldError::new(
            "format",
            format!("`{other}` is not csv or xlsx"),
        )])),
        None if content_type.starts_with("text/csv") => Ok(Format::Csv),
        None if content_type.starts_with(XLSX) => Ok(Format::Xlsx),
        None => Err(ApiError::UnsupportedMediaType),
    }
}

#[utoipa::path(post, path = "/api/v1/contacts/import", tag = "contacts", params(ImportQuery),
    request_body(content = String, description = "A CSV or XLSX file; the first row names the columns (wxid, nickname, remark, phone, gender, region, corp_name, tags, is_star, custom.<name>)", content_type = "text/csv"),
    responses((status = 200, description = "Every row imported", body = ImportReport), (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 422, description = "Nothing imported; `errors` lists each bad cell as rows[N].column", body = Problem)))]
pub async fn import_contacts(
    auth: Authorized<perm::ContactsImport>,
    state: web::Data<AppState>,
    req: HttpRequest,
    ValidQuery(q): ValidQuery<ImportQuery>,
    payload: web::Payload,
) -> Result<web::Json<ImportReport>, ApiError> {
    let format = format_of(&req, q.format.as_deref())?;
    let limit = state.ctx.settings.contacts.import_max_bytes;
    let body = body::read_bounded(payload.into_inner(), body::declared_length(&req), limit).await?;
    Ok(web::Json(
        import::import(&state.ctx, &auth.actor, q.account_id, format, body.to_vec()).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/contacts/export", tag = "contacts", params(ContactFilter),
    responses((status = 200, description = "UTF-8 CSV with a byte-order mark, streamed", content_type = "text/csv"), (status = 422, body = Problem)))]
pub async fn export_contacts(
    auth: Authorized<perm::ContactsExport>,
    state: web::Data<AppState>,
    ValidQuery(filter): ValidQuery<ContactFilter>,
) -> Result<HttpResponse, ApiError> {
    let stream = export::stream(&state.ctx, &auth.actor, filter).await?;
    let body = stream.map(|chunk| {
        chunk.map(web::Bytes::from).map_err(|e| {
            tracing::error!(error = %e, "contact export stopped");
            std::io::Error::other(e.to_string())
        })
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"contacts.csv\"",
        ))
        .streaming(body))
}
