//! First start: create the administrator account so a new installation can be used at once.

use entity::states::UserStatus;
use entity::{roles, user_roles, users};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::{
    Context,
    audit::{self, AuditEntry, OperationType},
    auth::actor::{Actor, RequestMeta},
    crypto::{password as pw, token},
    rbac::roles::SUPER_ADMIN,
    validate,
};

pub const ADMIN_USERNAME: &str = "admin";

/// What happened at bootstrap, for the caller to print once.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Users exist already; nothing done.
    Existing,
    /// Created `admin` with the password from `WEWORK_ADMIN_PASSWORD`.
    CreatedWithGivenPassword,
    /// Created `admin` with this generated password.
    CreatedWithGeneratedPassword(String),
}

/// Creates `admin` (role `super_admin`) when the database has no users. Two processes starting
/// together are safe: the unique username lets one insert win and the other see `Existing`.
pub async fn ensure_admin(
    ctx: &Context,
    given_password: Option<String>,
) -> anyhow::Result<Bootstrap> {
    if users::Entity::find().count(&ctx.db).await? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let (password, generated) = match given_password.filter(|p| !p.is_empty()) {
        Some(p) => {
            validate::password("WEWORK_ADMIN_PASSWORD", &p, Some(ADMIN_USERNAME))
                .map_err(|e| anyhow::anyhow!("{} {}", e.field, e.message))?;
            (p, false)
        }
        None => (generate_password(), true),
    };
    let role = roles::Entity::find()
        .filter(roles::Column::Name.eq(SUPER_ADMIN))
        .filter(roles::Column::DeletedAt.is_null())
        .one(&ctx.db)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("the super_admin role is missing: run `wework migrate up`")
        })?;
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let row = users::ActiveModel {
        username: Set(ADMIN_USERNAME.to_owned()),
        password_hash: Set(pw::hash(&password).await?),
        nickname: Set(Some("Administrator".to_owned())),
        status: Set(UserStatus::Active),
        failed_login_count: Set(0),
        totp_enabled: Set(false),
        deletion_token: Set(0),
        password_changed_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let id = match users::Entity::insert(row).exec(&txn).await {
        Ok(inserted) => inserted.last_insert_id,
        Err(e) if users::Entity::find().count(&ctx.db).await.unwrap_or(0) > 0 => {
            tracing::info!(error = %e, "another process created the administrator first");
            return Ok(Bootstrap::Existing);
        }
        Err(e) => return Err(e.into()),
    };
    let grant = user_roles::ActiveModel {
        user_id: Set(id),
        role_id: Set(role.id),
        created_at: Set(now),
        ..Default::default()
    };
    user_roles::Entity::insert(grant)
        .exec_without_returning(&txn)
        .await?;
    let actor = Actor::system(RequestMeta {
        ip: "127.0.0.1".to_owned(),
        ..Default::default()
    });
    let entry = AuditEntry::new("user.bootstrap", OperationType::Create, "user")
        .resource(id, ADMIN_USERNAME)
        .new_values(&serde_json::json!({ "username": ADMIN_USERNAME, "roles": [SUPER_ADMIN] }));
    audit::record(&txn, &actor, entry, now).await?;
    txn.commit().await?;
    Ok(if generated {
        Bootstrap::CreatedWithGeneratedPassword(password)
    } else {
        Bootstrap::CreatedWithGivenPassword
    })
}

/// Command-line recovery: new password, lockout lifted, all sessions revoked. Returns the password
/// that was set (generated when `given` is `None`).
pub async fn recover_account(
    ctx: &Context,
    username: &str,
    given: Option<String>,
) -> anyhow::Result<String> {
    let user = users::Entity::find()
        .filter(users::Column::Username.eq(username))
        .filter(users::Column::DeletedAt.is_null())
        .one(&ctx.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named `{username}`"))?;
    let password = match given {
        Some(p) => {
            validate::password("WEWORK_NEW_PASSWORD", &p, Some(username))
                .map_err(|e| anyhow::anyhow!("{} {}", e.field, e.message))?;
            p
        }
        None => generate_password(),
    };
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    users::Entity::update(users::ActiveModel {
        id: Set(user.id),
        password_hash: Set(pw::hash(&password).await?),
        password_changed_at: Set(Some(now)),
        failed_login_count: Set(0),
        locked_until: Set(None),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    crate::auth::sessions::revoke_user(&txn, user.id, None, "password_recovered", now).await?;
    let actor = Actor::system(RequestMeta {
        ip: "127.0.0.1".to_owned(),
        ..Default::default()
    });
    let entry = AuditEntry::new("user.password.recover", OperationType::Security, "user")
        .resource(user.id, user.username);
    audit::record(&txn, &actor, entry, now).await?;
    txn.commit().await?;
    Ok(password)
}

/// 24 characters from the URL-safe alphabet, from the OS CSPRNG.
fn generate_password() -> String {
    token::random_token("ww").chars().skip(3).take(24).collect()
}
