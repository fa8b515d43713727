//! Layered configuration: embedded defaults → optional `wework.toml` → `WEWORK__…` environment.

use std::{net::IpAddr, path::Path};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::SecretString;
use serde::Deserialize;

/// The documented defaults, compiled into the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../config.default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub secrets: SecretSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub influxdb: InfluxSettings,
    pub elasticsearch: ElasticSettings,
    pub outbound: crate::net::ssrf::OutboundSettings,
    pub instances: InstanceSettings,
    pub contacts: ContactSettings,
    pub dispatch: DispatchSettings,
    pub worker: WorkerSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSettings {
    pub default_rate_per_minute: u32,
    pub instance_rate_per_minute: u32,
    pub rate_limits: bool,
    pub chunk_size: u64,
    pub concurrency: usize,
    pub jobs_in_flight: usize,
    pub chains_per_run: u32,
    pub job_slice_ms: u64,
    pub lease_secs: i64,
    pub max_slot_wait_secs: u64,
    pub contact_daily_cap: u32,
    pub customer_monthly_quota: u32,
    pub mass_chunk_size: u64,
    pub confirm_poll_secs: u64,
    pub confirm_timeout_hours: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSettings {
    pub import_max_bytes: usize,
    /// Inbound texts that opt a contact out of marketing broadcasts (exact, after trimming,
    /// full-width and case folded).
    pub opt_out_keywords: Vec<String>,
    /// Sent back to a contact who opted out by message; empty for no reply.
    pub opt_out_reply: String,
    /// Hours after a broadcast reached a contact during which their messages count as replies
    /// to it (the last broadcast that reached them).
    pub reply_window_hours: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSettings {
    pub offline_after_missed: i32,
    pub auto_sync_minutes: i64,
    pub heartbeat_timeout_secs: u64,
    pub metrics_retention_days: i64,
    pub raw_metrics_hours: i64,
    pub metrics_spool_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    pub workers: usize,
    pub trusted_proxies: Vec<IpAddr>,
    pub public_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    /// A read replica of `url` for lists, search and reports; empty: everything reads `url`.
    pub read_url: SecretString,
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout_secs: u64,
    pub auto_migrate: bool,
    /// SQLite only: pages the write-ahead log may hold before a commit copies them into the
    /// database file (SQLite's `wal_autocheckpoint`, 1,000 by default).
    pub sqlite_wal_autocheckpoint_pages: u32,
}

/// Where logs go instead of SQL; `url` empty keeps them in SQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticSettings {
    pub url: String,
    pub username: String,
    pub password: SecretString,
    /// Base64 `id:key` API key; wins over username/password.
    pub api_key: SecretString,
    pub index_prefix: String,
    pub analyzer: String,
    pub retention_days: i64,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub spool_dir: String,
    pub spool_max_mb: u64,
}

/// Where metric points go besides SQL; `url` empty turns it off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxSettings {
    pub url: String,
    /// "v2" (InfluxDB 2/3 and compatible stores: org, bucket, token) or "v1" (InfluxDB 1.x).
    pub api: String,
    pub org: String,
    pub bucket: String,
    pub token: SecretString,
    pub database: String,
    pub username: String,
    pub password: SecretString,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub spool_dir: String,
    pub spool_max_mb: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: SecretString,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub access_token_ttl_secs: i64,
    pub refresh_idle_secs: i64,
    pub session_absolute_secs: i64,
    pub refresh_reuse_grace_secs: i64,
    pub lockout_threshold: i32,
    pub lockout_minutes: i64,
    pub ip_failures_per_minute: u32,
    pub totp_issuer: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    pub master_key: SecretString,
    pub master_key_file: String,
    /// Earlier master keys (base64), for opening values sealed under them while a rotation is
    /// under way; nothing is sealed under them.
    #[serde(default)]
    pub previous_keys: Vec<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub bearer_token: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub housekeeping_interval_secs: u64,
    pub log_retention_days: i64,
    /// 0: kept for ever.
    pub message_retention_days: i64,
    /// 0: kept for ever; otherwise longer than the longest frequency-cap window.
    pub receiver_retention_days: i64,
    pub queue_path: String,
    pub alert_interval_secs: u64,
}

/// Batching and spooling keys shared by the telemetry sections.
fn check_shipping(
    section: &str,
    batch_size: usize,
    flush_interval_ms: u64,
    spool_max_mb: u64,
) -> Result<(), ConfigError> {
    let fail = |key: &str, why: &str| Err(ConfigError(format!("`{section}.{key}`: {why}")));
    if !(1..=100_000).contains(&batch_size) {
        return fail("batch_size", "must be between 1 and 100000");
    }
    if flush_interval_ms < 10 {
        return fail("flush_interval_ms", "must be at least 10");
    }
    if spool_max_mb == 0 {
        return fail("spool_max_mb", "must be at least 1");
    }
    Ok(())
}

/// A configuration problem, always naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Which database family a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once("://")?.0;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "mysql" | "mariadb" => Some(Self::MySql),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (when given and present, or required when `file_required`),
    /// then the environment.
    pub fn load(file: Option<&Path>, file_required: bool) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        if let Some(path) = file {
            if path.exists() {
                figment = figment.merge(Toml::file(path));
            } else if file_required {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
        }
        Self::from_figment(figment.merge(Env::prefixed("WEWORK__").split("__")))
    }

    /// Loads from explicit TOML text layered over the defaults (tests and tools).
    pub fn from_toml(overrides: &str) -> Result<Self, ConfigError> {
        Self::from_figment(
            Figment::from(Toml::string(DEFAULT_CONFIG)).merge(Toml::string(overrides)),
        )
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment.extract().map_err(|e| ConfigError(describe(&e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let fail = |key: &str, why: &str| Err(ConfigError(format!("`{key}`: {why}")));
        if Backend::from_url(self.database.url.expose_secret()).is_none() {
            return fail(
                "database.url",
                "must start with sqlite://, mysql:// or postgres://",
            );
        }
        let read_url = self.database.read_url.expose_secret();
        if !read_url.is_empty()
            && Backend::from_url(read_url) != Backend::from_url(self.database.url.expose_secret())
        {
            return fail(
                "database.read_url",
                "must be empty or a replica of the same kind of database as database.url",
            );
        }
        let influx = &self.influxdb;
        if !influx.url.is_empty() {
            if !(influx.url.starts_with("http://") || influx.url.starts_with("https://")) {
                return fail("influxdb.url", "must start with http:// or https://");
            }
            match influx.api.as_str() {
                "v2" if influx.org.is_empty() || influx.bucket.is_empty() => {
                    return fail("influxdb.bucket", "org and bucket are required with api v2");
                }
                "v1" if influx.database.is_empty() => {
                    return fail("influxdb.database", "is required with api v1");
                }
                "v1" | "v2" => {}
                _ => return fail("influxdb.api", "must be \"v2\" or \"v1\""),
            }
            check_shipping(
                "influxdb",
                influx.batch_size,
                influx.flush_interval_ms,
                influx.spool_max_mb,
            )?;
        }
        let es = &self.elasticsearch;
        if !(es.url.is_empty() || es.url.starts_with("http://") || es.url.starts_with("https://")) {
            return fail("elasticsearch.url", "must start with http:// or https://");
        }
        let valid_prefix = !es.index_prefix.is_empty()
            && es
                .index_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_prefix {
            return fail(
                "elasticsearch.index_prefix",
                "must be lowercase letters, digits, - or _",
            );
        }
        if es.retention_days < 1 {
            return fail("elasticsearch.retention_days", "must be at least 1");
        }
        check_shipping(
            "elasticsearch",
            es.batch_size,
            es.flush_interval_ms,
            es.spool_max_mb,
        )?;
        if self.database.max_connections == 0 {
            return fail("database.max_connections", "must be at least 1");
        }
        if !(100..=1_000_000).contains(&self.database.sqlite_wal_autocheckpoint_pages) {
            return fail(
                "database.sqlite_wal_autocheckpoint_pages",
                "must be between 100 and 1000000",
            );
        }
        if self.database.min_connections > self.database.max_connections {
            return fail(
                "database.min_connections",
                "must not exceed database.max_connections",
            );
        }
        let redis = self.redis.url.expose_secret();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return fail(
                "redis.url",
                "must be empty or start with redis:// or rediss://",
            );
        }
        if self.server.max_body_bytes < 1024 {
            return fail("server.max_body_bytes", "must be at least 1024");
        }
        let a = &self.auth;
        for (key, value) in [
            ("auth.access_token_ttl_secs", a.access_token_ttl_secs),
            ("auth.refresh_idle_secs", a.refresh_idle_secs),
            ("auth.session_absolute_secs", a.session_absolute_secs),
            ("auth.lockout_minutes", a.lockout_minutes),
        ] {
            if value <= 0 {
                return fail(key, "must be greater than 0");
            }
        }
        if a.refresh_reuse_grace_secs < 0 {
            return fail("auth.refresh_reuse_grace_secs", "must not be negative");
        }
        if a.lockout_threshold < 1 {
            return fail("auth.lockout_threshold", "must be at least 1");
        }
        if a.ip_failures_per_minute < 1 {
            return fail("auth.ip_failures_per_minute", "must be at least 1");
        }
        if let Err(e) = crate::net::ssrf::OutboundPolicy::new(&self.outbound) {
            return Err(ConfigError(e));
        }
        if self.instances.offline_after_missed < 1 {
            return fail("instances.offline_after_missed", "must be at least 1");
        }
        if self.instances.heartbeat_timeout_secs == 0 {
            return fail("instances.heartbeat_timeout_secs", "must be at least 1");
        }
        let d = &self.dispatch;
        if d.default_rate_per_minute == 0 {
            return fail("dispatch.default_rate_per_minute", "must be at least 1");
        }
        if !(1..=1000).contains(&d.chunk_size) {
            return fail("dispatch.chunk_size", "must be between 1 and 1000");
        }
        if !(1..=256).contains(&d.concurrency) {
            return fail("dispatch.concurrency", "must be between 1 and 256");
        }
        if !(1..=256).contains(&d.jobs_in_flight) {
            return fail("dispatch.jobs_in_flight", "must be between 1 and 256");
        }
        if !(1..=64).contains(&d.chains_per_run) {
            return fail("dispatch.chains_per_run", "must be between 1 and 64");
        }
        if !(100..=60_000).contains(&d.job_slice_ms) {
            return fail("dispatch.job_slice_ms", "must be between 100 and 60000");
        }
        if d.lease_secs < 10 {
            return fail("dispatch.lease_secs", "must be at least 10");
        }
        // One chunk becomes one WeCom mass message, which takes at most 2000 group chats.
        if !(1..=2000).contains(&d.mass_chunk_size) {
            return fail("dispatch.mass_chunk_size", "must be between 1 and 2000");
        }
        if d.confirm_poll_secs == 0 {
            return fail("dispatch.confirm_poll_secs", "must be at least 1");
        }
        if d.confirm_timeout_hours < 1 {
            return fail("dispatch.confirm_timeout_hours", "must be at least 1");
        }
        let keywords = &self.contacts.opt_out_keywords;
        if keywords.len() > 50
            || keywords
                .iter()
                .any(|k| k.trim().is_empty() || k.chars().count() > 50)
        {
            return fail(
                "contacts.opt_out_keywords",
                "at most 50 keywords of 1 to 50 characters",
            );
        }
        if !(1..=720).contains(&self.contacts.reply_window_hours) {
            return fail("contacts.reply_window_hours", "must be between 1 and 720");
        }
        if self.contacts.opt_out_reply.chars().count() > 2000 {
            return fail("contacts.opt_out_reply", "at most 2000 characters");
        }
        if self.worker.housekeeping_interval_secs == 0 {
            return fail("worker.housekeeping_interval_secs", "must be at least 1");
        }
        if !(1..=3600).contains(&self.worker.alert_interval_secs) {
            return fail("worker.alert_interval_secs", "must be between 1 and 3600");
        }
        if self.worker.queue_path.trim().is_empty() {
            return fail("worker.queue_path", "must name a file");
        }
        if self.instances.metrics_spool_dir.trim().is_empty() {
            return fail("instances.metrics_spool_dir", "must name a directory");
        }
        if !(1..=720).contains(&self.instances.raw_metrics_hours) {
            return fail("instances.raw_metrics_hours", "must be between 1 and 720");
        }
        if self.worker.log_retention_days < 1 {
            return fail("worker.log_retention_days", "must be at least 1");
        }
        if self.worker.message_retention_days < 0 {
            return fail("worker.message_retention_days", "must be 0 (keep) or more");
        }
        let receivers = self.worker.receiver_retention_days;
        if receivers != 0 && receivers < 32 {
            return fail(
                "worker.receiver_retention_days",
                "must be 0 (keep) or at least 32: frequency caps look back up to 31 days",
            );
        }
        Ok(())
    }

    /// The database family and host, never the credentials.
    pub fn backend_label(&self) -> String {
        use secrecy::ExposeSecret;
        let url = self.database.url.expose_secret();
        let host = url
            .split_once('@')
            .map_or(url.split('?').next().unwrap_or(url), |(_, rest)| rest);
        format!("{:?} ({host})", self.backend())
    }

    pub fn backend(&self) -> Backend {
        use secrecy::ExposeSecret;
        Backend::from_url(self.database.url.expose_secret()).unwrap_or(Backend::Sqlite)
    }
}

/// Renders figment's error with the dotted key path, which is what an operator needs to see.
fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                "(root)".to_owned()
            } else {
                e.path.join(".")
            };
            format!("`{key}`: {}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_use_embedded_sqlite() {
        let settings = Settings::from_toml("").expect("defaults are valid");
        assert_eq!(settings.backend(), Backend::Sqlite);
        assert_eq!(settings.auth.lockout_threshold, 5);
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Settings::from_toml("[server]\nport = \"eighty\"").expect_err("must fail");
        assert!(err.to_string().contains("server.port"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let err = Settings::from_toml("[server]\nprot = 1").expect_err("must fail");
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn bad_database_scheme_names_the_key() {
        let err = Settings::from_toml("[database]\nurl = \"oracle://x\"").expect_err("must fail");
        assert!(err.to_string().contains("database.url"), "{err}");
    }

    #[test]
    fn the_sqlite_checkpoint_size_is_bounded_and_named() {
        for pages in [0, 99, 1_000_001] {
            let err = Settings::from_toml(&format!(
                "[database]\nsqlite_wal_autocheckpoint_pages = {pages}"
            ))
            .expect_err("must fail");
            assert!(
                err.to_string()
                    .contains("database.sqlite_wal_autocheckpoint_pages"),
                "{err}"
            );
        }
        let ok = Settings::from_toml("[database]\nsqlite_wal_autocheckpoint_pages = 1000").unwrap();
        assert_eq!(ok.database.sqlite_wal_autocheckpoint_pages, 1000);
        assert_eq!(
            Settings::from_toml("")
                .unwrap()
                .database
                .sqlite_wal_autocheckpoint_pages,
            10_000
        );
    }

    #[test]
    fn a_read_replica_must_be_the_same_kind_of_database() {
        let err = Settings::from_toml(
            "[database]\nurl = \"sqlite://./w.db\"\nread_url = \"postgres://replica/w\"",
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("database.read_url"), "{err}");
        let ok = Settings::from_toml(
            "[database]\nurl = \"postgres://primary/w\"\nread_url = \"postgres://replica/w\"",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn receiver_retention_outlasts_the_longest_frequency_cap() {
        let err =
            Settings::from_toml("[worker]\nreceiver_retention_days = 30").expect_err("must fail");
        assert!(
            err.to_string().contains("worker.receiver_retention_days"),
            "{err}"
        );
        for ok in [
            "receiver_retention_days = 0",
            "receiver_retention_days = 32",
        ] {
            let settings = Settings::from_toml(&format!("[worker]\n{ok}"));
            assert!(settings.is_ok(), "{ok}: {settings:?}");
        }
    }

    #[test]
    fn backend_detection() {
        assert_eq!(Backend::from_url("mysql://root@h/db"), Some(Backend::MySql));
        assert_eq!(
            Backend::from_url("postgres://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), None);
    }
}
