//! Audience expansion: a run's audience becomes `message_receivers` rows — a snapshot, written in
//! batches under a lease. Re-running an interrupted expansion is harmless: the unique
//! (run, type, wxid) key drops duplicates, and the counts are taken from the table at the end.

use entity::states::{Channel, FriendStatus, ReceiverStatus, ReceiverType, RunStatus, TaskType};
use std::collections::{BTreeMap, HashMap};

use chrono::TimeDelta;
use entity::{
    chat_groups, contacts, message_receivers, message_task_runs, message_tasks, wework_accounts,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use serde_json::{Value, json};

use super::{
    spec::{Audience, AudienceFilter},
    variants::Plan,
};
use crate::{Context, ServiceError, ServiceResult, contacts::tags_of, rbac::scope::Reach};

/// An expansion lease: renewed with every batch written, so a dead worker's run is taken over soon.
const LEASE_SECS: i64 = 60;
const BATCH: u64 = 500;

/// Claims a run waiting for expansion (or one whose expander died).
pub async fn claim(ctx: &Context, worker: &str) -> ServiceResult<Option<message_task_runs::Model>> {
    let now = ctx.clock.now_db();
    let claimable = Condition::all()
        .add(message_task_runs::Column::Status.eq(RunStatus::Expanding))
        .add(
            Condition::any()
                .add(message_task_runs::Column::LeaseExpiresAt.is_null())
                .add(message_task_runs::Column::LeaseExpiresAt.lt(now)),
        );
    let Some(run) = message_task_runs::Entity::find()
        .filter(claimable.clone())
        .order_by_asc(message_task_runs::Column::Id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    let claimed = message_task_runs::Entity::update_many()
        .col_expr(message_task_runs::Column::LeaseOwner, Expr::value(worker))
        .col_expr(
            message_task_runs::Column::LeaseExpiresAt,
            Expr::value(now + TimeDelta::seconds(LEASE_SECS)),
        )
        .filter(message_task_runs::Column::Id.eq(run.id))
        .filter(claimable)
        .exec(&ctx.db)
        .await?;
    Ok((claimed.rows_affected == 1).then_some(run))
}

struct Receiver {
    receiver_type: ReceiverType,
    contact_id: Option<i64>,
    group_id: Option<i64>,
    account_id: i64,
    wxid: String,
    name: Option<String>,
    skip: Option<&'static str>,
    variables: Value,
}

async fn account_snapshots<C: ConnectionTrait>(
    conn: &C,
    ids: impl Iterator<Item = i64>,
) -> ServiceResult<HashMap<i64, Value>> {
    let ids: Vec<i64> = ids.collect();
    let rows = wework_accounts::Entity::find()
        .filter(wework_accounts::Column::Id.is_in(ids))
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|a| (a.id, json!({ "wxid": a.wxid, "nickname": a.nickname })))
        .collect())
}

/// What a template sees of a contact, the same at send time and in a preview.
fn contact_variables(c: &contacts::Model, tag_names: Vec<String>, account: Value) -> Value {
    json!({
        "nickname": c.nickname,
        "remark": c.remark,
        "name": c.remark.clone().or(c.nickname.clone()).unwrap_or_else(|| c.wxid.clone()),
        "wxid": c.wxid,
        "phone": c.phone,
        "region": c.region,
        "corp_name": c.corp_name,
        "tags": tag_names,
        "custom": c.custom_fields.clone().unwrap_or_else(|| json!({})),
        "account": account,
    })
}

/// One contact's template variables, read afresh (template previews against a real contact).
pub async fn variables_of_contact<C: ConnectionTrait>(
    conn: &C,
    contact: &contacts::Model,
) -> ServiceResult<Value> {
    let tags = tags_of(conn, &[contact.id]).await?;
    let tag_names = tags
        .get(&contact.id)
        .map(|t| t.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let account = account_snapshots(conn, std::iter::once(contact.account_id))
        .await?
        .remove(&contact.account_id)
        .unwrap_or(Value::Null);
    Ok(contact_variables(contact, tag_names, account))
}

async fn contact_receivers(
    ctx: &Context,
    task: &message_tasks::Model,
    rows: Vec<contacts::Model>,
) -> ServiceResult<Vec<Receiver>> {
    let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
    let tags = tags_of(&ctx.db, &ids).await?;
    let accounts = account_snapshots(
        &ctx.db,
        rows.iter().map(|c| task.account_id.unwrap_or(c.account_id)),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|c| {
            let skip = if c.deleted_at.is_some() {
                Some("deleted")
            } else if c.is_blocked {
                Some("blocked")
            } else if c.friend_status != FriendStatus::Normal {
                Some("not_friend")
            } else if c.unsubscribed_at.is_some() && task.task_type != TaskType::Single {
                Some("unsubscribed")
            } else if task.account_id.is_some_and(|a| a != c.account_id) {
                Some("not_a_contact_of_the_sending_account")
            } else {
                None
            };
            let tag_names: Vec<String> = tags
                .get(&c.id)
                .map(|t| t.iter().map(|t| t.name.clone()).collect())
                .unwrap_or_default();
            let account_id = task.account_id.unwrap_or(c.account_id);
            let account = accounts.get(&account_id).cloned().unwrap_or(Value::Null);
            let variables = contact_variables(&c, tag_names, account);
            Receiver {
                receiver_type: ReceiverType::Contact,
                contact_id: Some(c.id),
                group_id: None,
                account_id,
                name: c.remark.or(c.nickname),
                wxid: c.wxid,
                skip,
                variables,
            }
        })
        .collect())
}

async fn group_receivers(
    ctx: &Context,
    task: &message_tasks::Model,
    rows: Vec<chat_groups::Model>,
) -> ServiceResult<Vec<Receiver>> {
    let accounts = account_snapshots(
        &ctx.db,
        rows.iter().map(|g| task.account_id.unwrap_or(g.account_id)),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|g| {
            let skip = if g.deleted_at.is_some() || !g.is_active { Some("inactive_group") } else { None };
            let account_id = task.account_id.unwrap_or(g.account_id);
            let variables = json!({
                "nickname": g.group_name, "remark": Value::Null, "name": g.group_name.clone().unwrap_or_else(|| g.group_wxid.clone()),
                "wxid": g.group_wxid, "phone": Value::Null, "region": Value::Null, "corp_name": Value::Null,
                "tags": g.tags.clone().unwrap_or_else(|| json!([])), "custom": g.custom_fields.clone().unwrap_or_else(|| json!({})),
                "account": accounts.get(&account_id).cloned().unwrap_or(Value::Null),
            });
            Receiver { receiver_type: ReceiverType::Group, contact_id: None, group_id: Some(g.id), account_id, name: g.group_name, wxid: g.group_wxid, skip, variables }
        })
        .collect())
}

async fn insert(
    ctx: &Context,
    run: &message_task_runs::Model,
    plan: Option<&Plan>,
    receivers: Vec<Receiver>,
) -> ServiceResult<()> {
    if receivers.is_empty() {
        return Ok(());
    }
    let now = ctx.clock.now_db();
    let rows: Vec<message_receivers::ActiveModel> = receivers
        .into_iter()
        .map(|r| {
            let (variant, due) = match plan {
                Some(p) => {
                    let (variant, due) = p.assign(&r.wxid);
                    (Some(variant), due)
                }
                None => (None, None),
            };
            message_receivers::ActiveModel {
                task_id: Set(run.task_id),
                run_id: Set(run.id),
                receiver_type: Set(r.receiver_type),
                contact_id: Set(r.contact_id),
                group_id: Set(r.group_id),
                account_id: Set(Some(r.account_id)),
                receiver_wxid: Set(r.wxid.chars().take(100).collect()),
                receiver_name: Set(r.name.map(|n| n.chars().take(100).collect())),
                message_uuid: Set(crate::messages::new_message_uuid()),
                send_status: Set(if r.skip.is_some() {
                    ReceiverStatus::Skipped
                } else {
                    ReceiverStatus::Pending
                }),
                skip_reason: Set(r.skip.map(str::to_owned)),
                retry_count: Set(0),
                remind_count: Set(0),
                variables: Set(Some(r.variables)),
                variant: Set(variant),
                next_attempt_at: Set(due),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
        })
        .collect();
    let on_conflict = OnConflict::columns([
        message_receivers::Column::RunId,
        message_receivers::Column::ReceiverType,
        message_receivers::Column::ReceiverWxid,
    ])
    .update_column(message_receivers::Column::ReceiverType)
    .to_owned();
    // One transaction a batch: one commit instead of one per statement, and cached plans for
    // the two foreign-key checks of every row (`db::reuse_plans`).
    let txn = crate::db::begin(&ctx.db).await?;
    crate::db::reuse_plans(&txn).await?;
    // The run first, as a cancel locks it before the pending receivers this batch adds to.
    crate::dispatch::finish::lock_run(&txn, run.id).await?;
    for chunk in rows.chunks(crate::db::INSERT_BATCH_ROWS) {
        message_receivers::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(&txn)
            .await?;
    }
    // Keep the lease while a large audience is written.
    message_task_runs::Entity::update_many()
        .col_expr(
            message_task_runs::Column::LeaseExpiresAt,
            Expr::value(now + TimeDelta::seconds(LEASE_SECS)),
        )
        .filter(message_task_runs::Column::Id.eq(run.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Writes the filtered contacts as receivers, walking each sending account's contacts with its
/// own keyset cursor. Receivers are claimed in id order, so the order written here is the order
/// of sending. Normally the accounts take turns: every chunk then spans the accounts, whose rate
/// limits work in parallel (one account first would let its limit pace the whole run). Customer
/// mass messages keep each account's receivers together instead: a chunk becomes one message per
/// member to confirm, so fewer members per chunk means fewer confirmations.
async fn expand_by_account(
    ctx: &Context,
    run: &message_task_runs::Model,
    plan: Option<&Plan>,
    task: &message_tasks::Model,
    query: sea_orm::Select<contacts::Entity>,
) -> ServiceResult<()> {
    let accounts: Vec<i64> = query
        .clone()
        .select_only()
        .column(contacts::Column::AccountId)
        .distinct()
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let interleave = task.channel != Channel::CustomerMass;
    let per_account = if interleave {
        std::cmp::max(BATCH / std::cmp::max(accounts.len(), 1) as u64, 100)
    } else {
        BATCH
    };
    let mut cursors: BTreeMap<i64, i64> = accounts.into_iter().map(|a| (a, 0)).collect();
    while !cursors.is_empty() {
        let mut lanes = Vec::with_capacity(cursors.len());
        let mut done = Vec::new();
        for (account, after) in &mut cursors {
            let rows = query
                .clone()
                .filter(contacts::Column::AccountId.eq(*account))
                .filter(contacts::Column::Id.gt(*after))
                .order_by_asc(contacts::Column::Id)
                .limit(per_account)
                .all(&ctx.db)
                .await?;
            if (rows.len() as u64) < per_account {
                done.push(*account);
            }
            if let Some(last) = rows.last() {
                *after = last.id;
            }
            lanes.push(rows.into_iter());
            if !interleave {
                break;
            }
        }
        for account in done {
            cursors.remove(&account);
        }
        let mut round = Vec::new();
        loop {
            let before = round.len();
            round.extend(lanes.iter_mut().filter_map(Iterator::next));
            if round.len() == before {
                break;
            }
        }
        for part in round.chunks(BATCH as usize) {
            insert(
                ctx,
                run,
                plan,
                contact_receivers(ctx, task, part.to_vec()).await?,
            )
            .await?;
        }
    }
    Ok(())
}

/// The live contacts a filter selects within `reach`, sent from `account` when the task names
/// one (then only that account's contacts). Shared by the expansion and the estimate.
pub(super) fn filtered_contacts(
    filter: &AudienceFilter,
    account: Option<i64>,
    reach: &Reach,
    backend: sea_orm::DbBackend,
) -> sea_orm::Select<contacts::Entity> {
    let query = contacts::Entity::find()
        .filter(contacts::Column::DeletedAt.is_null())
        .filter(reach.on_instances(contacts::Column::InstanceId));
    let Some(account) = account else {
        return crate::contacts::matching::narrow(query, filter, backend);
    };
    // The task's one sending account narrows the filter's own accounts (or contradicts them).
    let mut filter = filter.clone();
    filter.account_ids = if filter.account_ids.is_empty() || filter.account_ids.contains(&account) {
        vec![account]
    } else {
        vec![-1]
    };
    crate::contacts::matching::narrow(query, &filter, backend)
}

/// Writes the run's receivers, then counts them and moves the run to `running` in one
/// transaction (only once, whoever finishes an expansion first).
pub async fn expand(ctx: &Context, run: &message_task_runs::Model) -> ServiceResult<()> {
    let task = super::find(&ctx.db, run.task_id).await?;
    // An unreadable audience is an error (the expansion is retried and logged), never an empty
    // audience that would settle the run as sent to nobody.
    let audience: Audience = super::spec::stored(Some(&task.audience), "audience")
        .map_err(|why| ServiceError::Internal(anyhow::anyhow!("task {}: {why}", task.id)))?
        .unwrap_or_default();
    // The audience is taken in with the creator's data scope as it stands now: contacts and
    // groups on instances out of their reach never become receivers.
    let reach = Reach::of_user(&ctx.db, task.created_by, ctx.clock.now_db()).await?;
    let plan = Plan::of(&task, ctx.clock.now_db())?;
    for ids in audience.contact_ids.chunks(BATCH as usize) {
        let rows = contacts::Entity::find()
            .filter(contacts::Column::Id.is_in(ids.iter().copied()))
            .filter(reach.on_instances(contacts::Column::InstanceId))
            .all(&ctx.db)
            .await?;
        insert(
            ctx,
            run,
            plan.as_ref(),
            contact_receivers(ctx, &task, rows).await?,
        )
        .await?;
    }
    // A segment is read live, as it is when the run starts. One deleted under an active task
    // (deletion refuses that) is an error, never an empty audience.
    let filters = crate::segments::contact_filters(&ctx.db, &audience)
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("task {}: {e}", task.id)))?;
    for filter in &filters {
        let query = filtered_contacts(
            filter,
            task.account_id,
            &reach,
            ctx.db.get_database_backend(),
        );
        expand_by_account(ctx, run, plan.as_ref(), &task, query).await?;
    }
    for ids in audience.group_ids.chunks(BATCH as usize) {
        let rows = chat_groups::Entity::find()
            .filter(chat_groups::Column::Id.is_in(ids.iter().copied()))
            .filter(reach.on_instances(chat_groups::Column::InstanceId))
            .all(&ctx.db)
            .await?;
        insert(
            ctx,
            run,
            plan.as_ref(),
            group_receivers(ctx, &task, rows).await?,
        )
        .await?;
    }
    if let Some(g) = &audience.group_filter {
        let mut query = chat_groups::Entity::find()
            .filter(chat_groups::Column::DeletedAt.is_null())
            .filter(reach.on_instances(chat_groups::Column::InstanceId));
        if !g.account_ids.is_empty() {
            query = query.filter(chat_groups::Column::AccountId.is_in(g.account_ids.clone()));
        }
        if !g.instance_ids.is_empty() {
            query = query.filter(chat_groups::Column::InstanceId.is_in(g.instance_ids.clone()));
        }
        let rows = query.all(&ctx.db).await?;
        insert(
            ctx,
            run,
            plan.as_ref(),
            group_receivers(ctx, &task, rows).await?,
        )
        .await?;
    }
    start(ctx, run.id).await
}

/// Counts the written receivers and moves the run (and its task's totals) on, once. A run
/// cancelled while it expanded is settled instead: the receivers written after the cancel are
/// skipped as `cancelled` and counted, so its counters add up like any other run's.
pub async fn start(ctx: &Context, run_id: i64) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    // Locked: a cancel committing meanwhile is seen, not overwritten.
    let Some(run) = crate::dispatch::finish::lock_run(&txn, run_id).await? else {
        return Ok(());
    };
    let status = match run.status {
        RunStatus::Expanding => RunStatus::Running,
        RunStatus::Cancelled if run.started_at.is_none() => {
            super::control::skip_pending_as_cancelled(&txn, run_id, now).await?;
            RunStatus::Cancelled
        }
        _ => return Ok(()),
    };
    let counts: BTreeMap<ReceiverStatus, i64> = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::SendStatus)
        .column_as(message_receivers::Column::Id.count(), "n")
        .filter(message_receivers::Column::RunId.eq(run_id))
        .group_by(message_receivers::Column::SendStatus)
        .into_tuple::<(ReceiverStatus, i64)>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    let target = i32::try_from(counts.values().sum::<i64>()).unwrap_or(i32::MAX);
    let skipped = i32::try_from(counts.get(&ReceiverStatus::Skipped).copied().unwrap_or(0))
        .unwrap_or(i32::MAX);
    message_task_runs::Entity::update_many()
        .col_expr(message_task_runs::Column::Status, Expr::value(status))
        .col_expr(message_task_runs::Column::TargetCount, Expr::value(target))
        .col_expr(
            message_task_runs::Column::SkippedCount,
            Expr::value(skipped),
        )
        .col_expr(message_task_runs::Column::StartedAt, Expr::value(now))
        .col_expr(message_task_runs::Column::LastActivityAt, Expr::value(now))
        .col_expr(
            message_task_runs::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            message_task_runs::Column::LeaseExpiresAt,
            Expr::value(Option::<chrono::NaiveDateTime>::None),
        )
        .filter(message_task_runs::Column::Id.eq(run_id))
        .exec(&txn)
        .await?;
    // A cancel already added the skips it made to the task.
    let newly_skipped = skipped - run.skipped_count;
    message_tasks::Entity::update_many()
        .col_expr(
            message_tasks::Column::TargetCount,
            Expr::col(message_tasks::Column::TargetCount).add(target),
        )
        .col_expr(
            message_tasks::Column::SkippedCount,
            Expr::col(message_tasks::Column::SkippedCount).add(newly_skipped),
        )
        .col_expr(message_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(message_tasks::Column::Id.eq(run.task_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(
        run.id = run_id,
        target,
        skipped,
        %status,
        "audience expanded"
    );
    Ok(())
}
