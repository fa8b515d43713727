//! PostgreSQL: a page of synced contacts in one statement. The rows travel as one JSON text
//! parameter read by `json_to_recordset`, where the portable path binds ~20 values per row in
//! 50-row statements: binding and planning those cost more than writing the rows (a page of 500
//! took ten statements, docs/benchmarks.md). The statement returns each row's id and whether it
//! was created (`xmax = 0` for a row this statement inserted), so a page needs no lookup of its
//! ids, and a new contact no look for stale tag links — a lookup whose plan, on tables a first
//! sync is filling faster than statistics follow, was a sequential scan per page.

use std::sync::LazyLock;

use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbBackend, IdenStatic, Statement};
use serde::Serialize;

use super::contacts::{Incoming, RESYNCED, Stored};
use crate::ServiceResult;

/// One row of the JSON parameter; the names match the record definition in [`UPSERT`].
#[derive(Serialize)]
struct JsonRow<'a> {
    wxid: &'a str,
    nickname: Option<&'a str>,
    remark: Option<&'a str>,
    avatar_url: Option<&'a str>,
    phone: Option<&'a str>,
    gender: Option<i16>,
    region: Option<&'a str>,
    corp_name: Option<&'a str>,
    contact_type: &'a str,
    friend_status: &'a str,
    add_time: Option<String>,
}

/// The statement: the JSON rows inserted, `RESYNCED` rewritten on a contact already there.
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let resynced: Vec<String> = RESYNCED
        .iter()
        .map(|column| format!("{0} = EXCLUDED.{0}", column.as_str()))
        .collect();
    format!(
        "INSERT INTO contacts (instance_id, account_id, wxid, nickname, remark, avatar_url, \
            phone, gender, region, corp_name, contact_type, friend_status, is_star, is_top, \
            is_blocked, add_source, add_time, chat_count, last_sync_time, created_at, updated_at) \
         SELECT $1, $2, r.wxid, r.nickname, r.remark, r.avatar_url, r.phone, r.gender, \
            r.region, r.corp_name, r.contact_type, r.friend_status, FALSE, FALSE, FALSE, 'sync', \
            r.add_time, 0, $3, $3, $3 \
         FROM json_to_recordset($4::text::json) AS r(wxid text, nickname text, remark text, \
            avatar_url text, phone text, gender smallint, region text, corp_name text, \
            contact_type text, friend_status text, add_time timestamp) \
         ON CONFLICT (account_id, wxid) DO UPDATE SET {} \
         RETURNING id, wxid, (xmax = 0) AS created",
        resynced.join(", ")
    )
});

/// Upserts the page (wxids unique) and returns every row's id and whether it is new.
pub(super) async fn upsert<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    instance_id: i64,
    account_id: i64,
    page: &[Incoming],
) -> ServiceResult<Vec<Stored>> {
    let rows: Vec<JsonRow<'_>> = page
        .iter()
        .map(|c| JsonRow {
            wxid: &c.wxid,
            nickname: c.nickname.as_deref(),
            remark: c.remark.as_deref(),
            avatar_url: c.avatar_url.as_deref(),
            phone: c.phone.as_deref(),
            gender: c.gender,
            region: c.region.as_deref(),
            corp_name: c.corp_name.as_deref(),
            contact_type: c.contact_type.as_str(),
            friend_status: c.friend_status.as_str(),
            add_time: c
                .add_time
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
        })
        .collect();
    let json = serde_json::to_string(&rows).map_err(anyhow::Error::from)?;
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        UPSERT.as_str(),
        [
            instance_id.into(),
            account_id.into(),
            now.into(),
            json.into(),
        ],
    );
    let mut stored = Vec::with_capacity(page.len());
    for row in conn.query_all_raw(statement).await? {
        stored.push(Stored {
            wxid: row.try_get("", "wxid")?,
            id: row.try_get("", "id")?,
            created: row.try_get("", "created")?,
        });
    }
    Ok(stored)
}
