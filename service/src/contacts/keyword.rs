//! A contact keyword: a case-insensitive substring of the name, remark, wxid or phone, the same
//! on every database (`LOWER(col) LIKE '%q%'`), found through the search index where the
//! database has one (migration `m20261205_000023_contact_search`):
//! - SQLite: the FTS5 trigram table `contacts_search` serves keywords of three characters or
//!   more. A page of the list is driven by it (its rowids, newest first, stop after the page), so a
//!   rare keyword reads its few entries and a common one stops early; counts and expansions ask
//!   it for the matching ids. One or two characters are the beginning of the index's pieces
//!   (each column is indexed with two spaces after it, migration
//!   `m20261206_000028_sqlite_short_keywords`), read as a range of terms from the `fts5vocab`
//!   table `contacts_search_pieces`: collected when few pieces begin with them, as on MySQL
//!   below.
//! - PostgreSQL: `pg_trgm` indexes on `LOWER(col)` serve the unchanged `LIKE`.
//! - MySQL/MariaDB: the trigram table `contacts_search_grams` (migration
//!   `m20261206_000026_mysql_contact_grams`), joined once for each of the keyword's pieces on
//!   `(gram, contact_id)`; the planner drives from the rarest piece (its index dives count
//!   them) or, for a common keyword, reads contacts newest first and probes. One or two
//!   characters are a prefix of the pieces: collected when few pieces begin with them, else a
//!   scan newest first (which a common keyword ends soon). Where the migration could not make
//!   the table, a scan.
//!
//! The `LIKE` stays on every path, so the index only ever narrows what is read, never what
//! matches.

use std::sync::atomic::{AtomicU8, Ordering};

use entity::contacts;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, JoinType, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select, Statement,
    sea_query::{
        Alias, Condition, Expr, ExprTrait, IntoColumnRef, LikeExpr, Order, Query, SelectStatement,
    },
};

use super::tag_filter;
use crate::ServiceResult;

/// The columns a keyword is looked for in.
pub const SEARCHED: [contacts::Column; 4] = [
    contacts::Column::Nickname,
    contacts::Column::Remark,
    contacts::Column::Wxid,
    contacts::Column::Phone,
];

/// Both trigram indexes need three characters to look anything up.
const INDEXED_MIN_CHARS: usize = 3;
const INDEX: &str = "contacts_search";
const GRAMS: &str = "contacts_search_grams";
/// SQLite: the index's pieces, one row per occurrence (`fts5vocab`, `instance`).
const PIECES: &str = "contacts_search_pieces";
/// At most this many of a long keyword's pieces are looked up (one join each); the `LIKE`
/// checks the rest.
const MAX_GRAMS: usize = 6;

const UNKNOWN: u8 = 0;
const PRESENT: u8 = 1;
const ABSENT: u8 = 2;
/// Whether the MySQL databases this process uses have the trigram table. Unknown until
/// `detect_index` looked (then search scans, which is always right); once one lacks it, it
/// stays absent.
static MYSQL_GRAMS: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Looks, on MySQL, for the trigram table and its three triggers (the migration makes all or
/// none, but a database migrated by hand could differ); called once a database is migrated.
pub async fn detect_index(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::MySql {
        return Ok(());
    }
    let found = db
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COUNT(*) AS n FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'contacts' \
             AND TRIGGER_NAME LIKE 'contacts\\_search\\_%'",
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    if found == 3 {
        let _ = MYSQL_GRAMS.compare_exchange(UNKNOWN, PRESENT, Ordering::AcqRel, Ordering::Acquire);
    } else {
        MYSQL_GRAMS.store(ABSENT, Ordering::Release);
    }
    Ok(())
}

/// Whether keywords on MySQL go through the trigram table.
pub fn mysql_index_present() -> bool {
    MYSQL_GRAMS.load(Ordering::Acquire) == PRESENT
}

/// How the index finds a keyword's candidates.
#[derive(Debug, Clone)]
enum Lookup {
    /// Shorter than a trigram, or no index: the `LIKE` alone.
    Scan,
    /// SQLite: the FTS5 query (one phrase).
    Phrase(String),
    /// MySQL: the pieces a matching contact has all of.
    Grams(Vec<String>),
    /// MySQL or SQLite, a keyword of one or two characters that begins few pieces: the ids
    /// of the contacts those pieces are in.
    Prefix(Box<SelectStatement>),
}

#[derive(Debug, Clone)]
pub struct Keyword {
    like: Condition,
    lookup: Lookup,
}

impl Keyword {
    /// `None` for a blank keyword.
    pub fn parse(backend: DbBackend, q: Option<&str>) -> Option<Self> {
        let like = crate::search::contains_any(&SEARCHED, q)?;
        let q = q.map(str::trim).unwrap_or_default();
        let lookup = match backend {
            _ if q.chars().count() < INDEXED_MIN_CHARS => Lookup::Scan,
            DbBackend::Sqlite => Lookup::Phrase(format!("\"{}\"", q.replace('"', "\"\""))),
            DbBackend::MySql if mysql_index_present() => Lookup::Grams(grams(q)),
            _ => Lookup::Scan,
        };
        Some(Self { like, lookup })
    }

    /// The keyword as a condition on a contacts query, for counts and expansions (which need
    /// every match, so reading all of the index's matches is what they would do anyway).
    pub fn condition(&self) -> Condition {
        let indexed = match &self.lookup {
            Lookup::Scan => return self.like.clone(),
            Lookup::Phrase(phrase) => Query::select()
                .expr(Expr::col(Alias::new("rowid")))
                .from(Alias::new(INDEX))
                .and_where(Expr::cust_with_values(
                    format!("{INDEX} MATCH ?"),
                    [phrase.clone()],
                ))
                .to_owned(),
            Lookup::Grams(grams) => with_all_grams(grams),
            Lookup::Prefix(pieces) => (**pieces).clone(),
        };
        // `like` is an `any` of the columns: the index narrows it, never widens it.
        Condition::all()
            .add(self.like.clone())
            .add(Expr::col((contacts::Entity, contacts::Column::Id)).in_subquery(indexed))
    }
}

impl Keyword {
    /// `parse`, for one page of the list: on MySQL and SQLite a keyword of one or two
    /// characters is looked up as a prefix of the pieces when few pieces begin with it (a
    /// bounded count, as for tags). A common one scans newest first, which stops after the
    /// page; a rare one would scan every contact.
    pub async fn for_page<C: ConnectionTrait>(
        db: &C,
        q: Option<&str>,
    ) -> ServiceResult<Option<Self>> {
        let backend = db.get_database_backend();
        let Some(mut keyword) = Self::parse(backend, q) else {
            return Ok(None);
        };
        let q = q.map(str::trim).unwrap_or_default();
        if let Some(pieces) = pieces_beginning(backend, q)
            && !tag_filter::more_than_dense(db, pieces.clone()).await?
        {
            keyword.lookup = Lookup::Prefix(Box::new(pieces));
        }
        Ok(Some(keyword))
    }

    fn without_lookup(&self) -> Self {
        Self {
            like: self.like.clone(),
            lookup: Lookup::Scan,
        }
    }
}

/// The distinct three-character pieces of the lower-cased keyword (as the `LIKE` pattern has
/// it), at most `MAX_GRAMS` of them spread from first to last.
fn grams(q: &str) -> Vec<String> {
    let chars: Vec<char> = q.to_lowercase().chars().collect();
    let mut all: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    let mut seen = std::collections::HashSet::new();
    all.retain(|g| seen.insert(g.clone()));
    if all.len() <= MAX_GRAMS {
        return all;
    }
    let last = all.len() - 1;
    (0..MAX_GRAMS)
        .map(|k| all[k * last / (MAX_GRAMS - 1)].clone())
        .collect()
}

/// The contact of each index piece that begins with the keyword `q` of one or two characters,
/// where the database's index can list them.
fn pieces_beginning(backend: DbBackend, q: &str) -> Option<SelectStatement> {
    let chars = q.chars().count();
    if chars == 0 || chars >= INDEXED_MIN_CHARS {
        return None;
    }
    match backend {
        DbBackend::MySql if mysql_index_present() => {
            let pattern = format!("{}%", crate::search::lower_escaped(q));
            Some(
                Query::select()
                    .column(Alias::new("contact_id"))
                    .from(Alias::new(GRAMS))
                    .and_where(
                        Expr::col(Alias::new("gram")).like(LikeExpr::new(pattern).escape('\\')),
                    )
                    .to_owned(),
            )
        }
        DbBackend::Sqlite => {
            let (low, high) = sqlite_term_range(q)?;
            let term = || Expr::col(Alias::new("term"));
            Some(
                Query::select()
                    .column(Alias::new("doc"))
                    .from(Alias::new(PIECES))
                    .and_where(term().gte(low))
                    .and_where(term().lte(high))
                    .to_owned(),
            )
        }
        _ => None,
    }
}

/// The range of FTS5 terms (three characters, case-folded) that begin with the keyword `q` of
/// one or two characters: from `q` to `q` followed by the highest characters. `None` when `q`
/// has a letter whose case only Unicode folds (`É`): the tokenizer's folding and Rust's may
/// differ there, and the range must not miss a piece, so such a keyword scans.
fn sqlite_term_range(q: &str) -> Option<(String, String)> {
    let uncased = |c: char| c.to_lowercase().eq([c]) && c.to_uppercase().eq([c]);
    if !q.chars().all(|c| c.is_ascii() || uncased(c)) {
        return None;
    }
    let low = q.to_ascii_lowercase();
    let high = format!("{low}{}", "\u{10FFFF}".repeat(3 - q.chars().count()));
    Some((low, high))
}

fn gram_alias(k: usize) -> Alias {
    Alias::new(format!("kw_g{k}"))
}

/// `contact_id` of the contacts that have every one of `grams`.
fn with_all_grams(grams: &[String]) -> SelectStatement {
    let mut query = Query::select();
    query
        .column((gram_alias(0), Alias::new("contact_id")))
        .from_as(Alias::new(GRAMS), gram_alias(0))
        .and_where(Expr::col((gram_alias(0), Alias::new("gram"))).eq(grams[0].clone()));
    for (k, gram) in grams.iter().enumerate().skip(1) {
        query.join_as(
            JoinType::InnerJoin,
            Alias::new(GRAMS),
            gram_alias(k),
            gram_of(k, gram, (gram_alias(0), Alias::new("contact_id"))),
        );
    }
    query
}

/// The join of the `k`-th piece, `gram`, to the contact `id`.
fn gram_of(k: usize, gram: &str, id: impl IntoColumnRef) -> Condition {
    Condition::all()
        .add(Expr::col((gram_alias(k), Alias::new("gram"))).eq(gram))
        .add(Expr::col((gram_alias(k), Alias::new("contact_id"))).equals(id))
}

/// One page of `query` newest first (`id < before` when given), the keyword applied. On SQLite
/// with an indexed keyword the index drives the page: joined on its rowid (the contact's id)
/// and ordered by it, which SQLite reads newest first and stops after `limit`; a condition
/// `id IN (…)` would first collect every match. On MySQL each piece is joined on its primary
/// key, which leaves the planner both ways to go (from the rarest piece, or down the contacts).
pub fn newest_first(
    query: Select<contacts::Entity>,
    keyword: Option<&Keyword>,
    before: Option<i64>,
    limit: u64,
) -> Select<contacts::Entity> {
    let rowid = || Expr::col((Alias::new(INDEX), Alias::new("rowid")));
    match keyword {
        Some(
            k @ Keyword {
                lookup: Lookup::Grams(grams),
                ..
            },
        ) => {
            let mut query = query;
            for (i, gram) in grams.iter().enumerate() {
                QueryTrait::query(&mut query).join_as(
                    JoinType::InnerJoin,
                    Alias::new(GRAMS),
                    gram_alias(i),
                    gram_of(i, gram, (contacts::Entity, contacts::Column::Id)),
                );
            }
            newest_first(query, Some(&k.without_lookup()), before, limit)
        }
        Some(
            k @ Keyword {
                lookup: Lookup::Phrase(phrase),
                ..
            },
        ) => {
            let mut query = query;
            QueryTrait::query(&mut query).join(
                JoinType::InnerJoin,
                Alias::new(INDEX),
                rowid().equals((contacts::Entity, contacts::Column::Id)),
            );
            let mut query = query.filter(k.like.clone()).filter(Expr::cust_with_values(
                format!("{INDEX} MATCH ?"),
                [phrase.clone()],
            ));
            if let Some(before) = before {
                query = query.filter(rowid().lt(before));
            }
            query.order_by(rowid(), Order::Desc).limit(limit)
        }
        _ => {
            // A scan, or a prefix's few contacts collected.
            let mut query = match keyword {
                Some(k) => query.filter(k.condition()),
                None => query,
            };
            if let Some(before) = before {
                query = query.filter(contacts::Column::Id.lt(before));
            }
            query.order_by_desc(contacts::Column::Id).limit(limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{grams, sqlite_term_range};

    #[test]
    fn a_short_keyword_is_the_range_of_the_pieces_it_begins() {
        assert_eq!(
            sqlite_term_range("张伟"),
            Some(("张伟".into(), "张伟\u{10FFFF}".into()))
        );
        assert_eq!(
            sqlite_term_range("A"),
            Some(("a".into(), "a\u{10FFFF}\u{10FFFF}".into()))
        );
        assert_eq!(
            sqlite_term_range("%9"),
            Some(("%9".into(), "%9\u{10FFFF}".into()))
        );
        // Folded differently by Unicode's rules and the tokenizer's, perhaps: not looked up.
        assert_eq!(sqlite_term_range("É"), None);
        assert_eq!(sqlite_term_range("é"), None);
    }

    #[test]
    fn a_keyword_is_cut_into_its_distinct_lower_cased_pieces() {
        assert_eq!(grams("王99999"), ["王99", "999"]);
        assert_eq!(grams("BeNch"), ["ben", "enc", "nch"]);
        assert!(grams("ab").is_empty());
    }

    #[test]
    fn a_long_keyword_is_looked_up_by_pieces_spread_over_it() {
        let picked = grams("abcdefghijklmnop");
        assert_eq!(picked.len(), super::MAX_GRAMS);
        assert_eq!(picked.first().map(String::as_str), Some("abc"));
        assert_eq!(picked.last().map(String::as_str), Some("nop"));
    }
}
