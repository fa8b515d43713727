//! `/api/v1/callbacks`: where instances deliver events. Public, but nothing is read before the
//! signature is verified (WeCom's msg_signature, or the agent protocol's webhook-signature).

use actix_web::{HttpRequest, HttpResponse, web};
use service::callbacks::{self, Stored, WecomParams};
use uuid::Uuid;

use crate::{
    error::{ApiError, Problem},
    extract::{
        Public, ValidQuery,
        body::{declared_length, read_bounded},
    },
    state::AppState,
};

const MAX_CALLBACK_BYTES: usize = 1 << 20;

fn instance_uuid(req: &HttpRequest) -> Result<Uuid, ApiError> {
    req.match_info()
        .get("instance")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::BadParameter {
            field: "instance".into(),
            message: "must be the instance's UUID".into(),
        })
}

/// An instance's event, read with the callback limit.
async fn body(req: &HttpRequest, payload: web::Payload) -> Result<web::BytesMut, ApiError> {
    read_bounded(
        payload.into_inner(),
        declared_length(req),
        MAX_CALLBACK_BYTES,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/callbacks/wecom/{instance}", tag = "callbacks", params(("instance" = Uuid, Path), WecomParams),
    responses((status = 200, description = "The decrypted echostr, as bare text", content_type = "text/plain"), (status = 403, description = "Bad signature, stale timestamp or wrong receive id", body = Problem), (status = 404, body = Problem)))]
pub async fn wecom_verify(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    ValidQuery(params): ValidQuery<WecomParams>,
) -> Result<HttpResponse, ApiError> {
    let plain = callbacks::wecom_verify(&state.ctx, instance_uuid(&req)?, &params).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(plain))
}

#[utoipa::path(post, path = "/api/v1/callbacks/wecom/{instance}", tag = "callbacks", params(("instance" = Uuid, Path), WecomParams),
    request_body(content = String, description = "WeCom's XML with <Encrypt>", content_type = "text/xml"),
    responses((status = 200, description = "`success`; the event is stored and applied asynchronously", content_type = "text/plain"), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn wecom_event(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    ValidQuery(params): ValidQuery<WecomParams>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let uuid = instance_uuid(&req)?;
    let body = body(&req, payload).await?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::Validation(vec![service::FieldError::new("body", "is not UTF-8")])
    })?;
    callbacks::wecom_event(&state.ctx, uuid, &params, text).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body("success"))
}

#[utoipa::path(post, path = "/api/v1/callbacks/agent/{instance}", tag = "callbacks", params(("instance" = Uuid, Path)),
    request_body(content = Object, description = "A signed agent event (docs/agent-protocol.md)", content_type = "application/json"),
    responses((status = 200, description = "Stored (or already stored: events are de-duplicated by webhook-id)"), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn agent_event(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let uuid = instance_uuid(&req)?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let body = body(&req, payload).await?;
    let stored = callbacks::agent_event(
        &state.ctx,
        uuid,
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &header("webhook-signature"),
        &body,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "received": true, "duplicate": stored == Stored::Duplicate })))
}
