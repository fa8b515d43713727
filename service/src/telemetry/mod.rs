//! Telemetry leaving the process: metric points to InfluxDB (or anything speaking its write
//! API) and log records to Elasticsearch or SQL, each batched, buffered and spooled by
//! `shipper`. Recording never waits; a target that is off costs nothing.

pub mod audit_ship;
pub mod capture;
pub mod elastic;
pub mod influx;
pub mod logs;
pub mod point;
pub mod shipper;
pub mod spool;
pub mod sql_logs;
pub mod sql_metrics;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use sea_orm::DatabaseConnection;

pub use logs::{LogDoc, LogKind};
pub use point::{FieldValue, Point};
use shipper::{Shipper, ShipperOptions};

use crate::config::Settings;

#[derive(Debug, Clone)]
pub struct Telemetry {
    /// Instance-scoped points into `instance_monitors` (always).
    sql_metrics: Shipper<Point>,
    metrics: Option<Shipper<Point>>,
    logs: Shipper<LogDoc>,
    /// Set when logs go to Elasticsearch: searches and retention use it too.
    pub elastic: Option<Arc<elastic::ElasticStore>>,
}

fn spool(dir: &str, max_mb: u64, key: &str) -> anyhow::Result<spool::Spool> {
    spool::Spool::open(dir, max_mb * 1024 * 1024).with_context(|| format!("opening `{key}` {dir}"))
}

impl Telemetry {
    /// Starts the shippers the settings turn on (needs a Tokio runtime).
    pub fn start(settings: &Settings, db: &DatabaseConnection) -> anyhow::Result<Self> {
        let influx = &settings.influxdb;
        let metrics = if influx.url.is_empty() {
            None
        } else {
            Some(Shipper::start(
                influx::InfluxTarget::new(influx)?,
                spool(&influx.spool_dir, influx.spool_max_mb, "influxdb.spool_dir")?,
                ShipperOptions {
                    batch_size: influx.batch_size,
                    flush_every: Duration::from_millis(influx.flush_interval_ms),
                    buffer: influx.batch_size * 20,
                    send_timeout: Duration::from_secs(10),
                },
            ))
        };
        let instances = &settings.instances;
        let sql_metrics = Shipper::start(
            sql_metrics::SqlMetricsTarget(db.clone()),
            spool(
                &instances.metrics_spool_dir,
                64,
                "instances.metrics_spool_dir",
            )?,
            ShipperOptions {
                batch_size: 5000,
                flush_every: Duration::from_secs(5),
                buffer: 100_000,
                send_timeout: Duration::from_secs(30),
            },
        );
        let es = &settings.elasticsearch;
        let options = ShipperOptions {
            batch_size: es.batch_size,
            flush_every: Duration::from_millis(es.flush_interval_ms),
            buffer: es.batch_size * 20,
            send_timeout: Duration::from_secs(30),
        };
        let logs_spool = spool(&es.spool_dir, es.spool_max_mb, "elasticsearch.spool_dir")?;
        let (logs, elastic) = if es.url.is_empty() {
            let target = sql_logs::SqlLogTarget(db.clone());
            (Shipper::start(target, logs_spool, options), None)
        } else {
            let store = Arc::new(elastic::ElasticStore::new(es)?);
            let target = elastic::ElasticTarget(store.clone());
            (Shipper::start(target, logs_spool, options), Some(store))
        };
        Ok(Self {
            sql_metrics,
            metrics,
            logs,
            elastic,
        })
    }

    /// Queues a metric point; never waits.
    pub fn metric(&self, point: Point) {
        if let Some(metrics) = &self.metrics {
            metrics.record(point.clone());
        }
        self.sql_metrics.record(point);
    }

    /// Queues a log record; never waits.
    pub fn log(&self, doc: LogDoc) {
        self.logs.record(doc);
    }

    /// The log shipper, for the process-wide tracing capture.
    pub fn log_shipper(&self) -> Shipper<LogDoc> {
        self.logs.clone()
    }

    /// Sends what is queued and replays spools (shutdown, tests); true when everything arrived.
    pub async fn flush(&self) -> bool {
        let metrics = match &self.metrics {
            Some(metrics) => metrics.flush().await,
            None => true,
        };
        let sql = self.sql_metrics.flush().await;
        self.logs.flush().await && metrics && sql
    }
}
