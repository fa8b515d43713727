//! Session rows: creation at login, rotation at refresh, listing and revocation.

use crate::rbac::perm;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use entity::{session_rotated_tokens, user_sessions};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Minted, TokenPair,
    actor::{Actor, RequestMeta},
};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    clock::to_utc,
};

pub async fn create(ctx: &Context, user_id: i64, meta: &RequestMeta) -> ServiceResult<TokenPair> {
    let now = ctx.clock.now_db();
    let absolute = now + TimeDelta::seconds(ctx.settings.auth.session_absolute_secs);
    let minted = Minted::new(ctx, now, absolute);
    let session_uuid = Uuid::new_v4();
    let mut row = user_sessions::ActiveModel {
        session_uuid: Set(session_uuid),
        user_id: Set(user_id),
        absolute_expires_at: Set(absolute),
        ip_address: Set(meta.ip.chars().take(45).collect()),
        user_agent: Set(meta
            .user_agent
            .as_ref()
            .map(|u| u.chars().take(512).collect())),
        created_at: Set(now),
        ..Default::default()
    };
    minted.apply(&mut row, now);
    user_sessions::Entity::insert(row)
        .exec_without_returning(&ctx.db)
        .await?;
    Ok(minted.into_pair(session_uuid))
}

/// Swaps the session's tokens if `old_hash` is still its refresh token. `None` when a concurrent
/// refresh won the race.
pub async fn rotate(
    ctx: &Context,
    session: &user_sessions::Model,
    old_hash: &str,
) -> ServiceResult<Option<TokenPair>> {
    let now = ctx.clock.now_db();
    let minted = Minted::new(ctx, now, session.absolute_expires_at);
    let mut changes = user_sessions::ActiveModel::default();
    minted.apply(&mut changes, now);
    changes.rotated_at = Set(Some(now));
    let txn = crate::db::begin(&ctx.db).await?;
    let updated = user_sessions::Entity::update_many()
        .set(changes)
        .filter(user_sessions::Column::Id.eq(session.id))
        .filter(user_sessions::Column::RefreshTokenHash.eq(old_hash))
        .filter(user_sessions::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(None);
    }
    let remembered = session_rotated_tokens::ActiveModel {
        token_hash: Set(old_hash.to_owned()),
        session_id: Set(session.id),
        rotated_at: Set(now),
        expires_at: Set(session.absolute_expires_at),
        ..Default::default()
    };
    session_rotated_tokens::Entity::insert(remembered)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(minted.into_pair(session.session_uuid)))
}

/// Revokes every live session matching `condition`; returns how many.
pub async fn revoke_where<C: ConnectionTrait>(
    conn: &C,
    condition: Condition,
    reason: &str,
    now: NaiveDateTime,
) -> ServiceResult<u64> {
    let result = user_sessions::Entity::update_many()
        .col_expr(user_sessions::Column::RevokedAt, Expr::value(now))
        .col_expr(user_sessions::Column::RevokedReason, Expr::value(reason))
        .filter(condition)
        .filter(user_sessions::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Revokes all of a user's sessions, except `keep` (the caller's own, when they changed their own
/// password or 2FA and should stay signed in).
pub async fn revoke_user<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    keep: Option<i64>,
    reason: &str,
    now: NaiveDateTime,
) -> ServiceResult<u64> {
    let mut condition = Condition::all().add(user_sessions::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        condition = condition.add(user_sessions::Column::Id.ne(keep));
    }
    revoke_where(conn, condition, reason, now).await
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub current: bool,
    pub ip_address: String,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

async fn live_sessions(
    ctx: &Context,
    user_id: i64,
    current: Option<i64>,
) -> ServiceResult<Vec<SessionView>> {
    let now = ctx.clock.now_db();
    let rows = user_sessions::Entity::find()
        .filter(user_sessions::Column::UserId.eq(user_id))
        .filter(user_sessions::Column::RevokedAt.is_null())
        .filter(user_sessions::Column::RefreshExpiresAt.gt(now))
        .filter(user_sessions::Column::AbsoluteExpiresAt.gt(now))
        .order_by_desc(user_sessions::Column::Id)
        .all(&ctx.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|s| SessionView {
            id: s.session_uuid,
            current: Some(s.id) == current,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            created_at: to_utc(s.created_at),
            last_activity_at: to_utc(s.last_activity_at),
            expires_at: to_utc(s.refresh_expires_at.min(s.absolute_expires_at)),
        })
        .collect())
}

pub async fn list_own(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<SessionView>> {
    actor.require(perm::ProfileSelf)?;
    live_sessions(ctx, actor.user_id()?, actor.session_id).await
}

/// Revokes one of the caller's own sessions; someone else's session id is simply not found.
pub async fn revoke_own(ctx: &Context, actor: &Actor, session_uuid: Uuid) -> ServiceResult<()> {
    actor.require(perm::ProfileSelf)?;
    let condition = Condition::all()
        .add(user_sessions::Column::UserId.eq(actor.user_id()?))
        .add(user_sessions::Column::SessionUuid.eq(session_uuid));
    match revoke_where(&ctx.db, condition, "revoked_by_user", ctx.clock.now_db()).await? {
        0 => Err(ServiceError::NotFound("session")),
        _ => Ok(()),
    }
}

pub async fn list_for_user(
    ctx: &Context,
    actor: &Actor,
    user_id: i64,
) -> ServiceResult<Vec<SessionView>> {
    actor.require(perm::UsersRead)?;
    crate::rbac::users::find_live(&ctx.db, user_id).await?;
    live_sessions(ctx, user_id, actor.session_id).await
}

/// An administrator signs a user out everywhere.
pub async fn revoke_all_for_user(ctx: &Context, actor: &Actor, user_id: i64) -> ServiceResult<u64> {
    let entry = AuditEntry::new("user.sessions.revoke", OperationType::Security, "user");
    audit::guard(ctx, actor, entry.clone().target(user_id), async {
        actor.require(perm::UsersUpdate)?;
        let target = crate::rbac::users::find_manageable(ctx, actor, user_id).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let count = revoke_user(&txn, user_id, None, "revoked_by_admin", now).await?;
        let entry = entry
            .resource(user_id, target.username)
            .extra(serde_json::json!({ "revoked": count }));
        audit::record(&txn, actor, entry, now).await?;
        txn.commit().await?;
        Ok(count)
    })
    .await
}
