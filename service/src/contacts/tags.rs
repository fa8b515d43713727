//! Tags: local ones (managed here) and synced ones (WeCom corp tags, owned by their instance and
//! read-only here). Links live in `contact_tags`, so tag filters use indexes on every backend.

use crate::rbac::perm;
use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use entity::{contact_tags, tags};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    sea_query::{OnConflict, Query},
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

/// `instance_id` of tags that belong to no instance.
pub const LOCAL: i64 = 0;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TagView {
    pub id: i64,
    /// `null` for local tags; the owning instance for synced ones (read-only here).
    pub instance_id: Option<i64>,
    pub group_name: String,
    pub name: String,
    pub remote_id: Option<String>,
    pub color: Option<String>,
    pub contact_count: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

async fn view<C: ConnectionTrait>(conn: &C, m: tags::Model) -> ServiceResult<TagView> {
    let contact_count = contact_tags::Entity::find()
        .filter(contact_tags::Column::TagId.eq(m.id))
        .count(conn)
        .await?;
    Ok(TagView {
        id: m.id,
        instance_id: (m.instance_id != LOCAL).then_some(m.instance_id),
        group_name: m.group_name,
        name: m.name,
        remote_id: m.remote_id,
        color: m.color,
        contact_count,
        created_at: to_utc(m.created_at),
    })
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagInput {
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*$")]
    pub name: String,
    /// Optional grouping shown in the console (e.g. 客户等级).
    #[schema(pattern = r"^\s*([^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*)?$")]
    pub group_name: Option<String>,
    /// e.g. `#ff8800`.
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$")]
    pub color: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagPatch {
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*$")]
    pub name: Option<String>,
    #[schema(pattern = r"^\s*([^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*)?$")]
    pub group_name: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, pattern = "^#[0-9A-Fa-f]{6}$")]
    pub color: Option<Option<String>>,
}

fn check_color(v: &mut Violations, color: Option<&str>) {
    if let Some(c) = color
        && !(c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit()))
    {
        v.add("color", "must look like #ff8800");
    }
}

async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<tags::Model> {
    tags::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("tag"))
}

/// A local tag; a synced one in the actor's reach is a conflict, one out of reach a 404.
async fn find_local<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: i64,
) -> ServiceResult<tags::Model> {
    let tag = find(conn, id).await?;
    if tag.instance_id != LOCAL {
        actor.reach.check_instance(tag.instance_id, "tag")?;
        return Err(ServiceError::conflict(
            "id",
            "this tag is synced from its instance; change it there",
        ));
    }
    Ok(tag)
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    instance_id: Option<i64>,
    q: Option<String>,
    page: PageRequest,
) -> ServiceResult<Page<TagView>> {
    actor.require(perm::TagsRead)?;
    let mut query = tags::Entity::find();
    if !actor.reach.is_all() {
        query = query.filter(
            Condition::any()
                .add(tags::Column::InstanceId.eq(LOCAL))
                .add(actor.reach.on_instances(tags::Column::InstanceId)),
        );
    }
    if let Some(id) = instance_id {
        query = query.filter(tags::Column::InstanceId.eq(id));
    }
    if let Some(m) =
        crate::search::contains_any(&[tags::Column::Name, tags::Column::GroupName], q.as_deref())
    {
        query = query.filter(m);
    }
    if let Some(before) = page.before {
        query = query.filter(tags::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(tags::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    let models = Page::from_rows(page, rows, |r| r.id, |r| r);
    let mut items = Vec::with_capacity(models.items.len());
    for m in models.items {
        items.push(view(&ctx.db, m).await?);
    }
    Ok(Page {
        items,
        next_cursor: models.next_cursor,
    })
}

async fn name_taken<C: ConnectionTrait>(
    conn: &C,
    group: &str,
    name: &str,
    except: Option<i64>,
) -> ServiceResult<bool> {
    let mut q = tags::Entity::find()
        .filter(tags::Column::InstanceId.eq(LOCAL))
        .filter(tags::Column::GroupName.eq(group))
        .filter(tags::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(tags::Column::Id.ne(id));
    }
    Ok(q.count(conn).await? > 0)
}

pub async fn create(ctx: &Context, actor: &Actor, input: TagInput) -> ServiceResult<TagView> {
    let entry = AuditEntry::new("tag.create", OperationType::Create, "tag");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TagsCreate)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 100));
        let group = v
            .take(validate::optional_text(
                "group_name",
                input.group_name.as_deref(),
                100,
            ))
            .flatten()
            .unwrap_or_default();
        check_color(&mut v, input.color.as_deref());
        v.finish()?;
        let Some(name) = name else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        if name_taken(&txn, &group, &name, None).await? {
            return Err(ServiceError::conflict(
                "name",
                "a local tag with this name exists in this group",
            ));
        }
        let row = tags::ActiveModel {
            instance_id: Set(LOCAL),
            group_name: Set(group),
            name: Set(name),
            color: Set(input.color),
            sort_order: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let id = tags::Entity::insert(row).exec(&txn).await?.last_insert_id;
        let created = view(&txn, find(&txn, id).await?).await?;
        audit::commit_created(txn, actor, &entry, id, created.name.clone(), created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: TagPatch,
) -> ServiceResult<TagView> {
    let entry = AuditEntry::new("tag.update", OperationType::Update, "tag").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TagsUpdate)?;
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 100)));
        let group = patch.group_name.as_deref().map(|g| {
            v.take(validate::optional_text("group_name", Some(g), 100))
                .flatten()
                .unwrap_or_default()
        });
        if let Some(Some(c)) = &patch.color {
            check_color(&mut v, Some(c));
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let current = find_local(&txn, actor, id).await?;
        let before = view(&txn, current.clone()).await?;
        let new_group = group.clone().unwrap_or(current.group_name.clone());
        let new_name = name.clone().unwrap_or(current.name.clone());
        if name_taken(&txn, &new_group, &new_name, Some(id)).await? {
            return Err(ServiceError::conflict(
                "name",
                "a local tag with this name exists in this group",
            ));
        }
        tags::Entity::update(tags::ActiveModel {
            id: Set(id),
            name: Set(new_name),
            group_name: Set(new_group),
            color: patch.color.map_or(sea_orm::ActiveValue::NotSet, Set),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let after = view(&txn, find(&txn, id).await?).await?;
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.name.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("tag.delete", OperationType::Delete, "tag").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::TagsDelete)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = view(&txn, find_local(&txn, actor, id).await?).await?;
        contact_tags::Entity::delete_many()
            .filter(contact_tags::Column::TagId.eq(id))
            .exec(&txn)
            .await?;
        tags::Entity::delete_by_id(id).exec(&txn).await?;
        audit::commit_deleted(txn, actor, &entry, id, before.name.clone(), &before, now).await
    })
    .await
}

/// Every id must be an existing local tag; errors name `field[i]`.
pub async fn check_local_ids<C: ConnectionTrait>(
    conn: &C,
    field: &str,
    ids: &[i64],
) -> ServiceResult<()> {
    if ids.len() > 100 {
        return Err(ServiceError::invalid(field, "at most 100 tags"));
    }
    let found: BTreeSet<i64> = tags::Entity::find()
        .select_only()
        .column(tags::Column::Id)
        .filter(tags::Column::Id.is_in(ids.iter().copied()))
        .filter(tags::Column::InstanceId.eq(LOCAL))
        .into_tuple::<i64>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    let mut v = Violations::new();
    for (i, id) in ids.iter().enumerate() {
        if !found.contains(id) {
            v.add(
                format!("{field}[{i}]"),
                "no such local tag (synced tags come from the instance)",
            );
        }
    }
    v.finish()
}

fn local_tag_ids() -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(tags::Column::Id)
        .from(tags::Entity)
        .and_where(tags::Column::InstanceId.eq(LOCAL))
        .to_owned()
}

/// Replaces a contact's local tags, leaving synced ones alone.
pub async fn replace_local(
    txn: &DatabaseTransaction,
    contact_id: i64,
    tag_ids: &[i64],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    contact_tags::Entity::delete_many()
        .filter(contact_tags::Column::ContactId.eq(contact_id))
        .filter(contact_tags::Column::TagId.in_subquery(local_tag_ids()))
        .exec(txn)
        .await?;
    link(txn, tag_ids.iter().map(|t| (contact_id, *t)), now).await
}

/// Inserts links, ignoring ones that exist.
pub async fn link<C: ConnectionTrait>(
    conn: &C,
    pairs: impl Iterator<Item = (i64, i64)>,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let pairs = pairs.collect::<BTreeSet<_>>();
    if conn.get_database_backend() == DbBackend::Postgres {
        return link_postgres(conn, &pairs, now).await;
    }
    let rows: Vec<contact_tags::ActiveModel> = pairs
        .into_iter()
        .map(|(contact_id, tag_id)| contact_tags::ActiveModel {
            contact_id: Set(contact_id),
            tag_id: Set(tag_id),
            created_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(500) {
        let on_conflict =
            OnConflict::columns([contact_tags::Column::ContactId, contact_tags::Column::TagId])
                // "Do nothing" portably: MySQL has no ON CONFLICT DO NOTHING, and rewriting a key
                // column with its own value changes nothing on any backend.
                .update_column(contact_tags::Column::TagId)
                .to_owned();
        contact_tags::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// PostgreSQL: the pairs as two array literals, one statement per 10,000, existing links left
/// alone (`DO NOTHING`). A multi-row `VALUES` binds three values a link, and binding cost more
/// than writing; a first sync links hundreds of thousands.
async fn link_postgres<C: ConnectionTrait>(
    conn: &C,
    pairs: &BTreeSet<(i64, i64)>,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let pairs: Vec<&(i64, i64)> = pairs.iter().collect();
    for chunk in pairs.chunks(10_000) {
        let array = |pick: fn(&(i64, i64)) -> i64| {
            let items: Vec<String> = chunk.iter().map(|p| pick(p).to_string()).collect();
            format!("{{{}}}", items.join(","))
        };
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO contact_tags (contact_id, tag_id, created_at) \
             SELECT c, t, $3 FROM unnest($1::text::bigint[], $2::text::bigint[]) AS p(c, t) \
             ON CONFLICT (contact_id, tag_id) DO NOTHING",
            [array(|p| p.0).into(), array(|p| p.1).into(), now.into()],
        );
        conn.execute_raw(statement).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkTagging {
    #[schema(min_items = 1, max_items = 1000)]
    pub contact_ids: Vec<i64>,
    #[serde(default)]
    pub add: Vec<i64>,
    #[serde(default)]
    pub remove: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkTaggingResult {
    pub contacts: usize,
    pub added: usize,
    pub removed: usize,
}

pub async fn bulk(
    ctx: &Context,
    actor: &Actor,
    input: BulkTagging,
) -> ServiceResult<BulkTaggingResult> {
    let entry = AuditEntry::new("contact.tags.bulk", OperationType::Update, "contact");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::ContactsUpdate)?;
        if input.contact_ids.is_empty() || input.contact_ids.len() > 1000 {
            return Err(ServiceError::invalid("contact_ids", "must list 1 to 1000 contacts"));
        }
        check_local_ids(&ctx.db, "add", &input.add).await?;
        check_local_ids(&ctx.db, "remove", &input.remove).await?;
        let existing = super::existing_ids(&ctx.db, &actor.reach, &input.contact_ids).await?;
        let mut v = Violations::new();
        for (i, id) in input.contact_ids.iter().enumerate() {
            if !existing.contains(id) {
                v.add(format!("contact_ids[{i}]"), "no such contact");
            }
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        if !input.remove.is_empty() {
            contact_tags::Entity::delete_many()
                .filter(contact_tags::Column::ContactId.is_in(existing.iter().copied()))
                .filter(contact_tags::Column::TagId.is_in(input.remove.iter().copied()))
                .exec(&txn)
                .await?;
        }
        crate::db::reuse_plans(&txn).await?;
        link(&txn, existing.iter().flat_map(|c| input.add.iter().map(move |t| (*c, *t))), now).await?;
        let result = BulkTaggingResult { contacts: existing.len(), added: input.add.len(), removed: input.remove.len() };
        let entry = entry.clone().new_values(&serde_json::json!({ "contact_ids": input.contact_ids, "add": input.add, "remove": input.remove }));
        audit::record(&txn, actor, entry, now).await?;
        txn.commit().await?;
        Ok(result)
    })
    .await
}

/// Upserts an instance's tags by (group, name) and returns their ids by (group, name).
pub async fn upsert_remote<C: ConnectionTrait>(
    conn: &C,
    instance_id: i64,
    remote: &[(Option<String>, String, String)],
    now: NaiveDateTime,
) -> ServiceResult<BTreeMap<(String, String), i64>> {
    let unique: BTreeMap<(String, String), Option<String>> = remote
        .iter()
        .map(|(id, group, name)| {
            (
                (
                    group.chars().take(100).collect(),
                    name.chars().take(100).collect(),
                ),
                id.clone(),
            )
        })
        .collect();
    if unique.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<tags::ActiveModel> = unique
        .iter()
        .map(|((group, name), remote_id)| tags::ActiveModel {
            instance_id: Set(instance_id),
            group_name: Set(group.clone()),
            name: Set(name.clone()),
            remote_id: Set(remote_id.clone()),
            sort_order: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(300) {
        let on_conflict = OnConflict::columns([
            tags::Column::InstanceId,
            tags::Column::GroupName,
            tags::Column::Name,
        ])
        .update_columns([tags::Column::RemoteId, tags::Column::UpdatedAt])
        .to_owned();
        tags::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict)
            .exec_without_returning(conn)
            .await?;
    }
    let names: Vec<String> = unique.keys().map(|(_, n)| n.clone()).collect();
    let found = tags::Entity::find()
        .filter(tags::Column::InstanceId.eq(instance_id))
        .filter(tags::Column::Name.is_in(names))
        .all(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(|t| ((t.group_name, t.name), t.id))
        .collect())
}
