//! A trigram table for substring search over contacts on MySQL/MariaDB, which have no index that
//! can answer `LIKE '%…%'` (their full-text parsers split on words; MySQL 8's n-gram parser is
//! absent from MariaDB). `contacts_search_grams` holds every three-character piece of a contact's
//! lower-cased name, remark, wxid and phone; a keyword of three characters or more reads the
//! contacts that have all of its pieces, a shorter one those with a piece that begins with it
//! (`service/src/contacts/keyword.rs`), and the unchanged `LIKE` decides.
//!
//! Triggers keep it, so every path that writes a contact (sync, import, callbacks, the API) is
//! covered, and an update that leaves the four columns alone (a resync) costs nothing. The
//! pieces are cut in SQL against a small table of positions, one statement a contact. They
//! compare with the database's collation, like the `LIKE` does, so a case- or accent-insensitive
//! match is found through the table too.
//!
//! The price is paid on writes: a contact adds about 25 rows, some 2 µs each for InnoDB, so a
//! first sync into MariaDB runs at about a quarter of its speed without the table (agent sync
//! of 100,000: 6,700 contacts/s against 26,000); a resync that changes nothing pays nothing.
//!
//! Creating triggers can be refused (no `TRIGGER` privilege, or binary logging without
//! `log_bin_trust_function_creators`): the migration then removes what it made, warns, and
//! search scans as before. The service looks for the table at start-up.
//!
//! Contacts removed by a foreign-key cascade fire no trigger in MySQL: their pieces stay behind,
//! join to no contact, and cost only space.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const GRAMS: &str = "contacts_search_grams";
const POSITIONS: &str = "contacts_search_positions";
const TRIGGERS: [&str; 3] = [
    "contacts_search_insert",
    "contacts_search_update",
    "contacts_search_delete",
];
/// Longer than the four columns joined (100 + 100 + 100 + 20 characters and three separators).
const MAX_POSITION: usize = 400;

/// A contact's searched text, as `row` (`NEW`, `OLD` or a table alias) has it: the four
/// columns lower-cased (the remark, the one users edit, last), separated by a space (a piece across two columns can only add a
/// candidate the `LIKE` then refuses) and ending in two, so that every one or two characters
/// of it begin a piece: a keyword that short is looked up as a prefix of the pieces.
fn text(row: &str) -> String {
    format!(
        "CONCAT_WS(' ', LOWER({row}.nickname), LOWER({row}.wxid), LOWER({row}.phone), \
         LOWER({row}.remark), ' ')"
    )
}

/// Stores every piece of `row`'s text: a trigger's `NEW`, or with `every_contact` every contact
/// (read first, so that the positions are a range for each: 1 s per 100,000 contacts against
/// 10 s for the other join order).
fn insert_pieces(row: &str, every_contact: bool) -> String {
    let text = text(row);
    let from = if every_contact {
        format!("contacts {row} STRAIGHT_JOIN {POSITIONS} p ON")
    } else {
        format!("{POSITIONS} p WHERE")
    };
    format!(
        "INSERT IGNORE INTO {GRAMS} (gram, contact_id) \
         SELECT SUBSTRING({text}, p.i, 3), {row}.id FROM {from} p.i <= CHAR_LENGTH({text}) - 2"
    )
}

fn delete_pieces(row: &str) -> String {
    let text = text(row);
    format!(
        "DELETE g FROM {GRAMS} g JOIN {POSITIONS} p \
         ON p.i <= CHAR_LENGTH({text}) - 2 AND g.gram = SUBSTRING({text}, p.i, 3) \
         WHERE g.contact_id = {row}.id"
    )
}

fn up_statements() -> Vec<String> {
    let positions: Vec<String> = (1..=MAX_POSITION).map(|i| format!("({i})")).collect();
    let unchanged = ["nickname", "remark", "wxid", "phone"]
        .map(|c| format!("OLD.{c} <=> NEW.{c}"))
        .join(" AND ");
    vec![
        format!("CREATE TABLE {POSITIONS} (i SMALLINT NOT NULL PRIMARY KEY)"),
        format!("INSERT INTO {POSITIONS} (i) VALUES {}", positions.join(",")),
        // The table takes the database's default collation, as `contacts` did.
        format!(
            "CREATE TABLE {GRAMS} (gram VARCHAR(3) NOT NULL, contact_id BIGINT NOT NULL, \
             PRIMARY KEY (gram, contact_id))"
        ),
        format!(
            "CREATE TRIGGER {} AFTER INSERT ON contacts FOR EACH ROW {}",
            TRIGGERS[0],
            insert_pieces("NEW", false)
        ),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE ON contacts FOR EACH ROW \
             BEGIN IF NOT ({unchanged}) THEN {}; {}; END IF; END",
            TRIGGERS[1],
            delete_pieces("OLD"),
            insert_pieces("NEW", false)
        ),
        format!(
            "CREATE TRIGGER {} AFTER DELETE ON contacts FOR EACH ROW {}",
            TRIGGERS[2],
            delete_pieces("OLD")
        ),
        insert_pieces("c", true),
    ]
}

fn down_statements() -> Vec<String> {
    TRIGGERS
        .map(|t| format!("DROP TRIGGER IF EXISTS {t}"))
        .into_iter()
        .chain([GRAMS, POSITIONS].map(|t| format!("DROP TABLE IF EXISTS {t}")))
        .collect()
}

async fn run(manager: &SchemaManager<'_>, statements: Vec<String>) -> Result<(), DbErr> {
    for sql in statements {
        manager.get_connection().execute_unprepared(&sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::MySql {
            return Ok(());
        }
        if let Err(e) = run(manager, up_statements()).await {
            run(manager, down_statements()).await?;
            eprintln!(
                "warning: the contact search table could not be made ({e}); contact search \
                 scans. Grant TRIGGER (and, with binary logging, set \
                 log_bin_trust_function_creators) and run `wework migrate down 1` then `up`."
            );
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::MySql {
            return Ok(());
        }
        run(manager, down_statements()).await
    }
}
