//! Recording a chunk: every outcome, the counters and the outbound messages in one
//! transaction, and the send metrics.

use entity::states::{
    ChatType, MessageDirection, MessageStatus, ReceiverStatus, ReceiverType, TaskStatus,
};
use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDateTime;
use entity::{message_receivers, message_task_runs, message_tasks, messages, wework_accounts};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{CaseStatement, Expr, ExprTrait, LockType},
};
use serde_json::Value;

use super::{AccountTally, ChunkReport, Outcome, Shared};
use crate::{Context, ServiceResult, dispatch::finish};

/// Records the chunk; a transaction that lost a lock conflict (a deadlock on MySQL, a busy
/// SQLite) is simply run again — it only touches rows this chunk still leases.
pub(super) async fn record(
    ctx: &Context,
    shared: &Shared,
    run_id: i64,
    token: &str,
    outcomes: Vec<(message_receivers::Model, Outcome)>,
    report: &mut ChunkReport,
) -> ServiceResult<()> {
    let recorded = crate::db::retry_lock_conflicts("chunk record", || {
        record_once(ctx, shared, run_id, token, outcomes.clone())
    })
    .await?;
    report.per_account = recorded.per_account;
    report.sent = recorded.sent;
    report.awaiting = recorded.awaiting;
    report.failed = recorded.failed;
    report.skipped = recorded.skipped;
    report.retried = recorded.retried;
    Ok(())
}

/// Writes every outcome of the chunk, the counters and the outbound message rows in one
/// transaction, with one statement per kind of outcome rather than one per receiver. Rows are
/// only touched while this chunk still holds their lease.
async fn record_once(
    ctx: &Context,
    shared: &Shared,
    run_id: i64,
    token: &str,
    outcomes: Vec<(message_receivers::Model, Outcome)>,
) -> ServiceResult<ChunkReport> {
    let task = &shared.task;
    let now = ctx.clock.now_db();
    let _turn = ctx.write_turns.take().await;
    let txn = crate::db::begin(&ctx.db).await?;
    let outcomes = still_leased(&txn, token, outcomes).await?;
    let outcomes = skip_retries_if_cancelled(&txn, task.id, run_id, outcomes).await?;
    let sorted = Sorted::of(&outcomes);
    write_sent(&txn, &sorted.sent, now).await?;
    write_failed(&txn, &sorted.failed, now).await?;
    write_skipped(&txn, &sorted.skipped, now).await?;
    write_retried(&txn, &sorted.retried, now).await?;
    crate::db::reuse_plans(&txn).await?;
    write_messages(&txn, shared, &sorted.sent, now).await?;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let awaiting = sorted.awaiting();
    let delivered = sorted.sent.len() - awaiting;
    let change = finish::CountChange {
        sent: count(delivered),
        failed: count(sorted.failed.len()),
        skipped: count(sorted.skipped.len()),
        awaiting: count(awaiting),
    };
    finish::add_counts(&txn, task.id, run_id, change, now).await?;
    txn.commit().await?;
    Ok(ChunkReport {
        per_account: tally(&outcomes),
        sent: delivered,
        awaiting,
        failed: sorted.failed.len(),
        skipped: sorted.skipped.len(),
        retried: sorted.retried.len(),
        ..ChunkReport::default()
    })
}

type Row<'a> = (&'a message_receivers::Model, &'a Outcome);

/// The outcomes sorted by kind, each written by one statement.
struct Sorted<'a> {
    sent: Vec<Row<'a>>,
    failed: Vec<Row<'a>>,
    skipped: Vec<Row<'a>>,
    retried: Vec<Row<'a>>,
}

impl<'a> Sorted<'a> {
    fn of(outcomes: &'a [(message_receivers::Model, Outcome)]) -> Self {
        let mut sorted = Self {
            sent: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            retried: Vec::new(),
        };
        for (r, outcome) in outcomes {
            let kind = match outcome {
                Outcome::Sent { .. } => &mut sorted.sent,
                Outcome::Failed { .. } => &mut sorted.failed,
                Outcome::Skipped { .. } => &mut sorted.skipped,
                Outcome::Retry { .. } => &mut sorted.retried,
            };
            kind.push((r, outcome));
        }
        sorted
    }

    /// Sent as customer mass messages that members still have to confirm.
    fn awaiting(&self) -> usize {
        self.sent
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Sent { awaiting: true, .. }))
            .count()
    }
}

/// The outcomes whose receivers this chunk still leases, locked until the commit: SQLite's write
/// lock is held from `BEGIN IMMEDIATE`, and MySQL and PostgreSQL lock the rows read here
/// (`FOR UPDATE`, no new row versions, unlike an UPDATE that only touched them), so the set
/// cannot change before the commit. A receiver whose lease expired belongs to another worker
/// now: its outcome wins.
async fn still_leased(
    txn: &DatabaseTransaction,
    token: &str,
    outcomes: Vec<(message_receivers::Model, Outcome)>,
) -> ServiceResult<Vec<(message_receivers::Model, Outcome)>> {
    let ids: Vec<i64> = outcomes.iter().map(|(r, _)| r.id).collect();
    let mut ours = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::Id)
        .filter(message_receivers::Column::Id.is_in(ids))
        .filter(message_receivers::Column::LeaseOwner.eq(token))
        .filter(crate::dispatch::status_is(ReceiverStatus::Claimed));
    if crate::db::row_locks(txn) {
        ours = ours
            .order_by_asc(message_receivers::Column::Id)
            .lock(LockType::Update);
    }
    let owned: HashSet<i64> = ours
        .into_tuple::<i64>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    Ok(outcomes
        .into_iter()
        .filter(|(r, _)| owned.contains(&r.id))
        .collect())
}

/// Receivers that would go back to pending are skipped as `cancelled` when the task was
/// cancelled while the chunk sent: cancelling skipped the pending receivers and left the claimed
/// ones to their chunk, so nothing would send these. The task's row is locked before it is read
/// (the counters write it at the end of the transaction anyway): a cancel that commits after
/// this read skips them itself, one that committed before is seen here. The run's row is locked
/// first, the order the counters and a cancel lock the two in, so no two of them deadlock.
async fn skip_retries_if_cancelled(
    txn: &DatabaseTransaction,
    task_id: i64,
    run_id: i64,
    outcomes: Vec<(message_receivers::Model, Outcome)>,
) -> ServiceResult<Vec<(message_receivers::Model, Outcome)>> {
    if !outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Retry { .. }))
    {
        return Ok(outcomes);
    }
    let mut status = message_tasks::Entity::find_by_id(task_id)
        .select_only()
        .column(message_tasks::Column::Status);
    if crate::db::row_locks(txn) {
        message_task_runs::Entity::find_by_id(run_id)
            .select_only()
            .column(message_task_runs::Column::Id)
            .lock(LockType::Update)
            .into_tuple::<i64>()
            .one(txn)
            .await?;
        status = status.lock(LockType::Update);
    }
    let status = status.into_tuple::<TaskStatus>().one(txn).await?;
    if status != Some(TaskStatus::Cancelled) {
        return Ok(outcomes);
    }
    Ok(outcomes
        .into_iter()
        .map(|(r, o)| match o {
            Outcome::Retry { .. } => (
                r,
                Outcome::Skipped {
                    reason: "cancelled",
                },
            ),
            other => (r, other),
        })
        .collect())
}

/// An update of `rows` that also returns their leases.
fn released(
    rows: &[Row<'_>],
    now: NaiveDateTime,
) -> sea_orm::UpdateMany<message_receivers::Entity> {
    crate::dispatch::lease_returned()
        .col_expr(message_receivers::Column::UpdatedAt, Expr::value(now))
        .filter(message_receivers::Column::Id.is_in(rows.iter().map(|(r, _)| r.id)))
}

/// `update` also writes each row's error code and message (see `error_of`).
fn with_errors(
    update: sea_orm::UpdateMany<message_receivers::Entity>,
    rows: &[Row<'_>],
) -> sea_orm::UpdateMany<message_receivers::Entity> {
    update
        .col_expr(
            message_receivers::Column::ErrorCode,
            per_row(rows, &|_, o| error_of(o).0.into()),
        )
        .col_expr(
            message_receivers::Column::ErrorMessage,
            per_row(rows, &|_, o| error_of(o).1.into()),
        )
}

/// One column's value per row, as a `CASE id WHEN …` expression, or the value itself when every
/// row has the same (the CASE costs each row a scan of its arms).
fn per_row(
    rows: &[Row<'_>],
    value: &dyn Fn(&message_receivers::Model, &Outcome) -> sea_orm::Value,
) -> Expr {
    let first = value(rows[0].0, rows[0].1);
    if rows.iter().all(|(r, o)| value(r, o) == first) {
        return Expr::val(first);
    }
    rows.iter()
        .fold(CaseStatement::new(), |case, (r, outcome)| {
            case.case(
                message_receivers::Column::Id.eq(r.id),
                Expr::val(value(r, outcome)),
            )
        })
        .finally(Expr::val(value(rows[0].0, rows[0].1)))
        .into()
}

/// The error code (at most 50 characters) and message of a failure or a retry.
fn error_of(o: &Outcome) -> (String, String) {
    match o {
        Outcome::Failed { code, message } | Outcome::Retry { code, message, .. } => {
            (code.chars().take(50).collect::<String>(), message.clone())
        }
        _ => (String::new(), String::new()),
    }
}

async fn write_sent(
    txn: &DatabaseTransaction,
    sent: &[Row<'_>],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    if sent.is_empty() {
        return Ok(());
    }
    released(sent, now)
        .col_expr(
            message_receivers::Column::SendStatus,
            per_row(sent, &|_, o| {
                let waits = matches!(o, Outcome::Sent { awaiting: true, .. });
                (if waits {
                    ReceiverStatus::AwaitingConfirmation
                } else {
                    ReceiverStatus::Sent
                })
                .into()
            }),
        )
        .col_expr(
            message_receivers::Column::RemoteMsgId,
            per_row(sent, &|_, o| match o {
                Outcome::Sent { remote, .. } => remote
                    .as_ref()
                    .map(|m| m.chars().take(100).collect::<String>())
                    .into(),
                _ => Option::<String>::None.into(),
            }),
        )
        .col_expr(message_receivers::Column::SendTime, Expr::value(now))
        .col_expr(
            message_receivers::Column::ErrorCode,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            message_receivers::Column::ErrorMessage,
            Expr::value(Option::<String>::None),
        )
        .exec(txn)
        .await?;
    Ok(())
}

async fn write_failed(
    txn: &DatabaseTransaction,
    failed: &[Row<'_>],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    if failed.is_empty() {
        return Ok(());
    }
    let update = released(failed, now).col_expr(
        message_receivers::Column::SendStatus,
        Expr::value(ReceiverStatus::Failed),
    );
    with_errors(update, failed).exec(txn).await?;
    Ok(())
}

async fn write_skipped(
    txn: &DatabaseTransaction,
    skipped: &[Row<'_>],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    if skipped.is_empty() {
        return Ok(());
    }
    released(skipped, now)
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value(ReceiverStatus::Skipped),
        )
        .col_expr(
            message_receivers::Column::SkipReason,
            per_row(skipped, &|_, o| match o {
                Outcome::Skipped { reason } => (*reason).into(),
                _ => "".into(),
            }),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// Back to `pending` until `next_attempt_at`; a retry that counts uses one of `max_retry`.
async fn write_retried(
    txn: &DatabaseTransaction,
    retried: &[Row<'_>],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    if retried.is_empty() {
        return Ok(());
    }
    let update = released(retried, now)
        .col_expr(
            message_receivers::Column::SendStatus,
            Expr::value(ReceiverStatus::Pending),
        )
        .col_expr(
            message_receivers::Column::NextAttemptAt,
            per_row(retried, &|_, o| match o {
                Outcome::Retry { at, .. } => (*at).into(),
                _ => now.into(),
            }),
        )
        .col_expr(
            message_receivers::Column::RetryCount,
            per_row(retried, &|r, o| {
                let uses_a_retry = matches!(o, Outcome::Retry { counts: true, .. });
                (r.retry_count + i32::from(uses_a_retry)).into()
            }),
        );
    with_errors(update, retried).exec(txn).await?;
    Ok(())
}

/// The sending accounts' message counters and the outbound `messages` rows. Lock order, the same
/// in every chunk, so concurrent chunks cannot deadlock: receivers (before this), accounts by
/// id, message rows, then the run and the task (after this). On MySQL the accounts come before
/// the message rows, whose foreign-key checks take shared locks on them that two chunks could
/// not both upgrade; PostgreSQL's foreign-key lock (`KEY SHARE`) does not conflict with a
/// counter update, so there the accounts come last and chunks hold them only until the commit
/// instead of through every insert.
async fn write_messages(
    txn: &DatabaseTransaction,
    shared: &Shared,
    sent: &[Row<'_>],
    now: NaiveDateTime,
) -> ServiceResult<()> {
    let task = &shared.task;
    let mut per_account: BTreeMap<i64, i64> = BTreeMap::new();
    let mut message_rows = Vec::new();
    for (r, outcome) in sent {
        if let (
            Outcome::Sent {
                remote,
                awaiting,
                content,
            },
            Some(account),
        ) = (outcome, r.account_id)
        {
            *per_account.entry(account).or_default() += 1;
            let mut row = message_row(task, r, account, remote, *awaiting, content, now);
            if let Some(a) = shared.accounts.get(&account) {
                row.instance_id = Set(a.instance_id);
            }
            message_rows.push(row);
        }
    }
    let accounts_last = txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    if !accounts_last {
        add_account_counts(txn, &per_account).await?;
    }
    if !message_rows.is_empty() {
        let on_conflict = sea_orm::sea_query::OnConflict::column(messages::Column::MessageUuid)
            .update_column(messages::Column::MessageUuid)
            .to_owned();
        for chunk in message_rows.chunks(crate::db::INSERT_BATCH_ROWS) {
            messages::Entity::insert_many(chunk.to_vec())
                .on_conflict(on_conflict.clone())
                .exec_without_returning(txn)
                .await?;
        }
    }
    if accounts_last {
        add_account_counts(txn, &per_account).await?;
    }
    Ok(())
}

/// Adds each account's sends to its counters, in one statement. PostgreSQL would lock the rows
/// in the order its plan meets them, which need not be id order: they are locked in id order
/// first, `FOR NO KEY UPDATE` (the lock the counter update takes): `FOR UPDATE` would conflict
/// with the foreign-key locks the chunks' message rows hold on the same accounts.
async fn add_account_counts(
    txn: &DatabaseTransaction,
    per_account: &BTreeMap<i64, i64>,
) -> ServiceResult<()> {
    if per_account.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        wework_accounts::Entity::find()
            .select_only()
            .column(wework_accounts::Column::Id)
            .filter(wework_accounts::Column::Id.is_in(per_account.keys().copied()))
            .order_by_asc(wework_accounts::Column::Id)
            .lock(LockType::NoKeyUpdate)
            .into_tuple::<i64>()
            .all(txn)
            .await?;
    }
    let added: Expr = per_account
        .iter()
        .fold(CaseStatement::new(), |case, (account, n)| {
            case.case(wework_accounts::Column::Id.eq(*account), Expr::val(*n))
        })
        .finally(Expr::val(0))
        .into();
    wework_accounts::Entity::update_many()
        .col_expr(
            wework_accounts::Column::TotalMessages,
            Expr::col(wework_accounts::Column::TotalMessages).add(added.clone()),
        )
        .col_expr(
            wework_accounts::Column::TodayMessages,
            Expr::col(wework_accounts::Column::TodayMessages).add(added),
        )
        .filter(wework_accounts::Column::Id.is_in(per_account.keys().copied()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Outcomes per sending account.
pub(super) fn tally(
    outcomes: &[(message_receivers::Model, Outcome)],
) -> BTreeMap<i64, AccountTally> {
    let mut tallies: BTreeMap<i64, AccountTally> = BTreeMap::new();
    for (r, outcome) in outcomes {
        let tally = tallies.entry(r.account_id.unwrap_or(0)).or_default();
        match outcome {
            Outcome::Sent { .. } => tally.sent += 1,
            Outcome::Failed { .. } => tally.failed += 1,
            Outcome::Retry { rate_limited, .. } => {
                tally.retried += 1;
                tally.rate_limited += i64::from(*rate_limited);
            }
            Outcome::Skipped { .. } => {}
        }
    }
    tallies
}

/// The chunk's send counters as metric points, one per instance and account.
pub(super) fn record_send_metrics(ctx: &Context, shared: &Shared, report: &ChunkReport) {
    let now = ctx.clock.now();
    for (account, tally) in &report.per_account {
        let instance = shared.accounts.get(account).map(|a| a.instance_id);
        ctx.telemetry.metric(
            crate::telemetry::Point::new("dispatch_sends", now)
                .tag("task", shared.task.id)
                .tag(
                    "instance",
                    instance.map(|i| i.to_string()).unwrap_or_default(),
                )
                .tag("account", account)
                .int("sent", tally.sent)
                .int("failed", tally.failed)
                .int("retried", tally.retried)
                .int("rate_limited", tally.rate_limited),
        );
    }
}

/// The outbound message row of a sent receiver (the conversation log).
pub(super) fn message_row(
    task: &message_tasks::Model,
    r: &message_receivers::Model,
    account: i64,
    remote: &Option<String>,
    awaiting: bool,
    content: &str,
    now: NaiveDateTime,
) -> messages::ActiveModel {
    messages::ActiveModel {
        message_uuid: Set(r.message_uuid),
        direction: Set(MessageDirection::Out),
        instance_id: Set(r
            .variables
            .as_ref()
            .and_then(|v| v.get("_instance"))
            .and_then(Value::as_i64)
            .unwrap_or(0)),
        account_id: Set(account),
        chat_type: Set(if r.receiver_type == ReceiverType::Group {
            ChatType::Group
        } else {
            ChatType::Private
        }),
        chat_wxid: Set(r.receiver_wxid.clone()),
        contact_id: Set(r.contact_id),
        group_id: Set(r.group_id),
        remote_msg_id: Set(remote.clone().map(|m| m.chars().take(100).collect())),
        message_type: Set(task.message_type.as_str().to_owned()),
        message_content: Set(Some(content.to_owned())),
        send_status: Set(if awaiting {
            MessageStatus::AwaitingConfirmation
        } else {
            MessageStatus::Sent
        }),
        send_time: Set(Some(now)),
        retry_count: Set(r.retry_count),
        task_id: Set(Some(task.id)),
        is_scheduled: Set(task.scheduled_time.is_some()),
        created_by: Set(Some(task.created_by)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}
