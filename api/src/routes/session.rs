//! `/api/v1/auth/session`: the console's sign-in. The same credentials as `/auth/login`, but the
//! tokens go into `HttpOnly` cookies (`session_cookie`) and the answer carries only the CSRF token
//! the console must echo; no token is ever readable by a script. Sign-out is `/auth/logout`.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use service::{ServiceError, auth as auth_service, error::AuthFailure};
use uuid::Uuid;

use super::auth::{LoginIn, sign_in};
use crate::{
    error::{ApiError, Problem},
    extract::{Public, request_meta},
    session_cookie::{self, REFRESH_COOKIE},
    state::AppState,
};

/// A console session: its tokens are in cookies; this is what the console may know.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsoleSession {
    /// Send it back in `X-CSRF-Token` with every request that is not GET (also in the
    /// `wework_csrf` cookie, so a reloaded page finds it).
    pub csrf_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
    pub session_id: Uuid,
}

fn answer(tokens: &service::auth::TokenPair, secure: bool) -> HttpResponse {
    let mut response = HttpResponse::Ok().json(ConsoleSession {
        csrf_token: session_cookie::csrf_for(&tokens.access_token),
        access_expires_at: tokens.access_expires_at,
        refresh_expires_at: tokens.refresh_expires_at,
        session_id: tokens.session_id,
    });
    session_cookie::append_cookies(
        &mut response,
        session_cookie::session_cookies(tokens, secure),
    );
    response
}

#[utoipa::path(post, path = "/api/v1/auth/session", tag = "auth", request_body = LoginIn,
    responses(
        (status = 200, description = "Signed in; the session is in `HttpOnly` cookies", body = ConsoleSession),
        (status = 401, description = "Wrong credentials, or `totp_required` / `totp_invalid`", body = Problem),
        (status = 403, description = "Account disabled", body = Problem),
        (status = 423, description = "Locked after repeated failures; see Retry-After", body = Problem),
        (status = 429, description = "Too many failures from this address", body = Problem)))]
pub async fn console_sign_in(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    crate::extract::ValidJson(body): crate::extract::ValidJson<LoginIn>,
) -> Result<HttpResponse, ApiError> {
    let tokens = sign_in(&req, &state, body).await?;
    Ok(answer(&tokens, state.secure_cookies()))
}

#[utoipa::path(post, path = "/api/v1/auth/session/refresh", tag = "auth",
    params(
        ("wework_refresh" = Option<String>, Cookie, description = "Set by the console sign-in"),
        ("X-CSRF-Token" = Option<String>, Header, description = "The value of the `wework_csrf` cookie")),
    responses(
        (status = 200, description = "New cookies; the old refresh token is spent", body = ConsoleSession),
        (status = 401, description = "No, an invalid, expired or reused refresh cookie (the cookies are cleared)", body = Problem),
        (status = 403, description = "`X-CSRF-Token` does not match the `wework_csrf` cookie", body = Problem)))]
pub async fn console_refresh(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secure = state.secure_cookies();
    let Some(refresh_token) = session_cookie::cookie(&req, REFRESH_COOKIE) else {
        return Err(ServiceError::Unauthenticated(AuthFailure::MissingToken).into());
    };
    if !session_cookie::refresh_csrf_holds(&req) {
        return Err(ServiceError::Forbidden(format!(
            "send the `wework_csrf` cookie's value in `{}`",
            session_cookie::CSRF_HEADER
        ))
        .into());
    }
    let meta = request_meta(&req, &state.ctx.settings.server.trusted_proxies);
    match auth_service::refresh(&state.ctx, &refresh_token, &meta).await {
        Ok(tokens) => Ok(answer(&tokens, secure)),
        Err(error @ ServiceError::Unauthenticated(_)) => {
            let mut response = ApiError::from(error).error_response();
            session_cookie::append_cookies(&mut response, session_cookie::cleared_cookies(secure));
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}
