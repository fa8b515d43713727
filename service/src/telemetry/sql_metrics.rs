//! Metric points in SQL, the embedded default: instance-scoped fields become `instance_monitors`
//! rows (`{measurement}_{field}`), batched by the shipper — counters (`dispatch_sends`) summed
//! per instance and batch, gauges averaged — so the health view has more than heartbeat latency
//! without an external store. Points about no instance (task progress, queue depth) are left to
//! InfluxDB; heartbeat latency is written by the heartbeat itself.

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

/// Rows for a batch of points: one per instance and metric.
fn rows(points: &[Point]) -> Vec<Row> {
    // (sum, samples, last time) per (instance, metric, is counter)
    let mut acc: BTreeMap<(i64, String, bool), (f64, i32, i64)> = BTreeMap::new();
    for point in points {
        let Some(instance) = point
            .tags
            .iter()
            .find(|(k, _)| *k == "instance")
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .filter(|id| *id > 0)
        else {
            continue;
        };
        let counter = point.measurement == "dispatch_sends";
        for (field, value) in &point.fields {
            if point.measurement == "instance_health" && *field == "latency_ms" {
                continue;
            }
            let Some(value) = numeric(value) else {
                continue;
            };
            let entry = acc
                .entry((instance, format!("{}_{field}", point.measurement), counter))
                .or_insert((0.0, 0, 0));
            entry.0 += value;
            entry.1 += 1;
            entry.2 = entry.2.max(point.time.timestamp_millis());
        }
    }
    acc.into_iter()
        .map(|((instance_id, metric, counter), (sum, n, at))| Row {
            instance_id,
            metric,
            value: if counter {
                sum
            } else {
                sum / f64::from(n.max(1))
            },
            samples: if counter { 1 } else { n },
            at,
        })
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
    fn counters_are_summed_gauges_averaged_and_instance_less_points_left_out() {
        let now = Utc::now();
        let sends = |sent| {
            Point::new("dispatch_sends", now)
                .tag("instance", 7)
                .tag("account", 1)
                .int("sent", sent)
        };
        let health = |online| {
            Point::new("instance_health", now)
                .tag("instance", 7)
                .bool("online", online)
                .int("latency_ms", 12)
        };
        let queue = Point::new("dispatch_queue", now).int("pending_receivers", 5);
        let mut got = rows(&[sends(3), sends(4), health(true), health(false), queue]);
        got.sort_by(|a, b| a.metric.cmp(&b.metric));
        let summary: Vec<(i64, &str, f64, i32)> = got
            .iter()
            .map(|r| (r.instance_id, r.metric.as_str(), r.value, r.samples))
            .collect();
        assert_eq!(
            summary,
            vec![
                (7, "dispatch_sends_sent", 7.0, 1),
                (7, "instance_health_online", 0.5, 2),
            ]
        );
    }
}
