//! A contact keyword: a case-insensitive substring of the name, remark, wxid or phone, the same
//! on every database (`LOWER(col) LIKE '%q%'`), found through the search index where the
//! database has one (migration `m20261205_000023_contact_search`):
//! - SQLite: the FTS5 trigram table `contacts_search` serves keywords of three characters or
//!   more. A page of the list is driven by it (its rowids, newest first, stop after the page), so a
//!   rare keyword reads its few entries and a common one stops early; counts and expansions ask
//!   it for the matching ids. Shorter keywords scan, newest first, stopping at a full page.
//! - PostgreSQL: `pg_trgm` indexes on `LOWER(col)` serve the unchanged `LIKE`.
//! - MySQL/MariaDB: a scan.
//!
//! The `LIKE` stays on every path, so the index only ever narrows what is read, never what
//! matches.

use entity::contacts;
use sea_orm::{
    ColumnTrait, DbBackend, JoinType, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
    sea_query::{Alias, Condition, Expr, ExprTrait, Order, Query},
};

/// The columns a keyword is looked for in.
pub const SEARCHED: [contacts::Column; 4] = [
    contacts::Column::Nickname,
    contacts::Column::Remark,
    contacts::Column::Wxid,
    contacts::Column::Phone,
];

/// The FTS5 trigram tokenizer needs three characters to look anything up.
const INDEXED_MIN_CHARS: usize = 3;
const INDEX: &str = "contacts_search";

#[derive(Debug, Clone)]
pub struct Keyword {
    like: Condition,
    /// The FTS5 query (one phrase) when the SQLite index can serve this keyword.
    phrase: Option<String>,
}

impl Keyword {
    /// `None` for a blank keyword.
    pub fn parse(backend: DbBackend, q: Option<&str>) -> Option<Self> {
        let like = crate::search::contains_any(&SEARCHED, q)?;
        let q = q.map(str::trim).unwrap_or_default();
        let phrase = (backend == DbBackend::Sqlite && q.chars().count() >= INDEXED_MIN_CHARS)
            .then(|| format!("\"{}\"", q.replace('"', "\"\"")));
        Some(Self { like, phrase })
    }

    /// The keyword as a condition on a contacts query, for counts and expansions (which need
    /// every match, so reading all of the index's matches is what they would do anyway).
    pub fn condition(&self) -> Condition {
        let Some(phrase) = &self.phrase else {
            return self.like.clone();
        };
        let indexed = Query::select()
            .expr(Expr::col(Alias::new("rowid")))
            .from(Alias::new(INDEX))
            .and_where(Expr::cust_with_values(
                format!("{INDEX} MATCH ?"),
                [phrase.clone()],
            ))
            .to_owned();
        self.like
            .clone()
            .add(Expr::col((contacts::Entity, contacts::Column::Id)).in_subquery(indexed))
    }
}

/// One page of `query` newest first (`id < before` when given), the keyword applied. On SQLite
/// with an indexed keyword the index drives the page: joined on its rowid (the contact's id)
/// and ordered by it, which SQLite reads newest first and stops after `limit`; a condition
/// `id IN (…)` would first collect every match.
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
                phrase: Some(phrase),
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
            let mut query = match keyword {
                Some(k) => query.filter(k.like.clone()),
                None => query,
            };
            if let Some(before) = before {
                query = query.filter(contacts::Column::Id.lt(before));
            }
            query.order_by_desc(contacts::Column::Id).limit(limit)
        }
    }
}
