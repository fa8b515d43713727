//! Audience segments: saved contact filters with a name. A task's audience or the contact list
//! names one by id and reads it live, so editing a segment changes every future run that uses
//! it; a segment still used by a task that may run again cannot be deleted.

use chrono::{DateTime, Utc};
use entity::{contacts, message_tasks, segments, states::TaskStatus};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    contacts::matching,
    pagination::{Page, PageRequest},
    rbac::{perm, scope::Reach},
    tasks::spec::{AudienceFilter, stored},
    validate::{self, Violations},
};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SegmentView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub filter: AudienceFilter,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*$")]
    pub name: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    pub filter: AudienceFilter,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentPatch {
    #[schema(pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,99}\s*$")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Option<String>>,
    pub filter: Option<AudienceFilter>,
}

/// How many live contacts in the caller's reach a filter selects now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SegmentCount {
    pub contacts: u64,
    /// Of those, the ones who opted out: broadcasts skip them with the reason `unsubscribed`.
    pub unsubscribed: u64,
}

fn view(m: segments::Model) -> ServiceResult<SegmentView> {
    let filter = stored(Some(&m.filter), "filter")
        .map_err(|why| ServiceError::Internal(anyhow::anyhow!("segment {}: {why}", m.id)))?
        .unwrap_or_default();
    Ok(SegmentView {
        id: m.id,
        name: m.name,
        description: m.description,
        filter,
        created_by: m.created_by,
        created_at: to_utc(m.created_at),
        updated_at: to_utc(m.updated_at),
    })
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<segments::Model> {
    segments::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("segment"))
}

/// The filter a segment holds now; `field` names where the id came from in errors.
pub async fn filter_of<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    field: &str,
) -> ServiceResult<AudienceFilter> {
    let segment = segments::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| ServiceError::invalid(field, "no such segment"))?;
    Ok(view(segment)?.filter)
}

/// Every contact filter of an audience: its own filter and its segment's, read now.
pub async fn contact_filters<C: ConnectionTrait>(
    conn: &C,
    audience: &crate::tasks::spec::Audience,
) -> ServiceResult<Vec<AudienceFilter>> {
    let mut filters: Vec<AudienceFilter> = audience.filter.iter().cloned().collect();
    if let Some(id) = audience.segment_id {
        filters.push(filter_of(conn, id, "audience.segment_id").await?);
    }
    Ok(filters)
}

/// A reply condition must name a task the actor can see.
pub async fn check_reply_task(
    ctx: &Context,
    actor: &Actor,
    prefix: &str,
    filter: &AudienceFilter,
    v: &mut Violations,
) {
    if let Some(r) = filter.replied
        && crate::tasks::find_visible(&ctx.db, actor, r.task_id)
            .await
            .is_err()
    {
        v.add(format!("{prefix}.replied.task_id"), "no such task");
    }
}

/// Every check of a filter the actor is saving or counting.
async fn check_filter(
    ctx: &Context,
    actor: &Actor,
    prefix: &str,
    filter: &AudienceFilter,
    v: &mut Violations,
) -> ServiceResult<()> {
    filter.check(prefix, v);
    check_reply_task(ctx, actor, prefix, filter, v).await;
    Ok(())
}

/// Counts what `filter` selects in `reach` now: the segment editor's live count.
pub async fn count_filter(
    ctx: &Context,
    reach: &Reach,
    filter: &AudienceFilter,
) -> ServiceResult<SegmentCount> {
    let matched = matching::narrow(
        contacts::Entity::find()
            .filter(contacts::Column::DeletedAt.is_null())
            .filter(reach.on_instances(contacts::Column::InstanceId)),
        filter,
        ctx.db.get_database_backend(),
    );
    let contacts = matched.clone().count(&ctx.db).await?;
    let unsubscribed = matched
        .filter(contacts::Column::UnsubscribedAt.is_not_null())
        .count(&ctx.db)
        .await?;
    Ok(SegmentCount {
        contacts,
        unsubscribed,
    })
}

/// The live count of a draft filter (before it is saved).
pub async fn count_draft(
    ctx: &Context,
    actor: &Actor,
    filter: AudienceFilter,
) -> ServiceResult<SegmentCount> {
    actor.require(perm::SegmentsRead)?;
    let mut v = Violations::new();
    check_filter(ctx, actor, "filter", &filter, &mut v).await?;
    v.finish()?;
    count_filter(ctx, &actor.reach, &filter).await
}

pub async fn count(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<SegmentCount> {
    actor.require(perm::SegmentsRead)?;
    let segment = view(find(&ctx.db, id).await?)?;
    count_filter(ctx, &actor.reach, &segment.filter).await
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    q: Option<String>,
    page: PageRequest,
) -> ServiceResult<Page<SegmentView>> {
    actor.require(perm::SegmentsRead)?;
    if q.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ServiceError::invalid("q", "must be at most 100 characters"));
    }
    let mut query = segments::Entity::find();
    if let Some(m) = crate::search::contains_any(
        &[segments::Column::Name, segments::Column::Description],
        q.as_deref(),
    ) {
        query = query.filter(m);
    }
    if let Some(before) = page.before {
        query = query.filter(segments::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(segments::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    let models = Page::from_rows(page, rows, |r| r.id, |r| r);
    Ok(Page {
        items: models
            .items
            .into_iter()
            .map(view)
            .collect::<ServiceResult<_>>()?,
        next_cursor: models.next_cursor,
    })
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<SegmentView> {
    actor.require(perm::SegmentsRead)?;
    view(find(&ctx.db, id).await?)
}

async fn name_taken<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    except: Option<i64>,
) -> ServiceResult<bool> {
    let mut q = segments::Entity::find().filter(segments::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(segments::Column::Id.ne(id));
    }
    Ok(q.count(conn).await? > 0)
}

const NAME_TAKEN: &str = "a segment with this name exists";

fn name_conflict(e: ServiceError) -> ServiceError {
    if e.is_unique_violation() {
        ServiceError::conflict("name", NAME_TAKEN)
    } else {
        e
    }
}

fn filter_json(filter: &AudienceFilter) -> serde_json::Value {
    serde_json::to_value(filter).unwrap_or(serde_json::Value::Null)
}

pub async fn create(
    ctx: &Context,
    actor: &Actor,
    input: SegmentInput,
) -> ServiceResult<SegmentView> {
    let entry = AuditEntry::new("segment.create", OperationType::Create, "segment");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::SegmentsCreate)?;
        let mut v = Violations::new();
        let name = v.take(validate::text("name", &input.name, 1, 100));
        let description = v
            .take(validate::optional_text(
                "description",
                input.description.as_deref(),
                500,
            ))
            .flatten();
        check_filter(ctx, actor, "filter", &input.filter, &mut v).await?;
        v.finish()?;
        let Some(name) = name else {
            return Err(ServiceError::invalid("name", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        if name_taken(&txn, &name, None).await? {
            return Err(ServiceError::conflict("name", NAME_TAKEN));
        }
        let row = segments::ActiveModel {
            name: Set(name),
            description: Set(description),
            filter: Set(filter_json(&input.filter)),
            created_by: Set(actor.user_id()?),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        // The unique index settles a race the check above lost to a concurrent create.
        let id = segments::Entity::insert(row)
            .exec(&txn)
            .await
            .map_err(|e| name_conflict(e.into()))?
            .last_insert_id;
        let created = view(find(&txn, id).await?)?;
        audit::commit_created(txn, actor, &entry, id, created.name.clone(), created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: SegmentPatch,
) -> ServiceResult<SegmentView> {
    let entry = AuditEntry::new("segment.update", OperationType::Update, "segment").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::SegmentsUpdate)?;
        let mut v = Violations::new();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| v.take(validate::text("name", n, 1, 100)));
        let description = patch.description.as_ref().map(|d| {
            v.take(validate::optional_text("description", d.as_deref(), 500))
                .flatten()
        });
        if let Some(f) = &patch.filter {
            check_filter(ctx, actor, "filter", f, &mut v).await?;
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = view(find(&txn, id).await?)?;
        if let Some(n) = &name
            && name_taken(&txn, n, Some(id)).await?
        {
            return Err(ServiceError::conflict("name", NAME_TAKEN));
        }
        segments::Entity::update(segments::ActiveModel {
            id: Set(id),
            name: name.map_or(sea_orm::ActiveValue::NotSet, Set),
            description: description.map_or(sea_orm::ActiveValue::NotSet, Set),
            filter: patch
                .filter
                .as_ref()
                .map_or(sea_orm::ActiveValue::NotSet, |f| Set(filter_json(f))),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(|e| name_conflict(e.into()))?;
        let after = view(find(&txn, id).await?)?;
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

/// Tasks that may still start a run and so still read the segment.
fn still_used(id: i64) -> sea_orm::Select<message_tasks::Entity> {
    message_tasks::Entity::find()
        .filter(message_tasks::Column::SegmentId.eq(id))
        .filter(message_tasks::Column::DeletedAt.is_null())
        .filter(message_tasks::Column::Status.is_not_in([
            TaskStatus::Completed,
            TaskStatus::Cancelled,
            TaskStatus::Failed,
        ]))
}

pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("segment.delete", OperationType::Delete, "segment").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::SegmentsDelete)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = view(find(&txn, id).await?)?;
        let users: Vec<i64> = still_used(id)
            .select_only()
            .column(message_tasks::Column::Id)
            .limit(5)
            .into_tuple()
            .all(&txn)
            .await?;
        if !users.is_empty() {
            let ids: Vec<String> = users.iter().map(i64::to_string).collect();
            return Err(ServiceError::conflict(
                "id",
                format!(
                    "tasks that may still run use this segment (ids {}); cancel them first",
                    ids.join(", ")
                ),
            ));
        }
        segments::Entity::delete_by_id(id).exec(&txn).await?;
        audit::commit_deleted(txn, actor, &entry, id, before.name.clone(), &before, now).await
    })
    .await
}
