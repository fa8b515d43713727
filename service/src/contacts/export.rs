//! Contact export as CSV, streamed in keyset batches so a million rows never sit in memory.

use crate::rbac::perm;
use futures_util::Stream;

use super::{ContactFilter, ResolvedFilter};
use crate::{Context, ServiceError, ServiceResult, auth::actor::Actor, rbac::scope::Reach};

const BATCH: u64 = 1000;
const HEADER: &[&str] = &[
    "id",
    "instance_id",
    "account_id",
    "wxid",
    "nickname",
    "remark",
    "phone",
    "gender",
    "region",
    "corp_name",
    "contact_type",
    "friend_status",
    "is_star",
    "is_blocked",
    "tags",
    "custom_fields",
    "updated_at",
    "unsubscribed_at",
    "unsubscribe_source",
];

struct Cursor {
    ctx: Context,
    filter: ResolvedFilter,
    reach: Reach,
    before: Option<i64>,
    header_sent: bool,
    done: bool,
}

/// Validates the filter up front (a bad filter is a 422, not a broken download), then streams.
pub async fn stream(
    ctx: &Context,
    actor: &Actor,
    filter: ContactFilter,
) -> ServiceResult<impl Stream<Item = Result<Vec<u8>, ServiceError>> + use<>> {
    actor.require(perm::ContactsExport)?;
    let filter = filter.resolve(ctx, actor).await?;
    filter.page(&actor.reach, ctx.db.get_database_backend(), None, BATCH)?;
    let cursor = Cursor {
        ctx: ctx.clone(),
        filter,
        reach: actor.reach.clone(),
        before: None,
        header_sent: false,
        done: false,
    };
    Ok(futures_util::stream::unfold(
        cursor,
        |mut cursor| async move {
            if cursor.done {
                return None;
            }
            if !cursor.header_sent {
                cursor.header_sent = true;
                // A byte-order mark so spreadsheet programs read the Chinese text as UTF-8.
                let mut bytes = b"\xEF\xBB\xBF".to_vec();
                bytes.extend(crate::csv_out::csv_line(
                    &HEADER.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
                ));
                return Some((Ok(bytes), cursor));
            }
            match next_batch(&mut cursor).await {
                Ok(Some(bytes)) => Some((Ok(bytes), cursor)),
                Ok(None) => None,
                Err(e) => {
                    cursor.done = true;
                    Some((Err(e), cursor))
                }
            }
        },
    ))
}

async fn next_batch(cursor: &mut Cursor) -> ServiceResult<Option<Vec<u8>>> {
    let rows = cursor
        .filter
        .views_page(&cursor.ctx.db, &cursor.reach, cursor.before, BATCH)
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    cursor.before = rows.last().map(|r| r.id);
    cursor.done = (rows.len() as u64) < BATCH;
    let mut out = Vec::new();
    for c in rows {
        let tags = c
            .tags
            .iter()
            .map(|t| {
                if t.group_name.is_empty() {
                    t.name.clone()
                } else {
                    format!("{}/{}", t.group_name, t.name)
                }
            })
            .collect::<Vec<_>>()
            .join(";");
        out.extend(crate::csv_out::csv_line(&[
            c.id.to_string(),
            c.instance_id.to_string(),
            c.account_id.to_string(),
            c.wxid,
            c.nickname.unwrap_or_default(),
            c.remark.unwrap_or_default(),
            c.phone.unwrap_or_default(),
            c.gender.map(|g| g.to_string()).unwrap_or_default(),
            c.region.unwrap_or_default(),
            c.corp_name.unwrap_or_default(),
            c.contact_type.to_string(),
            c.friend_status.to_string(),
            c.is_star.to_string(),
            c.is_blocked.to_string(),
            tags,
            c.custom_fields.map(|f| f.to_string()).unwrap_or_default(),
            c.updated_at.to_rfc3339(),
            c.unsubscribed_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            c.unsubscribe_source.unwrap_or_default(),
        ]));
    }
    Ok(Some(out))
}
