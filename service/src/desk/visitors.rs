//! Visitor profiles: one per person per channel, with what the desk learns (first and last
//! seen, visits) and what agents add (tags, notes), searchable by name or id.

use chrono::{DateTime, Utc};
use entity::{desk_visitor_groups, desk_visitors};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    rbac::perm,
    validate::{self, Violations},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorView {
    pub id: i64,
    pub channel_id: i64,
    /// Their id on the channel (wxid or external userid).
    pub external_id: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// Where they came from (a 微信客服 link's scene), when known.
    pub source_scene: Option<String>,
    /// The contact of the channel's account they are.
    pub contact_id: Option<i64>,
    /// The visitor group they are filed under.
    pub group_id: Option<i64>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    /// Conversations they opened.
    pub visits: i32,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl From<desk_visitors::Model> for VisitorView {
    fn from(m: desk_visitors::Model) -> Self {
        Self {
            id: m.id,
            channel_id: m.channel_id,
            external_id: m.external_id,
            nickname: m.nickname,
            avatar_url: m.avatar_url,
            source_scene: m.source_scene,
            contact_id: m.contact_id,
            group_id: m.group_id,
            tags: m
                .tags
                .and_then(|t| serde_json::from_value(t).ok())
                .unwrap_or_default(),
            notes: m.notes,
            visits: m.visits,
            first_seen_at: to_utc(m.first_seen_at),
            last_seen_at: to_utc(m.last_seen_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorPatch {
    #[schema(max_length = 100)]
    pub nickname: Option<String>,
    /// Replaces the tags: up to 20, each 1 to 30 characters.
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub notes: Option<Option<String>>,
    /// A visitor group to file them under; `null` takes them out of theirs.
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<i64>)]
    pub group_id: Option<Option<i64>>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VisitorQuery {
    /// Substring of the nickname or the id on the channel.
    #[param(max_length = 100)]
    pub q: Option<String>,
    pub channel_id: Option<i64>,
    /// Only the visitors of this group.
    pub group_id: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

fn require_desk(actor: &Actor) -> ServiceResult<()> {
    if actor.has(perm::DeskSupervise) {
        return Ok(());
    }
    actor.require(perm::DeskWork)
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    query: VisitorQuery,
) -> ServiceResult<Page<VisitorView>> {
    require_desk(actor)?;
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let mut select = desk_visitors::Entity::find();
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 100 {
            return Err(ServiceError::invalid("q", "must be at most 100 characters"));
        }
        select = select.filter(
            Condition::any()
                .add(desk_visitors::Column::Nickname.contains(q))
                .add(desk_visitors::Column::ExternalId.contains(q)),
        );
    }
    if let Some(channel) = query.channel_id {
        select = select.filter(desk_visitors::Column::ChannelId.eq(channel));
    }
    if let Some(group) = query.group_id {
        select = select.filter(desk_visitors::Column::GroupId.eq(group));
    }
    if let Some(before) = page.before {
        select = select.filter(desk_visitors::Column::Id.lt(before));
    }
    let rows = select
        .order_by_desc(desk_visitors::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, VisitorView::from))
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<VisitorView> {
    require_desk(actor)?;
    Ok(find(ctx, id).await?.into())
}

async fn find(ctx: &Context, id: i64) -> ServiceResult<desk_visitors::Model> {
    find_in(&ctx.db, id).await
}

async fn find_in<C: sea_orm::ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<desk_visitors::Model> {
    desk_visitors::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("visitor"))
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: VisitorPatch,
) -> ServiceResult<VisitorView> {
    require_desk(actor)?;
    let mut v = Violations::new();
    let nickname = patch
        .nickname
        .as_deref()
        .and_then(|n| v.take(validate::text("nickname", n, 1, 100)));
    let tags = patch.tags.as_ref().map(|tags| {
        if tags.len() > 20 {
            v.add("tags", "at most 20 tags");
        }
        let mut clean: Vec<String> = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            if let Some(tag) = v.take(validate::text(&format!("tags[{i}]"), tag, 1, 30))
                && !clean.contains(&tag)
            {
                clean.push(tag);
            }
        }
        clean
    });
    let notes = match &patch.notes {
        Some(Some(n)) if n.chars().count() > 2000 => {
            v.add("notes", "must be at most 2000 characters");
            None
        }
        Some(n) => Some(
            n.as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
        ),
        None => None,
    };
    v.finish()?;
    let txn = crate::db::begin(&ctx.db).await?;
    if let Some(Some(group)) = patch.group_id {
        // The group's row is held until the visitor is filed, so a removal waits for it.
        let mut lock = desk_visitor_groups::Entity::find_by_id(group);
        if crate::db::row_locks(&txn) {
            lock = lock.lock_shared();
        }
        if lock.one(&txn).await?.is_none() {
            return Err(ServiceError::invalid("group_id", "no such visitor group"));
        }
    }
    let mut row: desk_visitors::ActiveModel = find_in(&txn, id).await?.into();
    if let Some(nickname) = nickname {
        row.nickname = Set(Some(nickname));
    }
    if let Some(tags) = tags {
        row.tags = Set(Some(serde_json::json!(tags)));
    }
    if let Some(notes) = notes {
        row.notes = Set(notes);
    }
    if let Some(group) = patch.group_id {
        row.group_id = Set(group);
    }
    desk_visitors::Entity::update(row).exec(&txn).await?;
    txn.commit().await?;
    Ok(find(ctx, id).await?.into())
}
