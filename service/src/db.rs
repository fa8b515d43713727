//! Connections: the SQL database, Redis, and the master key that seals secrets.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use secrecy::ExposeSecret;

use crate::{
    config::{DatabaseSettings, SecretSettings},
    crypto::sealer::Sealer,
};

/// Rows per multi-row INSERT on the hot paths (receivers, outbound messages). Measured: the
/// client-side cost of one statement grows faster than its parameter count, so 50 rows of ~20
/// columns beat 200–250 rows by 3–4× on PostgreSQL (docs/benchmarks.md).
pub const INSERT_BATCH_ROWS: usize = 50;

/// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN IMMEDIATE`,
/// waiting for it (busy timeout) if another connection writes: a deferred transaction that reads
/// first would instead fail at its first write whenever another connection — a background log
/// or metric batch, say — committed in between (SQLITE_BUSY_SNAPSHOT). Other databases ignore the
/// mode.
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Starts a transaction at read committed, for claiming rows with `FOR UPDATE SKIP LOCKED`:
/// its locking reads lock the rows they return and not the gaps beside them. Under InnoDB's
/// default repeatable read they also lock gaps, and two claims, each inserting the rows it
/// leased into an index gap the other had locked, deadlocked (MariaDB, 100,000 receivers:
/// about 50 failed dispatch jobs a run). PostgreSQL's default is read committed already (no
/// `SET TRANSACTION` round trip there); SQLite has one writer and no level.
pub async fn begin_read_committed(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let mysql = db.get_database_backend() == sea_orm::DatabaseBackend::MySql;
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        isolation_level: mysql.then_some(sea_orm::IsolationLevel::ReadCommitted),
        ..TransactionOptions::default()
    })
    .await
}

/// Turns at SQLite's single write lock for the dispatch chains' writes (a chunk's claim and its
/// record). A connection that finds the lock taken waits in SQLite's busy handler, which sleeps
/// in steps of up to 100 ms, so the lock sat free while the next writer slept: with four
/// chains a chunk's p99 was 0.8 s. Here they queue in the order they asked and each starts as
/// the one before it finishes. (A pool of one connection for these writes did the same for the
/// p99 but sent 16% fewer receivers a second at a million.) Other databases lock rows: no
/// turns there.
#[derive(Clone)]
pub struct WriteTurns(Option<Arc<tokio::sync::Mutex<()>>>);

impl WriteTurns {
    pub fn for_backend(backend: sea_orm::DatabaseBackend) -> Self {
        Self((backend == sea_orm::DatabaseBackend::Sqlite).then(Default::default))
    }

    /// Waits for this writer's turn (at once on other databases); the turn ends when the guard
    /// is dropped.
    pub async fn take(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.0 {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        }
    }
}

/// Runs a transaction again when it lost a lock conflict (a deadlock on MySQL, a busy SQLite,
/// a serialization failure): such a transaction changed nothing, so running it again is safe
/// when its writes are conditional. Up to four retries, 25 ms apart and growing.
pub async fn retry_lock_conflicts<T, F, Fut>(
    what: &str,
    mut attempt_once: F,
) -> crate::ServiceResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::ServiceResult<T>>,
{
    let mut attempt = 0u64;
    loop {
        match attempt_once().await {
            Err(e) if attempt < 4 && e.is_lock_conflict() => {
                attempt += 1;
                tracing::debug!(attempt, error = %e, "{what} retried after a lock conflict");
                tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Opens the pool. SQLite gets WAL, a busy timeout and foreign keys, and its directory is created,
/// so the embedded default works on a machine with nothing installed.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DatabaseConnection> {
    connect_to(settings, settings.url.expose_secret(), "database.url").await
}

/// The pool for reads that may lag (`database.read_url`), or the primary's when none is set.
pub async fn connect_reader(
    settings: &DatabaseSettings,
    primary: &DatabaseConnection,
) -> anyhow::Result<DatabaseConnection> {
    match settings.read_url.expose_secret() {
        "" => Ok(primary.clone()),
        url => connect_to(settings, url, "database.read_url").await,
    }
}

async fn connect_to(
    settings: &DatabaseSettings,
    url: &str,
    key: &str,
) -> anyhow::Result<DatabaseConnection> {
    let url = url.to_owned();
    if let Some(path) = sqlite_path(&url)
        && let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the SQLite directory {}", dir.display()))?;
    }
    let wal_pages = settings.sqlite_wal_autocheckpoint_pages.to_string();
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // A page written many times between two checkpoints is copied into the file
                // once: a million-receiver broadcast rewrites index pages all through.
                .pragma("wal_autocheckpoint", wal_pages.clone())
        })
        // Prepared statements are planned for their parameters every time. PostgreSQL's
        // generic plan (chosen after five runs) cannot see that one account holds most
        // contacts or how long an IN list is: sync's lookup of a page's ids by account and wxid
        // fell to a scan of the account's contacts per page, quadratic in their number
        // (docs/benchmarks.md, sync). Bulk writes opt back into cached plans (`reuse_plans`).
        .map_sqlx_postgres_opts(|opts| opts.options([("plan_cache_mode", "force_custom_plan")]));
    let db = Database::connect(options).await.with_context(|| {
        format!("connecting to `{key}` (check the address, credentials and that the server runs)")
    })?;
    if db.get_database_backend() == sea_orm::DatabaseBackend::MySql {
        let version: Option<String> = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::MySql,
                "SELECT VERSION()",
            ))
            .await?
            .map(|row| row.try_get_by_index(0))
            .transpose()?;
        if let Some(problem) = version.as_deref().and_then(mysql_too_old) {
            anyhow::bail!("`{key}`: {problem}");
        }
    }
    Ok(db)
}

/// Why a MySQL or MariaDB server of this `VERSION()` cannot run wework, if it cannot: claims
/// lock with `SKIP LOCKED` and the access log is written through `JSON_TABLE`, which MySQL has
/// from 8.0 and MariaDB from 10.6. An older server would start and then fail every log batch.
fn mysql_too_old(version: &str) -> Option<String> {
    // Some MariaDB servers put the protocol's "5.5.5-" before their real version.
    let real = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mariadb = real.to_ascii_lowercase().contains("mariadb");
    let mut numbers = real
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    let (name, needed) = if mariadb {
        ("MariaDB", (10, 6))
    } else {
        ("MySQL", (8, 0))
    };
    (found < needed).then(|| {
        format!(
            "{name} {real} is older than {}.{}, the oldest wework runs on (it needs `SKIP LOCKED` \
             and `JSON_TABLE`): upgrade the server",
            needed.0, needed.1
        )
    })
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Connects to Redis. While Redis is down a command fails within a few hundred milliseconds
/// (two quick reconnect attempts, then the caller's fallback: in-process throttling and rate
/// limits, a paused dispatch queue) instead of waiting out the client's default ~10 s of
/// reconnect backoff on every request; the next command tries to reconnect again.
pub async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).context("parsing `redis.url`")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(250))
        .set_connection_timeout(Some(Duration::from_secs(1)));
    let manager = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_connection_manager_with_config(config),
    )
    .await
    .context("connecting to `redis.url` timed out")?
    .context("connecting to `redis.url`")?;
    Ok(manager)
}

/// The master key from `secrets.master_key`, or from `secrets.master_key_file`, creating that file
/// (mode 0600) with a fresh key on first start.
pub fn load_master_key(settings: &SecretSettings) -> anyhow::Result<Sealer> {
    let mut sealer = load_current_key(settings)?;
    for (i, key) in settings.previous_keys.iter().enumerate() {
        let older = Sealer::from_base64(key.expose_secret())
            .with_context(|| format!("`secrets.previous_keys[{i}]`"))?;
        sealer = sealer.opening_also(&older);
    }
    Ok(sealer)
}

fn load_current_key(settings: &SecretSettings) -> anyhow::Result<Sealer> {
    let inline = settings.master_key.expose_secret();
    if !inline.is_empty() {
        return Sealer::from_base64(inline).context("`secrets.master_key`");
    }
    let path = Path::new(&settings.master_key_file);
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        write_private(path, &Sealer::generate_key())
            .with_context(|| format!("creating `secrets.master_key_file` {}", path.display()))?;
        tracing::warn!(path = %path.display(), "generated a new master key; back it up, sealed secrets cannot be read without it");
    }
    let key = std::fs::read_to_string(path)
        .with_context(|| format!("reading `secrets.master_key_file` {}", path.display()))?;
    Sealer::from_base64(&key)
        .with_context(|| format!("`secrets.master_key_file` {}", path.display()))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

/// A read-only transaction whose reads all see one snapshot, for reports whose figures must agree
/// with each other while writes go on (repeatable read; SQLite's deferred transaction in WAL
/// mode is a snapshot already and takes no isolation setting).
pub async fn snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let server = db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite;
    db.begin_with_config(
        server.then_some(sea_orm::IsolationLevel::RepeatableRead),
        server.then_some(sea_orm::AccessMode::ReadOnly),
    )
    .await
}

/// Whether `UPDATE … RETURNING` is available: SQLite (3.35 and later; the bundled one is) and
/// PostgreSQL. MySQL and MariaDB have no such clause for UPDATE.
pub fn update_returns(conn: &impl ConnectionTrait) -> bool {
    conn.get_database_backend() != sea_orm::DatabaseBackend::MySql
}

/// Runs `update` and returns the rows it changed, as they are after it, in one statement (see
/// `update_returns`; in no particular order).
pub async fn update_returning<E: sea_orm::EntityTrait>(
    conn: &impl ConnectionTrait,
    update: sea_orm::UpdateMany<E>,
) -> Result<Vec<E::Model>, DbErr> {
    use sea_orm::QueryTrait;
    let mut query = update.into_query();
    query.returning_all();
    let statement = conn.get_database_backend().build(&query);
    E::find().from_raw_sql(statement).all(conn).await
}

/// PostgreSQL: lets the rest of this transaction reuse generic plans, which connections
/// otherwise refuse (`plan_cache_mode = force_custom_plan`, see `connect`). Bulk writes need
/// it: every foreign-key check is a cached query of its own, and planning it afresh for each
/// row made linking 500 synced contacts to their tags take 26 ms instead of 9. Statements run
/// before this call keep custom plans; the setting ends with the transaction.
pub async fn reuse_plans(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        txn.execute_unprepared("SET LOCAL plan_cache_mode = auto")
            .await?;
    }
    Ok(())
}

/// PostgreSQL: this transaction's commit returns before its WAL reaches the disk
/// (`synchronous_commit = off` for it alone). For writes that are repeated from their source
/// when lost, such as a sync's pages: a server crash can drop the last fraction of a second of
/// them, together with the progress recorded beside them, never half a transaction.
pub async fn commit_without_flush(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        txn.execute_unprepared("SET LOCAL synchronous_commit = off")
            .await?;
    }
    Ok(())
}

/// Whether a transaction may lock rows it reads (`SELECT … FOR UPDATE`); SQLite serialises
/// writers instead and has no such clause.
pub fn row_locks(conn: &impl ConnectionTrait) -> bool {
    conn.get_database_backend() != sea_orm::DatabaseBackend::Sqlite
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_mysql_and_mariadb_servers_are_refused_by_name() {
        for fine in [
            "10.11.19-MariaDB-0+deb12u1",
            "10.6.0-MariaDB",
            "5.5.5-10.6.12-MariaDB-log",
            "11.4.2-MariaDB",
            "8.0.36",
            "8.4.0-commercial",
            "9.1.0",
        ] {
            assert_eq!(mysql_too_old(fine), None, "{fine}");
        }
        let old = mysql_too_old("5.5.5-10.5.23-MariaDB-log").unwrap();
        assert!(
            old.starts_with("MariaDB 10.5.23-MariaDB-log is older than 10.6"),
            "{old}"
        );
        let old = mysql_too_old("5.7.44-log").unwrap();
        assert!(
            old.starts_with("MySQL 5.7.44-log is older than 8.0"),
            "{old}"
        );
        assert!(mysql_too_old("10.4.0-MariaDB").is_some());
    }

    /// `.cargo/config.toml` builds the bundled SQLite without allocation statistics: with
    /// them, every `sqlite3_malloc` and `sqlite3_free` in the process takes one global mutex,
    /// which the connections' threads and the threads dropping their rows contended on.
    #[tokio::test]
    async fn the_bundled_sqlite_keeps_no_allocation_statistics() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let options: Vec<String> = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA compile_options",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index(0).unwrap())
            .collect();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "compiled with {options:?}"
        );
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://./data/w.db?mode=rwc"),
            Some("./data/w.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }

    /// Another connection holds SQLite's write lock; this one does not wait for it (no busy
    /// timeout), so its write fails as busy until the other commits.
    #[tokio::test]
    async fn a_write_that_found_the_database_locked_is_run_again_and_others_are_not() {
        let path = std::env::temp_dir().join(format!("wework-retry-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let holder = Database::connect(&url).await.unwrap();
        holder
            .execute_unprepared("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        let mut options = ConnectOptions::new(url);
        options.map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::ZERO));
        let impatient = Database::connect(options).await.unwrap();
        let lock = tokio::sync::Mutex::new(Some(begin(&holder).await.unwrap()));
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let done = retry_lock_conflicts("test write", || async {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == 3
                && let Some(txn) = lock.lock().await.take()
            {
                txn.commit().await?;
            }
            impatient
                .execute_unprepared("INSERT INTO t VALUES (1)")
                .await?;
            Ok(n)
        })
        .await;
        assert_eq!(done.unwrap(), 3, "busy twice, then written");

        let attempts = std::sync::atomic::AtomicU32::new(0);
        let refused: crate::ServiceResult<()> = retry_lock_conflicts("test read", || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            impatient
                .execute_unprepared("SELECT * FROM missing")
                .await?;
            Ok(())
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(
            attempts.into_inner(),
            1,
            "an error that is no lock conflict is not retried"
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
