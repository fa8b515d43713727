//! A page of contacts with their tags read in the same query: each row carries its tags as one
//! JSON array, `[[id, group_name, name, sort_order], …]`, built by a correlated subquery on
//! `contact_tags` (its primary key leads with the contact). A second query for the page's tags
//! cost the contact list a third of its time on SQLite, most of it spent handing that query's
//! rows, two per contact, between the connection's thread and the request's
//! (docs/benchmarks.md, "the contact list").

use entity::contacts;
use sea_orm::{
    DbBackend, DbErr, FromQueryResult, QueryResult, QuerySelect, Select, SelectModel, Selector,
    sea_query::Expr,
};

use super::{TagRef, json_row};

const COLUMN: &str = "inline_tags";
/// The contact itself, as one JSON array (`json_row`).
const CONTACT_COLUMN: &str = "contact_row";
/// MySQL/MariaDB: how many tags the contact has, to tell a cut array from a whole one.
const COUNT_COLUMN: &str = "inline_tag_count";

/// A contact with its tags as the database wrote them.
pub(super) struct ContactRow {
    pub contact: contacts::Model,
    tags_json: Option<String>,
    count: Option<i64>,
}

impl FromQueryResult for ContactRow {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            contact: match row.try_get::<Option<String>>(pre, CONTACT_COLUMN)? {
                Some(json) => json_row::decode(&json).map_err(|e| {
                    DbErr::Type(format!(
                        "a contact read as one JSON row did not decode: {e}"
                    ))
                })?,
                None => contacts::Model::from_query_result(row, pre)?,
            },
            tags_json: row.try_get(pre, COLUMN)?,
            count: row.try_get(pre, COUNT_COLUMN)?,
        })
    }
}

impl ContactRow {
    /// The contact and its tags in the order tag lists use everywhere (`sort_order`, then id),
    /// or `None` for tags the database cut short: MariaDB's `JSON_ARRAYAGG` stops at
    /// `group_concat_max_len` (1 MiB unless a server lowers it) and closes the array after
    /// the cut, which can leave valid JSON with fewer tags. The caller reads those apart.
    pub fn into_parts(self) -> (contacts::Model, Option<Vec<TagRef>>) {
        let tags = whole_tags(self.tags_json.as_deref(), self.count)
            .inspect_err(|why| {
                tracing::warn!(contact.id = self.contact.id, why = %why,
                    "a contact's tags came back cut short; reading them apart");
            })
            .ok();
        (self.contact, tags)
    }
}

/// The tags in `json`, unless it is unreadable or holds fewer than the `count` the database
/// gave.
fn whole_tags(json: Option<&str>, count: Option<i64>) -> Result<Vec<TagRef>, String> {
    let tags = match json {
        None => Vec::new(),
        Some(json) => parse(json).map_err(|e| e.to_string())?,
    };
    match count {
        Some(n) if usize::try_from(n).ok() != Some(tags.len()) => {
            Err(format!("{} of {n} tags", tags.len()))
        }
        _ => Ok(tags),
    }
}

fn parse(json: &str) -> serde_json::Result<Vec<TagRef>> {
    let mut tags: Vec<(i64, String, String, i32)> = serde_json::from_str(json)?;
    tags.sort_unstable_by_key(|&(id, _, _, sort_order)| (sort_order, id));
    Ok(tags
        .into_iter()
        .map(|(id, group_name, name, _)| TagRef {
            id,
            group_name,
            name,
        })
        .collect())
}

/// `query` (contacts), each row as one JSON value with its tags.
pub(super) fn with_tags(
    query: Select<contacts::Entity>,
    backend: DbBackend,
) -> Selector<SelectModel<ContactRow>> {
    let count = match backend {
        DbBackend::MySql => of_each("COUNT(*)"),
        DbBackend::Postgres => "CAST(NULL AS BIGINT)".to_owned(),
        _ => "NULL".to_owned(),
    };
    let query = match json_row::expression(backend) {
        Some(row) => query.select_only().expr_as(Expr::cust(row), CONTACT_COLUMN),
        None => query.expr_as(Expr::cust("CAST(NULL AS TEXT)"), CONTACT_COLUMN),
    };
    query
        .expr_as(Expr::cust(of_each(&aggregated(backend))), COLUMN)
        .expr_as(Expr::cust(count), COUNT_COLUMN)
        .into_model::<ContactRow>()
}

/// The tags as one JSON array, as text: NULL or `[]` for a contact without tags.
fn aggregated(backend: DbBackend) -> String {
    let tag = "json_array(inline_t.id, inline_t.group_name, inline_t.name, inline_t.sort_order)";
    match backend {
        DbBackend::Sqlite => format!("json_group_array({tag})"),
        DbBackend::Postgres => format!(
            "json_agg({})::text",
            tag.replace("json_array", "json_build_array")
        ),
        _ => format!("CAST(JSON_ARRAYAGG({tag}) AS CHAR)"),
    }
}

/// `aggregate` over the tags of each contact of the outer query.
fn of_each(aggregate: &str) -> String {
    format!(
        "(SELECT {aggregate} FROM contact_tags inline_ct \
         JOIN tags inline_t ON inline_t.id = inline_ct.tag_id \
         WHERE inline_ct.contact_id = contacts.id)"
    )
}

#[cfg(test)]
mod tests {
    use super::{parse, whole_tags};

    #[test]
    fn tags_cut_short_are_refused_even_when_the_array_still_reads() {
        let one = r#"[[1, "", "a", 0]]"#;
        assert_eq!(whole_tags(Some(one), Some(1)).unwrap().len(), 1);
        assert_eq!(whole_tags(Some(one), None).unwrap().len(), 1);
        assert!(whole_tags(Some(one), Some(2)).is_err());
        assert!(whole_tags(Some(r#"[[1, ]"#), Some(1)).is_err());
        assert!(whole_tags(None, Some(0)).unwrap().is_empty());
        assert!(whole_tags(None, None).unwrap().is_empty());
    }

    #[test]
    fn tags_come_in_their_sort_order_then_by_id() {
        let tags = parse(r#"[[9, "", "b", 2], [3, "地区", "上海", 1], [4, "", "a", 2]]"#).unwrap();
        let ids: Vec<i64> = tags.iter().map(|t| t.id).collect();
        assert_eq!(ids, [3, 4, 9]);
        assert_eq!(tags[0].group_name, "地区");
        assert_eq!(tags[0].name, "上海");
        assert!(parse("[]").unwrap().is_empty());
        assert!(parse(r#"[["x"]]"#).is_err());
        // Cut short by the server (MariaDB's `group_concat_max_len`): never read as fewer tags.
        assert!(parse(r#"[[1, "", "a", 0], [2, "", "b"#).is_err());
        assert!(parse(r#"[[1, "", "a", 0]"#).is_err());
    }
}
