//! TOTP enrolment (enroll → confirm), use at login with replay protection, and disabling.
//!
//! The last accepted time step is stored per user and only a strictly greater one is accepted,
//! through a conditional UPDATE, so a code works once even when two logins race with it. The
//! confirming code also counts, so the enrolment code cannot be replayed to log in.

use crate::rbac::perm;
use entity::users;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use super::{actor::Actor, sessions};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    crypto::totp,
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrollment {
    /// Base32 seed, for typing into an authenticator by hand.
    pub secret: String,
    /// `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// Starts enrolment; the current password is asked for, so a stolen session cannot bind the
/// account to the thief's authenticator.
pub async fn enroll(
    ctx: &Context,
    actor: &Actor,
    current_password: &str,
) -> ServiceResult<Enrollment> {
    actor.require(perm::ProfileSelf)?;
    let user = crate::rbac::users::find_live(&ctx.db, actor.user_id()?).await?;
    if user.totp_enabled {
        return Err(ServiceError::conflict(
            "totp",
            "two-factor authentication is already enabled; disable it first",
        ));
    }
    super::attempt::confirm_password(ctx, &user, current_password, "current_password").await?;
    let secret = totp::generate_secret();
    let now = ctx.clock.now_db();
    users::Entity::update(users::ActiveModel {
        id: Set(user.id),
        totp_secret: Set(Some(ctx.sealer.seal(&secret))),
        totp_last_step: Set(None),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&ctx.db)
    .await?;
    let account = user.email.clone().unwrap_or_else(|| user.username.clone());
    let otpauth_uri = totp::provisioning_uri(&ctx.settings.auth.totp_issuer, &account, &secret);
    Ok(Enrollment {
        secret,
        otpauth_uri,
    })
}

pub async fn confirm(ctx: &Context, actor: &Actor, code: &str) -> ServiceResult<()> {
    actor.require(perm::ProfileSelf)?;
    let user = crate::rbac::users::find_live(&ctx.db, actor.user_id()?).await?;
    if user.totp_enabled {
        return Err(ServiceError::conflict(
            "totp",
            "two-factor authentication is already enabled",
        ));
    }
    if user.totp_secret.is_none() {
        return Err(ServiceError::conflict(
            "totp",
            "start with POST /api/v1/auth/totp/enroll",
        ));
    }
    if !consume_code(ctx, &user, code).await? {
        return Err(ServiceError::invalid(
            "code",
            "is wrong or was already used",
        ));
    }
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    users::Entity::update(users::ActiveModel {
        id: Set(user.id),
        totp_enabled: Set(true),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    sessions::revoke_user(&txn, user.id, actor.session_id, "totp_enabled", now).await?;
    let entry = AuditEntry::new("user.totp.enable", OperationType::Security, "user")
        .resource(user.id, user.username.clone())
        .new_values(&serde_json::json!({ "totp_enabled": true }));
    audit::record(&txn, actor, entry, now).await?;
    txn.commit().await?;
    Ok(())
}

pub async fn disable_own(
    ctx: &Context,
    actor: &Actor,
    password: &str,
    code: &str,
) -> ServiceResult<()> {
    actor.require(perm::ProfileSelf)?;
    let user = crate::rbac::users::find_live(&ctx.db, actor.user_id()?).await?;
    if !user.totp_enabled {
        return Err(ServiceError::conflict(
            "totp",
            "two-factor authentication is not enabled",
        ));
    }
    super::attempt::confirm_password(ctx, &user, password, "password").await?;
    if !consume_code(ctx, &user, code).await? {
        return Err(ServiceError::invalid(
            "code",
            "is wrong or was already used",
        ));
    }
    clear(ctx, actor, &user, actor.session_id, "user.totp.disable").await
}

/// Removes the seed and the replay marker and signs the user out (all but `keep`).
pub async fn clear(
    ctx: &Context,
    actor: &Actor,
    user: &users::Model,
    keep: Option<i64>,
    operation: &'static str,
) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    users::Entity::update(users::ActiveModel {
        id: Set(user.id),
        totp_enabled: Set(false),
        totp_secret: Set(None),
        totp_last_step: Set(None),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    sessions::revoke_user(&txn, user.id, keep, "totp_reset", now).await?;
    let entry = AuditEntry::new(operation, OperationType::Security, "user")
        .resource(user.id, user.username.clone())
        .new_values(&serde_json::json!({ "totp_enabled": false }));
    audit::record(&txn, actor, entry, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Checks `code` against the user's seed and marks its time step used. `false` for a wrong code
/// or one whose step (or a later one) was already accepted.
pub async fn consume_code(ctx: &Context, user: &users::Model, code: &str) -> ServiceResult<bool> {
    let Some(sealed) = user.totp_secret.as_deref() else {
        return Ok(false);
    };
    let secret = ctx.sealer.open(sealed).map_err(|e| {
        ServiceError::Internal(anyhow::anyhow!("TOTP seed of user {}: {e}", user.id))
    })?;
    let Some(step) = totp::matching_step(&secret, code.trim(), ctx.clock.now().timestamp()) else {
        return Ok(false);
    };
    let claimed = users::Entity::update_many()
        .col_expr(users::Column::TotpLastStep, Expr::value(step))
        .filter(users::Column::Id.eq(user.id))
        .filter(
            Condition::any()
                .add(users::Column::TotpLastStep.is_null())
                .add(users::Column::TotpLastStep.lt(step)),
        )
        .exec(&ctx.db)
        .await?;
    Ok(claimed.rows_affected == 1)
}
