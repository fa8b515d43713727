//! Groups of visitors (粉丝分组): managers name them, agents file a visitor under one
//! (`PATCH /desk/visitors/{id}` `{group_id}`) and find a group's visitors
//! (`GET /desk/visitors?group_id=`). Removing a group leaves its visitors ungrouped.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{desk_visitor_groups, desk_visitors};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    rbac::perm,
    validate::{self, Violations},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorGroupView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    /// Visitors filed under it.
    pub visitors: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(m: desk_visitor_groups::Model, visitors: u64) -> VisitorGroupView {
    VisitorGroupView {
        id: m.id,
        name: m.name,
        description: m.description,
        visitors,
        created_at: to_utc(m.created_at),
        updated_at: to_utc(m.updated_at),
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorGroupInput {
    #[schema(min_length = 1, max_length = 50)]
    pub name: String,
    #[schema(max_length = 200)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorGroupPatch {
    #[schema(min_length = 1, max_length = 50)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub description: Option<Option<String>>,
}

fn name_taken(e: ServiceError) -> ServiceError {
    if e.is_unique_violation() {
        ServiceError::conflict("name", "another group already has this name")
    } else {
        e
    }
}

/// How many visitors each group has, in one read.
async fn counts<C: ConnectionTrait>(conn: &C) -> ServiceResult<HashMap<i64, u64>> {
    let rows: Vec<(Option<i64>, i64)> = desk_visitors::Entity::find()
        .select_only()
        .column(desk_visitors::Column::GroupId)
        .column_as(desk_visitors::Column::Id.count(), "n")
        .filter(desk_visitors::Column::GroupId.is_not_null())
        .group_by(desk_visitors::Column::GroupId)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(group, n)| Some((group?, u64::try_from(n).unwrap_or(0))))
        .collect())
}

async fn one<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<VisitorGroupView> {
    let group = find(conn, id).await?;
    let visitors = counts(conn).await?.get(&id).copied().unwrap_or(0);
    Ok(view(group, visitors))
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<desk_visitor_groups::Model> {
    desk_visitor_groups::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("visitor group"))
}

/// Every group by name; agents read them to file visitors.
pub async fn list(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<VisitorGroupView>> {
    if !actor.has(perm::DeskManage) && !actor.has(perm::DeskSupervise) {
        actor.require(perm::DeskWork)?;
    }
    let counts = counts(&ctx.db).await?;
    Ok(desk_visitor_groups::Entity::find()
        .order_by_asc(desk_visitor_groups::Column::Name)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|g| {
            let n = counts.get(&g.id).copied().unwrap_or(0);
            view(g, n)
        })
        .collect())
}

pub async fn create(
    ctx: &Context,
    actor: &Actor,
    input: VisitorGroupInput,
) -> ServiceResult<VisitorGroupView> {
    let entry = AuditEntry::new(
        "desk.visitor_group.create",
        OperationType::Create,
        "visitor_group",
    );
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 50));
        let description = v.take(validate::optional_text(
            "description",
            input.description.as_deref(),
            200,
        ));
        v.finish()?;
        let (Some(name), Some(description)) = (name, description) else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let id = desk_visitor_groups::Entity::insert(desk_visitor_groups::ActiveModel {
            name: Set(name.clone()),
            description: Set(description),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(|e| name_taken(e.into()))?
        .last_insert_id;
        let created = one(&txn, id).await?;
        audit::commit_created(txn, actor, &entry, id, name, created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: VisitorGroupPatch,
) -> ServiceResult<VisitorGroupView> {
    let entry = AuditEntry::new(
        "desk.visitor_group.update",
        OperationType::Update,
        "visitor_group",
    );
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 50)));
        let description = match &patch.description {
            Some(d) => v.take(validate::optional_text("description", d.as_deref(), 200)),
            None => None,
        };
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = one(&txn, id).await?;
        let mut row: desk_visitor_groups::ActiveModel = find(&txn, id).await?.into();
        if let Some(name) = name {
            row.name = Set(name);
        }
        if let Some(description) = description {
            row.description = Set(description);
        }
        row.updated_at = Set(now);
        desk_visitor_groups::Entity::update(row)
            .exec(&txn)
            .await
            .map_err(|e| name_taken(e.into()))?;
        let after = one(&txn, id).await?;
        let name = after.name.clone();
        audit::commit_updated(txn, actor, &entry, id, name, &before, after, now).await
    })
    .await
}

/// The group goes; its visitors stay, ungrouped.
pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new(
        "desk.visitor_group.delete",
        OperationType::Delete,
        "visitor_group",
    );
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        // Locked first: a visitor being filed under it meanwhile (which holds it shared) is
        // filed before the ungrouping below, or finds the group gone.
        let mut lock = desk_visitor_groups::Entity::find_by_id(id);
        if crate::db::row_locks(&txn) {
            lock = lock.lock_exclusive();
        }
        lock.one(&txn).await?;
        let before = one(&txn, id).await?;
        desk_visitors::Entity::update_many()
            .col_expr(
                desk_visitors::Column::GroupId,
                Expr::value(Option::<i64>::None),
            )
            .filter(desk_visitors::Column::GroupId.eq(id))
            .exec(&txn)
            .await?;
        desk_visitor_groups::Entity::delete_by_id(id)
            .exec(&txn)
            .await?;
        let name = before.name.clone();
        audit::commit_deleted(txn, actor, &entry, id, name, &before, now).await
    })
    .await
}
