//! Role-based access control: the permission catalogue, roles, users and role grants.

pub mod assignments;
pub mod perm;
pub mod roles;
pub mod scope;
pub mod users;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use entity::{permissions, role_permissions, roles as role_entity, user_roles};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait,
};
use serde::{Deserialize, Serialize};

use crate::{Context, ServiceResult, auth::actor::Actor};
use scope::DataScope;

/// Permissions joined to the user's unexpired grants of live roles (one row per grant and
/// permission); callers pick the columns.
fn current_grants(user_id: i64, now: NaiveDateTime) -> sea_orm::Select<permissions::Entity> {
    permissions::Entity::find()
        .select_only()
        .column(permissions::Column::Name)
        .join(
            JoinType::InnerJoin,
            permissions::Relation::RolePermissions.def(),
        )
        .join(JoinType::InnerJoin, role_permissions::Relation::Roles.def())
        .join(JoinType::InnerJoin, role_entity::Relation::UserRoles.def())
        .filter(user_roles::Column::UserId.eq(user_id))
        .filter(
            Condition::any()
                .add(user_roles::Column::ExpiresAt.is_null())
                .add(user_roles::Column::ExpiresAt.gt(now)),
        )
        .filter(role_entity::Column::DeletedAt.is_null())
}

/// The names a user holds now through their unexpired grants of live roles.
pub async fn effective_permissions<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<BTreeSet<String>> {
    Ok(effective_access(conn, user_id, now).await?.0)
}

/// The permissions a user holds now and the widest data scope among the roles giving them, in
/// one query. A user without grants has the narrowest scope.
pub async fn effective_access<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<(BTreeSet<String>, DataScope)> {
    let rows: Vec<(String, String)> = current_grants(user_id, now)
        .column(role_entity::Column::DataScope)
        .distinct()
        .into_tuple()
        .all(conn)
        .await?;
    let scope = rows
        .iter()
        .map(|(_, scope)| DataScope::from_stored(scope))
        .max()
        .unwrap_or(DataScope::Own);
    Ok((rows.into_iter().map(|(name, _)| name).collect(), scope))
}

/// The widest data scope among a user's current roles.
pub async fn effective_scope<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<DataScope> {
    Ok(effective_access(conn, user_id, now).await?.1)
}

/// How long a user holds each permission now: the latest expiry among the unexpired grants that
/// give it (`None`: a grant without end). A grant this user makes must not outlive this.
pub async fn permission_holds<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    now: NaiveDateTime,
) -> ServiceResult<BTreeMap<String, Option<NaiveDateTime>>> {
    let rows: Vec<(String, Option<NaiveDateTime>)> = current_grants(user_id, now)
        .column(user_roles::Column::ExpiresAt)
        .into_tuple()
        .all(conn)
        .await?;
    let mut holds: BTreeMap<String, Option<NaiveDateTime>> = BTreeMap::new();
    for (name, expires) in rows {
        holds
            .entry(name)
            .and_modify(|held| *held = latest(*held, expires))
            .or_insert(expires);
    }
    Ok(holds)
}

/// The later of two ends, `None` being no end.
fn latest(a: Option<NaiveDateTime>, b: Option<NaiveDateTime>) -> Option<NaiveDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PermissionView {
    pub name: String,
    pub module: String,
    pub resource: String,
    pub action: String,
    pub display_name: String,
}

pub async fn catalogue(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<PermissionView>> {
    actor.require(perm::PermissionsRead)?;
    let rows = permissions::Entity::find()
        .order_by_asc(permissions::Column::SortOrder)
        .order_by_asc(permissions::Column::Id)
        .all(&ctx.db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|p| PermissionView {
            name: p.name,
            module: p.module,
            resource: p.resource,
            action: p.action,
            display_name: p.display_name,
        })
        .collect())
}

/// Fails start-up when the code needs a permission the database does not have (a migration is
/// missing), rather than denying that route to everyone at run time.
pub async fn verify_catalogue(ctx: &Context) -> anyhow::Result<()> {
    let known: BTreeSet<String> = permissions::Entity::find()
        .select_only()
        .column(permissions::Column::Name)
        .into_tuple::<String>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .collect();
    let missing: Vec<&str> = perm::ALL
        .iter()
        .copied()
        .filter(|p| !known.contains(*p))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("the database lacks permissions {missing:?}: run `wework migrate up`")
    }
}
