//! The single-purpose administrator actions on one user: status, unlock, roles, instances,
//! deletion, password and 2FA resets. Each loads a manageable target, applies one change in a
//! transaction and audits the old and new state.

use super::*;

/// Shared shape of the actions below: load a manageable target, apply one
/// change inside a transaction, audit old and new state.
async fn admin_action<P, F>(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    permission: P,
    entry: AuditEntry,
    apply: F,
) -> ServiceResult<UserView>
where
    P: perm::Permission,
    F: for<'a> FnOnce(
        &'a DatabaseTransaction,
        &'a users::Model,
        NaiveDateTime,
    ) -> futures_util::future::BoxFuture<'a, ServiceResult<()>>,
{
    audit::guard(ctx, actor, entry.clone().target(id), async {
        actor.require(permission)?;
        refuse_self(actor, id, &format!("use `{}`", entry.operation))?;
        let target = find_manageable(ctx, actor, id).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        lock_super_admins(&txn).await?;
        let before = view(&txn, target.clone(), now).await?;
        apply(&txn, &target, now).await?;
        let after = view(&txn, find_live(&txn, id).await?, now).await?;
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            target.username.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

pub async fn set_status(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    active: bool,
) -> ServiceResult<UserView> {
    let operation = if active {
        "user.enable"
    } else {
        "user.disable"
    };
    if !active && actor.user_id == Some(id) {
        return Err(ServiceError::conflict(
            "id",
            "you cannot disable your own account",
        ));
    }
    admin_action(
        ctx,
        actor,
        id,
        perm::UsersUpdate,
        AuditEntry::new(operation, OperationType::Update, "user"),
        move |txn, user, now| {
            Box::pin(async move {
                users::Entity::update(users::ActiveModel {
                    id: Set(user.id),
                    status: Set(if active {
                        UserStatus::Active
                    } else {
                        UserStatus::Disabled
                    }),
                    updated_at: Set(now),
                    ..Default::default()
                })
                .exec(txn)
                .await?;
                if !active {
                    sessions::revoke_user(txn, user.id, None, "user_disabled", now).await?;
                    ensure_super_admin_remains(txn, now).await?;
                }
                Ok(())
            })
        },
    )
    .await
}

pub async fn unlock(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<UserView> {
    admin_action(
        ctx,
        actor,
        id,
        perm::UsersUpdate,
        AuditEntry::new("user.unlock", OperationType::Update, "user"),
        |txn, user, now| {
            Box::pin(async move {
                users::Entity::update_many()
                    .col_expr(users::Column::FailedLoginCount, Expr::value(0))
                    .col_expr(
                        users::Column::LockedUntil,
                        Expr::value(Option::<NaiveDateTime>::None),
                    )
                    .col_expr(users::Column::UpdatedAt, Expr::value(now))
                    .filter(users::Column::Id.eq(user.id))
                    .exec(txn)
                    .await?;
                Ok(())
            })
        },
    )
    .await
}

pub async fn set_roles(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    grants: Vec<RoleGrant>,
) -> ServiceResult<UserView> {
    refuse_self(actor, id, "change the roles")?;
    check_grants(ctx, actor, Some(id), &grants).await?;
    let granted_by = actor.user_id;
    admin_action(
        ctx,
        actor,
        id,
        perm::UsersUpdate,
        AuditEntry::new("user.roles.set", OperationType::Update, "user"),
        move |txn, user, now| {
            Box::pin(async move {
                write_grants(txn, granted_by, user.id, &grants, now).await?;
                ensure_super_admin_remains(txn, now).await
            })
        },
    )
    .await
}

/// Replaces the instances assigned to a user. Only instances the administrator sees can be
/// assigned, and nobody assigns instances to themselves.
pub async fn set_instances(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    instance_ids: Vec<i64>,
) -> ServiceResult<UserView> {
    refuse_self(actor, id, "change the assigned instances")?;
    crate::rbac::assignments::check(&ctx.db, actor, &instance_ids).await?;
    let assigned_by = actor.user_id;
    admin_action(
        ctx,
        actor,
        id,
        perm::UsersUpdate,
        AuditEntry::new("user.instances.set", OperationType::Update, "user"),
        move |txn, user, now| {
            Box::pin(async move {
                crate::rbac::assignments::replace(txn, assigned_by, user.id, &instance_ids, now)
                    .await
            })
        },
    )
    .await
}

pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    if actor.user_id == Some(id) {
        return Err(ServiceError::conflict(
            "id",
            "you cannot delete your own account",
        ));
    }
    let entry = AuditEntry::new("user.delete", OperationType::Delete, "user");
    audit::guard(ctx, actor, entry.clone().target(id), async {
        actor.require(perm::UsersDelete)?;
        let target = find_manageable(ctx, actor, id).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        lock_super_admins(&txn).await?;
        let before = view(&txn, target.clone(), now).await?;
        users::Entity::update(users::ActiveModel {
            id: Set(id),
            deleted_at: Set(Some(now)),
            deletion_token: Set(id),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        sessions::revoke_user(&txn, id, None, "user_deleted", now).await?;
        ensure_super_admin_remains(&txn, now).await?;
        audit::commit_deleted(txn, actor, &entry, id, target.username, &before, now).await
    })
    .await
}

/// An administrator sets a new password; the user is signed out everywhere.
pub async fn reset_password(ctx: &Context, actor: &Actor, id: i64, new: &str) -> ServiceResult<()> {
    let entry = AuditEntry::new("user.password.reset", OperationType::Update, "user").target(id);
    audit::guard(ctx, actor, entry, async {
        actor.require(perm::UsersUpdate)?;
        refuse_self(actor, id, "reset the password")?;
        let target = find_manageable(ctx, actor, id).await?;
        validate::password("password", new, Some(&target.username))
            .map_err(|e| ServiceError::Validation(vec![e]))?;
        set_password(ctx, actor, &target, new, None, "user.password.reset").await
    })
    .await
}

/// An administrator removes a user's 2FA (lost phone); the user is signed out everywhere.
pub async fn reset_totp(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("user.totp.reset", OperationType::Security, "user").target(id);
    audit::guard(ctx, actor, entry, async {
        actor.require(perm::UsersUpdate)?;
        refuse_self(actor, id, "reset two-factor authentication")?;
        let target = find_manageable(ctx, actor, id).await?;
        two_factor::clear(ctx, actor, &target, None, "user.totp.reset").await
    })
    .await
}
