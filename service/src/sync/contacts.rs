//! Contacts of a synced account: upserted with their tags, unlinked from tags the instance
//! no longer reports, marked deleted when no longer listed.

use entity::states::{ContactType, FriendStatus};
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime};
use entity::{contact_tags, contacts, tags, wework_accounts, wework_instances};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
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

/// Text from an instance cut to `max` characters; empty is none. NUL characters are dropped:
/// PostgreSQL text cannot hold them, and a name with one is the same name without it.
pub(super) fn bounded(value: Option<&String>, max: usize) -> Option<String> {
    value.map(|v| without_nul(v, max)).filter(|v| !v.is_empty())
}

fn without_nul(value: &str, max: usize) -> String {
    value.chars().filter(|c| *c != '\0').take(max).collect()
}

/// A remote contact as it will be stored: text cut to the columns' sizes, states parsed.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    pub wxid: String,
    pub nickname: Option<String>,
    pub remark: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub gender: Option<i16>,
    pub region: Option<String>,
    pub corp_name: Option<String>,
    pub contact_type: ContactType,
    pub friend_status: FriendStatus,
    pub add_time: Option<NaiveDateTime>,
}

impl Incoming {
    fn from_remote(c: &RemoteContact) -> Self {
        Self {
            wxid: without_nul(&c.wxid, 100),
            nickname: bounded(c.nickname.as_ref(), 100),
            remark: bounded(c.remark.as_ref(), 100),
            avatar_url: bounded(c.avatar_url.as_ref(), 500),
            phone: bounded(c.phone.as_ref(), 20),
            gender: c.gender,
            region: bounded(c.region.as_ref(), 100),
            corp_name: bounded(c.corp_name.as_ref(), 100),
            contact_type: ContactType::parse(&c.contact_type).unwrap_or(ContactType::External),
            friend_status: if c.deleted {
                FriendStatus::Deleted
            } else {
                FriendStatus::Normal
            },
            add_time: unix(c.add_time),
        }
    }
}

/// A contact of the page as stored, and whether this write created it (a new contact has no
/// links to check). The portable path cannot tell and says `false`.
pub(super) struct Stored {
    pub wxid: String,
    pub id: i64,
    pub created: bool,
}

/// Upserts contacts and their synced tags outside any transaction (a callback's or a desk
/// channel's few contacts); returns how many were written.
pub(crate) async fn upsert_contacts(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    items: &[RemoteContact],
) -> ServiceResult<i32> {
    let now = ctx.clock.now_db();
    let tag_ids = synced_tag_ids(&ctx.db, instance.id, items, now).await?;
    upsert_contacts_on(&ctx.db, now, instance, account, items, &tag_ids).await
}

/// The instance's tags the contacts carry, upserted; their ids by (group, name). A sync runs this
/// before a page's transaction, so pages written at the same time do not wait on each other's
/// tag rows.
pub(super) async fn synced_tag_ids<C: ConnectionTrait>(
    conn: &C,
    instance_id: i64,
    items: &[RemoteContact],
    now: NaiveDateTime,
) -> ServiceResult<BTreeMap<(String, String), i64>> {
    let remote_tags: Vec<(Option<String>, String, String)> = items
        .iter()
        .flat_map(|c| {
            c.tags
                .iter()
                .map(|t| (t.id.clone(), t.group.clone(), t.name.clone()))
        })
        .collect();
    upsert_remote(conn, instance_id, &remote_tags, now).await
}

/// Upserts one page of contacts on `conn` (a sync writes each page in one transaction) and links
/// them to their synced tags (`tag_ids`, from [`synced_tag_ids`]); returns how many were written.
/// A wxid listed twice counts once, as its last entry.
pub(super) async fn upsert_contacts_on<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    items: &[RemoteContact],
    tag_ids: &BTreeMap<(String, String), i64>,
) -> ServiceResult<i32> {
    // In the page's order, each wxid at its first place with its last entry.
    let mut place: HashMap<String, usize> = HashMap::new();
    let mut page: Vec<Incoming> = Vec::with_capacity(items.len());
    let mut remotes: Vec<&RemoteContact> = Vec::with_capacity(items.len());
    for remote in items {
        let incoming = Incoming::from_remote(remote);
        match place.get(&incoming.wxid) {
            Some(&at) => (page[at], remotes[at]) = (incoming, remote),
            None => {
                place.insert(incoming.wxid.clone(), page.len());
                page.push(incoming);
                remotes.push(remote);
            }
        }
    }
    if page.is_empty() {
        return Ok(0);
    }
    let stored = if conn.get_database_backend() == DbBackend::Postgres {
        super::pg_page::upsert(conn, now, instance.id, account.id, &page).await?
    } else {
        upsert_portable(conn, now, instance.id, account.id, &page).await?
    };
    let mut pairs: Vec<(i64, i64)> = Vec::new();
    for contact in &stored {
        let Some(remote) = place.get(&contact.wxid).map(|&at| remotes[at]) else {
            continue;
        };
        pairs.extend(remote.tags.iter().filter_map(|t| {
            let key: (String, String) = (
                t.group.chars().take(100).collect(),
                t.name.chars().take(100).collect(),
            );
            Some((contact.id, *tag_ids.get(&key)?))
        }));
    }
    let existing: Vec<i64> = stored.iter().filter(|c| !c.created).map(|c| c.id).collect();
    unlink_stale(conn, instance.id, &existing, &pairs).await?;
    link(conn, pairs.into_iter(), now).await?;
    Ok(i32::try_from(page.len()).unwrap_or(i32::MAX))
}

/// What a sync rewrites on a contact it already has. Remark, star, top, blocked and custom
/// fields are local: a sync writes the remark of a new contact only and never overwrites them.
pub(super) const RESYNCED: [contacts::Column; 11] = [
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
];

/// SQLite and MySQL: multi-row upserts of `INSERT_BATCH_ROWS`, then the page's ids by wxid.
async fn upsert_portable<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    instance_id: i64,
    account_id: i64,
    page: &[Incoming],
) -> ServiceResult<Vec<Stored>> {
    let rows: Vec<contacts::ActiveModel> = page
        .iter()
        .map(|c| contacts::ActiveModel {
            instance_id: Set(instance_id),
            account_id: Set(account_id),
            wxid: Set(c.wxid.clone()),
            nickname: Set(c.nickname.clone()),
            remark: Set(c.remark.clone()),
            avatar_url: Set(c.avatar_url.clone()),
            phone: Set(c.phone.clone()),
            gender: Set(c.gender),
            region: Set(c.region.clone()),
            corp_name: Set(c.corp_name.clone()),
            contact_type: Set(c.contact_type),
            friend_status: Set(c.friend_status),
            is_star: Set(false),
            is_top: Set(false),
            is_blocked: Set(false),
            add_source: Set(Some("sync".to_owned())),
            add_time: Set(c.add_time),
            chat_count: Set(0),
            last_sync_time: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .collect();
    let on_conflict = OnConflict::columns([contacts::Column::AccountId, contacts::Column::Wxid])
        .update_columns(RESYNCED)
        .to_owned();
    for chunk in rows.chunks(crate::db::INSERT_BATCH_ROWS) {
        contacts::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(conn)
            .await?;
    }
    let found = contacts::Entity::find()
        .select_only()
        .column(contacts::Column::Wxid)
        .column(contacts::Column::Id)
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::Wxid.is_in(page.iter().map(|c| c.wxid.clone())))
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await?;
    Ok(found
        .into_iter()
        .map(|(wxid, id)| Stored {
            wxid,
            id,
            created: false,
        })
        .collect())
}

/// Removes the links of the page's existing contacts to this instance's synced tags that the
/// instance no longer reports. The links are read by contact id (the primary key's leading
/// column) and removed pair by pair, so the plan never depends on fresh table statistics; an
/// unchanged page deletes nothing.
pub(super) async fn unlink_stale<C: ConnectionTrait>(
    conn: &C,
    instance_id: i64,
    contact_ids: &[i64],
    wanted: &[(i64, i64)],
) -> ServiceResult<()> {
    if contact_ids.is_empty() {
        return Ok(());
    }
    let synced: HashSet<i64> = tags::Entity::find()
        .select_only()
        .column(tags::Column::Id)
        .filter(tags::Column::InstanceId.eq(instance_id))
        .into_tuple::<i64>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    let wanted: HashSet<&(i64, i64)> = wanted.iter().collect();
    let stale: Vec<(i64, i64)> = contact_tags::Entity::find()
        .select_only()
        .column(contact_tags::Column::ContactId)
        .column(contact_tags::Column::TagId)
        .filter(contact_tags::Column::ContactId.is_in(contact_ids.iter().copied()))
        .into_tuple::<(i64, i64)>()
        .all(conn)
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
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// How many of the contacts the page reports deleted are still `normal` here (counted before the
/// upsert marks them).
pub(super) async fn newly_deleted<C: ConnectionTrait>(
    conn: &C,
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
        .count(conn)
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
