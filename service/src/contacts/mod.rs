//! Contacts synced from instances (or created and imported locally), with local fields, tags,
//! search and filters that stay fast at a million rows (keyset pagination on indexed columns).

pub mod export;
pub mod groups;
pub mod import;
mod import_file;
mod inline_tags;
mod json_row;
pub mod keyword;
pub mod matching;
pub mod opt_out;
pub mod tag_filter;
pub mod tags;

use crate::rbac::perm;
use entity::states::{ContactType, FriendStatus};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use entity::{contact_tags, contacts, tags as tag_entity};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, JoinType, QueryFilter,
    QueryOrder, QuerySelect, RelationTrait, Select,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    rbac::scope::Reach,
    validate::{self, Violations},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagRef {
    pub id: i64,
    pub group_name: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactView {
    pub id: i64,
    pub instance_id: i64,
    pub account_id: i64,
    pub wxid: String,
    pub nickname: Option<String>,
    pub remark: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    pub gender: Option<i16>,
    pub region: Option<String>,
    pub corp_name: Option<String>,
    /// `friend`, `external`, `group_member` or `official`.
    pub contact_type: ContactType,
    /// `normal`, `deleted` (removed the account or was removed) or `blocked`.
    pub friend_status: FriendStatus,
    pub is_star: bool,
    pub is_top: bool,
    /// Blocked contacts never receive broadcasts.
    pub is_blocked: bool,
    pub add_source: Option<String>,
    pub add_time: Option<DateTime<Utc>>,
    pub last_chat_time: Option<DateTime<Utc>>,
    pub chat_count: i32,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Value>,
    pub tags: Vec<TagRef>,
    /// Opted out of marketing broadcasts (退订) at this time; broadcasts skip the contact.
    pub unsubscribed_at: Option<DateTime<Utc>>,
    /// How: `agent`, `wecom` or `kf` (a message on that channel), `manual` or `import`.
    pub unsubscribe_source: Option<String>,
    /// The opt-out message, or the reason a user gave.
    pub unsubscribe_message: Option<String>,
    pub last_sync_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(m: contacts::Model, tags: Vec<TagRef>) -> ContactView {
    ContactView {
        id: m.id,
        instance_id: m.instance_id,
        account_id: m.account_id,
        wxid: m.wxid,
        nickname: m.nickname,
        remark: m.remark,
        avatar_url: m.avatar_url,
        phone: m.phone,
        gender: m.gender,
        region: m.region,
        corp_name: m.corp_name,
        contact_type: m.contact_type,
        friend_status: m.friend_status,
        is_star: m.is_star,
        is_top: m.is_top,
        is_blocked: m.is_blocked,
        add_source: m.add_source,
        add_time: m.add_time.map(to_utc),
        last_chat_time: m.last_chat_time.map(to_utc),
        chat_count: m.chat_count,
        custom_fields: m.custom_fields,
        tags,
        unsubscribed_at: m.unsubscribed_at.map(to_utc),
        unsubscribe_source: m.unsubscribe_source,
        unsubscribe_message: m.unsubscribe_message,
        last_sync_time: m.last_sync_time.map(to_utc),
        created_at: to_utc(m.created_at),
        updated_at: to_utc(m.updated_at),
    }
}

/// Tags of many contacts in one query.
pub async fn tags_of<C: ConnectionTrait>(
    conn: &C,
    contact_ids: &[i64],
) -> ServiceResult<BTreeMap<i64, Vec<TagRef>>> {
    if contact_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<(i64, i64, String, String)> = contact_tags::Entity::find()
        .select_only()
        .column(contact_tags::Column::ContactId)
        .column(tag_entity::Column::Id)
        .column(tag_entity::Column::GroupName)
        .column(tag_entity::Column::Name)
        .join(JoinType::InnerJoin, contact_tags::Relation::Tags.def())
        .filter(contact_tags::Column::ContactId.is_in(contact_ids.iter().copied()))
        .order_by_asc(tag_entity::Column::SortOrder)
        .order_by_asc(tag_entity::Column::Id)
        .into_tuple()
        .all(conn)
        .await?;
    let mut map: BTreeMap<i64, Vec<TagRef>> = BTreeMap::new();
    for (contact, id, group_name, name) in rows {
        map.entry(contact).or_default().push(TagRef {
            id,
            group_name,
            name,
        });
    }
    Ok(map)
}

pub async fn views<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<contacts::Model>,
) -> ServiceResult<Vec<ContactView>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tags = tags_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let t = tags.remove(&r.id).unwrap_or_default();
            view(r, t)
        })
        .collect())
}

/// Search and filters for lists, exports and (later) broadcast audiences.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactFilter {
    /// Substring of nickname, remark, wxid or phone (case-insensitive).
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Comma-separated tag ids (at most 50): contacts with at least one of them.
    #[param(pattern = r"^ *([1-9][0-9]{0,17} *(, *[1-9][0-9]{0,17} *){0,49})?$")]
    pub tags_any: Option<String>,
    /// Comma-separated tag ids (at most 50): contacts with every one of them.
    #[param(pattern = r"^ *([1-9][0-9]{0,17} *(, *[1-9][0-9]{0,17} *){0,49})?$")]
    pub tags_all: Option<String>,
    pub contact_type: Option<ContactType>,
    pub friend_status: Option<FriendStatus>,
    pub account_id: Option<i64>,
    pub instance_id: Option<i64>,
    pub is_blocked: Option<bool>,
    pub is_star: Option<bool>,
    /// `true`: only contacts who opted out of marketing (the opt-out list); `false`: only the others.
    pub unsubscribed: Option<bool>,
    /// Only contacts written (by sync or by a user) at or after this time (RFC 3339).
    pub updated_since: Option<DateTime<Utc>>,
    /// Only contacts a saved segment selects (needs `segments:read`).
    pub segment_id: Option<i64>,
}

/// A contact filter with its segment read, ready to narrow queries.
#[derive(Debug, Clone)]
pub struct ResolvedFilter {
    filter: ContactFilter,
    segment: Option<crate::tasks::spec::AudienceFilter>,
    density: tag_filter::Density,
    keyword: Option<keyword::Keyword>,
}

impl ResolvedFilter {
    /// One page of the live contacts in `reach` the filter selects, newest first (`id <
    /// before`), or the bad fields. The keyword goes through the search index where the
    /// database has one (`keyword::newest_first`).
    pub fn page(
        &self,
        reach: &Reach,
        backend: DbBackend,
        before: Option<i64>,
        limit: u64,
    ) -> ServiceResult<Select<contacts::Entity>> {
        let query = self
            .filter
            .apply(reach, contacts::Entity::find(), &self.density)?;
        let query = match &self.segment {
            Some(s) => matching::narrow(query, s, backend),
            None => query,
        };
        Ok(keyword::newest_first(
            query,
            self.keyword.as_ref(),
            before,
            limit,
        ))
    }

    /// `page`, read with each contact's tags in the same query (`inline_tags`).
    pub async fn views_page<C: ConnectionTrait>(
        &self,
        db: &C,
        reach: &Reach,
        before: Option<i64>,
        limit: u64,
    ) -> ServiceResult<Vec<ContactView>> {
        let backend = db.get_database_backend();
        let query = self.page(reach, backend, before, limit)?;
        let rows = inline_tags::read(db, query).await?;
        let unread: Vec<i64> = rows
            .iter()
            .filter(|(_, tags)| tags.is_none())
            .map(|(contact, _)| contact.id)
            .collect();
        let mut apart = tags_of(db, &unread).await?;
        Ok(rows
            .into_iter()
            .map(|(contact, tags)| {
                let tags = tags.unwrap_or_else(|| apart.remove(&contact.id).unwrap_or_default());
                view(contact, tags)
            })
            .collect())
    }
}

fn id_list(field: &str, raw: Option<&str>, v: &mut Violations) -> Vec<i64> {
    let Some(raw) = raw.filter(|r| !r.trim_matches(' ').is_empty()) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for part in raw.split(',') {
        let digits = part.trim_matches(' ');
        let plain = digits.len() <= 18
            && digits.starts_with(|c: char| ('1'..='9').contains(&c))
            && digits.bytes().all(|b| b.is_ascii_digit());
        match digits.parse::<i64>() {
            Ok(id) if plain => ids.push(id),
            _ => v.add(
                field,
                format!("`{part}` is not a tag id; use comma-separated ids"),
            ),
        }
    }
    if ids.len() > 50 {
        v.add(field, "at most 50 tags");
    }
    ids
}

impl ContactFilter {
    /// Reads the segment the filter names, if any.
    pub async fn resolve(self, ctx: &Context, actor: &Actor) -> ServiceResult<ResolvedFilter> {
        let segment = match self.segment_id {
            Some(id) => {
                actor.require(perm::SegmentsRead)?;
                Some(crate::segments::filter_of(&ctx.db, id, "segment_id").await?)
            }
            None => None,
        };
        // Only a list `apply` accepts is measured (it answers the others with a 422): a crafted
        // list of thousands of ids must not cost a count each first.
        let accepted = |raw: Option<&str>| {
            let mut v = Violations::new();
            let ids = id_list("", raw, &mut v);
            if v.finish().is_ok() { ids } else { Vec::new() }
        };
        let density = tag_filter::Density::measure(
            &ctx.read_db,
            &accepted(self.tags_any.as_deref()),
            &accepted(self.tags_all.as_deref()),
        )
        .await?;
        let keyword = keyword::Keyword::for_page(&ctx.read_db, self.q.as_deref()).await?;
        Ok(ResolvedFilter {
            filter: self,
            segment,
            density,
            keyword,
        })
    }

    /// The filtered query (live contacts in `reach` only) but for the keyword, which
    /// `ResolvedFilter::page` applies with the order it needs; or the bad fields.
    fn apply(
        &self,
        reach: &Reach,
        mut query: Select<contacts::Entity>,
        density: &tag_filter::Density,
    ) -> ServiceResult<Select<contacts::Entity>> {
        let mut v = Violations::new();
        let any = id_list("tags_any", self.tags_any.as_deref(), &mut v);
        let all = id_list("tags_all", self.tags_all.as_deref(), &mut v);
        if self.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
            v.add("q", "must be at most 100 characters");
        }
        v.finish()?;
        query = query
            .filter(contacts::Column::DeletedAt.is_null())
            .filter(reach.on_instances(contacts::Column::InstanceId));
        if !any.is_empty() {
            query = query.filter(tag_filter::with_any(any, density.any));
        }
        for tag in all {
            let probe = density.all.contains(&tag);
            query = query.filter(tag_filter::with_any(vec![tag], probe));
        }
        if let Some(t) = self.contact_type {
            query = query.filter(contacts::Column::ContactType.eq(t));
        }
        if let Some(s) = self.friend_status {
            query = query.filter(contacts::Column::FriendStatus.eq(s));
        }
        if let Some(id) = self.account_id {
            query = query.filter(contacts::Column::AccountId.eq(id));
        }
        if let Some(id) = self.instance_id {
            query = query.filter(contacts::Column::InstanceId.eq(id));
        }
        if let Some(b) = self.is_blocked {
            query = query.filter(contacts::Column::IsBlocked.eq(b));
        }
        if let Some(b) = self.is_star {
            query = query.filter(contacts::Column::IsStar.eq(b));
        }
        match self.unsubscribed {
            Some(true) => query = query.filter(contacts::Column::UnsubscribedAt.is_not_null()),
            Some(false) => query = query.filter(contacts::Column::UnsubscribedAt.is_null()),
            None => {}
        }
        if let Some(since) = self.updated_since {
            query = query.filter(contacts::Column::UpdatedAt.gte(since.naive_utc()));
        }
        Ok(query)
    }
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: &ContactFilter,
    page: PageRequest,
) -> ServiceResult<Page<ContactView>> {
    actor.require(perm::ContactsRead)?;
    let filter = filter.clone().resolve(ctx, actor).await?;
    let rows = filter
        .views_page(&ctx.read_db, &actor.reach, page.before, page.fetch())
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, |r| r))
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<contacts::Model> {
    contacts::Entity::find_by_id(id)
        .filter(contacts::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("contact"))
}

/// A live contact on an instance the actor may see; otherwise the same 404 as a missing one.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: i64,
) -> ServiceResult<contacts::Model> {
    let contact = find(conn, id).await?;
    actor.reach.check_instance(contact.instance_id, "contact")?;
    Ok(contact)
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<ContactView> {
    actor.require(perm::ContactsRead)?;
    let row = find_visible(&ctx.db, actor, id).await?;
    Ok(views(&ctx.db, vec![row]).await?.remove(0))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub account_id: i64,
    pub wxid: String,
    pub nickname: Option<String>,
    pub remark: Option<String>,
    pub phone: Option<String>,
    pub gender: Option<i16>,
    pub region: Option<String>,
    pub corp_name: Option<String>,
    pub contact_type: Option<ContactType>,
    #[serde(default)]
    pub tag_ids: Vec<i64>,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Value>,
}

/// Local fields only: synced fields (nickname, avatar …) come from the instance.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub remark: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Option<serde_json::Value>>,
    pub is_star: Option<bool>,
    pub is_top: Option<bool>,
    pub is_blocked: Option<bool>,
    /// Replaces the contact's local (non-synced) tags.
    pub tag_ids: Option<Vec<i64>>,
}

pub fn check_custom_fields(field: &str, value: &serde_json::Value, v: &mut Violations) {
    if !value.is_object() {
        v.add(field, "must be a JSON object");
    } else if value.to_string().len() > 16_384 {
        v.add(field, "must be at most 16 KiB");
    }
}

pub async fn create(
    ctx: &Context,
    actor: &Actor,
    input: ContactInput,
) -> ServiceResult<ContactView> {
    let entry = AuditEntry::new("contact.create", OperationType::Create, "contact");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::ContactsCreate)?;
        let mut v = Violations::new();
        let wxid = v.take(validate::text("wxid", &input.wxid, 1, 100));
        let nickname = v
            .take(validate::optional_text(
                "nickname",
                input.nickname.as_deref(),
                100,
            ))
            .flatten();
        let remark = v
            .take(validate::optional_text(
                "remark",
                input.remark.as_deref(),
                100,
            ))
            .flatten();
        let phone = v
            .take(validate::optional_text("phone", input.phone.as_deref(), 20))
            .flatten();
        let region = v
            .take(validate::optional_text(
                "region",
                input.region.as_deref(),
                100,
            ))
            .flatten();
        let corp_name = v
            .take(validate::optional_text(
                "corp_name",
                input.corp_name.as_deref(),
                100,
            ))
            .flatten();
        if input.gender.is_some_and(|g| !(0..=2).contains(&g)) {
            v.add("gender", "must be 0 (unknown), 1 (male) or 2 (female)");
        }
        let contact_type = input.contact_type.unwrap_or(ContactType::Friend);
        if let Some(c) = &input.custom_fields {
            check_custom_fields("custom_fields", c, &mut v);
        }
        v.finish()?;
        let Some(wxid) = wxid else {
            return Err(ServiceError::invalid("wxid", "is invalid"));
        };
        let account = crate::instances::accounts::find_visible(&ctx.db, actor, input.account_id)
            .await
            .map_err(|_| ServiceError::invalid("account_id", "no such account"))?;
        tags::check_local_ids(&ctx.db, "tag_ids", &input.tag_ids).await?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let exists = contacts::Entity::find()
            .filter(contacts::Column::AccountId.eq(account.id))
            .filter(contacts::Column::Wxid.eq(wxid.as_str()))
            .one(&txn)
            .await?;
        if exists.is_some() {
            return Err(ServiceError::conflict(
                "wxid",
                "this account already has a contact with this wxid",
            ));
        }
        let row = contacts::ActiveModel {
            instance_id: Set(account.instance_id),
            account_id: Set(account.id),
            wxid: Set(wxid),
            nickname: Set(nickname),
            remark: Set(remark),
            phone: Set(phone),
            gender: Set(input.gender),
            region: Set(region),
            corp_name: Set(corp_name),
            contact_type: Set(contact_type),
            friend_status: Set(FriendStatus::Normal),
            is_star: Set(false),
            is_top: Set(false),
            is_blocked: Set(false),
            add_source: Set(Some("manual".to_owned())),
            chat_count: Set(0),
            custom_fields: Set(input.custom_fields),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = contacts::Entity::insert(row)
            .exec(&txn)
            .await?
            .last_insert_id;
        tags::replace_local(&txn, id, &input.tag_ids, now).await?;
        let created = views(&txn, vec![find(&txn, id).await?]).await?.remove(0);
        audit::commit_created(txn, actor, &entry, id, created.wxid.clone(), created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: ContactPatch,
) -> ServiceResult<ContactView> {
    let entry = AuditEntry::new("contact.update", OperationType::Update, "contact").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::ContactsUpdate)?;
        let mut v = Violations::new();
        let remark = patch.remark.as_ref().map(|r| {
            v.take(validate::optional_text("remark", r.as_deref(), 100))
                .flatten()
        });
        if let Some(Some(c)) = &patch.custom_fields {
            check_custom_fields("custom_fields", c, &mut v);
        }
        v.finish()?;
        if let Some(ids) = &patch.tag_ids {
            tags::check_local_ids(&ctx.db, "tag_ids", ids).await?;
        }
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = views(&txn, vec![find_visible(&txn, actor, id).await?])
            .await?
            .remove(0);
        let mut changes = contacts::ActiveModel {
            id: Set(id),
            updated_at: Set(now),
            ..Default::default()
        };
        if let Some(remark) = remark {
            changes.remark = Set(remark);
        }
        if let Some(custom) = patch.custom_fields {
            changes.custom_fields = Set(custom);
        }
        if let Some(b) = patch.is_star {
            changes.is_star = Set(b);
        }
        if let Some(b) = patch.is_top {
            changes.is_top = Set(b);
        }
        if let Some(b) = patch.is_blocked {
            changes.is_blocked = Set(b);
        }
        contacts::Entity::update(changes).exec(&txn).await?;
        if let Some(ids) = &patch.tag_ids {
            tags::replace_local(&txn, id, ids, now).await?;
        }
        let after = views(&txn, vec![find(&txn, id).await?]).await?.remove(0);
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.wxid.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("contact.delete", OperationType::Delete, "contact").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::ContactsDelete)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = views(&txn, vec![find_visible(&txn, actor, id).await?])
            .await?
            .remove(0);
        contacts::Entity::update(contacts::ActiveModel {
            id: Set(id),
            deleted_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        audit::commit_deleted(txn, actor, &entry, id, before.wxid.clone(), &before, now).await
    })
    .await
}

/// Ids that exist among `ids` and are in `reach` (for bulk operations).
pub async fn existing_ids<C: ConnectionTrait>(
    conn: &C,
    reach: &Reach,
    ids: &[i64],
) -> ServiceResult<BTreeSet<i64>> {
    let found: Vec<i64> = contacts::Entity::find()
        .select_only()
        .column(contacts::Column::Id)
        .filter(contacts::Column::Id.is_in(ids.iter().copied()))
        .filter(reach.on_instances(contacts::Column::InstanceId))
        .filter(contacts::Column::DeletedAt.is_null())
        .into_tuple()
        .all(conn)
        .await?;
    Ok(found.into_iter().collect())
}
