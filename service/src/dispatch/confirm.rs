//! Messages that wait for a confirmation: WeCom customer mass messages (the member confirms in the
//! client) and agent sends answered `pending`. Their receivers stay `awaiting_confirmation` until
//! WeCom's per-receiver results, an agent's delivery event, a withdrawal or the timeout settles
//! them; counters move in the same transaction as the receivers.

use entity::states::{Channel, MessageStatus, ReceiverStatus};
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::TimeDelta;
use entity::{message_receivers, message_tasks, messages, wework_accounts, wework_instances};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};

use super::finish;
use crate::{
    Context, ServiceResult,
    drivers::{self, DriverError, MassState},
};

/// How an awaiting receiver ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resolution {
    Sent,
    Failed {
        code: String,
        reason: String,
    },
    /// Withdrawn before the member confirmed it.
    Cancelled,
}

/// What a check does with receivers WeCom still lists as unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Leave them waiting, unless they waited longer than the timeout.
    Poll,
    /// The operator cancelled the task: withdraw the message, skip them.
    Withdraw,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub messages: usize,
    pub sent: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl CheckReport {
    fn add(&mut self, other: &CheckReport) {
        self.messages += other.messages;
        self.sent += other.sent;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
    }
}

/// One pass over the messages still awaiting confirmation, up to `limit` of them.
pub async fn poll(ctx: &Context, limit: u64) -> ServiceResult<CheckReport> {
    let pending: Vec<(String, Option<i64>)> = message_receivers::Entity::find()
        .select_only()
        .column(message_receivers::Column::RemoteMsgId)
        .column(message_receivers::Column::AccountId)
        .filter(super::status_is(ReceiverStatus::AwaitingConfirmation))
        .filter(message_receivers::Column::RemoteMsgId.is_not_null())
        .group_by(message_receivers::Column::RemoteMsgId)
        .group_by(message_receivers::Column::AccountId)
        .limit(limit)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut report = CheckReport::default();
    for (msgid, account) in pending {
        let Some(account) = account else { continue };
        match check(ctx, &msgid, account, Mode::Poll).await {
            Ok(one) => report.add(&one),
            Err(e) => {
                tracing::warn!(msgid = %msgid, error = %e, "could not check a mass message")
            }
        }
    }
    Ok(report)
}

/// Settles what can be settled of one remote message of one account.
pub async fn check(
    ctx: &Context,
    msgid: &str,
    account_id: i64,
    mode: Mode,
) -> ServiceResult<CheckReport> {
    let waiting = message_receivers::Entity::find()
        .filter(super::status_is(ReceiverStatus::AwaitingConfirmation))
        .filter(message_receivers::Column::RemoteMsgId.eq(msgid))
        .filter(message_receivers::Column::AccountId.eq(account_id))
        .all(&ctx.db)
        .await?;
    let Some(first) = waiting.first() else {
        return Ok(CheckReport::default());
    };
    let mass = message_tasks::Entity::find_by_id(first.task_id)
        .one(&ctx.db)
        .await?
        .is_some_and(|t| t.channel == Channel::CustomerMass);
    if !mass && mode == Mode::Withdraw {
        // An agent's pending send cannot be withdrawn; its delivery event still settles it.
        return Ok(CheckReport::default());
    }
    let deadline =
        ctx.clock.now_db() - TimeDelta::hours(ctx.settings.dispatch.confirm_timeout_hours);
    let expired = waiting
        .iter()
        .any(|r| r.send_time.unwrap_or(r.updated_at) < deadline);
    let mut results = HashMap::new();
    if mass {
        match driver_for(ctx, account_id).await {
            Some(driver) => {
                if mode == Mode::Withdraw || expired {
                    // Withdraw first, then read: nobody can confirm between the read and the
                    // withdrawal, so what the read says sent is all that was sent.
                    if let Err(e) = driver.mass_cancel(msgid).await {
                        tracing::warn!(msgid, error = %e, "could not withdraw a mass message");
                    }
                }
                match driver.mass_results(msgid).await {
                    Ok(list) => {
                        results = list.into_iter().map(|r| (r.target, r.state)).collect();
                    }
                    Err(e) if mode == Mode::Poll && !expired => {
                        log_unreadable(msgid, &e);
                        return Ok(CheckReport::default());
                    }
                    Err(e) => log_unreadable(msgid, &e),
                }
            }
            None if mode == Mode::Poll && !expired => return Ok(CheckReport::default()),
            None => {}
        }
    }
    let resolved: Vec<(message_receivers::Model, Resolution)> = waiting
        .into_iter()
        .filter_map(|r| {
            let resolution = match results.get(&r.receiver_wxid) {
                Some(MassState::Sent) => Resolution::Sent,
                Some(MassState::Failed { code, reason }) => Resolution::Failed {
                    code: code.clone(),
                    reason: reason.clone(),
                },
                Some(MassState::Waiting) | None => match mode {
                    Mode::Withdraw => Resolution::Cancelled,
                    Mode::Poll if r.send_time.unwrap_or(r.updated_at) < deadline => {
                        Resolution::Failed {
                            code: "not_confirmed".into(),
                            reason: format!(
                                "not confirmed within {} hours; the message was withdrawn",
                                ctx.settings.dispatch.confirm_timeout_hours
                            ),
                        }
                    }
                    Mode::Poll => return None,
                },
            };
            Some((r, resolution))
        })
        .collect();
    let mut report = apply(ctx, resolved).await?;
    report.messages = 1;
    Ok(report)
}

/// An agent's `message.delivered` / `message.failed` for a send it had answered `pending`.
pub async fn resolve_remote(
    ctx: &Context,
    instance_id: i64,
    remote: &str,
    resolution: Resolution,
) -> ServiceResult<CheckReport> {
    let accounts: Vec<i64> = wework_accounts::Entity::find()
        .select_only()
        .column(wework_accounts::Column::Id)
        .filter(wework_accounts::Column::InstanceId.eq(instance_id))
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let waiting = message_receivers::Entity::find()
        .filter(super::status_is(ReceiverStatus::AwaitingConfirmation))
        .filter(message_receivers::Column::RemoteMsgId.eq(remote))
        .filter(message_receivers::Column::AccountId.is_in(accounts))
        .all(&ctx.db)
        .await?;
    apply(
        ctx,
        waiting
            .into_iter()
            .map(|r| (r, resolution.clone()))
            .collect(),
    )
    .await
}

fn log_unreadable(msgid: &str, e: &DriverError) {
    tracing::warn!(msgid, error = %e, "could not read a mass message's results");
}

/// The driver of the account's instance; `None` when either is gone or misconfigured.
pub(crate) async fn driver_for(
    ctx: &Context,
    account_id: i64,
) -> Option<Box<dyn drivers::InstanceDriver>> {
    let account = wework_accounts::Entity::find_by_id(account_id)
        .one(&ctx.db)
        .await
        .ok()??;
    let instance = wework_instances::Entity::find_by_id(account.instance_id)
        .one(&ctx.db)
        .await
        .ok()??;
    drivers::for_instance(ctx, &instance).await.ok()
}

/// Moves awaiting receivers to their resolution, with their message rows and their runs' and
/// tasks' counters, in one transaction; then completes the runs nothing is left waiting in.
/// Each UPDATE only takes rows still awaiting, and its row count is what the counters move by,
/// so a concurrent check or event never counts a receiver twice.
pub async fn apply(
    ctx: &Context,
    resolved: Vec<(message_receivers::Model, Resolution)>,
) -> ServiceResult<CheckReport> {
    let mut report = CheckReport::default();
    if resolved.is_empty() {
        return Ok(report);
    }
    type Group = (Resolution, i64, i64);
    let mut groups: BTreeMap<Group, Vec<message_receivers::Model>> = BTreeMap::new();
    for (r, resolution) in resolved {
        groups
            .entry((resolution, r.task_id, r.run_id))
            .or_default()
            .push(r);
    }
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let mut runs = HashSet::new();
    for ((resolution, task, run), rows) in groups {
        let (status, code, reason, skip, message_status) = match &resolution {
            Resolution::Sent => (ReceiverStatus::Sent, None, None, None, MessageStatus::Sent),
            Resolution::Failed { code, reason } => (
                ReceiverStatus::Failed,
                Some(code.chars().take(50).collect::<String>()),
                Some(reason.clone()),
                None,
                MessageStatus::Failed,
            ),
            Resolution::Cancelled => (
                ReceiverStatus::Skipped,
                None,
                Some("withdrawn before the member confirmed it".to_owned()),
                Some("cancelled"),
                MessageStatus::Failed,
            ),
        };
        for rows in rows.chunks(500) {
            let moved = message_receivers::Entity::update_many()
                .col_expr(message_receivers::Column::SendStatus, Expr::value(status))
                .col_expr(
                    message_receivers::Column::ErrorCode,
                    Expr::value(code.clone()),
                )
                .col_expr(
                    message_receivers::Column::ErrorMessage,
                    Expr::value(reason.clone()),
                )
                .col_expr(message_receivers::Column::SkipReason, Expr::value(skip))
                .col_expr(message_receivers::Column::UpdatedAt, Expr::value(now))
                .filter(message_receivers::Column::Id.is_in(rows.iter().map(|r| r.id)))
                .filter(super::status_is(ReceiverStatus::AwaitingConfirmation))
                .exec(&txn)
                .await?
                .rows_affected;
            if moved == 0 {
                continue;
            }
            messages::Entity::update_many()
                .col_expr(messages::Column::SendStatus, Expr::value(message_status))
                .col_expr(messages::Column::ErrorMessage, Expr::value(reason.clone()))
                .col_expr(messages::Column::UpdatedAt, Expr::value(now))
                .filter(messages::Column::MessageUuid.is_in(rows.iter().map(|r| r.message_uuid)))
                .filter(messages::Column::SendStatus.eq(MessageStatus::AwaitingConfirmation))
                .exec(&txn)
                .await?;
            let n = i32::try_from(moved).unwrap_or(i32::MAX);
            let (sent, failed, skipped) = match resolution {
                Resolution::Sent => (n, 0, 0),
                Resolution::Failed { .. } => (0, n, 0),
                Resolution::Cancelled => (0, 0, n),
            };
            let change = finish::CountChange {
                sent,
                failed,
                skipped,
                awaiting: -n,
            };
            finish::add_counts(&txn, task, run, change, now).await?;
            let moved = usize::try_from(moved).unwrap_or(0);
            match resolution {
                Resolution::Sent => report.sent += moved,
                Resolution::Failed { .. } => report.failed += moved,
                Resolution::Cancelled => report.cancelled += moved,
            }
            runs.insert(run);
        }
    }
    txn.commit().await?;
    for run in runs {
        finish::finish_if_done(ctx, run).await?;
    }
    Ok(report)
}
