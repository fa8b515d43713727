//! Customer groups (群聊) and their members, synced from instances, with local tags and fields.

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::{chat_groups, group_members};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    validate::Violations,
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupView {
    pub id: i64,
    pub instance_id: i64,
    pub account_id: i64,
    pub group_wxid: String,
    pub group_name: Option<String>,
    pub owner_wxid: Option<String>,
    pub group_notice: Option<String>,
    pub member_count: i32,
    /// The account's role: `owner`, `admin` or `member`.
    pub my_role: String,
    pub is_active: bool,
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Value>,
    pub last_sync_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<chat_groups::Model> for GroupView {
    fn from(m: chat_groups::Model) -> Self {
        Self {
            id: m.id,
            instance_id: m.instance_id,
            account_id: m.account_id,
            group_wxid: m.group_wxid,
            group_name: m.group_name,
            owner_wxid: m.owner_wxid,
            group_notice: m.group_notice,
            member_count: m.member_count,
            my_role: m.my_role,
            is_active: m.is_active,
            tags: m.tags,
            custom_fields: m.custom_fields,
            last_sync_time: m.last_sync_time.map(to_utc),
            created_at: to_utc(m.created_at),
            updated_at: to_utc(m.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub id: i64,
    pub member_wxid: String,
    pub member_nickname: Option<String>,
    pub group_nickname: Option<String>,
    /// `internal` (a corp member) or `external` (a customer).
    pub member_type: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
    pub join_time: Option<DateTime<Utc>>,
    /// Set once the member has left.
    pub left_at: Option<DateTime<Utc>>,
}

impl From<group_members::Model> for MemberView {
    fn from(m: group_members::Model) -> Self {
        Self {
            id: m.id,
            member_wxid: m.member_wxid,
            member_nickname: m.member_nickname,
            group_nickname: m.group_nickname,
            member_type: m.member_type,
            role: m.role,
            join_time: m.join_time.map(to_utc),
            left_at: m.left_at.map(to_utc),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub q: Option<String>,
    pub account_id: Option<i64>,
    pub instance_id: Option<i64>,
    /// Only groups this contact is a current member of (on the contact's own account).
    pub contact_id: Option<i64>,
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<chat_groups::Model> {
    chat_groups::Entity::find_by_id(id)
        .filter(chat_groups::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("group"))
}

/// A live group on an instance the actor may see; otherwise the same 404 as a missing one.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: i64,
) -> ServiceResult<chat_groups::Model> {
    let group = find(conn, id).await?;
    actor.reach.check_instance(group.instance_id, "group")?;
    Ok(group)
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: GroupFilter,
    page: PageRequest,
) -> ServiceResult<Page<GroupView>> {
    actor.require(perm::GroupsRead)?;
    let mut query = chat_groups::Entity::find()
        .filter(chat_groups::Column::DeletedAt.is_null())
        .filter(actor.reach.on_instances(chat_groups::Column::InstanceId));
    if let Some(m) = crate::search::contains_any(
        &[
            chat_groups::Column::GroupName,
            chat_groups::Column::GroupWxid,
        ],
        filter.q.as_deref(),
    ) {
        query = query.filter(m);
    }
    if let Some(id) = filter.account_id {
        query = query.filter(chat_groups::Column::AccountId.eq(id));
    }
    if let Some(id) = filter.instance_id {
        query = query.filter(chat_groups::Column::InstanceId.eq(id));
    }
    if let Some(id) = filter.contact_id {
        let contact = super::find_visible(&ctx.db, actor, id).await?;
        let memberships = group_members::Entity::find()
            .select_only()
            .column(group_members::Column::GroupId)
            .filter(group_members::Column::MemberWxid.eq(contact.wxid))
            .filter(group_members::Column::LeftAt.is_null())
            .into_query();
        query = query
            .filter(chat_groups::Column::AccountId.eq(contact.account_id))
            .filter(chat_groups::Column::Id.in_subquery(memberships));
    }
    if let Some(before) = page.before {
        query = query.filter(chat_groups::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(chat_groups::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, GroupView::from))
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<GroupView> {
    actor.require(perm::GroupsRead)?;
    Ok(find_visible(&ctx.db, actor, id).await?.into())
}

/// Current members by default; `include_left` adds those who left.
pub async fn members(
    ctx: &Context,
    actor: &Actor,
    group_id: i64,
    include_left: bool,
    page: PageRequest,
) -> ServiceResult<Page<MemberView>> {
    actor.require(perm::GroupsRead)?;
    find_visible(&ctx.db, actor, group_id).await?;
    let mut query =
        group_members::Entity::find().filter(group_members::Column::GroupId.eq(group_id));
    if !include_left {
        query = query.filter(group_members::Column::LeftAt.is_null());
    }
    if let Some(before) = page.before {
        query = query.filter(group_members::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(group_members::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, MemberView::from))
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<Vec<crate::validate::Label>>)]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Option<serde_json::Value>>,
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: GroupPatch,
) -> ServiceResult<GroupView> {
    let entry = AuditEntry::new("group.update", OperationType::Update, "group").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::GroupsUpdate)?;
        let mut v = Violations::new();
        if let Some(Some(tags)) = &patch.tags {
            for (i, tag) in tags.iter().enumerate() {
                v.take(crate::validate::text(&format!("tags[{i}]"), tag, 1, 50));
            }
        }
        if let Some(Some(custom)) = &patch.custom_fields {
            super::check_custom_fields("custom_fields", custom, &mut v);
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before: GroupView = find_visible(&txn, actor, id).await?.into();
        let mut changes = chat_groups::ActiveModel {
            id: Set(id),
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(tags) = patch.tags {
            changes.tags = Set(tags.map(|t| serde_json::json!(t)));
        }
        if let Some(custom) = patch.custom_fields {
            changes.custom_fields = Set(custom);
        }
        chat_groups::Entity::update(changes).exec(&txn).await?;
        let after: GroupView = find(&txn, id).await?.into();
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.group_wxid.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}
