//! SQLite: keywords of one or two characters found through the FTS5 trigram index.
//!
//! A trigram index cannot look up `ab`, but every text that contains `ab` has a piece that
//! begins with it — unless `ab` ends the text (`xab`) or is all of it (a two-character name such
//! as 张伟 has no piece at all). So the index now takes each column with two spaces after it
//! (through the view `contacts_search_text`, its external content), and every occurrence of one
//! or two characters begins a piece. An `fts5vocab` table of the index's instances,
//! `contacts_search_pieces`, reads the pieces in a range of terms (`ab` ≤ term ≤
//! `ab\u{10FFFF}`) and stops after a bounded count; the list collects the contacts of a keyword
//! that begins few pieces (`service::contacts::keyword`). Keywords of three characters or more
//! are looked up as before: the padding only adds pieces with spaces in them.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

use crate::m20261205_000023_contact_search::{SEARCHED, sqlite_drop_index, sqlite_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each column's text as the index takes it.
const PAD: &str = " || '  '";

fn up_statements() -> Vec<String> {
    let padded = SEARCHED.map(|c| format!("{c}{PAD} AS {c}")).join(", ");
    let mut statements = sqlite_drop_index();
    statements.push(format!(
        "CREATE VIEW contacts_search_text AS SELECT id, {padded} FROM contacts"
    ));
    statements.extend(sqlite_index("contacts_search_text", PAD));
    statements.push(
        "CREATE VIRTUAL TABLE contacts_search_pieces USING fts5vocab(contacts_search, 'instance')"
            .to_owned(),
    );
    statements
}

fn down_statements() -> Vec<String> {
    let mut statements = vec!["DROP TABLE IF EXISTS contacts_search_pieces".to_owned()];
    statements.extend(sqlite_drop_index());
    statements.push("DROP VIEW IF EXISTS contacts_search_text".to_owned());
    statements.extend(sqlite_index("contacts", ""));
    statements
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, up_statements()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, down_statements()).await
    }
}

async fn run(manager: &SchemaManager<'_>, statements: Vec<String>) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(());
    }
    for sql in statements {
        manager.get_connection().execute_unprepared(&sql).await?;
    }
    Ok(())
}
