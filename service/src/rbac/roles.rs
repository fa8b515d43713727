//! Roles and the permissions they grant.

use crate::rbac::perm;
use std::collections::BTreeSet;

use super::scope::DataScope;
use chrono::{DateTime, Utc};
use entity::{permissions, role_permissions, roles, user_roles};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    validate::{self, Violations},
};

pub const SUPER_ADMIN: &str = "super_admin";

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoleView {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub is_system: bool,
    pub permissions: Vec<String>,
    /// Which records holders of this role see.
    pub data_scope: DataScope,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// Identifier: 2 to 50 of `a-z`, `0-9` and `_`.
    #[schema(pattern = r"^\s*[a-z][a-z0-9_]{1,49}\s*$")]
    pub name: String,
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*$")]
    pub display_name: String,
    #[schema(pattern = r"^\s*([^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,1999}\s*)?$")]
    pub description: Option<String>,
    /// Permission names (`resource:action`); you can only grant permissions you hold.
    #[serde(default)]
    #[schema(value_type = Vec<super::perm::PermissionName>)]
    pub permissions: Vec<String>,
    /// Which records holders see; at most your own data scope, which is also the default.
    pub data_scope: Option<DataScope>,
}

/// Absent fields stay as they are; `null` clears the description.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    #[schema(pattern = r"^\s*[a-z][a-z0-9_]{1,49}\s*$")]
    pub name: Option<String>,
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*$")]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, pattern = r"^\s*([^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,1999}\s*)?$")]
    pub description: Option<Option<String>>,
    /// At most your own data scope.
    pub data_scope: Option<DataScope>,
}

pub async fn permissions_of<C: ConnectionTrait>(
    conn: &C,
    role_id: i64,
) -> ServiceResult<Vec<String>> {
    Ok(permissions::Entity::find()
        .select_only()
        .column(permissions::Column::Name)
        .join(
            JoinType::InnerJoin,
            permissions::Relation::RolePermissions.def(),
        )
        .filter(role_permissions::Column::RoleId.eq(role_id))
        .order_by_asc(permissions::Column::Name)
        .into_tuple()
        .all(conn)
        .await?)
}

async fn view<C: ConnectionTrait>(conn: &C, role: roles::Model) -> ServiceResult<RoleView> {
    let permissions = permissions_of(conn, role.id).await?;
    Ok(RoleView {
        id: role.id,
        name: role.name,
        display_name: role.display_name,
        description: role.description,
        is_system: role.is_system,
        data_scope: DataScope::from_stored(&role.data_scope),
        permissions,
        created_at: to_utc(role.created_at),
        updated_at: to_utc(role.updated_at),
    })
}

/// Nobody gives or edits a role that sees more than they do.
fn within_own_scope(actor: &Actor, scope: DataScope) -> ServiceResult<()> {
    if scope > actor.reach.scope() {
        return Err(ServiceError::Forbidden(format!(
            "a role seeing `{}` records is wider than your own data scope",
            scope.as_str()
        )));
    }
    Ok(())
}

pub async fn find_live<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<roles::Model> {
    roles::Entity::find_by_id(id)
        .filter(roles::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("role"))
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    q: Option<String>,
    page: PageRequest,
) -> ServiceResult<Page<RoleView>> {
    actor.require(perm::RolesRead)?;
    let mut query = roles::Entity::find().filter(roles::Column::DeletedAt.is_null());
    if let Some(matches) = crate::search::contains_any(
        &[roles::Column::Name, roles::Column::DisplayName],
        q.as_deref(),
    ) {
        query = query.filter(matches);
    }
    if let Some(before) = page.before {
        query = query.filter(roles::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(roles::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    let page_of_models = Page::from_rows(page, rows, |r| r.id, |r| r);
    let mut items = Vec::with_capacity(page_of_models.items.len());
    for role in page_of_models.items {
        items.push(view(&ctx.db, role).await?);
    }
    Ok(Page {
        items,
        next_cursor: page_of_models.next_cursor,
    })
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<RoleView> {
    actor.require(perm::RolesRead)?;
    view(&ctx.db, find_live(&ctx.db, id).await?).await
}

/// Role names are identifiers: 2–50 of lowercase letters, digits and `_`.
fn role_name(field: &str, value: &str) -> Result<String, crate::FieldError> {
    let v = value.trim();
    let ok = (2..=50).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && v.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(crate::FieldError::new(
            field,
            "must be 2 to 50 of a-z, 0-9 and '_', starting with a letter",
        ))
    }
}

/// Resolves permission names to ids, naming each unknown one by its index.
async fn resolve_permissions<C: ConnectionTrait>(
    conn: &C,
    names: &[String],
) -> ServiceResult<Vec<(i64, String)>> {
    let unique: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let rows = permissions::Entity::find()
        .filter(permissions::Column::Name.is_in(unique.iter().copied()))
        .all(conn)
        .await?;
    let known: BTreeSet<&str> = rows.iter().map(|p| p.name.as_str()).collect();
    let mut violations = Violations::new();
    for (i, name) in names.iter().enumerate() {
        if !known.contains(name.as_str()) {
            violations.add(
                format!("permissions[{i}]"),
                format!("`{name}` is not a known permission"),
            );
        }
    }
    violations.finish()?;
    Ok(rows.into_iter().map(|p| (p.id, p.name)).collect())
}

async fn name_taken<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    except: Option<i64>,
) -> ServiceResult<bool> {
    let mut query = roles::Entity::find()
        .filter(roles::Column::Name.eq(name))
        .filter(roles::Column::DeletionToken.eq(0));
    if let Some(id) = except {
        query = query.filter(roles::Column::Id.ne(id));
    }
    Ok(query.count(conn).await? > 0)
}

async fn replace_permissions(
    txn: &DatabaseTransaction,
    role_id: i64,
    ids: &[(i64, String)],
    now: chrono::NaiveDateTime,
) -> ServiceResult<()> {
    role_permissions::Entity::delete_many()
        .filter(role_permissions::Column::RoleId.eq(role_id))
        .exec(txn)
        .await?;
    if ids.is_empty() {
        return Ok(());
    }
    let rows = ids
        .iter()
        .map(|(permission_id, _)| role_permissions::ActiveModel {
            role_id: Set(role_id),
            permission_id: Set(*permission_id),
            created_at: Set(now),
            ..Default::default()
        });
    role_permissions::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

pub async fn create(ctx: &Context, actor: &Actor, input: RoleInput) -> ServiceResult<RoleView> {
    let entry = AuditEntry::new("role.create", OperationType::Create, "role");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::RolesCreate)?;
        let mut v = Violations::new();
        let name = v.take(role_name("name", &input.name));
        let display_name = v.take(validate::text("display_name", &input.display_name, 1, 100));
        let description = v.take(validate::optional_text(
            "description",
            input.description.as_deref(),
            2000,
        ));
        v.finish()?;
        let (Some(name), Some(display_name), Some(description)) = (name, display_name, description)
        else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let perms = resolve_permissions(&ctx.db, &input.permissions).await?;
        actor.require_all(
            perms.iter().map(|(_, n)| n.as_str()),
            "granting these permissions",
        )?;
        let data_scope = input.data_scope.unwrap_or(actor.reach.scope());
        within_own_scope(actor, data_scope)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        if name_taken(&txn, &name, None).await? {
            return Err(ServiceError::conflict(
                "name",
                format!("a role named `{name}` already exists"),
            ));
        }
        let role = roles::ActiveModel {
            name: Set(name),
            display_name: Set(display_name),
            description: Set(description),
            is_system: Set(false),
            data_scope: Set(data_scope.as_str().to_owned()),
            sort_order: Set(100),
            deletion_token: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let inserted = roles::Entity::insert(role).exec(&txn).await?;
        replace_permissions(&txn, inserted.last_insert_id, &perms, now).await?;
        let created = view(&txn, find_live(&txn, inserted.last_insert_id).await?).await?;
        let id = created.id;
        audit::commit_created(txn, actor, &entry, id, created.name.clone(), created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: RolePatch,
) -> ServiceResult<RoleView> {
    let entry = AuditEntry::new("role.update", OperationType::Update, "role");
    audit::guard(ctx, actor, entry.clone().target(id), async {
        actor.require(perm::RolesUpdate)?;
        let mut v = Violations::new();
        let name = patch.name.as_deref().map(|n| v.take(role_name("name", n)));
        let display_name = patch
            .display_name
            .as_deref()
            .map(|d| v.take(validate::text("display_name", d, 1, 100)));
        let description = patch
            .description
            .as_ref()
            .map(|d| v.take(validate::optional_text("description", d.as_deref(), 2000)));
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let role = find_live(&txn, id).await?;
        let before = view(&txn, role.clone()).await?;
        actor.require_all(
            before.permissions.iter().map(String::as_str),
            "editing this role",
        )?;
        within_own_scope(actor, before.data_scope)?;
        let mut changes = roles::ActiveModel {
            id: Set(id),
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(scope) = patch.data_scope.filter(|s| *s != before.data_scope) {
            if role.name == SUPER_ADMIN {
                return Err(ServiceError::conflict(
                    "data_scope",
                    "super_admin always sees every record",
                ));
            }
            within_own_scope(actor, scope)?;
            changes.data_scope = Set(scope.as_str().to_owned());
        }
        if let Some(Some(name)) = name.filter(|n| n.as_deref() != Some(role.name.as_str())) {
            if role.is_system {
                return Err(ServiceError::conflict(
                    "name",
                    "built-in roles cannot be renamed",
                ));
            }
            if name_taken(&txn, &name, Some(id)).await? {
                return Err(ServiceError::conflict(
                    "name",
                    format!("a role named `{name}` already exists"),
                ));
            }
            changes.name = Set(name);
        }
        if let Some(Some(display_name)) = display_name {
            changes.display_name = Set(display_name);
        }
        if let Some(Some(description)) = description {
            changes.description = Set(description);
        }
        roles::Entity::update(changes).exec(&txn).await?;
        let after = view(&txn, find_live(&txn, id).await?).await?;
        let entry = entry
            .clone()
            .resource(id, after.name.clone())
            .old(&before)
            .new_values(&after);
        audit::record(&txn, actor, entry, now).await?;
        txn.commit().await?;
        Ok(after)
    })
    .await
}

pub async fn set_permissions(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    names: Vec<String>,
) -> ServiceResult<RoleView> {
    let entry = AuditEntry::new("role.permissions.set", OperationType::Update, "role");
    audit::guard(ctx, actor, entry.clone().target(id), async {
        actor.require(perm::RolesUpdate)?;
        let perms = resolve_permissions(&ctx.db, &names).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let role = find_live(&txn, id).await?;
        if role.name == SUPER_ADMIN {
            return Err(ServiceError::conflict(
                "permissions",
                "super_admin always holds every permission",
            ));
        }
        let before = view(&txn, role).await?;
        let touched = before
            .permissions
            .iter()
            .map(String::as_str)
            .chain(perms.iter().map(|(_, n)| n.as_str()));
        actor.require_all(touched, "changing this role's permissions")?;
        replace_permissions(&txn, id, &perms, now).await?;
        roles::Entity::update(roles::ActiveModel {
            id: Set(id),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let after = view(&txn, find_live(&txn, id).await?).await?;
        let entry = entry
            .clone()
            .resource(id, after.name.clone())
            .old(&serde_json::json!({ "permissions": before.permissions }))
            .new_values(&serde_json::json!({ "permissions": after.permissions }));
        audit::record(&txn, actor, entry, now).await?;
        txn.commit().await?;
        Ok(after)
    })
    .await
}

/// Soft delete: the role stops granting anything at once; grants are removed.
pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("role.delete", OperationType::Delete, "role");
    audit::guard(ctx, actor, entry.clone().target(id), async {
        actor.require(perm::RolesDelete)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let role = find_live(&txn, id).await?;
        if role.is_system {
            return Err(ServiceError::conflict(
                "id",
                "built-in roles cannot be deleted",
            ));
        }
        let before = view(&txn, role.clone()).await?;
        actor.require_all(
            before.permissions.iter().map(String::as_str),
            "deleting this role",
        )?;
        user_roles::Entity::delete_many()
            .filter(user_roles::Column::RoleId.eq(id))
            .exec(&txn)
            .await?;
        roles::Entity::update(roles::ActiveModel {
            id: Set(id),
            deleted_at: Set(Some(now)),
            deletion_token: Set(id),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        audit::commit_deleted(txn, actor, &entry, id, role.name, &before, now).await
    })
    .await
}
