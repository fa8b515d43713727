//! `/api/v1/auth`: login, token refresh, logout, the caller's profile, sessions, password and 2FA.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use service::{
    FieldError,
    auth::{
        self as auth_service, LoginInput, TokenPair, sessions::SessionView, two_factor::Enrollment,
    },
    rbac::{perm, users::UserView},
};

use super::no_content;
use crate::{
    error::{ApiError, Problem},
    extract::{Authenticated, Authorized, Public, SessionId, ValidJson, request_meta},
    session_cookie,
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Login name or email address.
    #[serde(alias = "username", alias = "email")]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub login: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    /// Current 6-digit code, when two-factor authentication is enabled.
    pub totp_code: Option<String>,
}

impl LoginIn {
    /// Bounds checked before any hashing, so giant inputs cost nothing.
    fn check(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        if self.login.trim().is_empty() || self.login.chars().count() > 100 {
            errors.push(FieldError::new("login", "must be 1 to 100 characters"));
        }
        if self.password.is_empty() || self.password.chars().count() > 1024 {
            errors.push(FieldError::new("password", "must be 1 to 1024 characters"));
        }
        if self.totp_code.as_ref().is_some_and(|c| c.len() > 16) {
            errors.push(FieldError::new(
                "totp_code",
                "must be at most 16 characters",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Wrong credentials, or `totp_required` / `totp_invalid`", body = Problem),
        (status = 403, description = "Account disabled", body = Problem),
        (status = 422, body = Problem),
        (status = 423, description = "Locked after repeated failures; see Retry-After", body = Problem),
        (status = 429, description = "Too many failures from this address", body = Problem)))]
pub async fn login(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<LoginIn>,
) -> Result<web::Json<TokenPair>, ApiError> {
    Ok(web::Json(sign_in(&req, &state, body).await?))
}

/// Checks the credentials (and the second factor) and opens a session.
pub(crate) async fn sign_in(
    req: &HttpRequest,
    state: &AppState,
    body: LoginIn,
) -> Result<TokenPair, ApiError> {
    body.check()?;
    let meta = request_meta(req, &state.ctx.settings.server.trusted_proxies);
    let input = LoginInput {
        login: body.login,
        password: body.password,
        totp_code: body.totp_code,
    };
    Ok(auth_service::login(&state.ctx, input, &meta).await?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    pub refresh_token: String,
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshIn,
    responses(
        (status = 200, description = "New token pair; the old refresh token is spent", body = TokenPair),
        (status = 401, description = "Invalid, expired, or reused (`refresh_token_reused` revokes the session)", body = Problem)))]
pub async fn refresh(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<RefreshIn>,
) -> Result<web::Json<TokenPair>, ApiError> {
    let meta = request_meta(&req, &state.ctx.settings.server.trusted_proxies);
    Ok(web::Json(
        auth_service::refresh(&state.ctx, &body.refresh_token, &meta).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Session ended (a console session's cookies are cleared too)")))]
pub async fn logout(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth_service::logout(&state.ctx, &auth.actor).await?;
    let mut response = no_content();
    session_cookie::append_cookies(
        &mut response,
        session_cookie::cleared_cookies(state.secure_cookies()),
    );
    Ok(response)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeOut {
    pub user: UserView,
    /// Effective permissions of this session's user.
    pub permissions: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = MeOut)))]
pub async fn me(
    auth: Authorized<perm::ProfileSelf>,
    state: web::Data<AppState>,
) -> Result<web::Json<MeOut>, ApiError> {
    let user = service::rbac::users::me(&state.ctx, &auth.actor).await?;
    Ok(web::Json(MeOut {
        user,
        permissions: auth.actor.permissions.iter().cloned().collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, description = "Your live sessions", body = Vec<SessionView>)))]
pub async fn list_sessions(
    auth: Authorized<perm::ProfileSelf>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<SessionView>>, ApiError> {
    Ok(web::Json(
        auth_service::sessions::list_own(&state.ctx, &auth.actor).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/auth/sessions/{session_id}", tag = "auth",
    params(("session_id" = uuid::Uuid, Path, description = "Session id from the list")),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_session(
    auth: Authorized<perm::ProfileSelf>,
    state: web::Data<AppState>,
    SessionId(id): SessionId,
) -> Result<HttpResponse, ApiError> {
    auth_service::sessions::revoke_own(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordIn {
    pub current_password: String,
    /// 12 to 128 characters.
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordIn,
    responses((status = 204, description = "Changed; your other sessions are signed out"), (status = 422, body = Problem), (status = 423, description = "Locked after repeated wrong passwords", body = Problem)))]
pub async fn change_password(
    auth: Authorized<perm::ProfileSelf>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<ChangePasswordIn>,
) -> Result<HttpResponse, ApiError> {
    check_password_length("current_password", &body.current_password)?;
    auth_service::password::change_own(
        &state.ctx,
        &auth.actor,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrollIn {
    /// Your password, again: a wrong one counts as a failed login.
    #[schema(max_length = 1024)]
    pub current_password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/totp/enroll", tag = "auth", request_body = TotpEnrollIn,
    responses((status = 200, description = "A new seed; confirm it with a code to turn 2FA on", body = Enrollment), (status = 409, body = Problem), (status = 422, body = Problem), (status = 423, description = "Locked after repeated wrong passwords", body = Problem)))]
pub async fn totp_enroll(
    auth: Authorized<perm::ProfileSelf>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<TotpEnrollIn>,
) -> Result<web::Json<Enrollment>, ApiError> {
    check_password_length("current_password", &body.current_password)?;
    Ok(web::Json(
        auth_service::two_factor::enroll(&state.ctx, &auth.actor, &body.current_password).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeIn {
    /// Current 6-digit code from the authenticator.
    pub code: String,
}

#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "auth", request_body = TotpCodeIn,
    responses((status = 204, description = "2FA is on; your other sessions are signed out"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn totp_confirm(
    auth: Authorized<perm::ProfileSelf>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<TotpCodeIn>,
) -> Result<HttpResponse, ApiError> {
    auth_service::two_factor::confirm(&state.ctx, &auth.actor, &body.code).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisableIn {
    pub password: String,
    pub code: String,
}

#[utoipa::path(post, path = "/api/v1/auth/totp/disable", tag = "auth", request_body = TotpDisableIn,
    responses((status = 204), (status = 409, body = Problem), (status = 422, body = Problem), (status = 423, description = "Locked after repeated wrong passwords", body = Problem)))]
pub async fn totp_disable(
    auth: Authorized<perm::ProfileSelf>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<TotpDisableIn>,
) -> Result<HttpResponse, ApiError> {
    check_password_length("password", &body.password)?;
    auth_service::two_factor::disable_own(&state.ctx, &auth.actor, &body.password, &body.code)
        .await?;
    Ok(no_content())
}

/// A password to check is bounded before it reaches argon2.
fn check_password_length(field: &str, password: &str) -> Result<(), ApiError> {
    if password.chars().count() > 1024 {
        return Err(ApiError::Validation(vec![FieldError::new(
            field,
            "must be at most 1024 characters",
        )]));
    }
    Ok(())
}
