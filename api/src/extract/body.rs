//! The one reader of request bodies (JSON, CSV/XLSX imports, instance callbacks): a declared
//! `Content-Length` over the limit is refused before a byte is read, and a body that streams past
//! it is cut off at the limit, so no crafted size makes the process buffer more than it allows.

use actix_web::{HttpRequest, dev::Payload, http::header::CONTENT_LENGTH, web};
use futures_util::StreamExt;

use crate::error::ApiError;

/// The `Content-Length` the client declared, when it is a number.
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads the whole body, at most `limit` bytes (413 beyond it).
pub async fn read_bounded(
    mut payload: Payload,
    declared: Option<usize>,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
