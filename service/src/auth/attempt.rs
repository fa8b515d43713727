//! One login attempt against one account, admitted and counted in a single locked step (see
//! `lockout`), then settled by what the password and second factor said.

use chrono::{DateTime, Utc};
use entity::users;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};

use super::{
    actor::{Actor, RequestMeta},
    lockout::{self, Admission, LockState, LockoutPolicy},
};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    clock::to_utc,
    db::row_locks,
};

/// An admitted attempt, already counted as a failure.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    user_id: i64,
    username: String,
    /// This attempt reached the threshold and locked the account as it was admitted.
    locks: bool,
}

fn policy(ctx: &Context) -> LockoutPolicy {
    LockoutPolicy {
        threshold: ctx.settings.auth.lockout_threshold,
        duration: chrono::TimeDelta::minutes(ctx.settings.auth.lockout_minutes),
    }
}

fn state_of(user: &users::Model) -> LockState {
    LockState {
        failed_count: user.failed_login_count,
        locked_until: user.locked_until.map(to_utc),
    }
}

/// Reads the account's lock state under a write lock (row lock; SQLite's write transaction),
/// lets `change` decide the next one, stores it and commits.
async fn with_locked_state<T>(
    ctx: &Context,
    user_id: i64,
    change: impl FnOnce(LockState) -> (Option<LockState>, T),
) -> ServiceResult<T> {
    let txn = crate::db::begin(&ctx.db).await?;
    let mut query = users::Entity::find_by_id(user_id);
    if row_locks(&txn) {
        query = query.lock_exclusive();
    }
    let user = query
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound("user"))?;
    let (next, answer) = change(state_of(&user));
    if let Some(next) = next {
        users::Entity::update_many()
            .col_expr(
                users::Column::FailedLoginCount,
                Expr::value(next.failed_count),
            )
            .col_expr(
                users::Column::LockedUntil,
                Expr::value(next.locked_until.map(|t| t.naive_utc())),
            )
            .filter(users::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(answer)
}

/// May this account try now? Counts the attempt as a failure if so.
pub async fn admit(
    ctx: &Context,
    user: &users::Model,
) -> ServiceResult<Result<Attempt, DateTime<Utc>>> {
    let policy = policy(ctx);
    let now = ctx.clock.now();
    with_locked_state(ctx, user.id, |state| {
        match lockout::admit(policy, state, now) {
            Admission::Refused { until } => (None, Err(until)),
            Admission::Admitted { next, locks } => (
                Some(next),
                Ok(Attempt {
                    user_id: user.id,
                    username: user.username.clone(),
                    locks,
                }),
            ),
        }
    })
    .await
}

impl Attempt {
    /// Wrong password or code: the count stands; the attempt that locked writes the security event.
    pub async fn failed(self, ctx: &Context) -> ServiceResult<()> {
        if !self.locks {
            return Ok(());
        }
        let until = users::Entity::find_by_id(self.user_id)
            .one(&ctx.db)
            .await?
            .and_then(|u| u.locked_until);
        let actor = Actor::system(RequestMeta::default());
        let entry = AuditEntry::new("user.locked", OperationType::Security, "user")
            .resource(self.user_id, self.username.clone())
            .extra(serde_json::json!({
                "locked_until": until.map(to_utc),
                "failures": ctx.settings.auth.lockout_threshold,
            }));
        audit::record(&ctx.db, &actor, entry, ctx.clock.now_db()).await?;
        tracing::warn!(
            user.id = self.user_id,
            "account locked after repeated login failures"
        );
        Ok(())
    }

    /// Right password but the login cannot finish (a missing code, a disabled account): the
    /// attempt does not count.
    pub async fn give_back(self, ctx: &Context) -> ServiceResult<()> {
        let policy = policy(ctx);
        with_locked_state(ctx, self.user_id, |state| {
            (Some(lockout::give_back(policy, state, self.locks)), ())
        })
        .await
    }

    /// Signed in: the count and any lock are cleared, and the sign-in is noted on the user.
    pub async fn succeeded(self, ctx: &Context, meta: &RequestMeta) -> ServiceResult<()> {
        cleared(self.user_id)
            .col_expr(users::Column::LastLoginAt, Expr::value(ctx.clock.now_db()))
            .col_expr(
                users::Column::LastLoginIp,
                Expr::value(meta.ip.chars().take(45).collect::<String>()),
            )
            .exec(&ctx.db)
            .await?;
        Ok(())
    }
}

/// The update that clears a user's failure count and lock.
fn cleared(user_id: i64) -> sea_orm::UpdateMany<users::Entity> {
    users::Entity::update_many()
        .col_expr(users::Column::FailedLoginCount, Expr::value(0))
        .col_expr(
            users::Column::LockedUntil,
            Expr::value(Option::<chrono::NaiveDateTime>::None),
        )
        .filter(users::Column::Id.eq(user_id))
}

/// A signed-in user proves it is still them before a sensitive change (password, 2FA). A wrong
/// password counts like a failed login, so a stolen session cannot guess its way in either;
/// a locked account answers 423.
pub async fn confirm_password(
    ctx: &Context,
    user: &users::Model,
    password: &str,
    field: &str,
) -> ServiceResult<()> {
    let attempt = admit(ctx, user)
        .await?
        .map_err(|until| ServiceError::Locked { until })?;
    if crate::crypto::password::verify(password, &user.password_hash).await {
        cleared(user.id).exec(&ctx.db).await?;
        Ok(())
    } else {
        attempt.failed(ctx).await?;
        Err(ServiceError::invalid(field, "is not your current password"))
    }
}
