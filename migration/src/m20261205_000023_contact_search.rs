//! An index for substring search over contacts' names, remarks, wxids and phones, so a keyword
//! that matches a handful of a million contacts is found without reading every row.
//! - SQLite: an FTS5 table with the trigram tokenizer over those four columns (external
//!   content: it stores only the index), kept current by triggers that reindex a contact only
//!   when one of the four changed (sync rewrites every column of every contact).
//! - PostgreSQL: `pg_trgm` GIN indexes on `LOWER(column)`, which the unchanged
//!   `LOWER(col) LIKE '%…%'` uses. Where the extension cannot be created (a role without the
//!   right, a server without contrib) the migration goes on without them and search scans.
//! - MySQL/MariaDB: nothing (MariaDB has no n-gram full-text parser); search scans.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const SEARCHED: [&str; 4] = ["nickname", "remark", "wxid", "phone"];

fn sqlite_up() -> Vec<String> {
    sqlite_index("contacts", "")
}

/// The FTS5 table over `content` (a table or view with the contacts' ids and the four columns)
/// and the triggers that keep it, each value indexed as `new.col{pad}` (`pad` an SQL suffix:
/// the same text the content gives), then filled from `content`.
pub(crate) fn sqlite_index(content: &str, pad: &str) -> Vec<String> {
    let cols = SEARCHED.join(", ");
    let new_cols = SEARCHED.map(|c| format!("new.{c}{pad}")).join(", ");
    let old_cols = SEARCHED.map(|c| format!("old.{c}{pad}")).join(", ");
    let changed = SEARCHED
        .map(|c| format!("old.{c} IS NOT new.{c}"))
        .join(" OR ");
    vec![
        format!(
            "CREATE VIRTUAL TABLE contacts_search USING fts5({cols}, content='{content}', \
             content_rowid='id', tokenize='trigram')"
        ),
        format!(
            "CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts BEGIN \
             INSERT INTO contacts_search(rowid, {cols}) VALUES (new.id, {new_cols}); END"
        ),
        format!(
            "CREATE TRIGGER contacts_search_delete AFTER DELETE ON contacts BEGIN \
             INSERT INTO contacts_search(contacts_search, rowid, {cols}) \
             VALUES ('delete', old.id, {old_cols}); END"
        ),
        format!(
            "CREATE TRIGGER contacts_search_update AFTER UPDATE OF {cols} ON contacts \
             WHEN {changed} BEGIN \
             INSERT INTO contacts_search(contacts_search, rowid, {cols}) \
             VALUES ('delete', old.id, {old_cols}); \
             INSERT INTO contacts_search(rowid, {cols}) VALUES (new.id, {new_cols}); END"
        ),
        "INSERT INTO contacts_search(contacts_search) VALUES ('rebuild')".to_owned(),
    ]
}

/// Drops what `sqlite_index` made.
pub(crate) fn sqlite_drop_index() -> Vec<String> {
    ["insert", "delete", "update"]
        .map(|t| format!("DROP TRIGGER IF EXISTS contacts_search_{t}"))
        .into_iter()
        .chain(["DROP TABLE IF EXISTS contacts_search".to_owned()])
        .collect()
}

fn postgres_up() -> Vec<String> {
    let indexes: String = SEARCHED
        .map(|c| {
            format!(
                "CREATE INDEX IF NOT EXISTS idx_contacts_{c}_trgm ON contacts \
                 USING gin (LOWER({c}) gin_trgm_ops);"
            )
        })
        .concat();
    vec![
        "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm; \
         EXCEPTION WHEN OTHERS THEN \
         RAISE WARNING 'pg_trgm is not available (%): contact search scans', SQLERRM; END $$"
            .to_owned(),
        format!(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN \
             {indexes} END IF; END $$"
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match manager.get_database_backend() {
            DatabaseBackend::Sqlite => sqlite_up(),
            DatabaseBackend::Postgres => postgres_up(),
            _ => return Ok(()),
        };
        for sql in statements {
            manager.get_connection().execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements: Vec<String> = match manager.get_database_backend() {
            DatabaseBackend::Sqlite => sqlite_drop_index(),
            DatabaseBackend::Postgres => SEARCHED
                .map(|c| format!("DROP INDEX IF EXISTS idx_contacts_{c}_trgm"))
                .into(),
            _ => Vec::new(),
        };
        for sql in statements {
            manager.get_connection().execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
