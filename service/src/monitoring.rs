//! The health view: an overview of instances, accounts, tasks and alerts, and metric series at a
//! chosen step, served from SQL — raw heartbeat samples for the recent past and five-minute
//! rollups (written by housekeeping) beyond it, so a month of history stays cheap to draw.

use crate::rbac::perm;
use entity::states::RunStatus;
use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use entity::{alert_records, instance_monitors, message_tasks, wework_accounts, wework_instances};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::{Context, ServiceResult, auth::actor::Actor, clock::to_utc, validate::Violations};

/// Width of a rollup bucket, seconds.
pub const ROLLUP_SECONDS: i32 = 300;
/// Metrics stored in SQL.
pub const METRICS: &[&str] = &[
    "heartbeat_latency_ms",
    "instance_health_online",
    "instance_health_missed_heartbeats",
    "instance_health_accounts",
    "instance_health_errors",
    "dispatch_sends_sent",
    "dispatch_sends_failed",
    "dispatch_sends_retried",
    "dispatch_sends_rate_limited",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Overview {
    /// Instances by status (online, offline, error, maintenance, unknown …) and in all.
    pub instances: BTreeMap<String, u64>,
    pub instances_total: u64,
    /// Accounts by status.
    pub accounts: BTreeMap<String, u64>,
    /// Message tasks by status.
    pub tasks: BTreeMap<String, u64>,
    /// Open alerts by level.
    pub open_alerts: BTreeMap<String, u64>,
    /// Runs sending now, and their receivers still to send (the queue depth).
    pub running_runs: u64,
    pub pending_receivers: u64,
    /// The customer-service desk's service levels.
    pub desk: crate::desk::levels::DeskServiceLevels,
}

async fn by_status<E, C>(
    ctx: &Context,
    status: C,
    deleted: Option<C>,
) -> ServiceResult<BTreeMap<String, u64>>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let mut query = E::find()
        .select_only()
        .column(status)
        .column_as(status.count(), "n")
        .group_by(status);
    if let Some(deleted) = deleted {
        query = query.filter(deleted.is_null());
    }
    let rows: Vec<(String, i64)> = query.into_tuple().all(&ctx.db).await?;
    Ok(rows
        .into_iter()
        .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
        .collect())
}

pub async fn overview(ctx: &Context, actor: &Actor) -> ServiceResult<Overview> {
    actor.require(perm::MonitoringRead)?;
    let instances = by_status::<wework_instances::Entity, _>(
        ctx,
        wework_instances::Column::Status,
        Some(wework_instances::Column::DeletedAt),
    )
    .await?;
    let accounts =
        by_status::<wework_accounts::Entity, _>(ctx, wework_accounts::Column::Status, None).await?;
    let tasks = by_status::<message_tasks::Entity, _>(
        ctx,
        message_tasks::Column::Status,
        Some(message_tasks::Column::DeletedAt),
    )
    .await?;
    let open: Vec<String> = alert_records::Entity::find()
        .select_only()
        .column(alert_records::Column::AlertLevel)
        .filter(alert_records::Column::ResolutionToken.eq(0))
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut open_alerts = BTreeMap::new();
    for level in open {
        *open_alerts.entry(level).or_insert(0) += 1;
    }
    let running = entity::message_task_runs::Entity::find()
        .filter(entity::message_task_runs::Column::Status.eq(RunStatus::Running))
        .all(&ctx.db)
        .await?;
    let pending_receivers = running
        .iter()
        .map(|r| {
            u64::try_from(
                r.target_count
                    - r.success_count
                    - r.fail_count
                    - r.skipped_count
                    - r.awaiting_count,
            )
            .unwrap_or(0)
        })
        .sum();
    Ok(Overview {
        desk: crate::desk::levels::current(ctx).await?,
        running_runs: running.len() as u64,
        pending_receivers,
        instances_total: instances.values().sum(),
        instances,
        accounts,
        tasks,
        open_alerts,
    })
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// heartbeat_latency_ms.
    pub metric: String,
    /// One instance; all instances together when absent.
    pub instance_id: Option<i64>,
    /// One sending account (`dispatch_sends_*` metrics only); all accounts when absent.
    pub account_id: Option<i64>,
    /// Inclusive start (RFC 3339; default: 24 hours before `to`).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end (RFC 3339; default: now).
    pub to: Option<DateTime<Utc>>,
    /// Seconds per point, 60–86400 (default 300); at most 2000 points per answer.
    pub step: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// Start of the step (a multiple of `step` seconds since the epoch).
    pub time: DateTime<Utc>,
    /// Average over the step, weighted by samples.
    pub avg: f64,
    /// Total over the step: what counters (`dispatch_sends_*`) are read by.
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub samples: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Series {
    pub metric: String,
    pub instance_id: Option<i64>,
    pub account_id: Option<i64>,
    pub step: i64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Steps without samples are left out.
    pub points: Vec<SeriesPoint>,
}

pub async fn series(ctx: &Context, actor: &Actor, query: SeriesQuery) -> ServiceResult<Series> {
    actor.require(perm::MonitoringRead)?;
    let to = query.to.unwrap_or_else(|| ctx.clock.now());
    let from = query.from.unwrap_or(to - TimeDelta::hours(24));
    let step = query.step.unwrap_or(300);
    let mut v = Violations::new();
    if !METRICS.contains(&query.metric.as_str()) {
        v.add("metric", format!("must be one of {}", METRICS.join(", ")));
    }
    if query.account_id.is_some() && !query.metric.starts_with("dispatch_sends_") {
        v.add(
            "account_id",
            "only the dispatch_sends_* metrics are kept per account",
        );
    }
    if !(60..=86_400).contains(&step) {
        v.add("step", "must be between 60 and 86400 seconds");
    }
    if from >= to {
        v.add("from", "must be before to");
    } else if (60..=86_400).contains(&step) && (to - from).num_seconds() / step > 2000 {
        v.add("step", "too small for the range: at most 2000 points");
    }
    v.finish()?;
    if let Some(id) = query.instance_id {
        actor.reach.check_instance(id, "instance")?;
    }
    // Steps are aligned to multiples of `step` since the epoch (as Grafana and Prometheus do),
    // so a five-minute rollup falls wholly in one step whenever `step` is a multiple of 300.
    let first = from.timestamp().div_euclid(step) * step;
    let aligned = DateTime::from_timestamp(first, 0).unwrap_or(from);
    let mut select = instance_monitors::Entity::find()
        .filter(instance_monitors::Column::MetricName.eq(query.metric.as_str()))
        .filter(instance_monitors::Column::CollectedAt.gte(aligned.naive_utc()))
        .filter(instance_monitors::Column::CollectedAt.lt(to.naive_utc()))
        .filter(
            actor
                .reach
                .on_instances(instance_monitors::Column::InstanceId),
        );
    if let Some(id) = query.instance_id {
        select = select.filter(instance_monitors::Column::InstanceId.eq(id));
    }
    if let Some(id) = query.account_id {
        select = select.filter(instance_monitors::Column::AccountId.eq(id));
    }
    // (weighted sum, samples, min, max) per step.
    let mut steps: BTreeMap<i64, (f64, i64, f64, f64)> = BTreeMap::new();
    let mut after = 0i64;
    loop {
        let rows = select
            .clone()
            .filter(instance_monitors::Column::Id.gt(after))
            .order_by_asc(instance_monitors::Column::Id)
            .limit(10_000)
            .all(&ctx.db)
            .await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            break;
        };
        after = last;
        for row in &rows {
            let index = to_utc(row.collected_at).timestamp().div_euclid(step);
            let n = i64::from(row.sample_count.max(1));
            let entry = steps
                .entry(index)
                .or_insert((0.0, 0, f64::INFINITY, f64::NEG_INFINITY));
            entry.0 += row.metric_value * n as f64;
            entry.1 += n;
            entry.2 = entry.2.min(row.metric_value);
            entry.3 = entry.3.max(row.metric_value);
        }
        if rows.len() < 10_000 {
            break;
        }
    }
    let points = steps
        .into_iter()
        .map(|(index, (sum, n, min, max))| SeriesPoint {
            time: DateTime::from_timestamp(index * step, 0).unwrap_or(aligned),
            avg: sum / n.max(1) as f64,
            sum,
            min,
            max,
            samples: n,
        })
        .collect();
    Ok(Series {
        metric: query.metric,
        instance_id: query.instance_id,
        account_id: query.account_id,
        step,
        from,
        to,
        points,
    })
}

/// (instance, account, metric, bucket number) of a rollup.
type BucketKey = (i64, Option<i64>, String, i64);
/// (weighted sum, samples, unit) of a rollup.
type Bucket = (f64, i32, Option<String>);

/// Folds raw samples older than `instances.raw_metrics_hours` into five-minute rollups (average
/// and sample count), oldest first, in one transaction per pass; returns the raw rows folded.
/// A bucket split over two passes gets two rollup rows, which `series` weighs together.
pub async fn roll_up(ctx: &Context, limit: u64) -> ServiceResult<u64> {
    let before = ctx.clock.now_db() - TimeDelta::hours(ctx.settings.instances.raw_metrics_hours);
    let rows = instance_monitors::Entity::find()
        .filter(instance_monitors::Column::BucketSeconds.eq(0))
        .filter(instance_monitors::Column::CollectedAt.lt(before))
        .order_by_asc(instance_monitors::Column::Id)
        .limit(limit)
        .all(&ctx.db)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut buckets: BTreeMap<BucketKey, Bucket> = BTreeMap::new();
    for row in &rows {
        let bucket = row
            .collected_at
            .and_utc()
            .timestamp()
            .div_euclid(i64::from(ROLLUP_SECONDS));
        let entry = buckets
            .entry((
                row.instance_id,
                row.account_id,
                row.metric_name.clone(),
                bucket,
            ))
            .or_insert((0.0, 0, row.metric_unit.clone()));
        let n = row.sample_count.max(1);
        entry.0 += row.metric_value * f64::from(n);
        entry.1 += n;
    }
    let txn = crate::db::begin(&ctx.db).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    for part in ids.chunks(500) {
        instance_monitors::Entity::delete_many()
            .filter(instance_monitors::Column::Id.is_in(part.iter().copied()))
            .exec(&txn)
            .await?;
    }
    let rollups: Vec<instance_monitors::ActiveModel> = buckets
        .into_iter()
        .map(|((instance, account, metric, bucket), (sum, n, unit))| {
            instance_monitors::ActiveModel {
                instance_id: Set(instance),
                account_id: Set(account),
                metric_name: Set(metric),
                metric_value: Set(sum / f64::from(n.max(1))),
                metric_unit: Set(unit),
                bucket_seconds: Set(ROLLUP_SECONDS),
                sample_count: Set(n),
                collected_at: Set(
                    DateTime::from_timestamp(bucket * i64::from(ROLLUP_SECONDS), 0)
                        .unwrap_or_default()
                        .naive_utc(),
                ),
                ..Default::default()
            }
        })
        .collect();
    for part in rollups.chunks(crate::db::INSERT_BATCH_ROWS) {
        instance_monitors::Entity::insert_many(part.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(rows.len() as u64)
}
