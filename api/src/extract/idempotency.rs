//! `Idempotency-Key` for every POST that creates something: the header is read here (a value that
//! is not printable ASCII is a 400 naming the header, never a shared placeholder key), and
//! [`IdempotencyKey::created`] runs the creation at most once per key and body, replaying the
//! first answer to repeats. Keys are scoped per operation and per user, so two users never
//! collide. The bookkeeping is `service::idempotency`.

use std::future::{Future, Ready, ready};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, dev::Payload, http::StatusCode,
};
use serde::Serialize;
use service::{
    ServiceResult,
    auth::actor::Actor,
    idempotency::{self, Claim},
};

use crate::{error::ApiError, state::AppState};

/// The header every creating POST takes (documented once, in `openapi.rs`).
pub const HEADER: &str = "Idempotency-Key";

/// The request's `Idempotency-Key`, if it sent one, with the request whose body hash `ValidJson`
/// records.
pub struct IdempotencyKey(Option<(String, HttpRequest)>);

/// SHA-256 of the raw JSON body, recorded by `ValidJson` when the request carries a key: a
/// repeat must send the same bytes.
pub(crate) struct BodyHash(pub String);

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = match req.headers().get(HEADER) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .ok()
                .filter(|key| idempotency::check_key(key).is_ok())
                .map(|key| Some((key.to_owned(), req.clone())))
                .ok_or_else(|| ApiError::BadParameter {
                    field: HEADER.to_owned(),
                    message: "must be 1 to 255 printable ASCII characters".to_owned(),
                }),
        };
        ready(key.map(IdempotencyKey))
    }
}

impl IdempotencyKey {
    /// Answers `201 Created` with what `create` made from `input`. With a key: the first request
    /// does the work and stores its answer; a repeat with the same body gets that answer
    /// (`Idempotent-Replayed: true`); the same key with another body, or while the first request
    /// is still running, is a 409. A failed creation forgets the key, so the client may retry.
    pub async fn created<I, T, F, Fut>(
        self,
        state: &AppState,
        actor: &Actor,
        operation: &str,
        input: I,
        create: F,
    ) -> Result<HttpResponse, ApiError>
    where
        T: Serialize,
        F: FnOnce(I) -> Fut,
        Fut: Future<Output = ServiceResult<T>>,
    {
        let Some((key, req)) = self.0 else {
            return Ok(HttpResponse::Created().json(create(input).await?));
        };
        let scope = format!("{operation}:{}", actor.user_id.unwrap_or(0));
        let hash = req
            .extensions()
            .get::<BodyHash>()
            .map_or_else(|| idempotency::hash(b""), |h| h.0.clone());
        match idempotency::claim(&state.ctx, &scope, &key, &hash).await? {
            Claim::Replay { status, body } => Ok(HttpResponse::build(
                StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
            )
            .insert_header(("Idempotent-Replayed", "true"))
            .content_type("application/json")
            .body(body)),
            Claim::New(row) => match create(input).await {
                Ok(made) => {
                    let json = serde_json::to_string(&made).unwrap_or_default();
                    idempotency::complete(&state.ctx, row, 201, &json).await?;
                    Ok(HttpResponse::Created()
                        .content_type("application/json")
                        .body(json))
                }
                Err(e) => {
                    idempotency::release(&state.ctx, row).await;
                    Err(e.into())
                }
            },
        }
    }
}
