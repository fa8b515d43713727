//! Authentication: login with lockout, throttling and TOTP; opaque access and refresh tokens with
//! rotation and reuse detection; session lookup for every request.

pub mod actor;
pub mod attempt;
pub mod cache;
pub mod lockout;
pub mod login_log;
pub mod password;
pub mod sessions;
pub mod two_factor;

use chrono::{DateTime, TimeDelta, Utc};
use entity::states::UserStatus;
use entity::{session_rotated_tokens, user_sessions, users};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::{
    actor::{Actor, RequestMeta},
    login_log::LoginOutcome,
};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    clock::to_utc,
    crypto::{password as pw, token},
    error::AuthFailure,
    rbac,
};

pub const ACCESS_PREFIX: &str = "wwa";
pub const REFRESH_PREFIX: &str = "wwr";
/// Writing `last_activity_at` on every request would turn reads into writes; once a minute is
/// precise enough for idle tracking.
const ACTIVITY_RESOLUTION_SECS: i64 = 60;

#[derive(Debug, Clone)]
pub struct LoginInput {
    pub login: String,
    pub password: String,
    pub totp_code: Option<String>,
}

/// Tokens handed to a client once; only their hashes are stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub token_type: String,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub session_id: Uuid,
}

/// Finds a live user by login name or email (case-insensitive for email).
async fn find_login_user(ctx: &Context, login: &str) -> ServiceResult<Option<users::Model>> {
    let login = login.trim();
    let by = if login.contains('@') {
        users::Column::Email.eq(login.to_lowercase())
    } else {
        users::Column::Username.eq(login)
    };
    Ok(users::Entity::find()
        .filter(by)
        .filter(users::Column::DeletedAt.is_null())
        .one(&ctx.db)
        .await?)
}

pub async fn login(
    ctx: &Context,
    input: LoginInput,
    meta: &RequestMeta,
) -> ServiceResult<TokenPair> {
    let login_name: String = input.login.trim().chars().take(100).collect();
    let log = |user_id, outcome| login_log::write(ctx, user_id, &login_name, meta, outcome);
    let booking = match ctx.login_throttle.admit(&meta.ip).await {
        Ok(booking) => booking,
        Err(retry_after_secs) => {
            log(None, LoginOutcome::Failure("ip_throttled")).await;
            return Err(ServiceError::TooManyRequests { retry_after_secs });
        }
    };
    let Some(user) = find_login_user(ctx, &login_name).await? else {
        // Same work as a real check, so response times do not reveal which names exist.
        pw::verify_dummy(&input.password).await;
        log(None, LoginOutcome::Failure("unknown_user")).await;
        return Err(ServiceError::Unauthenticated(
            AuthFailure::InvalidCredentials,
        ));
    };
    let attempt = match attempt::admit(ctx, &user).await? {
        Ok(attempt) => attempt,
        Err(until) => {
            log(Some(user.id), LoginOutcome::Failure("locked")).await;
            return Err(ServiceError::Locked { until });
        }
    };
    if !pw::verify(&input.password, &user.password_hash).await {
        attempt.failed(ctx).await?;
        log(Some(user.id), LoginOutcome::Failure("bad_password")).await;
        return Err(ServiceError::Unauthenticated(
            AuthFailure::InvalidCredentials,
        ));
    }
    ctx.login_throttle.give_back(booking).await;
    if user.status != UserStatus::Active {
        attempt.give_back(ctx).await?;
        log(Some(user.id), LoginOutcome::Failure("disabled")).await;
        return Err(ServiceError::Disabled);
    }
    if user.totp_enabled {
        let Some(code) = input
            .totp_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        else {
            attempt.give_back(ctx).await?;
            log(Some(user.id), LoginOutcome::Failure("totp_required")).await;
            return Err(ServiceError::Unauthenticated(AuthFailure::TotpRequired));
        };
        if !two_factor::consume_code(ctx, &user, code).await? {
            attempt.failed(ctx).await?;
            log(Some(user.id), LoginOutcome::Failure("bad_totp")).await;
            return Err(ServiceError::Unauthenticated(AuthFailure::TotpInvalid));
        }
    }
    attempt.succeeded(ctx, meta).await?;
    let tokens = sessions::create(ctx, user.id, meta).await?;
    log(Some(user.id), LoginOutcome::Success).await;
    Ok(tokens)
}

/// Resolves a bearer access token to the acting user and their effective permissions.
pub async fn authenticate(
    ctx: &Context,
    access_token: &str,
    meta: RequestMeta,
) -> ServiceResult<Actor> {
    let invalid = || ServiceError::Unauthenticated(AuthFailure::InvalidToken);
    if !access_token.starts_with(ACCESS_PREFIX) || access_token.len() > 100 {
        return Err(invalid());
    }
    let now = ctx.clock.now_db();
    let token_hash = token::sha256_hex(access_token);
    let actor = ctx
        .auth_cache
        .get_or_load(token_hash.clone(), now, || resolve(ctx, token_hash, now))
        .await?;
    Ok(Actor { meta, ..actor })
}

/// Reads what an access token stands for: its live session, its active user and their
/// permissions and reach, with the session's access and absolute ends.
async fn resolve(
    ctx: &Context,
    token_hash: String,
    now: chrono::NaiveDateTime,
) -> ServiceResult<(Actor, chrono::NaiveDateTime, chrono::NaiveDateTime)> {
    let invalid = || ServiceError::Unauthenticated(AuthFailure::InvalidToken);
    let session = user_sessions::Entity::find()
        .filter(user_sessions::Column::AccessTokenHash.eq(token_hash))
        .filter(user_sessions::Column::RevokedAt.is_null())
        .filter(user_sessions::Column::AccessExpiresAt.gt(now))
        .filter(user_sessions::Column::AbsoluteExpiresAt.gt(now))
        .one(&ctx.db)
        .await?
        .ok_or_else(invalid)?;
    let user = active_user(ctx, session.user_id)
        .await?
        .ok_or_else(invalid)?;
    if now - session.last_activity_at > TimeDelta::seconds(ACTIVITY_RESOLUTION_SECS) {
        user_sessions::Entity::update_many()
            .col_expr(user_sessions::Column::LastActivityAt, Expr::value(now))
            .filter(user_sessions::Column::Id.eq(session.id))
            .exec(&ctx.db)
            .await?;
    }
    let (permissions, scope) = rbac::effective_access(&ctx.db, user.id, now).await?;
    let reach = rbac::scope::Reach::resolve(&ctx.db, user.id, scope).await?;
    let actor = Actor {
        user_id: Some(user.id),
        username: Some(user.username),
        session_id: Some(session.id),
        session_uuid: Some(session.session_uuid.to_string()),
        permissions: std::sync::Arc::new(permissions),
        reach,
        meta: RequestMeta::default(),
    };
    Ok((
        actor,
        session.access_expires_at,
        session.absolute_expires_at,
    ))
}

/// Whether a long-lived request (a progress stream) may go on: its session is neither revoked
/// nor past its absolute end, its user is still active and still holds permission `P`. A system
/// actor (no session) always may.
pub async fn still_allowed<P: rbac::perm::Permission>(
    ctx: &Context,
    actor: &Actor,
    _: P,
) -> ServiceResult<bool> {
    let (Some(session_id), Some(user_id)) = (actor.session_id, actor.user_id) else {
        return Ok(true);
    };
    let now = ctx.clock.now_db();
    let live = user_sessions::Entity::find_by_id(session_id)
        .filter(user_sessions::Column::RevokedAt.is_null())
        .filter(user_sessions::Column::AbsoluteExpiresAt.gt(now))
        .one(&ctx.db)
        .await?
        .is_some();
    if !live || active_user(ctx, user_id).await?.is_none() {
        return Ok(false);
    }
    Ok(rbac::effective_permissions(&ctx.db, user_id, now)
        .await?
        .contains(P::NAME))
}

async fn active_user(ctx: &Context, user_id: i64) -> ServiceResult<Option<users::Model>> {
    Ok(users::Entity::find_by_id(user_id)
        .filter(users::Column::DeletedAt.is_null())
        .filter(users::Column::Status.eq(UserStatus::Active))
        .one(&ctx.db)
        .await?)
}

/// Exchanges a refresh token for a new pair. The old one is remembered: presenting it again after
/// the grace period means it was stolen, and the whole session is revoked.
pub async fn refresh(
    ctx: &Context,
    refresh_token: &str,
    meta: &RequestMeta,
) -> ServiceResult<TokenPair> {
    let invalid = || ServiceError::Unauthenticated(AuthFailure::InvalidToken);
    if !refresh_token.starts_with(REFRESH_PREFIX) || refresh_token.len() > 100 {
        return Err(invalid());
    }
    let hash = token::sha256_hex(refresh_token);
    let now = ctx.clock.now_db();
    let current = user_sessions::Entity::find()
        .filter(user_sessions::Column::RefreshTokenHash.eq(hash.as_str()))
        .one(&ctx.db)
        .await?;
    let Some(session) = current else {
        return detect_reuse(ctx, &hash, meta).await;
    };
    let live = session.revoked_at.is_none()
        && session.refresh_expires_at > now
        && session.absolute_expires_at > now;
    if !live || active_user(ctx, session.user_id).await?.is_none() {
        return Err(invalid());
    }
    sessions::rotate(ctx, &session, &hash)
        .await?
        .ok_or_else(invalid)
}

async fn detect_reuse<T>(ctx: &Context, hash: &str, meta: &RequestMeta) -> ServiceResult<T> {
    let invalid = ServiceError::Unauthenticated(AuthFailure::InvalidToken);
    let Some(rotated) = session_rotated_tokens::Entity::find()
        .filter(session_rotated_tokens::Column::TokenHash.eq(hash))
        .one(&ctx.db)
        .await?
    else {
        return Err(invalid);
    };
    let now = ctx.clock.now_db();
    let grace = TimeDelta::seconds(ctx.settings.auth.refresh_reuse_grace_secs);
    if now - rotated.rotated_at < grace {
        return Err(invalid);
    }
    let Some(session) = user_sessions::Entity::find_by_id(rotated.session_id)
        .one(&ctx.db)
        .await?
    else {
        return Err(invalid);
    };
    let txn = crate::db::begin(&ctx.db).await?;
    let revoked = user_sessions::Entity::update_many()
        .col_expr(user_sessions::Column::RevokedAt, Expr::value(now))
        .col_expr(
            user_sessions::Column::RevokedReason,
            Expr::value("refresh_token_reuse"),
        )
        .filter(user_sessions::Column::Id.eq(session.id))
        .filter(user_sessions::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if revoked.rows_affected > 0 {
        let actor = Actor {
            user_id: Some(session.user_id),
            ..Actor::system(meta.clone())
        };
        let entry = AuditEntry::new(
            "session.refresh_token_reused",
            OperationType::Security,
            "session",
        )
        .resource(session.session_uuid, "session")
        .extra(serde_json::json!({ "rotated_at": rotated.rotated_at }));
        audit::record(&txn, &actor, entry, now).await?;
        tracing::warn!(
            user.id = session.user_id,
            "refresh token reused: session revoked"
        );
    }
    txn.commit().await?;
    Err(ServiceError::Unauthenticated(
        AuthFailure::RefreshTokenReused,
    ))
}

/// Ends the caller's own session.
pub async fn logout(ctx: &Context, actor: &Actor) -> ServiceResult<()> {
    let session_id = actor
        .session_id
        .ok_or(ServiceError::Unauthenticated(AuthFailure::InvalidToken))?;
    sessions::revoke_where(
        &ctx.db,
        Condition::all().add(user_sessions::Column::Id.eq(session_id)),
        "logout",
        ctx.clock.now_db(),
    )
    .await?;
    Ok(())
}

/// Freshly minted tokens and the session columns that store their hashes and expiry.
struct Minted {
    access: String,
    refresh: String,
    access_expires_at: chrono::NaiveDateTime,
    refresh_expires_at: chrono::NaiveDateTime,
}

impl Minted {
    /// New tokens valid from `now`, never outliving the session's absolute end.
    fn new(ctx: &Context, now: chrono::NaiveDateTime, absolute: chrono::NaiveDateTime) -> Self {
        let auth = &ctx.settings.auth;
        Self {
            access: token::random_token(ACCESS_PREFIX),
            refresh: token::random_token(REFRESH_PREFIX),
            access_expires_at: (now + TimeDelta::seconds(auth.access_token_ttl_secs)).min(absolute),
            refresh_expires_at: (now + TimeDelta::seconds(auth.refresh_idle_secs)).min(absolute),
        }
    }

    fn apply(&self, model: &mut user_sessions::ActiveModel, now: chrono::NaiveDateTime) {
        model.access_token_hash = Set(token::sha256_hex(&self.access));
        model.refresh_token_hash = Set(token::sha256_hex(&self.refresh));
        model.access_expires_at = Set(self.access_expires_at);
        model.refresh_expires_at = Set(self.refresh_expires_at);
        model.last_activity_at = Set(now);
    }

    fn into_pair(self, session_id: Uuid) -> TokenPair {
        TokenPair {
            token_type: "Bearer".to_owned(),
            access_token: self.access,
            access_expires_at: to_utc(self.access_expires_at),
            refresh_token: self.refresh,
            refresh_expires_at: to_utc(self.refresh_expires_at),
            session_id,
        }
    }
}
