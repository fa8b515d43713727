//! Migrations roll back and re-apply on every backend; housekeeping removes what has expired.

use chrono::{Duration, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{ADMIN_PASSWORD, Backend, TestApp, fresh_database};

#[tokio::test]
async fn migrations_roll_back_and_reapply() {
    let url = fresh_database(Backend::from_env()).await;
    let db = sea_orm::Database::connect(&url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let all = Migrator::get_applied_migrations(&db).await.unwrap().len();
    assert_eq!(all, Migrator::migrations().len());
    assert_eq!(
        entity::permissions::Entity::find()
            .count(&db)
            .await
            .unwrap() as usize,
        service::rbac::perm::ALL.len(),
        "the migrations seed every permission the code names"
    );
    Migrator::down(&db, None).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        all
    );
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(entity::roles::Entity::find().count(&db).await.unwrap(), 6);
}

#[tokio::test]
async fn housekeeping_removes_expired_sessions_only() {
    let app = TestApp::spawn().await;
    app.admin_token().await;
    let keep = app.admin_token().await;
    let sessions = entity::user_sessions::Entity::find()
        .all(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    let long_ago = (Utc::now() - Duration::days(3)).naive_utc();
    entity::user_sessions::Entity::update(entity::user_sessions::ActiveModel {
        id: Set(sessions[0].id),
        absolute_expires_at: Set(long_ago),
        ..Default::default()
    })
    .exec(&app.ctx.db)
    .await
    .unwrap();
    let swept = service::housekeeping::sweep(&app.ctx).await.unwrap();
    assert_eq!(swept.sessions, 1);
    let left = entity::user_sessions::Entity::find()
        .filter(entity::user_sessions::Column::Id.eq(sessions[1].id))
        .count(&app.ctx.db)
        .await
        .unwrap();
    assert_eq!(left, 1);
    assert_eq!(
        app.get("/api/v1/auth/me", &keep).await.status(),
        reqwest::StatusCode::OK
    );
    let _ = ADMIN_PASSWORD;
}

/// Every claim looks up the run's ready receivers. On SQLite and PostgreSQL that lookup reads
/// the partial index holding only pending receivers, which stays as small as the backlog.
/// PostgreSQL's generic plan uses it only when the query names the status as a constant: with
/// a bound status it falls back to the run's rows and a sort (checked: this test then fails).
/// MySQL/MariaDB keep their full index.
#[tokio::test]
async fn claims_read_the_partial_index_of_ready_receivers() {
    use sea_orm::{ConnectionTrait, QueryTrait, Statement, TransactionTrait};
    let app = TestApp::spawn().await;
    let db = &app.ctx.db;
    let backend = db.get_database_backend();
    let lookup =
        backend.build(&service::dispatch::chunk::ready_receivers(&app.ctx, 1, 0, 200).into_query());
    let (index, plan) = match Backend::from_env() {
        Backend::Sqlite => {
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!("EXPLAIN QUERY PLAN {}", lookup.sql),
                    lookup.values.clone().map(|v| v.0).unwrap_or_default(),
                ))
                .await
                .unwrap();
            ("idx_message_receivers_ready", column_lines(&rows, "detail"))
        }
        Backend::Postgres => {
            // A statement prepared once and run often comes to be planned once, without its
            // bound values (PostgreSQL's generic plan): that is the plan to check. An empty
            // table is cheapest to scan whole; with that path off the planner shows which
            // index it can use.
            use sea_orm::sea_query::{PostgresQueryBuilder, QueryBuilder};
            let values: Vec<String> = lookup
                .values
                .iter()
                .flat_map(|v| v.0.iter())
                .map(|v| PostgresQueryBuilder.value_to_string(v))
                .collect();
            let txn = db.begin().await.unwrap();
            txn.execute_unprepared(&format!(
                "SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan; \
                 PREPARE ready_lookup AS {}",
                lookup.sql
            ))
            .await
            .unwrap();
            let rows = txn
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("EXPLAIN EXECUTE ready_lookup({})", values.join(", ")),
                ))
                .await
                .unwrap();
            txn.rollback().await.unwrap();
            (
                "idx_message_receivers_ready",
                column_lines(&rows, "QUERY PLAN"),
            )
        }
        Backend::MySql => {
            let rows = db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT DISTINCT index_name AS name FROM information_schema.statistics \
                     WHERE table_schema = DATABASE() AND table_name = 'message_receivers'",
                ))
                .await
                .unwrap();
            ("idx_message_receivers_claim", column_lines(&rows, "name"))
        }
    };
    assert!(
        plan.contains(index),
        "the ready lookup should use {index}:\n{plan}"
    );
}

/// One text column of a raw query's rows, a line each.
fn column_lines(rows: &[sea_orm::QueryResult], column: &str) -> String {
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", column).unwrap())
        .collect();
    lines.join("\n")
}

/// Every SQLite connection of the pool checkpoints its write-ahead log at the configured size
/// (`database.sqlite_wal_autocheckpoint_pages`), not at SQLite's default of 1,000 pages.
#[tokio::test]
async fn sqlite_connections_checkpoint_at_the_configured_wal_size() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let app = TestApp::spawn_with("[database]\nsqlite_wal_autocheckpoint_pages = 4321\n").await;
    if app.ctx.db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    let pragma = Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_autocheckpoint");
    let reads = (0..8).map(|_| app.ctx.db.query_one_raw(pragma.clone()));
    for row in futures_util::future::join_all(reads).await {
        let pages: i64 = row.unwrap().unwrap().try_get_by_index(0).unwrap();
        assert_eq!(pages, 4321);
    }
}
