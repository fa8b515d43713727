//! Sync runs: pull accounts, contacts (with tags) and groups (with members) from an instance.
//!
//! A run is requested through the API and executed by a worker that claims it with a lease; a
//! worker that dies leaves an expired lease and the run is claimed again. Upserts are idempotent,
//! so a repeated page changes nothing. Contacts the instance no longer lists become
//! `friend_status = deleted`; members no longer listed get `left_at`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use entity::{
    chat_groups, contact_tags, contacts, group_members, sync_runs, tags, wework_accounts,
    wework_instances,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};
use serde::Serialize;

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    contacts::tags::{link, upsert_remote},
    drivers::{InstanceDriver, RemoteContact, RemoteGroup, RemoteMember, with_retries},
    instances::{accounts, find_live, find_visible},
    pagination::{Page, PageRequest},
};

const LEASE_SECS: i64 = 300;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncRunView {
    pub id: i64,
    pub instance_id: i64,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub status: String,
    pub accounts: i32,
    pub contacts: i32,
    pub groups: i32,
    pub members: i32,
    /// Contacts marked deleted because the instance no longer lists them.
    pub removed: i32,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<sync_runs::Model> for SyncRunView {
    fn from(m: sync_runs::Model) -> Self {
        Self {
            id: m.id,
            instance_id: m.instance_id,
            status: m.status,
            accounts: m.accounts,
            contacts: m.contacts,
            groups: m.groups,
            members: m.members,
            removed: m.removed,
            error_message: m.error_message,
            created_at: to_utc(m.created_at),
            started_at: m.started_at.map(to_utc),
            finished_at: m.finished_at.map(to_utc),
        }
    }
}

/// Queues a sync unless one is queued or running; returns the run either way.
pub async fn queue(
    ctx: &Context,
    instance_id: i64,
    requested_by: Option<i64>,
) -> ServiceResult<sync_runs::Model> {
    let open = sync_runs::Entity::find()
        .filter(sync_runs::Column::InstanceId.eq(instance_id))
        .filter(sync_runs::Column::Status.is_in(["pending", "running"]))
        .one(&ctx.db)
        .await?;
    if let Some(open) = open {
        return Ok(open);
    }
    let row = sync_runs::ActiveModel {
        instance_id: Set(instance_id),
        status: Set("pending".to_owned()),
        requested_by: Set(requested_by),
        accounts: Set(0),
        contacts: Set(0),
        groups: Set(0),
        members: Set(0),
        removed: Set(0),
        created_at: Set(ctx.clock.now_db()),
        ..Default::default()
    };
    let id = sync_runs::Entity::insert(row)
        .exec(&ctx.db)
        .await?
        .last_insert_id;
    find_run(ctx, id).await
}

/// Queues a sync of every online instance whose last sync is older than
/// `instances.auto_sync_minutes`. Returns how many were queued.
pub async fn queue_due(ctx: &Context) -> ServiceResult<usize> {
    let minutes = ctx.settings.instances.auto_sync_minutes;
    if minutes <= 0 {
        return Ok(0);
    }
    let since = ctx.clock.now_db() - TimeDelta::minutes(minutes);
    let online = wework_instances::Entity::find()
        .filter(wework_instances::Column::DeletedAt.is_null())
        .filter(wework_instances::Column::Enabled.eq(true))
        .filter(wework_instances::Column::Status.eq("online"))
        .all(&ctx.db)
        .await?;
    let mut queued = 0;
    for instance in online {
        let recent = sync_runs::Entity::find()
            .filter(sync_runs::Column::InstanceId.eq(instance.id))
            .filter(sync_runs::Column::CreatedAt.gte(since))
            .count(&ctx.db)
            .await?;
        if recent == 0 {
            queue(ctx, instance.id, None).await?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Queues a sync of the instance, or returns the one already queued or running.
pub async fn request(ctx: &Context, actor: &Actor, instance_id: i64) -> ServiceResult<SyncRunView> {
    let entry =
        AuditEntry::new("instance.sync", OperationType::Update, "instance").target(instance_id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require("instances:control")?;
        let instance = find_visible(&ctx.db, actor, instance_id).await?;
        let run = queue(ctx, instance_id, actor.user_id).await?;
        let entry = entry
            .clone()
            .resource(instance_id, instance.name)
            .extra(serde_json::json!({ "sync_run": run.id }));
        audit::record(&ctx.db, actor, entry, ctx.clock.now_db()).await?;
        Ok(run.into())
    })
    .await
}

async fn find_run(ctx: &Context, id: i64) -> ServiceResult<sync_runs::Model> {
    sync_runs::Entity::find_by_id(id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("sync run"))
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    instance_id: i64,
    page: PageRequest,
) -> ServiceResult<Page<SyncRunView>> {
    actor.require("instances:read")?;
    find_visible(&ctx.db, actor, instance_id).await?;
    let mut query = sync_runs::Entity::find().filter(sync_runs::Column::InstanceId.eq(instance_id));
    if let Some(before) = page.before {
        query = query.filter(sync_runs::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(sync_runs::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, SyncRunView::from))
}

/// Claims the oldest pending run, or a running one whose worker stopped renewing its lease.
pub async fn claim_next(ctx: &Context, worker: &str) -> ServiceResult<Option<sync_runs::Model>> {
    let now = ctx.clock.now_db();
    let claimable = Condition::any()
        .add(sync_runs::Column::Status.eq("pending"))
        .add(
            Condition::all()
                .add(sync_runs::Column::Status.eq("running"))
                .add(sync_runs::Column::LeaseExpiresAt.lt(now)),
        );
    let Some(candidate) = sync_runs::Entity::find()
        .filter(claimable.clone())
        .order_by_asc(sync_runs::Column::Id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    let claimed = sync_runs::Entity::update_many()
        .col_expr(sync_runs::Column::Status, Expr::value("running"))
        .col_expr(sync_runs::Column::LeaseOwner, Expr::value(worker))
        .col_expr(
            sync_runs::Column::LeaseExpiresAt,
            Expr::value(now + TimeDelta::seconds(LEASE_SECS)),
        )
        .col_expr(sync_runs::Column::StartedAt, Expr::value(now))
        .filter(sync_runs::Column::Id.eq(candidate.id))
        .filter(claimable)
        .exec(&ctx.db)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(None);
    }
    Ok(Some(find_run(ctx, candidate.id).await?))
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    accounts: i32,
    contacts: i32,
    groups: i32,
    members: i32,
    removed: i32,
}

/// Renews the lease and stores progress; `false` when another worker took the run over.
async fn heartbeat(
    ctx: &Context,
    run_id: i64,
    worker: &str,
    counts: Counts,
) -> ServiceResult<bool> {
    let now = ctx.clock.now_db();
    let renewed = sync_runs::Entity::update_many()
        .col_expr(
            sync_runs::Column::LeaseExpiresAt,
            Expr::value(now + TimeDelta::seconds(LEASE_SECS)),
        )
        .col_expr(sync_runs::Column::Accounts, Expr::value(counts.accounts))
        .col_expr(sync_runs::Column::Contacts, Expr::value(counts.contacts))
        .col_expr(sync_runs::Column::Groups, Expr::value(counts.groups))
        .col_expr(sync_runs::Column::Members, Expr::value(counts.members))
        .col_expr(sync_runs::Column::Removed, Expr::value(counts.removed))
        .filter(sync_runs::Column::Id.eq(run_id))
        .filter(sync_runs::Column::LeaseOwner.eq(worker))
        .filter(sync_runs::Column::Status.eq("running"))
        .exec(&ctx.db)
        .await?;
    Ok(renewed.rows_affected == 1)
}

async fn finish(
    ctx: &Context,
    run_id: i64,
    worker: &str,
    counts: Counts,
    error: Option<String>,
) -> ServiceResult<()> {
    heartbeat(ctx, run_id, worker, counts).await?;
    sync_runs::Entity::update_many()
        .col_expr(
            sync_runs::Column::Status,
            Expr::value(if error.is_some() {
                "failed"
            } else {
                "succeeded"
            }),
        )
        .col_expr(sync_runs::Column::ErrorMessage, Expr::value(error))
        .col_expr(
            sync_runs::Column::FinishedAt,
            Expr::value(ctx.clock.now_db()),
        )
        .col_expr(
            sync_runs::Column::LeaseExpiresAt,
            Expr::value(Option::<NaiveDateTime>::None),
        )
        .filter(sync_runs::Column::Id.eq(run_id))
        .filter(sync_runs::Column::LeaseOwner.eq(worker))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// Runs a claimed sync to its end and records the outcome on the run.
pub async fn execute(ctx: &Context, run: &sync_runs::Model, worker: &str) -> ServiceResult<()> {
    let mut counts = Counts::default();
    let outcome = pull(ctx, run, worker, &mut counts).await;
    let error = outcome.err().map(|e| e.to_string());
    if let Some(error) = &error {
        tracing::warn!(
            sync_run = run.id,
            instance.id = run.instance_id,
            error,
            "sync failed"
        );
    } else {
        tracing::info!(
            sync_run = run.id,
            instance.id = run.instance_id,
            contacts = counts.contacts,
            groups = counts.groups,
            "sync finished"
        );
    }
    finish(ctx, run.id, worker, counts, error).await
}

/// Tries per page before a sync gives up on a flaky instance.
const PAGE_ATTEMPTS: u32 = 6;

async fn pull(
    ctx: &Context,
    run: &sync_runs::Model,
    worker: &str,
    counts: &mut Counts,
) -> ServiceResult<()> {
    let instance = find_live(&ctx.db, run.instance_id).await?;
    let driver = crate::drivers::for_instance(ctx, &instance).await?;
    let synced = accounts::sync_from(ctx, &instance, driver.as_ref()).await?;
    counts.accounts = i32::try_from(synced.len()).unwrap_or(i32::MAX);
    for account in synced {
        let started = ctx.clock.now_db();
        let mut cursor = None;
        loop {
            let from = cursor.take();
            let page = with_retries(PAGE_ATTEMPTS, || {
                driver.contacts(&account.wxid, from.clone())
            })
            .await
            .map_err(accounts::driver_failure)?;
            counts.removed += newly_deleted(ctx, account.id, &page.items).await?;
            counts.contacts += upsert_contacts(ctx, &instance, &account, &page.items).await?;
            if !heartbeat(ctx, run.id, worker, *counts).await? {
                return Err(ServiceError::Conflict {
                    field: None,
                    message: "another worker took over this sync".into(),
                });
            }
            match page.next_cursor.filter(|c| !c.is_empty()) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        counts.removed += mark_unlisted_contacts(ctx, account.id, started).await?;
        pull_groups(ctx, driver.as_ref(), &instance, &account, counts).await?;
        heartbeat(ctx, run.id, worker, *counts).await?;
        account_counts(ctx, account.id).await?;
    }
    Ok(())
}

fn unix(t: Option<i64>) -> Option<NaiveDateTime> {
    t.and_then(|s| DateTime::from_timestamp(s, 0))
        .map(|d| d.naive_utc())
}

fn bounded(value: Option<&String>, max: usize) -> Option<String> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(max).collect())
}

/// Upserts one page of contacts and their synced tags; returns how many were written.
pub(crate) async fn upsert_contacts(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    items: &[RemoteContact],
) -> ServiceResult<i32> {
    if items.is_empty() {
        return Ok(0);
    }
    let now = ctx.clock.now_db();
    let rows = items.iter().map(|c| contacts::ActiveModel {
        instance_id: Set(instance.id),
        account_id: Set(account.id),
        wxid: Set(c.wxid.chars().take(100).collect()),
        nickname: Set(bounded(c.nickname.as_ref(), 100)),
        remark: Set(bounded(c.remark.as_ref(), 100)),
        avatar_url: Set(bounded(c.avatar_url.as_ref(), 500)),
        phone: Set(bounded(c.phone.as_ref(), 20)),
        gender: Set(c.gender),
        region: Set(bounded(c.region.as_ref(), 100)),
        corp_name: Set(bounded(c.corp_name.as_ref(), 100)),
        contact_type: Set(
            if crate::contacts::CONTACT_TYPES.contains(&c.contact_type.as_str()) {
                c.contact_type.clone()
            } else {
                "external".into()
            },
        ),
        friend_status: Set(if c.deleted { "deleted" } else { "normal" }.to_owned()),
        is_star: Set(false),
        is_top: Set(false),
        is_blocked: Set(false),
        add_source: Set(Some("sync".to_owned())),
        add_time: Set(unix(c.add_time)),
        chat_count: Set(0),
        last_sync_time: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    });
    // Remark, star, top, blocked and custom fields are local: a sync never overwrites them.
    let on_conflict = OnConflict::columns([contacts::Column::AccountId, contacts::Column::Wxid])
        .update_columns([
            contacts::Column::Nickname,
            contacts::Column::AvatarUrl,
            contacts::Column::Phone,
            contacts::Column::Gender,
            contacts::Column::Region,
            contacts::Column::CorpName,
            contacts::Column::ContactType,
            contacts::Column::FriendStatus,
            contacts::Column::AddTime,
            contacts::Column::LastSyncTime,
            contacts::Column::UpdatedAt,
        ])
        .to_owned();
    for chunk in rows.collect::<Vec<_>>().chunks(500) {
        contacts::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(&ctx.db)
            .await?;
    }
    let remote_tags: Vec<(Option<String>, String, String)> = items
        .iter()
        .flat_map(|c| {
            c.tags
                .iter()
                .map(|t| (t.id.clone(), t.group.clone(), t.name.clone()))
        })
        .collect();
    let tag_ids = upsert_remote(&ctx.db, instance.id, &remote_tags, now).await?;
    let ids: HashMap<String, i64> = contacts::Entity::find()
        .select_only()
        .column(contacts::Column::Wxid)
        .column(contacts::Column::Id)
        .filter(contacts::Column::AccountId.eq(account.id))
        .filter(contacts::Column::Wxid.is_in(items.iter().map(|c| c.wxid.clone())))
        .into_tuple::<(String, i64)>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .collect();
    let tag_ids = &tag_ids;
    let pairs: Vec<(i64, i64)> = items
        .iter()
        .filter_map(|c| Some((ids.get(&c.wxid).copied()?, c)))
        .flat_map(|(id, c)| {
            c.tags
                .iter()
                .filter_map(move |t| {
                    Some((
                        id,
                        *tag_ids.get(&(
                            t.group.chars().take(100).collect(),
                            t.name.chars().take(100).collect(),
                        ))?,
                    ))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    unlink_stale(ctx, instance.id, &ids, &pairs).await?;
    link(&ctx.db, pairs.into_iter(), now).await?;
    Ok(i32::try_from(items.len()).unwrap_or(i32::MAX))
}

/// Removes the page's links to this instance's synced tags that the instance no longer reports.
/// The links are read by contact id (the primary key's leading column) and removed pair by pair,
/// so the plan never depends on fresh table statistics; an unchanged page deletes nothing.
async fn unlink_stale(
    ctx: &Context,
    instance_id: i64,
    ids: &HashMap<String, i64>,
    wanted: &[(i64, i64)],
) -> ServiceResult<()> {
    let synced: HashSet<i64> = tags::Entity::find()
        .select_only()
        .column(tags::Column::Id)
        .filter(tags::Column::InstanceId.eq(instance_id))
        .into_tuple::<i64>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .collect();
    let wanted: HashSet<&(i64, i64)> = wanted.iter().collect();
    let stale: Vec<(i64, i64)> = contact_tags::Entity::find()
        .select_only()
        .column(contact_tags::Column::ContactId)
        .column(contact_tags::Column::TagId)
        .filter(contact_tags::Column::ContactId.is_in(ids.values().copied()))
        .into_tuple::<(i64, i64)>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .filter(|pair| synced.contains(&pair.1) && !wanted.contains(pair))
        .collect();
    for chunk in stale.chunks(200) {
        let any = chunk.iter().fold(Condition::any(), |any, (contact, tag)| {
            any.add(
                Condition::all()
                    .add(contact_tags::Column::ContactId.eq(*contact))
                    .add(contact_tags::Column::TagId.eq(*tag)),
            )
        });
        contact_tags::Entity::delete_many()
            .filter(any)
            .exec(&ctx.db)
            .await?;
    }
    Ok(())
}

/// How many of the contacts the page reports deleted are still `normal` here (counted before the
/// upsert marks them).
async fn newly_deleted(
    ctx: &Context,
    account_id: i64,
    items: &[RemoteContact],
) -> ServiceResult<i32> {
    let deleted: Vec<String> = items
        .iter()
        .filter(|c| c.deleted)
        .map(|c| c.wxid.clone())
        .collect();
    if deleted.is_empty() {
        return Ok(0);
    }
    let count = contacts::Entity::find()
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::Wxid.is_in(deleted))
        .filter(contacts::Column::FriendStatus.eq("normal"))
        .count(&ctx.db)
        .await?;
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

/// Contacts of the account this pass did not see: the instance no longer lists them.
async fn mark_unlisted_contacts(
    ctx: &Context,
    account_id: i64,
    started: NaiveDateTime,
) -> ServiceResult<i32> {
    let result = contacts::Entity::update_many()
        .col_expr(contacts::Column::FriendStatus, Expr::value("deleted"))
        .col_expr(contacts::Column::UpdatedAt, Expr::value(ctx.clock.now_db()))
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::FriendStatus.eq("normal"))
        .filter(contacts::Column::DeletedAt.is_null())
        .filter(contacts::Column::AddSource.ne("manual"))
        .filter(contacts::Column::AddSource.ne("import"))
        .filter(
            Condition::any()
                .add(contacts::Column::LastSyncTime.is_null())
                .add(contacts::Column::LastSyncTime.lt(started)),
        )
        .exec(&ctx.db)
        .await?;
    Ok(i32::try_from(result.rows_affected).unwrap_or(i32::MAX))
}

async fn pull_groups(
    ctx: &Context,
    driver: &dyn InstanceDriver,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    counts: &mut Counts,
) -> ServiceResult<()> {
    let started = ctx.clock.now_db();
    let mut cursor = None;
    loop {
        let from = cursor.take();
        let page = with_retries(PAGE_ATTEMPTS, || driver.groups(&account.wxid, from.clone()))
            .await
            .map_err(accounts::driver_failure)?;
        for group in &page.items {
            let group_id = upsert_group(ctx, instance, account, group).await?;
            counts.groups += 1;
            let members = match &group.members {
                Some(members) => members.clone(),
                None => {
                    let mut all = Vec::new();
                    let mut member_cursor = None;
                    loop {
                        let from = member_cursor.take();
                        let p = with_retries(PAGE_ATTEMPTS, || {
                            driver.group_members(&account.wxid, &group.group_wxid, from.clone())
                        })
                        .await
                        .map_err(accounts::driver_failure)?;
                        all.extend(p.items);
                        match p.next_cursor.filter(|c| !c.is_empty()) {
                            Some(next) => member_cursor = Some(next),
                            None => break,
                        }
                    }
                    all
                }
            };
            counts.members += upsert_members(ctx, group_id, &members).await?;
        }
        match page.next_cursor.filter(|c| !c.is_empty()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    chat_groups::Entity::update_many()
        .col_expr(chat_groups::Column::IsActive, Expr::value(false))
        .filter(chat_groups::Column::AccountId.eq(account.id))
        .filter(
            Condition::any()
                .add(chat_groups::Column::LastSyncTime.is_null())
                .add(chat_groups::Column::LastSyncTime.lt(started)),
        )
        .exec(&ctx.db)
        .await?;
    Ok(())
}

async fn upsert_group(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    g: &RemoteGroup,
) -> ServiceResult<i64> {
    let now = ctx.clock.now_db();
    let role = if g.owner_wxid.as_deref() == Some(account.wxid.as_str()) {
        "owner"
    } else if g.members.as_ref().is_some_and(|m| {
        m.iter()
            .any(|m| m.wxid == account.wxid && m.role == "admin")
    }) {
        "admin"
    } else {
        "member"
    };
    let row = chat_groups::ActiveModel {
        instance_id: Set(instance.id),
        account_id: Set(account.id),
        group_wxid: Set(g.group_wxid.chars().take(100).collect()),
        group_name: Set(bounded(g.name.as_ref(), 200)),
        owner_wxid: Set(bounded(g.owner_wxid.as_ref(), 100)),
        group_notice: Set(g.notice.clone()),
        member_count: Set(g.member_count.unwrap_or(0)),
        max_member_count: Set(500),
        my_role: Set(role.to_owned()),
        is_muted: Set(false),
        is_disturb_off: Set(false),
        message_count: Set(0),
        is_active: Set(!g.deleted),
        last_sync_time: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let on_conflict = OnConflict::columns([
        chat_groups::Column::AccountId,
        chat_groups::Column::GroupWxid,
    ])
    .update_columns([
        chat_groups::Column::GroupName,
        chat_groups::Column::OwnerWxid,
        chat_groups::Column::GroupNotice,
        chat_groups::Column::MemberCount,
        chat_groups::Column::MyRole,
        chat_groups::Column::IsActive,
        chat_groups::Column::LastSyncTime,
        chat_groups::Column::UpdatedAt,
    ])
    .to_owned();
    chat_groups::Entity::insert(row)
        .on_conflict(on_conflict)
        .exec_without_returning(&ctx.db)
        .await?;
    let id: Option<i64> = chat_groups::Entity::find()
        .select_only()
        .column(chat_groups::Column::Id)
        .filter(chat_groups::Column::AccountId.eq(account.id))
        .filter(
            chat_groups::Column::GroupWxid.eq(g.group_wxid.chars().take(100).collect::<String>()),
        )
        .into_tuple()
        .one(&ctx.db)
        .await?;
    id.ok_or(ServiceError::NotFound("group"))
}

async fn upsert_members(
    ctx: &Context,
    group_id: i64,
    members: &[RemoteMember],
) -> ServiceResult<i32> {
    let now = ctx.clock.now_db();
    let unique: BTreeMap<String, &RemoteMember> = members
        .iter()
        .map(|m| (m.wxid.chars().take(100).collect(), m))
        .collect();
    let rows: Vec<group_members::ActiveModel> = unique
        .iter()
        .map(|(wxid, m)| group_members::ActiveModel {
            group_id: Set(group_id),
            member_wxid: Set(wxid.clone()),
            member_nickname: Set(bounded(m.nickname.as_ref(), 100)),
            group_nickname: Set(bounded(m.group_nickname.as_ref(), 100)),
            member_type: Set(m.member_type.chars().take(16).collect()),
            role: Set(m.role.chars().take(16).collect()),
            join_time: Set(unix(m.join_time)),
            is_muted: Set(false),
            speak_count: Set(0),
            is_active: Set(!m.left),
            left_at: Set(m.left.then_some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .collect();
    let on_conflict = OnConflict::columns([
        group_members::Column::GroupId,
        group_members::Column::MemberWxid,
    ])
    .update_columns([
        group_members::Column::MemberNickname,
        group_members::Column::GroupNickname,
        group_members::Column::MemberType,
        group_members::Column::Role,
        group_members::Column::JoinTime,
        group_members::Column::IsActive,
        group_members::Column::LeftAt,
        group_members::Column::UpdatedAt,
    ])
    .to_owned();
    for chunk in rows.chunks(500) {
        group_members::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(&ctx.db)
            .await?;
    }
    group_members::Entity::update_many()
        .col_expr(group_members::Column::LeftAt, Expr::value(now))
        .col_expr(group_members::Column::IsActive, Expr::value(false))
        .filter(group_members::Column::GroupId.eq(group_id))
        .filter(group_members::Column::LeftAt.is_null())
        .filter(group_members::Column::UpdatedAt.lt(now))
        .exec(&ctx.db)
        .await?;
    let current = group_members::Entity::find()
        .filter(group_members::Column::GroupId.eq(group_id))
        .filter(group_members::Column::LeftAt.is_null())
        .count(&ctx.db)
        .await?;
    chat_groups::Entity::update_many()
        .col_expr(
            chat_groups::Column::MemberCount,
            Expr::value(i32::try_from(current).unwrap_or(i32::MAX)),
        )
        .filter(chat_groups::Column::Id.eq(group_id))
        .exec(&ctx.db)
        .await?;
    Ok(i32::try_from(unique.len()).unwrap_or(i32::MAX))
}

async fn account_counts(ctx: &Context, account_id: i64) -> ServiceResult<()> {
    let contacts_now = contacts::Entity::find()
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::FriendStatus.eq("normal"))
        .filter(contacts::Column::DeletedAt.is_null())
        .count(&ctx.db)
        .await?;
    let groups_now = chat_groups::Entity::find()
        .filter(chat_groups::Column::AccountId.eq(account_id))
        .filter(chat_groups::Column::IsActive.eq(true))
        .count(&ctx.db)
        .await?;
    wework_accounts::Entity::update_many()
        .col_expr(
            wework_accounts::Column::ContactCount,
            Expr::value(i32::try_from(contacts_now).unwrap_or(i32::MAX)),
        )
        .col_expr(
            wework_accounts::Column::GroupCount,
            Expr::value(i32::try_from(groups_now).unwrap_or(i32::MAX)),
        )
        .col_expr(
            wework_accounts::Column::LastSyncTime,
            Expr::value(ctx.clock.now_db()),
        )
        .filter(wework_accounts::Column::Id.eq(account_id))
        .exec(&ctx.db)
        .await?;
    Ok(())
}
