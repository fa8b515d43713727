//! A user changes their own password; every other session of theirs ends.

use crate::rbac::perm;
use entity::users;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::{actor::Actor, sessions};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    crypto::password as pw,
    validate,
};

pub async fn change_own(
    ctx: &Context,
    actor: &Actor,
    current: &str,
    new: &str,
) -> ServiceResult<()> {
    actor.require(perm::ProfileSelf)?;
    let user = crate::rbac::users::find_live(&ctx.db, actor.user_id()?).await?;
    super::attempt::confirm_password(ctx, &user, current, "current_password").await?;
    validate::password("new_password", new, Some(&user.username))
        .map_err(|e| ServiceError::Validation(vec![e]))?;
    if pw::verify(new, &user.password_hash).await {
        return Err(ServiceError::invalid(
            "new_password",
            "must differ from the current password",
        ));
    }
    set_password(
        ctx,
        actor,
        &user,
        new,
        actor.session_id,
        "user.password.change",
    )
    .await
}

/// Stores a new hash and revokes the user's sessions (all but `keep`), audited in one transaction.
pub async fn set_password(
    ctx: &Context,
    actor: &Actor,
    user: &users::Model,
    new: &str,
    keep: Option<i64>,
    operation: &'static str,
) -> ServiceResult<()> {
    let hash = pw::hash(new).await?;
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    users::Entity::update(users::ActiveModel {
        id: Set(user.id),
        password_hash: Set(hash),
        password_changed_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    let revoked = sessions::revoke_user(&txn, user.id, keep, "password_changed", now).await?;
    let entry = AuditEntry::new(operation, OperationType::Update, "user")
        .resource(user.id, user.username.clone())
        .new_values(&serde_json::json!({ "password": "changed" }))
        .extra(serde_json::json!({ "sessions_revoked": revoked }));
    audit::record(&txn, actor, entry, now).await?;
    txn.commit().await?;
    Ok(())
}
