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

use super::TagRef;
use crate::{ServiceError, ServiceResult};

const COLUMN: &str = "inline_tags";

/// A contact with its tags as the database wrote them.
pub(super) struct ContactRow {
    pub contact: contacts::Model,
    tags_json: Option<String>,
}

impl FromQueryResult for ContactRow {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            contact: contacts::Model::from_query_result(row, pre)?,
            tags_json: row.try_get(pre, COLUMN)?,
        })
    }
}

impl ContactRow {
    /// The contact and its tags in the order tag lists use everywhere (`sort_order`, then id).
    pub fn into_parts(self) -> ServiceResult<(contacts::Model, Vec<TagRef>)> {
        let tags = match self.tags_json.as_deref() {
            None => Vec::new(),
            Some(json) => parse(json).map_err(|e| {
                ServiceError::Internal(anyhow::anyhow!("tags of contact {}: {e}", self.contact.id))
            })?,
        };
        Ok((self.contact, tags))
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

/// `query` (contacts), each row with its tags.
pub(super) fn with_tags(
    query: Select<contacts::Entity>,
    backend: DbBackend,
) -> Selector<SelectModel<ContactRow>> {
    query
        .expr_as(Expr::cust(tags_of_each(backend)), COLUMN)
        .into_model::<ContactRow>()
}

/// The subquery: NULL or `[]` for a contact without tags, text on every database.
fn tags_of_each(backend: DbBackend) -> String {
    let tag = "json_array(inline_t.id, inline_t.group_name, inline_t.name, inline_t.sort_order)";
    let aggregated = match backend {
        DbBackend::Sqlite => format!("json_group_array({tag})"),
        DbBackend::Postgres => {
            "json_agg(json_build_array(inline_t.id, inline_t.group_name, inline_t.name, inline_t.sort_order))::text".into()
        }
        _ => format!("CAST(JSON_ARRAYAGG({tag}) AS CHAR)"),
    };
    format!(
        "(SELECT {aggregated} FROM contact_tags inline_ct \
         JOIN tags inline_t ON inline_t.id = inline_ct.tag_id WHERE inline_ct.contact_id = contacts.id)"
    )
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn tags_come_in_their_sort_order_then_by_id() {
        let tags = parse(r#"[[9, "", "b", 2], [3, "地区", "上海", 1], [4, "", "a", 2]]"#).unwrap();
        let ids: Vec<i64> = tags.iter().map(|t| t.id).collect();
        assert_eq!(ids, [3, 4, 9]);
        assert_eq!(tags[0].group_name, "地区");
        assert_eq!(tags[0].name, "上海");
        assert!(parse("[]").unwrap().is_empty());
        assert!(parse(r#"[["x"]]"#).is_err());
    }
}
