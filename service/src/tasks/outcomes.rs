//! What a broadcast did: replies attributed to it, the reply rate, how soon people answered,
//! opt-outs, and why sends failed or were skipped. A contact's inbound message within
//! `contacts.reply_window_hours` after a broadcast reached them is attributed to the last such
//! broadcast (single messages are service, not campaigns, and attract nothing).

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, TimeDelta};
use entity::{
    message_receivers, message_tasks,
    states::{ReceiverStatus, TaskType},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};

use super::find_visible;
use crate::{Context, ServiceResult, auth::actor::Actor, rbac::perm};

/// A reply counted on a broadcast's receiver, to emit as a metric once its transaction commits.
pub struct AttributedReply {
    receiver: message_receivers::Model,
    first: bool,
    opted_out: bool,
}

/// Counts a contact's inbound message as a reply to the last broadcast that reached them within
/// the window; `opted_out` when the message opted them out. Runs on the caller's connection (the
/// transaction that stores the message, so a retried event never counts twice).
pub async fn attribute_reply(
    ctx: &Context,
    conn: &impl ConnectionTrait,
    contact_id: i64,
    at: NaiveDateTime,
    opted_out: bool,
) -> ServiceResult<Option<AttributedReply>> {
    let window = TimeDelta::hours(ctx.settings.contacts.reply_window_hours);
    let receiver: Option<message_receivers::Model> = message_receivers::Entity::find()
        .join(
            JoinType::InnerJoin,
            message_receivers::Relation::MessageTasks.def(),
        )
        .filter(message_receivers::Column::ContactId.eq(contact_id))
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Sent))
        .filter(message_receivers::Column::SendTime.gte(at - window))
        .filter(message_receivers::Column::SendTime.lte(at))
        .filter(message_tasks::Column::TaskType.ne(TaskType::Single))
        .order_by_desc(message_receivers::Column::SendTime)
        .order_by_desc(message_receivers::Column::Id)
        .one(conn)
        .await?;
    let Some(receiver) = receiver else {
        return Ok(None);
    };
    let id = receiver.id;
    let mut update = message_receivers::Entity::update_many().col_expr(
        message_receivers::Column::ReplyCount,
        Expr::col(message_receivers::Column::ReplyCount).add(1),
    );
    if opted_out {
        update = update.col_expr(message_receivers::Column::OptedOutAt, Expr::value(Some(at)));
    }
    update
        .filter(message_receivers::Column::Id.eq(id))
        .exec(conn)
        .await?;
    // The first reply's time stays.
    let first = message_receivers::Entity::update_many()
        .col_expr(message_receivers::Column::RepliedAt, Expr::value(Some(at)))
        .filter(message_receivers::Column::Id.eq(id))
        .filter(message_receivers::Column::RepliedAt.is_null())
        .exec(conn)
        .await?
        .rows_affected
        == 1;
    Ok(Some(AttributedReply {
        receiver,
        first,
        opted_out,
    }))
}

impl AttributedReply {
    /// A reply as a metric point for the sinks (InfluxDB, VictoriaMetrics, the SQL store):
    /// replies, first replies (the receivers who replied) and opt-outs by task, template,
    /// account and variant, so dashboards chart outcomes over time without reading the
    /// receivers table.
    pub async fn emit(self, ctx: &Context) {
        let receiver = &self.receiver;
        let template = match super::find(&ctx.db, receiver.task_id).await {
            Ok(task) => task.template_id.map(|t| t.to_string()).unwrap_or_default(),
            Err(_) => String::new(),
        };
        ctx.telemetry.metric(
            crate::telemetry::Point::new("broadcast_replies", ctx.clock.now())
                .tag("task", receiver.task_id)
                .tag("template", template)
                .tag(
                    "account",
                    receiver
                        .account_id
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                )
                .tag("variant", receiver.variant.clone().unwrap_or_default())
                .int("replies", 1)
                .int("first_replies", i64::from(self.first))
                .int("opt_outs", i64::from(self.opted_out)),
        );
    }
}

/// `part / whole`, 0 when nothing was sent.
pub fn rate(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// A task's (or one run's) results.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskOutcomes {
    /// Receivers the messages reached.
    pub sent: i64,
    /// Of those, receivers who replied within the window.
    pub replied: i64,
    /// `replied / sent` (0 when nothing was sent).
    pub reply_rate: f64,
    /// Replies in all (a receiver may reply more than once).
    pub replies: i64,
    /// Median and 90th percentile of the time from the send to the first reply, in seconds.
    pub first_reply_p50_seconds: Option<i64>,
    pub first_reply_p90_seconds: Option<i64>,
    /// Receivers who opted out (退订) in a reply to this task.
    pub opt_outs: i64,
    /// Failed receivers by error code.
    pub failed_by_reason: BTreeMap<String, i64>,
    /// Skipped receivers by reason (`unsubscribed`, `blocked`, `frequency_cap`, …).
    pub skipped_by_reason: BTreeMap<String, i64>,
    /// How long after the send receivers replied: 0–1 h, 1–6 h, 6–24 h, 24 h and more.
    pub first_reply_histogram: BTreeMap<String, i64>,
    /// Per A/B variant (empty without variants).
    pub variants: Vec<super::variants::VariantOutcome>,
    /// The two best variants compared (absent with fewer than two).
    pub significance: Option<super::variants::Significance>,
    /// Receivers still held back for an A/B test's winner.
    pub variant_held: i64,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutcomeFilter {
    /// Only this run of a recurring task (default: every run).
    pub run_id: Option<i64>,
}

pub async fn outcomes(
    ctx: &Context,
    actor: &Actor,
    task_id: i64,
    filter: OutcomeFilter,
) -> ServiceResult<TaskOutcomes> {
    actor.require(perm::TasksRead)?;
    let task = find_visible(&ctx.db, actor, task_id).await?;
    // The counts are a report: the read replica, when there is one, serves them, all from one
    // snapshot so that they agree with each other while replies come in.
    let snapshot = crate::db::snapshot(&ctx.read_db).await?;
    let variants = super::variants::outcomes(&snapshot, &task, filter.run_id).await?;
    let scoped = || {
        let mut q =
            message_receivers::Entity::find().filter(message_receivers::Column::TaskId.eq(task_id));
        if let Some(run) = filter.run_id {
            q = q.filter(message_receivers::Column::RunId.eq(run));
        }
        q
    };
    let sent: Vec<(i64, i64, i64)> = scoped()
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Sent))
        .select_only()
        .column_as(message_receivers::Column::Id.count(), "sent")
        .column_as(message_receivers::Column::RepliedAt.count(), "replied")
        .column_as(message_receivers::Column::OptedOutAt.count(), "opt_outs")
        .into_tuple()
        .all(&snapshot)
        .await?;
    let (sent, replied, opt_outs) = sent.first().copied().unwrap_or_default();
    // Only the receivers who replied are read: two timestamps and a count each.
    let timings: Vec<(NaiveDateTime, NaiveDateTime, i32)> = scoped()
        .filter(message_receivers::Column::RepliedAt.is_not_null())
        .filter(message_receivers::Column::SendTime.is_not_null())
        .select_only()
        .column(message_receivers::Column::SendTime)
        .column(message_receivers::Column::RepliedAt)
        .column(message_receivers::Column::ReplyCount)
        .into_tuple()
        .all(&snapshot)
        .await?;
    let replies: i64 = timings.iter().map(|(_, _, n)| i64::from(*n)).sum();
    let mut waits: Vec<i64> = timings
        .iter()
        .map(|(sent, replied, _)| Ord::max((*replied - *sent).num_seconds(), 0))
        .collect();
    waits.sort_unstable();
    let report = TaskOutcomes {
        sent,
        replied,
        reply_rate: rate(replied, sent),
        replies,
        first_reply_p50_seconds: percentile(&waits, 50),
        first_reply_p90_seconds: percentile(&waits, 90),
        opt_outs,
        failed_by_reason: by_reason(
            &snapshot,
            scoped().filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Failed)),
            message_receivers::Column::ErrorCode,
        )
        .await?,
        skipped_by_reason: by_reason(
            &snapshot,
            scoped().filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Skipped)),
            message_receivers::Column::SkipReason,
        )
        .await?,
        first_reply_histogram: histogram(&waits),
        variant_held: if variants.is_empty() {
            0
        } else {
            scoped()
                .filter(message_receivers::Column::Variant.eq(super::variants::HOLD))
                .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Pending))
                .count(&snapshot)
                .await? as i64
        },
        significance: super::variants::significance(&variants),
        variants,
    };
    snapshot.commit().await?;
    Ok(report)
}

async fn by_reason(
    conn: &impl ConnectionTrait,
    query: sea_orm::Select<message_receivers::Entity>,
    column: message_receivers::Column,
) -> ServiceResult<BTreeMap<String, i64>> {
    let rows: Vec<(Option<String>, i64)> = query
        .select_only()
        .column(column)
        .column_as(message_receivers::Column::Id.count(), "n")
        .group_by(column)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(reason, n)| (reason.unwrap_or_else(|| "unknown".into()), n))
        .collect())
}

/// The `p`-th percentile of sorted values (nearest rank).
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn histogram(waits: &[i64]) -> BTreeMap<String, i64> {
    let buckets = [("0-1h", 3600), ("1-6h", 6 * 3600), ("6-24h", 24 * 3600)];
    let mut out: BTreeMap<String, i64> = buckets.iter().map(|(k, _)| ((*k).into(), 0)).collect();
    out.insert("24h+".into(), 0);
    for w in waits {
        let key = buckets
            .iter()
            .find(|(_, limit)| w < limit)
            .map_or("24h+", |(k, _)| k);
        *out.entry(key.into()).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let waits: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&waits, 50), Some(5));
        assert_eq!(percentile(&waits, 90), Some(9));
    }

    #[test]
    fn replies_fall_into_time_buckets() {
        let h = histogram(&[10, 3599, 3600, 7 * 3600, 30 * 3600]);
        assert_eq!(h["0-1h"], 2);
        assert_eq!(h["1-6h"], 1);
        assert_eq!(h["6-24h"], 1);
        assert_eq!(h["24h+"], 1);
    }
}
