//! Resolves a bearer token once, before any extractor runs, and leaves the outcome in the request
//! extensions. `Authorized<P>` then decides synchronously, so an unauthorized caller is refused
//! before the body or query is even looked at: nobody without access learns how a route
//! validates its input.

use actix_web::{
    Error, HttpMessage, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
    middleware::Next,
    web,
};
use service::{ServiceError, auth::actor::Actor, error::AuthFailure};

use crate::{error::ApiError, extract::request_meta, session_cookie, state::AppState};

/// What the token in this request resolved to (absent when neither an `Authorization` header
/// nor a console session cookie was sent).
#[derive(Clone)]
pub enum AuthOutcome {
    Authenticated(Actor),
    Rejected(AuthFailure),
    /// A console session cookie on a request that changes something, without its CSRF token.
    CsrfMissing,
}

/// Where the token came from: a bearer header wins; the console's cookie is read only without one.
fn sent_token(req: &ServiceRequest) -> Option<(Result<String, ()>, bool)> {
    if let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let token = header.to_str().ok().and_then(bearer_token).ok_or(());
        return Some((token, false));
    }
    session_cookie::cookie_in(req.headers(), session_cookie::ACCESS_COOKIE).map(|t| (Ok(t), true))
}

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let (Some((token, from_cookie)), Some(state)) = (sent_token(&req), state) {
        let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let outcome = match token {
            Err(()) => AuthOutcome::Rejected(AuthFailure::MissingToken),
            Ok(token)
                if from_cookie
                    && unsafe_method
                    && !session_cookie::csrf_holds(req.headers(), &token) =>
            {
                AuthOutcome::CsrfMissing
            }
            Ok(token) => {
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
    let response = next.call(req).await;
    if changes {
        // Whatever it changed (a logout, a role, a user's status) is committed by now: tokens
        // resolved before it are not used again in this process (`auth::cache`).
        service::auth::cache::invalidate();
    }
    Ok(response?.map_into_boxed_body())
}

fn bearer_token(header: &str) -> Option<String> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}
