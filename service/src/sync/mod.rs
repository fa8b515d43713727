//! Sync runs: pull accounts, contacts (with tags) and groups (with members) from an instance.
//!
//! A run is requested through the API and executed by a worker that claims it with a lease; a
//! worker that dies leaves an expired lease and the run is claimed again. Upserts are idempotent,
//! so a repeated page changes nothing. Contacts the instance no longer lists become
//! `friend_status = deleted`; members no longer listed get `left_at`.

mod contacts;
mod groups;
mod pg_page;

use crate::rbac::perm;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use entity::states::{InstanceStatus, SyncStatus};
use entity::{sync_runs, wework_accounts, wework_instances};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    drivers::{RemoteContact, with_retries},
    instances::{accounts, find_live, find_visible},
    pagination::{Page, PageRequest},
};

pub(crate) use self::contacts::upsert_contacts;
use self::{
    contacts::{mark_unlisted_contacts, newly_deleted, synced_tag_ids, upsert_contacts_on},
    groups::{account_counts, pull_groups},
};

const LEASE_SECS: i64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncRunView {
    pub id: i64,
    pub instance_id: i64,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub status: SyncStatus,
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
        .filter(sync_runs::Column::Status.is_in(SyncStatus::OPEN))
        .one(&ctx.db)
        .await?;
    if let Some(open) = open {
        return Ok(open);
    }
    let row = sync_runs::ActiveModel {
        instance_id: Set(instance_id),
        status: Set(SyncStatus::Pending),
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
        .filter(wework_instances::Column::Status.eq(InstanceStatus::Online))
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
        actor.require(perm::InstancesControl)?;
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
    actor.require(perm::InstancesRead)?;
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
        .add(sync_runs::Column::Status.eq(SyncStatus::Pending))
        .add(
            Condition::all()
                .add(sync_runs::Column::Status.eq(SyncStatus::Running))
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
        .col_expr(sync_runs::Column::Status, Expr::value(SyncStatus::Running))
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

/// What a progress write stores: the run's totals, or what one page added (pages may commit out
/// of order, so theirs is added to the stored counters).
#[derive(Debug, Clone, Copy)]
enum Progress {
    Totals(Counts),
    Page(Counts),
}

/// Renews the lease and stores progress; `false` when another worker took the run over.
async fn heartbeat<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    run_id: i64,
    worker: &str,
    progress: Progress,
) -> ServiceResult<bool> {
    let now = ctx.clock.now_db();
    let mut update = sync_runs::Entity::update_many().col_expr(
        sync_runs::Column::LeaseExpiresAt,
        Expr::value(now + TimeDelta::seconds(LEASE_SECS)),
    );
    update = match progress {
        Progress::Totals(counts) => update
            .col_expr(sync_runs::Column::Accounts, Expr::value(counts.accounts))
            .col_expr(sync_runs::Column::Contacts, Expr::value(counts.contacts))
            .col_expr(sync_runs::Column::Groups, Expr::value(counts.groups))
            .col_expr(sync_runs::Column::Members, Expr::value(counts.members))
            .col_expr(sync_runs::Column::Removed, Expr::value(counts.removed)),
        Progress::Page(added) => update
            .col_expr(
                sync_runs::Column::Contacts,
                Expr::col(sync_runs::Column::Contacts).add(added.contacts),
            )
            .col_expr(
                sync_runs::Column::Removed,
                Expr::col(sync_runs::Column::Removed).add(added.removed),
            ),
    };
    let renewed = update
        .filter(sync_runs::Column::Id.eq(run_id))
        .filter(sync_runs::Column::LeaseOwner.eq(worker))
        .filter(sync_runs::Column::Status.eq(SyncStatus::Running))
        .exec(conn)
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
    heartbeat(ctx, &ctx.db, run_id, worker, Progress::Totals(counts)).await?;
    sync_runs::Entity::update_many()
        .col_expr(
            sync_runs::Column::Status,
            Expr::value(if error.is_some() {
                SyncStatus::Failed
            } else {
                SyncStatus::Succeeded
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

/// Writes one page of contacts and adds it to the run's progress in one transaction (one commit
/// a page, where each statement used to commit alone), run again if it loses a lock conflict;
/// returns what the page added. A run another worker took over writes nothing. The page's tags
/// are upserted first, on their own, so that pages written at the same time share no locked row
/// but the run's, which each takes last.
async fn store_page(
    ctx: Context,
    run_id: i64,
    worker: String,
    instance: wework_instances::Model,
    account: wework_accounts::Model,
    items: Vec<RemoteContact>,
) -> ServiceResult<Counts> {
    // An upsert, so as safe to run again as the page: a lost lock conflict here (a callback
    // upserting the same tags) no longer fails the sync.
    let tagged_at = ctx.clock.now_db();
    let tag_ids = crate::db::retry_lock_conflicts("sync page tags", || {
        synced_tag_ids(&ctx.db, instance.id, &items, tagged_at)
    })
    .await?;
    crate::db::retry_lock_conflicts("sync page", || async {
        let txn = crate::db::begin(&ctx.db).await?;
        let removed = newly_deleted(&txn, account.id, &items).await?;
        crate::db::reuse_plans(&txn).await?;
        crate::db::commit_without_flush(&txn).await?;
        let now = ctx.clock.now_db();
        let contacts = upsert_contacts_on(&txn, now, &instance, &account, &items, &tag_ids).await?;
        let added = Counts {
            contacts,
            removed,
            ..Counts::default()
        };
        if !heartbeat(&ctx, &txn, run_id, &worker, Progress::Page(added)).await? {
            return Err(ServiceError::Conflict {
                field: None,
                message: "another worker took over this sync".into(),
            });
        }
        txn.commit().await?;
        Ok(added)
    })
    .await
}

/// Pages of one account written at the same time. On PostgreSQL two: the server's work on a
/// page is most of a sync, and a second connection puts the other core to use. SQLite has one
/// writer, and on MySQL the foreign-key checks' shared locks would make pages wait on each other.
fn pages_in_flight(ctx: &Context) -> usize {
    if ctx.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        2
    } else {
        1
    }
}

/// Adds a written page to the counts, or keeps the first failure.
fn settle(
    written: Result<ServiceResult<Counts>, tokio::task::JoinError>,
    counts: &mut Counts,
    failure: &mut Option<ServiceError>,
) {
    match written {
        Ok(Ok(added)) => {
            counts.contacts += added.contacts;
            counts.removed += added.removed;
        }
        Ok(Err(e)) => {
            failure.get_or_insert(e);
        }
        Err(e) => {
            failure.get_or_insert(ServiceError::Internal(anyhow::anyhow!(
                "a sync page writer stopped: {e}"
            )));
        }
    }
}

/// Pulls an account's contacts page by page, fetching the next page while earlier ones are
/// written (`pages_in_flight` at a time). Every page started is waited for, even when a fetch
/// fails, so the counts are final when this returns.
async fn pull_contacts(
    ctx: &Context,
    run_id: i64,
    worker: &str,
    driver: &dyn crate::drivers::InstanceDriver,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    counts: &mut Counts,
) -> ServiceResult<()> {
    let mut writing: std::collections::VecDeque<tokio::task::JoinHandle<ServiceResult<Counts>>> =
        std::collections::VecDeque::new();
    let mut failure: Option<ServiceError> = None;
    let mut cursor = None;
    loop {
        let page = with_retries(PAGE_ATTEMPTS, || {
            driver.contacts(&account.wxid, cursor.clone())
        })
        .await
        .map_err(accounts::driver_failure);
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                failure.get_or_insert(e);
                break;
            }
        };
        if writing.len() >= pages_in_flight(ctx)
            && let Some(oldest) = writing.pop_front()
        {
            settle(oldest.await, counts, &mut failure);
        }
        writing.push_back(tokio::spawn(store_page(
            ctx.clone(),
            run_id,
            worker.to_owned(),
            instance.clone(),
            account.clone(),
            page.items,
        )));
        match page.next_cursor.filter(|c| !c.is_empty()) {
            Some(next) if failure.is_none() => cursor = Some(next),
            _ => break,
        }
    }
    while let Some(oldest) = writing.pop_front() {
        settle(oldest.await, counts, &mut failure);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
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
        pull_contacts(
            ctx,
            run.id,
            worker,
            driver.as_ref(),
            &instance,
            &account,
            counts,
        )
        .await?;
        counts.removed += mark_unlisted_contacts(ctx, account.id, started).await?;
        pull_groups(ctx, driver.as_ref(), &instance, &account, counts).await?;
        heartbeat(ctx, &ctx.db, run.id, worker, Progress::Totals(*counts)).await?;
        account_counts(ctx, account.id).await?;
    }
    Ok(())
}
