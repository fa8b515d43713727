//! Groups of a synced account with their members (`left_at` for those no longer listed), and
//! the account's counters.

use entity::states::FriendStatus;
use std::collections::BTreeMap;

use entity::{chat_groups, contacts, group_members, wework_accounts, wework_instances};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, OnConflict},
};

use super::contacts::{bounded, unix};
use super::{Counts, PAGE_ATTEMPTS};
use crate::{
    Context, ServiceError, ServiceResult,
    drivers::{InstanceDriver, RemoteGroup, RemoteMember, with_retries},
    instances::accounts,
};

pub(super) async fn pull_groups(
    ctx: &Context,
    driver: &dyn InstanceDriver,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    counts: &mut Counts,
) -> ServiceResult<()> {
    let started = ctx.clock.now_db();
    let mut cursor = None;
    loop {
        let from = cursor.take();
        let page = with_retries(PAGE_ATTEMPTS, || driver.groups(&account.wxid, from.clone()))
            .await
            .map_err(accounts::driver_failure)?;
        for group in &page.items {
            let group_id = upsert_group(ctx, instance, account, group).await?;
            counts.groups += 1;
            let members = match &group.members {
                Some(members) => members.clone(),
                None => {
                    let mut all = Vec::new();
                    let mut member_cursor = None;
                    loop {
                        let from = member_cursor.take();
                        let p = with_retries(PAGE_ATTEMPTS, || {
                            driver.group_members(&account.wxid, &group.group_wxid, from.clone())
                        })
                        .await
                        .map_err(accounts::driver_failure)?;
                        all.extend(p.items);
                        match p.next_cursor.filter(|c| !c.is_empty()) {
                            Some(next) => member_cursor = Some(next),
                            None => break,
                        }
                    }
                    all
                }
            };
            counts.members += upsert_members(ctx, group_id, &members).await?;
        }
        match page.next_cursor.filter(|c| !c.is_empty()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    chat_groups::Entity::update_many()
        .col_expr(chat_groups::Column::IsActive, Expr::value(false))
        .filter(chat_groups::Column::AccountId.eq(account.id))
        .filter(
            Condition::any()
                .add(chat_groups::Column::LastSyncTime.is_null())
                .add(chat_groups::Column::LastSyncTime.lt(started)),
        )
        .exec(&ctx.db)
        .await?;
    Ok(())
}

pub(super) async fn upsert_group(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    g: &RemoteGroup,
) -> ServiceResult<i64> {
    let now = ctx.clock.now_db();
    let role = if g.owner_wxid.as_deref() == Some(account.wxid.as_str()) {
        "owner"
    } else if g.members.as_ref().is_some_and(|m| {
        m.iter()
            .any(|m| m.wxid == account.wxid && m.role == "admin")
    }) {
        "admin"
    } else {
        "member"
    };
    let row = chat_groups::ActiveModel {
        instance_id: Set(instance.id),
        account_id: Set(account.id),
        group_wxid: Set(g.group_wxid.chars().take(100).collect()),
        group_name: Set(bounded(g.name.as_ref(), 200)),
        owner_wxid: Set(bounded(g.owner_wxid.as_ref(), 100)),
        group_notice: Set(g.notice.clone()),
        member_count: Set(g.member_count.unwrap_or(0)),
        max_member_count: Set(500),
        my_role: Set(role.to_owned()),
        is_muted: Set(false),
        is_disturb_off: Set(false),
        message_count: Set(0),
        is_active: Set(!g.deleted),
        last_sync_time: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let on_conflict = OnConflict::columns([
        chat_groups::Column::AccountId,
        chat_groups::Column::GroupWxid,
    ])
    .update_columns([
        chat_groups::Column::GroupName,
        chat_groups::Column::OwnerWxid,
        chat_groups::Column::GroupNotice,
        chat_groups::Column::MemberCount,
        chat_groups::Column::MyRole,
        chat_groups::Column::IsActive,
        chat_groups::Column::LastSyncTime,
        chat_groups::Column::UpdatedAt,
    ])
    .to_owned();
    chat_groups::Entity::insert(row)
        .on_conflict(on_conflict)
        .exec_without_returning(&ctx.db)
        .await?;
    let id: Option<i64> = chat_groups::Entity::find()
        .select_only()
        .column(chat_groups::Column::Id)
        .filter(chat_groups::Column::AccountId.eq(account.id))
        .filter(
            chat_groups::Column::GroupWxid.eq(g.group_wxid.chars().take(100).collect::<String>()),
        )
        .into_tuple()
        .one(&ctx.db)
        .await?;
    id.ok_or(ServiceError::NotFound("group"))
}

pub(super) async fn upsert_members(
    ctx: &Context,
    group_id: i64,
    members: &[RemoteMember],
) -> ServiceResult<i32> {
    let now = ctx.clock.now_db();
    let unique: BTreeMap<String, &RemoteMember> = members
        .iter()
        .map(|m| (m.wxid.chars().take(100).collect(), m))
        .collect();
    let rows: Vec<group_members::ActiveModel> = unique
        .iter()
        .map(|(wxid, m)| group_members::ActiveModel {
            group_id: Set(group_id),
            member_wxid: Set(wxid.clone()),
            member_nickname: Set(bounded(m.nickname.as_ref(), 100)),
            group_nickname: Set(bounded(m.group_nickname.as_ref(), 100)),
            member_type: Set(m.member_type.chars().take(16).collect()),
            role: Set(m.role.chars().take(16).collect()),
            join_time: Set(unix(m.join_time)),
            is_muted: Set(false),
            speak_count: Set(0),
            is_active: Set(!m.left),
            left_at: Set(m.left.then_some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .collect();
    let on_conflict = OnConflict::columns([
        group_members::Column::GroupId,
        group_members::Column::MemberWxid,
    ])
    .update_columns([
        group_members::Column::MemberNickname,
        group_members::Column::GroupNickname,
        group_members::Column::MemberType,
        group_members::Column::Role,
        group_members::Column::JoinTime,
        group_members::Column::IsActive,
        group_members::Column::LeftAt,
        group_members::Column::UpdatedAt,
    ])
    .to_owned();
    for chunk in rows.chunks(crate::db::INSERT_BATCH_ROWS) {
        group_members::Entity::insert_many(chunk.to_vec())
            .on_conflict(on_conflict.clone())
            .exec_without_returning(&ctx.db)
            .await?;
    }
    group_members::Entity::update_many()
        .col_expr(group_members::Column::LeftAt, Expr::value(now))
        .col_expr(group_members::Column::IsActive, Expr::value(false))
        .filter(group_members::Column::GroupId.eq(group_id))
        .filter(group_members::Column::LeftAt.is_null())
        .filter(group_members::Column::UpdatedAt.lt(now))
        .exec(&ctx.db)
        .await?;
    let current = group_members::Entity::find()
        .filter(group_members::Column::GroupId.eq(group_id))
        .filter(group_members::Column::LeftAt.is_null())
        .count(&ctx.db)
        .await?;
    chat_groups::Entity::update_many()
        .col_expr(
            chat_groups::Column::MemberCount,
            Expr::value(i32::try_from(current).unwrap_or(i32::MAX)),
        )
        .filter(chat_groups::Column::Id.eq(group_id))
        .exec(&ctx.db)
        .await?;
    Ok(i32::try_from(unique.len()).unwrap_or(i32::MAX))
}

pub(super) async fn account_counts(ctx: &Context, account_id: i64) -> ServiceResult<()> {
    let contacts_now = contacts::Entity::find()
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::FriendStatus.eq(FriendStatus::Normal))
        .filter(contacts::Column::DeletedAt.is_null())
        .count(&ctx.db)
        .await?;
    let groups_now = chat_groups::Entity::find()
        .filter(chat_groups::Column::AccountId.eq(account_id))
        .filter(chat_groups::Column::IsActive.eq(true))
        .count(&ctx.db)
        .await?;
    wework_accounts::Entity::update_many()
        .col_expr(
            wework_accounts::Column::ContactCount,
            Expr::value(i32::try_from(contacts_now).unwrap_or(i32::MAX)),
        )
        .col_expr(
            wework_accounts::Column::GroupCount,
            Expr::value(i32::try_from(groups_now).unwrap_or(i32::MAX)),
        )
        .col_expr(
            wework_accounts::Column::LastSyncTime,
            Expr::value(ctx.clock.now_db()),
        )
        .filter(wework_accounts::Column::Id.eq(account_id))
        .exec(&ctx.db)
        .await?;
    Ok(())
}
