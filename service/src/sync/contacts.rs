//! Contacts of a synced account: upserted with their tags, unlinked from tags the instance
//! no longer reports, marked deleted when no longer listed.

use entity::states::{ContactType, FriendStatus};
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime};
use entity::{contact_tags, contacts, tags, wework_accounts, wework_instances};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, OnConflict},
};

use crate::{
    Context, ServiceResult,
    contacts::tags::{link, upsert_remote},
    drivers::RemoteContact,
};

pub(super) fn unix(t: Option<i64>) -> Option<NaiveDateTime> {
    t.and_then(|s| DateTime::from_timestamp(s, 0))
        .map(|d| d.naive_utc())
}

pub(super) fn bounded(value: Option<&String>, max: usize) -> Option<String> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(max).collect())
}

/// Upserts one page of contacts and their synced tags; returns how many were written.
pub(crate) async fn upsert_contacts(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    items: &[RemoteContact],
) -> ServiceResult<i32> {
    if items.is_empty() {
        return Ok(0);
    }
    let now = ctx.clock.now_db();
    let rows = items.iter().map(|c| contacts::ActiveModel {
        instance_id: Set(instance.id),
        account_id: Set(account.id),
        wxid: Set(c.wxid.chars().take(100).collect()),
        nickname: Set(bounded(c.nickname.as_ref(), 100)),
        remark: Set(bounded(c.remark.as_ref(), 100)),
        avatar_url: Set(bounded(c.avatar_url.as_ref(), 500)),
        phone: Set(bounded(c.phone.as_ref(), 20)),
        gender: Set(c.gender),
        region: Set(bounded(c.region.as_ref(), 100)),
        corp_name: Set(bounded(c.corp_name.as_ref(), 100)),
        contact_type: Set(ContactType::parse(&c.contact_type).unwrap_or(ContactType::External)),
        friend_status: Set(if c.deleted {
            FriendStatus::Deleted
        } else {
            FriendStatus::Normal
        }),
        is_star: Set(false),
        is_top: Set(false),
        is_blocked: Set(false),
        add_source: Set(Some("sync".to_owned())),
        add_time: Set(unix(c.add_time)),
        chat_count: Set(0),
        last_sync_time: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    });
    // Remark, star, top, blocked and custom fields are local: a sync never overwrites them.
    let on_conflict = OnConflict::columns([contacts::Column::AccountId, contacts::Column::Wxid])
        .update_columns([
            contacts::Column::Nickname,
            contacts::Column::AvatarUrl,
            contacts::Column::Phone,
            contacts::Column::Gender,
            contacts::Column::Region,
            contacts::Column::CorpName,
            contacts::Column::ContactType,
            contacts::Column::FriendStatus,
            contacts::Column::AddTime,
            contacts::Column::LastSyncTime,
            contacts::Column::UpdatedAt,
        ])
        .to_owned();
    for chunk in rows
        .collect::<Vec<_>>()
        .chunks(crate::db::INSERT_BATCH_ROWS)
    {
        contacts::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(&ctx.db)
            .await?;
    }
    let remote_tags: Vec<(Option<String>, String, String)> = items
        .iter()
        .flat_map(|c| {
            c.tags
                .iter()
                .map(|t| (t.id.clone(), t.group.clone(), t.name.clone()))
        })
        .collect();
    let tag_ids = upsert_remote(&ctx.db, instance.id, &remote_tags, now).await?;
    let ids: HashMap<String, i64> = contacts::Entity::find()
        .select_only()
        .column(contacts::Column::Wxid)
        .column(contacts::Column::Id)
        .filter(contacts::Column::AccountId.eq(account.id))
        .filter(contacts::Column::Wxid.is_in(items.iter().map(|c| c.wxid.clone())))
        .into_tuple::<(String, i64)>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .collect();
    let tag_ids = &tag_ids;
    let pairs: Vec<(i64, i64)> = items
        .iter()
        .filter_map(|c| Some((ids.get(&c.wxid).copied()?, c)))
        .flat_map(|(id, c)| {
            c.tags
                .iter()
                .filter_map(move |t| {
                    Some((
                        id,
                        *tag_ids.get(&(
                            t.group.chars().take(100).collect(),
                            t.name.chars().take(100).collect(),
                        ))?,
                    ))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    unlink_stale(ctx, instance.id, &ids, &pairs).await?;
    link(&ctx.db, pairs.into_iter(), now).await?;
    Ok(i32::try_from(items.len()).unwrap_or(i32::MAX))
}

/// Removes the page's links to this instance's synced tags that the instance no longer reports.
/// The links are read by contact id (the primary key's leading column) and removed pair by pair,
/// so the plan never depends on fresh table statistics; an unchanged page deletes nothing.
pub(super) async fn unlink_stale(
    ctx: &Context,
    instance_id: i64,
    ids: &HashMap<String, i64>,
    wanted: &[(i64, i64)],
) -> ServiceResult<()> {
    let synced: HashSet<i64> = tags::Entity::find()
        .select_only()
        .column(tags::Column::Id)
        .filter(tags::Column::InstanceId.eq(instance_id))
        .into_tuple::<i64>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .collect();
    let wanted: HashSet<&(i64, i64)> = wanted.iter().collect();
    let stale: Vec<(i64, i64)> = contact_tags::Entity::find()
        .select_only()
        .column(contact_tags::Column::ContactId)
        .column(contact_tags::Column::TagId)
        .filter(contact_tags::Column::ContactId.is_in(ids.values().copied()))
        .into_tuple::<(i64, i64)>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .filter(|pair| synced.contains(&pair.1) && !wanted.contains(pair))
        .collect();
    for chunk in stale.chunks(200) {
        let any = chunk.iter().fold(Condition::any(), |any, (contact, tag)| {
            any.add(
                Condition::all()
                    .add(contact_tags::Column::ContactId.eq(*contact))
                    .add(contact_tags::Column::TagId.eq(*tag)),
            )
        });
        contact_tags::Entity::delete_many()
            .filter(any)
            .exec(&ctx.db)
            .await?;
    }
    Ok(())
}

/// How many of the contacts the page reports deleted are still `normal` here (counted before the
/// upsert marks them).
pub(super) async fn newly_deleted(
    ctx: &Context,
    account_id: i64,
    items: &[RemoteContact],
) -> ServiceResult<i32> {
    let deleted: Vec<String> = items
        .iter()
        .filter(|c| c.deleted)
        .map(|c| c.wxid.clone())
        .collect();
    if deleted.is_empty() {
        return Ok(0);
    }
    let count = contacts::Entity::find()
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::Wxid.is_in(deleted))
        .filter(contacts::Column::FriendStatus.eq(FriendStatus::Normal))
        .count(&ctx.db)
        .await?;
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

/// Contacts of the account this pass did not see: the instance no longer lists them.
pub(super) async fn mark_unlisted_contacts(
    ctx: &Context,
    account_id: i64,
    started: NaiveDateTime,
) -> ServiceResult<i32> {
    let result = contacts::Entity::update_many()
        .col_expr(
            contacts::Column::FriendStatus,
            Expr::value(FriendStatus::Deleted),
        )
        .col_expr(contacts::Column::UpdatedAt, Expr::value(ctx.clock.now_db()))
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::FriendStatus.eq(FriendStatus::Normal))
        .filter(contacts::Column::DeletedAt.is_null())
        .filter(contacts::Column::AddSource.ne("manual"))
        .filter(contacts::Column::AddSource.ne("import"))
        .filter(
            Condition::any()
                .add(contacts::Column::LastSyncTime.is_null())
                .add(contacts::Column::LastSyncTime.lt(started)),
        )
        .exec(&ctx.db)
        .await?;
    Ok(i32::try_from(result.rows_affected).unwrap_or(i32::MAX))
}
