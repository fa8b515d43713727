//! User accounts: CRUD with soft delete, status, unlock, 2FA reset, admin password reset and
//! role grants with optional expiry.
//!
//! Object-level rule: an administrator manages only users whose permissions are a subset of their
//! own, and grants only roles whose permissions they hold, so nobody can raise their own power.

use crate::rbac::perm;
use entity::states::UserStatus;
use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use entity::{roles, user_roles, users};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use super::{
    roles::{SUPER_ADMIN, permissions_of},
    scope::DataScope,
};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::{actor::Actor, password::set_password, sessions, two_factor},
    clock::to_utc,
    crypto::password as pw,
    pagination::{Page, PageRequest},
    validate::{self, Violations},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRoleView {
    pub role_id: i64,
    pub name: String,
    pub display_name: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// `active` or `disabled`.
    pub status: UserStatus,
    /// Set while failed logins keep the account locked.
    pub locked_until: Option<DateTime<Utc>>,
    pub totp_enabled: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_login_ip: Option<String>,
    pub roles: Vec<UserRoleView>,
    /// The widest data scope among the user's current roles: which records they see.
    pub data_scope: DataScope,
    /// Instances assigned to the user (what an `assigned` or `own` scope reaches).
    pub instance_ids: Vec<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    pub role_id: i64,
    /// The grant lapses at this time (UTC); omit for a permanent grant.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    #[schema(pattern = r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{2,49}\s*$")]
    pub username: String,
    pub email: Option<String>,
    /// 12 to 128 characters, not the username.
    #[schema(min_length = 12, max_length = 128)]
    pub password: String,
    pub nickname: Option<String>,
    pub phone: Option<String>,
    #[serde(default)]
    pub roles: Vec<RoleGrant>,
}

/// Absent fields stay as they are; `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub nickname: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub q: Option<String>,
    pub status: Option<UserStatus>,
    pub role_id: Option<i64>,
}

pub async fn find_live<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<users::Model> {
    let conn_ref = conn;
    users::Entity::find_by_id(id)
        .filter(users::Column::DeletedAt.is_null())
        .one(conn_ref)
        .await?
        .ok_or(ServiceError::NotFound("user"))
}

/// A live user the actor may manage: they hold every permission the target holds.
pub async fn find_manageable(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<users::Model> {
    let user = find_live(&ctx.db, id).await?;
    let theirs = super::effective_permissions(&ctx.db, id, ctx.clock.now_db()).await?;
    actor.require_all(theirs.iter().map(String::as_str), "managing this user")?;
    Ok(user)
}

async fn roles_of<C: ConnectionTrait>(conn: &C, user_id: i64) -> ServiceResult<Vec<UserRoleView>> {
    let rows: Vec<(i64, String, String, Option<NaiveDateTime>)> = user_roles::Entity::find()
        .select_only()
        .column(user_roles::Column::RoleId)
        .column(roles::Column::Name)
        .column(roles::Column::DisplayName)
        .column(user_roles::Column::ExpiresAt)
        .join(JoinType::InnerJoin, user_roles::Relation::Roles.def())
        .filter(user_roles::Column::UserId.eq(user_id))
        .filter(roles::Column::DeletedAt.is_null())
        .order_by_asc(roles::Column::SortOrder)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(role_id, name, display_name, expires_at)| UserRoleView {
            role_id,
            name,
            display_name,
            expires_at: expires_at.map(to_utc),
        })
        .collect())
}

async fn view<C: ConnectionTrait>(
    conn: &C,
    user: users::Model,
    now: NaiveDateTime,
) -> ServiceResult<UserView> {
    let roles = roles_of(conn, user.id).await?;
    let data_scope = super::effective_scope(conn, user.id, now).await?;
    let instance_ids = super::assignments::of_user(conn, user.id).await?;
    Ok(UserView {
        id: user.id,
        username: user.username,
        email: user.email,
        phone: user.phone,
        nickname: user.nickname,
        avatar_url: user.avatar_url,
        status: user.status,
        locked_until: user.locked_until.filter(|u| *u > now).map(to_utc),
        totp_enabled: user.totp_enabled,
        last_login_at: user.last_login_at.map(to_utc),
        last_login_ip: user.last_login_ip,
        roles,
        data_scope,
        instance_ids,
        created_at: to_utc(user.created_at),
        updated_at: to_utc(user.updated_at),
    })
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: UserFilter,
    page: PageRequest,
) -> ServiceResult<Page<UserView>> {
    actor.require(perm::UsersRead)?;
    let mut query = users::Entity::find().filter(users::Column::DeletedAt.is_null());
    let searched = [
        users::Column::Username,
        users::Column::Email,
        users::Column::Nickname,
    ];
    if let Some(matches) = crate::search::contains_any(&searched, filter.q.as_deref()) {
        query = query.filter(matches);
    }
    if let Some(status) = filter.status {
        query = query.filter(users::Column::Status.eq(status));
    }
    if let Some(role_id) = filter.role_id {
        query = query
            .join(JoinType::InnerJoin, users::Relation::UserRoles.def())
            .filter(user_roles::Column::RoleId.eq(role_id));
    }
    if let Some(before) = page.before {
        query = query.filter(users::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(users::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    let models = Page::from_rows(page, rows, |r| r.id, |r| r);
    let now = ctx.clock.now_db();
    let mut items = Vec::with_capacity(models.items.len());
    for user in models.items {
        items.push(view(&ctx.db, user, now).await?);
    }
    Ok(Page {
        items,
        next_cursor: models.next_cursor,
    })
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<UserView> {
    actor.require(perm::UsersRead)?;
    view(&ctx.db, find_live(&ctx.db, id).await?, ctx.clock.now_db()).await
}

/// The caller's own account, for `GET /auth/me`.
/// The caller's own profile; read again at most once a second per user and process
/// (`auth::cache`: a change made here is seen at once, one made elsewhere within the second).
pub async fn me(ctx: &Context, actor: &Actor) -> ServiceResult<UserView> {
    actor.require(perm::ProfileSelf)?;
    let user_id = actor.user_id()?;
    let now = ctx.clock.now_db();
    ctx.profile_cache
        .get_or_load(user_id, now, || async {
            let profile = view(&ctx.db, find_live(&ctx.db, user_id).await?, now).await?;
            Ok((profile, now + chrono::TimeDelta::seconds(1)))
        })
        .await
}

async fn unique_conflicts<C: ConnectionTrait>(
    conn: &C,
    username: Option<&str>,
    email: Option<&str>,
    except: Option<i64>,
) -> ServiceResult<()> {
    let live = |column: users::Column, value: &str| {
        let mut q = users::Entity::find()
            .filter(column.eq(value))
            .filter(users::Column::DeletionToken.eq(0));
        if let Some(id) = except {
            q = q.filter(users::Column::Id.ne(id));
        }
        q
    };
    if let Some(u) = username
        && live(users::Column::Username, u).count(conn).await? > 0
    {
        return Err(ServiceError::conflict(
            "username",
            format!("`{u}` is taken"),
        ));
    }
    if let Some(e) = email
        && live(users::Column::Email, e).count(conn).await? > 0
    {
        return Err(ServiceError::conflict(
            "email",
            format!("`{e}` is used by another user"),
        ));
    }
    Ok(())
}

/// Checks grants: roles exist, expiries lie ahead, the actor holds every permission granted, and
/// no new grant outlives the actor's own hold on what it gives (a 4-hour grant cannot be passed
/// on for good). Grants the target already has, unchanged, are kept as they are.
async fn check_grants(
    ctx: &Context,
    actor: &Actor,
    target: Option<i64>,
    grants: &[RoleGrant],
) -> ServiceResult<()> {
    let now = ctx.clock.now();
    let existing: BTreeSet<(i64, Option<NaiveDateTime>)> = match target {
        Some(target) => user_roles::Entity::find()
            .filter(user_roles::Column::UserId.eq(target))
            .all(&ctx.db)
            .await?
            .into_iter()
            .map(|g| (g.role_id, g.expires_at))
            .collect(),
        None => BTreeSet::new(),
    };
    let holds = match actor.user_id {
        Some(granter) => Some(super::permission_holds(&ctx.db, granter, now.naive_utc()).await?),
        None => None,
    };
    let mut v = Violations::new();
    let mut seen = BTreeSet::new();
    let mut granted: BTreeSet<String> = BTreeSet::new();
    for (i, grant) in grants.iter().enumerate() {
        if !seen.insert(grant.role_id) {
            v.add(format!("roles[{i}].role_id"), "is listed twice");
            continue;
        }
        if grant.expires_at.is_some_and(|e| e <= now) {
            v.add(format!("roles[{i}].expires_at"), "must be in the future");
        }
        let role = match super::roles::find_live(&ctx.db, grant.role_id).await {
            Ok(role) => role,
            Err(ServiceError::NotFound(_)) => {
                v.add(format!("roles[{i}].role_id"), "no such role");
                continue;
            }
            Err(e) => return Err(e),
        };
        let permissions = permissions_of(&ctx.db, role.id).await?;
        if DataScope::from_stored(&role.data_scope) > actor.reach.scope() {
            v.add(
                format!("roles[{i}].role_id"),
                format!(
                    "this role sees `{}` records, more than your own data scope",
                    role.data_scope
                ),
            );
        }
        let expires = grant.expires_at.map(|e| e.naive_utc());
        if let Some(holds) = &holds
            && !existing.contains(&(grant.role_id, expires))
            && let Some(until) = permissions
                .iter()
                .filter_map(|p| holds.get(p).copied().flatten())
                .min()
            && expires.is_none_or(|e| e > until)
        {
            v.add(
                format!("roles[{i}].expires_at"),
                format!(
                    "must be no later than {}, when your own grant of these permissions ends",
                    to_utc(until).to_rfc3339()
                ),
            );
        }
        granted.extend(permissions);
    }
    v.finish()?;
    actor.require_all(granted.iter().map(String::as_str), "granting these roles")
}

/// Administrators act on other users; on themselves they use the self-service routes (which
/// ask for the current password), so a stolen session or a short grant cannot entrench itself.
fn refuse_self(actor: &Actor, id: i64, what: &str) -> ServiceResult<()> {
    if actor.user_id == Some(id) {
        return Err(ServiceError::Forbidden(format!(
            "you cannot {what} on your own account; another administrator must"
        )));
    }
    Ok(())
}

async fn write_grants(
    txn: &DatabaseTransaction,
    granted_by: Option<i64>,
    user_id: i64,
    grants: &[RoleGrant],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    user_roles::Entity::delete_many()
        .filter(user_roles::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    if grants.is_empty() {
        return Ok(());
    }
    let rows = grants.iter().map(|g| user_roles::ActiveModel {
        user_id: Set(user_id),
        role_id: Set(g.role_id),
        granted_by: Set(granted_by),
        expires_at: Set(g.expires_at.map(|e| e.naive_utc())),
        created_at: Set(now),
        ..Default::default()
    });
    user_roles::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Serialises the changes that could remove the last super admin (disable, delete, role
/// changes): each takes the `super_admin` role row's lock before reading anything, so the check
/// at its end sees what the others committed. Without it two administrators disabling each
/// other at the same moment each see the other still active, and both commit. SQLite's write
/// transactions are serial already.
async fn lock_super_admins(txn: &DatabaseTransaction) -> ServiceResult<()> {
    if crate::db::row_locks(txn) {
        roles::Entity::find()
            .filter(roles::Column::Name.eq(SUPER_ADMIN))
            .lock_exclusive()
            .one(txn)
            .await?;
    }
    Ok(())
}

/// Refuses a change that would leave no active user holding `super_admin`.
async fn ensure_super_admin_remains(
    txn: &DatabaseTransaction,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let remaining = user_roles::Entity::find()
        .join(JoinType::InnerJoin, user_roles::Relation::Roles.def())
        .join(JoinType::InnerJoin, user_roles::Relation::Users.def())
        .filter(roles::Column::Name.eq(SUPER_ADMIN))
        .filter(roles::Column::DeletedAt.is_null())
        .filter(users::Column::DeletedAt.is_null())
        .filter(users::Column::Status.eq(UserStatus::Active))
        .filter(
            Condition::any()
                .add(user_roles::Column::ExpiresAt.is_null())
                .add(user_roles::Column::ExpiresAt.gt(now)),
        )
        .count(txn)
        .await?;
    if remaining == 0 {
        return Err(ServiceError::conflict(
            "roles",
            "at least one active user must keep the super_admin role",
        ));
    }
    Ok(())
}

pub async fn create(ctx: &Context, actor: &Actor, input: UserInput) -> ServiceResult<UserView> {
    let entry = AuditEntry::new("user.create", OperationType::Create, "user");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::UsersCreate)?;
        let mut v = Violations::new();
        let username = v.take(validate::username("username", &input.username));
        let email = input
            .email
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .map(|e| v.take(validate::email("email", e)));
        v.take(validate::password(
            "password",
            &input.password,
            Some(&input.username),
        ));
        let nickname = v.take(validate::optional_text(
            "nickname",
            input.nickname.as_deref(),
            100,
        ));
        let phone = v.take(validate::optional_text("phone", input.phone.as_deref(), 20));
        v.finish()?;
        let (Some(username), Some(nickname), Some(phone)) = (username, nickname, phone) else {
            return Err(ServiceError::invalid("username", "is invalid"));
        };
        let email = email.flatten();
        check_grants(ctx, actor, None, &input.roles).await?;
        let hash = pw::hash(&input.password).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        unique_conflicts(&txn, Some(&username), email.as_deref(), None).await?;
        let row = users::ActiveModel {
            username: Set(username),
            email: Set(email),
            phone: Set(phone),
            nickname: Set(nickname),
            password_hash: Set(hash),
            status: Set(UserStatus::Active),
            failed_login_count: Set(0),
            totp_enabled: Set(false),
            created_by: Set(actor.user_id),
            deletion_token: Set(0),
            password_changed_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = users::Entity::insert(row).exec(&txn).await?.last_insert_id;
        write_grants(&txn, actor.user_id, id, &input.roles, now).await?;
        let created = view(&txn, find_live(&txn, id).await?, now).await?;
        audit::commit_created(
            txn,
            actor,
            &entry,
            id,
            created.username.clone(),
            created,
            now,
        )
        .await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: UserPatch,
) -> ServiceResult<UserView> {
    let entry = AuditEntry::new("user.update", OperationType::Update, "user");
    audit::guard(ctx, actor, entry.clone().target(id), async {
        actor.require(perm::UsersUpdate)?;
        let mut v = Violations::new();
        let email =
            patch
                .email
                .as_ref()
                .map(|e| match e.as_deref().filter(|e| !e.trim().is_empty()) {
                    None => Some(None),
                    Some(e) => v.take(validate::email("email", e)).map(Some),
                });
        let nickname = patch
            .nickname
            .as_ref()
            .map(|n| v.take(validate::optional_text("nickname", n.as_deref(), 100)));
        let phone = patch
            .phone
            .as_ref()
            .map(|p| v.take(validate::optional_text("phone", p.as_deref(), 20)));
        let avatar = patch
            .avatar_url
            .as_ref()
            .map(|a| v.take(validate::optional_text("avatar_url", a.as_deref(), 500)));
        v.finish()?;
        let target = find_manageable(ctx, actor, id).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = view(&txn, target, now).await?;
        let mut changes = users::ActiveModel {
            id: Set(id),
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(Some(email)) = email {
            unique_conflicts(&txn, None, email.as_deref(), Some(id)).await?;
            changes.email = Set(email);
        }
        if let Some(Some(nickname)) = nickname {
            changes.nickname = Set(nickname);
        }
        if let Some(Some(phone)) = phone {
            changes.phone = Set(phone);
        }
        if let Some(Some(avatar)) = avatar {
            changes.avatar_url = Set(avatar);
        }
        users::Entity::update(changes).exec(&txn).await?;
        let after = view(&txn, find_live(&txn, id).await?, now).await?;
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.username.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

mod admin;

pub use admin::{delete, reset_password, reset_totp, set_instances, set_roles, set_status, unlock};
