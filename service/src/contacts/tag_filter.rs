//! Tag conditions for one page of the contact list, chosen by how many contacts the tags hold.
//! `id IN (SELECT contact_id … WHERE tag_id IN …)` collects the tag's contacts first: cheap for
//! a tag on a few thousand contacts, 35–100 ms for one on half a million on SQLite and MariaDB,
//! whose planners do just that. A probe per contact, newest first (`(SELECT 1 … WHERE
//! contact_id = contacts.id …) IS NOT NULL`), stops after the page: cheap when the tag is
//! common, a scan when it is rare. A bounded count (at most `DENSE_POSTINGS` + 1 index entries)
//! tells the two apart. The probe is a scalar subquery because MariaDB turns `EXISTS` into the
//! collecting plan. PostgreSQL's planner already chooses between the two by its statistics
//! (2 ms either way at a million), so there the condition stays `IN` and nothing is counted.

use std::collections::BTreeSet;

use entity::{contact_tags, contacts};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend,
    sea_query::{Expr, ExprTrait, Query, SelectStatement},
};

use crate::ServiceResult;

/// Above this many tag links, probing newest first finds a page sooner than collecting: at a
/// million contacts a page of 50 then needs at most about 10,000 probes, and the count that
/// decides reads at most 5,001 index entries.
pub const DENSE_POSTINGS: u64 = 5_000;

/// Which tag conditions of a filter are common enough to probe.
#[derive(Debug, Clone, Default)]
pub struct Density {
    /// The `tags_any` set, taken together.
    pub any: bool,
    /// The `tags_all` tags, each on its own.
    pub all: BTreeSet<i64>,
}

impl Density {
    pub async fn measure<C: ConnectionTrait>(
        db: &C,
        any: &[i64],
        all: &[i64],
    ) -> ServiceResult<Self> {
        if db.get_database_backend() == DbBackend::Postgres {
            return Ok(Self::default());
        }
        let mut density = Self {
            any: !any.is_empty() && dense(db, any).await?,
            all: BTreeSet::new(),
        };
        for tag in all.iter().collect::<BTreeSet<_>>() {
            if dense(db, &[*tag]).await? {
                density.all.insert(*tag);
            }
        }
        Ok(density)
    }
}

/// Whether the tags hold more than `DENSE_POSTINGS` links, reading at most one more.
async fn dense<C: ConnectionTrait>(db: &C, tag_ids: &[i64]) -> ServiceResult<bool> {
    let postings = Query::select()
        .expr_as(Expr::val(1), "one")
        .from(contact_tags::Entity)
        .and_where(contact_tags::Column::TagId.is_in(tag_ids.iter().copied()))
        .to_owned();
    more_than_dense(db, postings).await
}

/// Whether `postings` gives more than `DENSE_POSTINGS` rows, reading at most one more.
pub(super) async fn more_than_dense<C: ConnectionTrait>(
    db: &C,
    mut postings: SelectStatement,
) -> ServiceResult<bool> {
    let count = Query::select()
        .expr_as(Expr::cust("COUNT(*)"), "n")
        .from_subquery(postings.limit(DENSE_POSTINGS + 1).to_owned(), "bounded")
        .to_owned();
    let n: i64 = match db.query_one(&count).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0) > DENSE_POSTINGS)
}

/// The contacts carrying any of `tag_ids`, probed or collected.
pub fn with_any(tag_ids: Vec<i64>, probe: bool) -> Expr {
    if probe {
        let one = Query::select()
            .expr(Expr::val(1))
            .from(contact_tags::Entity)
            .and_where(
                Expr::col((contact_tags::Entity, contact_tags::Column::ContactId))
                    .equals((contacts::Entity, contacts::Column::Id)),
            )
            .and_where(contact_tags::Column::TagId.is_in(tag_ids))
            .limit(1)
            .to_owned();
        Expr::SubQuery(None, Box::new(one.into())).is_not_null()
    } else {
        contacts::Column::Id.in_subquery(collected(tag_ids))
    }
}

fn collected(tag_ids: Vec<i64>) -> SelectStatement {
    Query::select()
        .column(contact_tags::Column::ContactId)
        .from(contact_tags::Entity)
        .and_where(contact_tags::Column::TagId.is_in(tag_ids))
        .to_owned()
}
