//! Gives every request an id (the caller's `X-Request-Id` when it is sane, else a fresh UUIDv7),
//! echoes it in the response, puts it in the tracing span, and keeps it task-local so error bodies
//! can carry it without every handler passing it along.

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub path: String,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The current request's context, when called while a request is being handled.
pub fn request_context() -> Option<RequestContext> {
    CONTEXT.try_with(Clone::clone).ok()
}

fn accept(candidate: &str) -> bool {
    (1..=64).contains(&candidate.len())
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| accept(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let context = RequestContext {
        request_id: id.clone(),
        path: req.path().to_owned(),
    };
    req.extensions_mut().insert(context.clone());
    let span =
        tracing::info_span!("http", request_id = %id, method = %req.method(), path = %req.path());
    let mut response = CONTEXT
        .scope(context, next.call(req).instrument(span))
        .await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}
