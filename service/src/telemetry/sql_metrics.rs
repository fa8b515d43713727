//! Metric points in SQL, the embedded default: instance-scoped fields become `instance_monitors`
//! rows (`{measurement}_{field}`), batched by the shipper — counters (`dispatch_sends`) summed
//! per instance, account and batch, gauges averaged per instance — so the health view has more
//! than heartbeat latency, and per-account send series, without an external store. Points about
//! no instance (task progress, queue depth) are left to InfluxDB; heartbeat latency is written
//! by the heartbeat itself.

use std::collections::{BTreeMap, HashSet};

use entity::{instance_monitors, wework_instances};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::{
    point::{FieldValue, Point},
    shipper::Target,
};

pub struct SqlMetricsTarget(pub DatabaseConnection);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    instance_id: i64,
    /// The sending account of a counter; spooled rows of older versions have none.
    #[serde(default)]
    account_id: Option<i64>,
    metric: String,
    value: f64,
    samples: i32,
    /// Milliseconds since the epoch of the batch's last point.
    at: i64,
}

fn numeric(value: &FieldValue) -> Option<f64> {
    match value {
        FieldValue::Float(v) if v.is_finite() => Some(*v),
        FieldValue::Int(v) => Some(*v as f64),
        FieldValue::Bool(v) => Some(f64::from(u8::from(*v))),
        _ => None,
    }
}

/// A positive id in tag `key` of the point.
fn id_tag(point: &Point, key: &str) -> Option<i64> {
    point
        .tags
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .filter(|id| *id > 0)
}

/// Rows for a batch of points: one per instance and metric, and per account for counters.
fn rows(points: &[Point]) -> Vec<Row> {
    // (sum, samples, last time) per (instance, metric, is counter, account)
    type Key = (i64, String, bool, Option<i64>);
    let mut acc: BTreeMap<Key, (f64, i32, i64)> = BTreeMap::new();
    for point in points {
        let Some(instance) = id_tag(point, "instance") else {
            continue;
        };
        let counter = point.measurement == "dispatch_sends";
        let account = if counter {
            id_tag(point, "account")
        } else {
            None
        };
        for (field, value) in &point.fields {
            if point.measurement == "instance_health" && *field == "latency_ms" {
                continue;
            }
            let Some(value) = numeric(value) else {
                continue;
            };
            let entry = acc
                .entry((
                    instance,
                    format!("{}_{field}", point.measurement),
                    counter,
                    account,
                ))
                .or_insert((0.0, 0, 0));
            entry.0 += value;
            entry.1 += 1;
            entry.2 = entry.2.max(point.time.timestamp_millis());
        }
    }
    acc.into_iter()
        .map(
            |((instance_id, metric, counter, account_id), (sum, n, at))| Row {
                instance_id,
                account_id,
                metric,
                value: if counter {
                    sum
                } else {
                    sum / f64::from(n.max(1))
                },
                samples: if counter { 1 } else { n },
                at,
            },
        )
        .collect()
}

#[async_trait::async_trait]
impl Target for SqlMetricsTarget {
    type Item = Point;

    fn name(&self) -> &'static str {
        "sql metrics"
    }

    fn encode(&self, items: &[Point]) -> Vec<u8> {
        let mut body = Vec::new();
        for row in rows(items) {
            if serde_json::to_writer(&mut body, &row).is_ok() {
                body.push(b'\n');
            }
        }
        body
    }

    async fn send(&self, body: Vec<u8>) -> anyhow::Result<()> {
        let rows: Vec<Row> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        // An instance deleted meanwhile must not make the batch fail for ever.
        let known: HashSet<i64> = wework_instances::Entity::find()
            .select_only()
            .column(wework_instances::Column::Id)
            .filter(wework_instances::Column::Id.is_in(rows.iter().map(|r| r.instance_id)))
            .into_tuple::<i64>()
            .all(&self.0)
            .await?
            .into_iter()
            .collect();
        let models: Vec<instance_monitors::ActiveModel> = rows
            .into_iter()
            .filter(|r| known.contains(&r.instance_id))
            .map(|r| instance_monitors::ActiveModel {
                instance_id: Set(r.instance_id),
                account_id: Set(r.account_id),
                metric_name: Set(r.metric.chars().take(50).collect()),
                metric_value: Set(r.value),
                metric_unit: Set(None),
                bucket_seconds: Set(0),
                sample_count: Set(r.samples),
                collected_at: Set(chrono::DateTime::from_timestamp_millis(r.at)
                    .unwrap_or_default()
                    .naive_utc()),
                ..Default::default()
            })
            .collect();
        for part in models.chunks(crate::db::INSERT_BATCH_ROWS) {
            instance_monitors::Entity::insert_many(part.to_vec())
                .exec_without_returning(&self.0)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn counters_are_summed_per_account_gauges_averaged_and_instance_less_points_left_out() {
        let now = Utc::now();
        let sends = |account, sent| {
            Point::new("dispatch_sends", now)
                .tag("instance", 7)
                .tag("account", account)
                .int("sent", sent)
        };
        let health = |online| {
            Point::new("instance_health", now)
                .tag("instance", 7)
                .bool("online", online)
                .int("latency_ms", 12)
        };
        let queue = Point::new("dispatch_queue", now).int("pending_receivers", 5);
        let mut got = rows(&[
            sends(1, 3),
            sends(2, 5),
            sends(1, 4),
            health(true),
            health(false),
            queue,
        ]);
        got.sort_by(|a, b| (&a.metric, a.account_id).cmp(&(&b.metric, b.account_id)));
        let summary: Vec<(i64, Option<i64>, &str, f64, i32)> = got
            .iter()
            .map(|r| {
                (
                    r.instance_id,
                    r.account_id,
                    r.metric.as_str(),
                    r.value,
                    r.samples,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (7, Some(1), "dispatch_sends_sent", 7.0, 1),
                (7, Some(2), "dispatch_sends_sent", 5.0, 1),
                (7, None, "instance_health_online", 0.5, 2),
            ]
        );
    }

    #[test]
    fn rows_spooled_before_accounts_existed_still_decode() {
        let old =
            br#"{"instance_id":7,"metric":"dispatch_sends_sent","value":3.0,"samples":1,"at":0}"#;
        let row: Row = serde_json::from_slice(old).unwrap();
        assert_eq!(row.account_id, None);
    }
}
