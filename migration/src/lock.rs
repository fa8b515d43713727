//! Migrations under a database-wide lock, so that any number of `wework` processes can start
//! at once on a fresh database: one applies the pending migrations while the others wait, then
//! find nothing left to do. Without it two processes both insert the same version into
//! `seaql_migrations` and one dies.
//!
//! The migrations run on the one connection that holds the lock: PostgreSQL takes a
//! transaction-scoped advisory lock (its DDL is transactional too, so a failed start leaves
//! nothing half done); MySQL/MariaDB a named `GET_LOCK` (DDL commits implicitly there, but the
//! lock belongs to the session and is released explicitly); SQLite a write transaction
//! (`BEGIN IMMEDIATE`), which other writers wait for.

use sea_orm_migration::{
    MigratorTrait,
    sea_orm::{
        ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, SqliteTransactionMode,
        Statement, TransactionOptions, TransactionTrait,
    },
};

/// Any fixed number shared by every process of the application.
const ADVISORY_KEY: i64 = 0x7765_776f_726b; // "wework"
const MYSQL_LOCK: &str = "wework_migrations";
/// How long a process waits for another's migrations on MySQL, in seconds.
const MYSQL_WAIT_SECS: i64 = 600;

/// Applies pending migrations of `M` (all, or `steps`) holding the lock.
pub async fn up_locked<M: MigratorTrait>(
    db: &DatabaseConnection,
    steps: Option<u32>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    match backend {
        DatabaseBackend::Postgres => {
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT pg_advisory_xact_lock($1)",
                [ADVISORY_KEY.into()],
            ))
            .await?;
        }
        DatabaseBackend::MySql => {
            let got = txn
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT GET_LOCK(?, ?) AS got",
                    [MYSQL_LOCK.into(), MYSQL_WAIT_SECS.into()],
                ))
                .await?
                .and_then(|row| row.try_get::<Option<i64>>("", "got").ok().flatten());
            if got != Some(1) {
                return Err(DbErr::Custom(format!(
                    "another process held the migration lock for more than {MYSQL_WAIT_SECS} s"
                )));
            }
        }
        _ => {}
    }
    let applied = M::up(&txn, steps).await;
    if backend == DatabaseBackend::MySql {
        let released = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT RELEASE_LOCK(?)",
                [MYSQL_LOCK.into()],
            ))
            .await;
        applied?;
        released?;
    } else {
        applied?;
    }
    txn.commit().await
}
