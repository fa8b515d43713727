//! A page of contacts with their tags read in the same query: each row carries its tags as one
//! JSON array, `[[id, group_name, name, sort_order], …]`, built by a correlated subquery on
//! `contact_tags` (its primary key leads with the contact). A second query for the page's tags
//! cost the contact list a third of its time on SQLite, most of it spent handing that query's
//! rows, two per contact, between the connection's thread and the request's
//! (docs/benchmarks.md, "the contact list").

use entity::contacts;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryResult, QuerySelect, QueryTrait,
    Select, SelectModel, Selector,
    sea_query::{Expr, Query},
};

use super::{TagRef, json_row};

const COLUMN: &str = "inline_tags";
/// The contact itself, as one JSON array (`json_row`).
const CONTACT_COLUMN: &str = "contact_row";
/// SQLite: the whole page as one JSON value.
const PAGE_COLUMN: &str = "page";

/// A contact with its tags as the database wrote them.
pub(super) struct ContactRow {
    pub contact: contacts::Model,
    /// The JSON array, or `count:json` on MySQL/MariaDB (`aggregated`).
    tags: Option<String>,
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
            tags: row.try_get(pre, COLUMN)?,
        })
    }
}

impl ContactRow {
    /// The contact and its tags in the order tag lists use everywhere (`sort_order`, then id),
    /// or `None` for tags the database cut short: MariaDB's `JSON_ARRAYAGG` stops at
    /// `group_concat_max_len` (1 MiB unless a server lowers it) and closes the array after
    /// the cut, which can leave valid JSON with fewer tags. The caller reads those apart.
    pub fn into_parts(self) -> (contacts::Model, Option<Vec<TagRef>>) {
        let tags = whole_tags(self.tags.as_deref())
            .inspect_err(|why| {
                tracing::warn!(contact.id = self.contact.id, why = %why,
                    "a contact's tags came back cut short; reading them apart");
            })
            .ok();
        (self.contact, tags)
    }
}

/// The tags in `text` (a JSON array, or `count:json`), unless the array is unreadable or holds
/// fewer than the count the database gave beside it.
fn whole_tags(text: Option<&str>) -> Result<Vec<TagRef>, String> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    if text.starts_with('[') {
        return parse(text).map_err(|e| e.to_string());
    }
    let (count, json) = text
        .split_once(':')
        .ok_or_else(|| "no count before the tags".to_owned())?;
    let count: usize = count
        .parse()
        .map_err(|_| format!("`{count}` is not a count of tags"))?;
    let tags = parse(json).map_err(|e| e.to_string())?;
    if tags.len() == count {
        Ok(tags)
    } else {
        Err(format!("{} of {count} tags", tags.len()))
    }
}

/// A tag as the aggregate writes it: id, group name, name, sort order.
type RawTag = (i64, String, String, i32);

fn parse(json: &str) -> serde_json::Result<Vec<TagRef>> {
    serde_json::from_str(json).map(ordered)
}

fn ordered(mut tags: Vec<RawTag>) -> Vec<TagRef> {
    tags.sort_unstable_by_key(|&(id, _, _, sort_order)| (sort_order, id));
    tags.into_iter()
        .map(|(id, group_name, name, _)| TagRef {
            id,
            group_name,
            name,
        })
        .collect()
}

/// The contacts `query` selects, in its order (newest first), each with its tags or `None`
/// for tags to read apart.
pub(super) async fn read<C: ConnectionTrait>(
    db: &C,
    query: Select<contacts::Entity>,
) -> Result<Vec<(contacts::Model, Option<Vec<TagRef>>)>, DbErr> {
    let backend = db.get_database_backend();
    if backend == DbBackend::Sqlite {
        return read_as_one_value(db, query).await;
    }
    Ok(with_tags(query, backend)
        .all(db)
        .await?
        .into_iter()
        .map(ContactRow::into_parts)
        .collect())
}

/// SQLite: the whole page as one value, `[[contact, tags], …]`. Each row SQLite's driver hands
/// from the connection's thread to the request's costs a wake-up and copies; one row costs one.
/// The rows' JSON texts are joined as text (each is JSON already); SQLite keeps no order in an
/// aggregate of a subquery by promise, so the page is sorted again by id, newest first, as
/// every order `keyword::newest_first` gives is.
async fn read_as_one_value<C: ConnectionTrait>(
    db: &C,
    query: Select<contacts::Entity>,
) -> Result<Vec<(contacts::Model, Option<Vec<TagRef>>)>, DbErr> {
    let rows = with_tags_query(query, DbBackend::Sqlite).into_query();
    let page = Query::select()
        .expr_as(
            Expr::cust(format!(
                "coalesce('[' || group_concat('[' || page_rows.{CONTACT_COLUMN} || ',' || \
                 coalesce(page_rows.{COLUMN}, 'null') || ']', ',') || ']', '[]')"
            )),
            PAGE_COLUMN,
        )
        .from_subquery(rows, "page_rows")
        .to_owned();
    let json: String = match db.query_one_raw(DbBackend::Sqlite.build(&page)).await? {
        Some(row) => row.try_get("", PAGE_COLUMN)?,
        None => "[]".to_owned(),
    };
    let mut entries: Vec<(json_row::Decoded, Option<Vec<RawTag>>)> = serde_json::from_str(&json)
        .map_err(|e| DbErr::Type(format!("a page read as one JSON value did not decode: {e}")))?;
    entries.sort_unstable_by_key(|(contact, _)| std::cmp::Reverse(contact.0.id));
    Ok(entries
        .into_iter()
        .map(|(contact, tags)| (contact.0, Some(ordered(tags.unwrap_or_default()))))
        .collect())
}

/// `query` (contacts), each row with its tags.
fn with_tags(
    query: Select<contacts::Entity>,
    backend: DbBackend,
) -> Selector<SelectModel<ContactRow>> {
    with_tags_query(query, backend).into_model::<ContactRow>()
}

/// `query`'s columns: the contact (as one JSON value where `json_row` has a form) and its
/// tags (`aggregated`).
fn with_tags_query(
    query: Select<contacts::Entity>,
    backend: DbBackend,
) -> Select<contacts::Entity> {
    let query = match json_row::expression(backend) {
        Some(row) => query.select_only().expr_as(Expr::cust(row), CONTACT_COLUMN),
        None => query.expr_as(Expr::cust("CAST(NULL AS TEXT)"), CONTACT_COLUMN),
    };
    query.expr_as(Expr::cust(of_each(&aggregated(backend))), COLUMN)
}

/// The tags as one JSON array, as text: NULL or `[]` for a contact without tags. On
/// MySQL/MariaDB, whose array can come back cut short (`ContactRow::into_parts`), their count
/// goes before it, `count:json`, counted by the same aggregate: a count in a subquery of its
/// own walked the contact's tags a second time, a quarter of MariaDB's time for a page
/// (docs/benchmarks.md, "The contact list: MariaDB's tag count").
fn aggregated(backend: DbBackend) -> String {
    let tag = "json_array(inline_t.id, inline_t.group_name, inline_t.name, inline_t.sort_order)";
    match backend {
        DbBackend::Sqlite => format!("json_group_array({tag})"),
        DbBackend::Postgres => format!(
            "json_agg({})::text",
            tag.replace("json_array", "json_build_array")
        ),
        _ => format!("CONCAT(COUNT(*), ':', COALESCE(CAST(JSON_ARRAYAGG({tag}) AS CHAR), '[]'))"),
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
        let one = r#"1:[[1, "", "a", 0]]"#;
        assert_eq!(whole_tags(Some(one)).unwrap().len(), 1);
        assert!(whole_tags(Some(r#"2:[[1, "", "a", 0]]"#)).is_err());
        assert!(whole_tags(Some(r#"1:[[1, ]"#)).is_err());
        assert!(whole_tags(Some("0:[]")).unwrap().is_empty());
        assert!(whole_tags(None).unwrap().is_empty());
        // A group name with a colon is in the JSON, after the count's colon.
        assert_eq!(
            whole_tags(Some(r#"1:[[1, "a:b", "c", 0]]"#)).unwrap()[0].group_name,
            "a:b"
        );
        // PostgreSQL's arrays come without a count: it never cuts them.
        assert_eq!(
            whole_tags(Some(r#"[[1, "a:b", "c", 0]]"#)).unwrap().len(),
            1
        );
        assert!(whole_tags(Some(r#"[[1, ]"#)).is_err());
        assert!(whole_tags(Some(r#"x:[[1, "", "a", 0]]"#)).is_err());
        assert!(whole_tags(Some(r#"-1:[]"#)).is_err());
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
