//! Resolves a bearer token once, before any extractor runs, and leaves the outcome in the request
//! extensions. `Authorized<P>` then decides synchronously, so an unauthorized caller is refused
//! before the body or query is even looked at: nobody without access learns how a route
//! validates its input.

use actix_web::{
    Error, HttpMessage, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use service::{ServiceError, auth::actor::Actor, error::AuthFailure};

use crate::{error::ApiError, extract::request_meta, state::AppState};

/// What the token in this request resolved to (absent when no `Authorization` header was sent).
#[derive(Clone)]
pub enum AuthOutcome {
    Authenticated(Actor),
    Rejected(AuthFailure),
}

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    if let (Some(header), Some(state)) = (header, state) {
        let outcome = match header.ok().and_then(|h| bearer_token(&h)) {
            None => AuthOutcome::Rejected(AuthFailure::MissingToken),
            Some(token) => {
                let meta = request_meta(req.request(), &state.ctx.settings.server.trusted_proxies);
                match service::auth::authenticate(&state.ctx, &token, meta).await {
                    Ok(actor) => AuthOutcome::Authenticated(actor),
                    Err(ServiceError::Unauthenticated(failure)) => AuthOutcome::Rejected(failure),
                    Err(other) => {
                        let response = ApiError::Service(other).error_response();
                        return Ok(req.into_response(response));
                    }
                }
            }
        };
        req.extensions_mut().insert(outcome);
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn bearer_token(header: &str) -> Option<String> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}
