//! A visitor's message arriving on a channel: the visitor's profile is found or made, the
//! message joins the visitor's open conversation or opens a new one (queued in the channel's
//! group, welcomed, then assigned by the group's rule), and a bare `1`–`5` right after a rated
//! close is the visitor's rating instead. A message id seen before on the channel is dropped, so
//! a callback delivered twice shows once.

use entity::{
    contacts, desk_channels, desk_conversations, desk_messages, desk_visitors,
    states::{ConversationState, MessageDirection},
    wework_accounts, wework_instances,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use super::{
    assign, conversations,
    events::{self, EventKind},
};
use crate::{Context, ServiceResult, db::row_locks};

/// One inbound private message, as the callback processing read it.
pub struct Inbound<'a> {
    pub instance: &'a wework_instances::Model,
    pub account: &'a wework_accounts::Model,
    /// The sender's id on the channel (their wxid or external userid).
    pub from: &'a str,
    pub contact_id: Option<i64>,
    pub msgtype: &'a str,
    pub content: Option<&'a str>,
    pub remote_id: Option<&'a str>,
}

/// Takes the message onto the desk when its account is an enabled channel; otherwise nothing.
pub async fn on_inbound(ctx: &Context, message: Inbound<'_>) -> ServiceResult<()> {
    let Some(channel) = enabled_channel(ctx, message.account.id).await? else {
        return Ok(());
    };
    let contact_id = match message.contact_id {
        Some(id) => Some(id),
        None => ensure_contact(ctx, message.instance, message.account, message.from).await?,
    };
    let visitor = visitor_for(ctx, &channel, message.from, contact_id).await?;
    let open = open_conversation(&ctx.db, visitor.id).await?;
    if open.is_none()
        && let Some(text) = message.content
        && conversations::take_rating(ctx, visitor.id, text).await?
    {
        return Ok(());
    }
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    // One message of a visitor at a time: the visitor's row is the lock.
    let mut lock = desk_visitors::Entity::find_by_id(visitor.id);
    if row_locks(&txn) {
        lock = lock.lock_exclusive();
    }
    lock.one(&txn).await?;
    if let Some(remote) = message.remote_id
        && desk_messages::Entity::find()
            .filter(desk_messages::Column::ChannelId.eq(channel.id))
            .filter(desk_messages::Column::RemoteMsgId.eq(remote))
            .count(&txn)
            .await?
            > 0
    {
        txn.rollback().await?;
        return Ok(());
    }
    let (conversation_id, opened) = match open_conversation(&txn, visitor.id).await? {
        Some(id) => (id, false),
        None => {
            let id = desk_conversations::Entity::insert(desk_conversations::ActiveModel {
                channel_id: Set(channel.id),
                visitor_id: Set(visitor.id),
                skill_group_id: Set(channel.skill_group_id),
                agent_id: Set(None),
                state: Set(ConversationState::Queued),
                opened_at: Set(now),
                queued_at: Set(now),
                last_visitor_message_at: Set(now),
                last_message_at: Set(now),
                replies_since_visitor: Set(0),
                unread: Set(0),
                updated_at: Set(now),
                ..Default::default()
            })
            .exec(&txn)
            .await?
            .last_insert_id;
            desk_visitors::Entity::update_many()
                .col_expr(
                    desk_visitors::Column::Visits,
                    Expr::col(desk_visitors::Column::Visits).add(1),
                )
                .filter(desk_visitors::Column::Id.eq(visitor.id))
                .exec(&txn)
                .await?;
            (id, true)
        }
    };
    let id = desk_messages::Entity::insert(desk_messages::ActiveModel {
        conversation_id: Set(conversation_id),
        channel_id: Set(channel.id),
        direction: Set(MessageDirection::In),
        agent_id: Set(None),
        msgtype: Set(message.msgtype.chars().take(20).collect()),
        content: Set(message.content.map(str::to_owned)),
        remote_msg_id: Set(message.remote_id.map(|r| r.chars().take(128).collect())),
        task_id: Set(None),
        created_at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?
    .last_insert_id;
    desk_conversations::Entity::update_many()
        .col_expr(
            desk_conversations::Column::LastVisitorMessageAt,
            Expr::value(now),
        )
        .col_expr(desk_conversations::Column::LastMessageAt, Expr::value(now))
        .col_expr(
            desk_conversations::Column::RepliesSinceVisitor,
            Expr::value(0),
        )
        .col_expr(
            desk_conversations::Column::Unread,
            Expr::col(desk_conversations::Column::Unread).add(1),
        )
        .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now))
        .filter(desk_conversations::Column::Id.eq(conversation_id))
        .exec(&txn)
        .await?;
    super::members::count_message(&txn, conversation_id, None).await?;
    desk_visitors::Entity::update_many()
        .col_expr(desk_visitors::Column::LastSeenAt, Expr::value(now))
        .filter(desk_visitors::Column::Id.eq(visitor.id))
        .exec(&txn)
        .await?;
    if opened {
        conversations::record_change(&txn, now, conversation_id, EventKind::ConversationOpened)
            .await?;
    }
    let conversation = conversations::find(&txn, conversation_id).await?;
    let stored = desk_messages::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .map(conversations::DeskMessageView::from);
    if let Some(stored) = &stored {
        conversations::record_message(&txn, now, &conversation, EventKind::MessageReceived, stored)
            .await?;
    }
    txn.commit().await?;
    events::announce(ctx).await;
    if opened {
        let kf = crate::drivers::wecom::kf::open_kfid(&message.account.wxid).is_some();
        if kf {
            // 微信客服 welcomes on `enter_session`, with the event's code (see `kf`).
            super::kf::serve_session(ctx, &conversation).await;
        } else if let Some(welcome) = channel.welcome_message.clone()
            && let Err(e) = conversations::send_from_desk(ctx, &conversation, welcome).await
        {
            tracing::warn!(conversation = conversation_id, error = %e, "the welcome message could not be queued");
        }
        assign::try_assign(ctx, conversation_id).await?;
    }
    Ok(())
}

async fn open_conversation<C: sea_orm::ConnectionTrait>(
    conn: &C,
    visitor_id: i64,
) -> ServiceResult<Option<i64>> {
    Ok(desk_conversations::Entity::find()
        .select_only()
        .column(desk_conversations::Column::Id)
        .filter(desk_conversations::Column::VisitorId.eq(visitor_id))
        .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
        .order_by_desc(desk_conversations::Column::Id)
        .into_tuple()
        .one(conn)
        .await?)
}

/// The enabled channel on the account, if it is one.
pub(super) async fn enabled_channel(
    ctx: &Context,
    account_id: i64,
) -> ServiceResult<Option<desk_channels::Model>> {
    Ok(desk_channels::Entity::find()
        .filter(desk_channels::Column::AccountId.eq(account_id))
        .filter(desk_channels::Column::Enabled.eq(true))
        .one(&ctx.db)
        .await?)
}

/// Someone who writes to the account is a contact of it: a row is made now (the next sync
/// fills in their profile) so replies have someone to go to.
pub(super) async fn ensure_contact(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    from: &str,
) -> ServiceResult<Option<i64>> {
    if let Some(id) = contact_id(&ctx.db, account.id, from).await? {
        return Ok(Some(id));
    }
    let contact = crate::drivers::RemoteContact::external(from);
    crate::sync::upsert_contacts(ctx, instance, account, &[contact]).await?;
    contact_id(&ctx.db, account.id, from).await
}

/// The id of the account's contact `wxid`, if there is one.
pub(crate) async fn contact_id<C: sea_orm::ConnectionTrait>(
    conn: &C,
    account_id: i64,
    wxid: &str,
) -> ServiceResult<Option<i64>> {
    Ok(contacts::Entity::find()
        .select_only()
        .column(contacts::Column::Id)
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::Wxid.eq(wxid))
        .into_tuple()
        .one(conn)
        .await?)
}

/// The visitor's profile on the channel, made on their first message (named after the contact
/// when there is one). Two first messages at once make one profile.
pub(super) async fn visitor_for(
    ctx: &Context,
    channel: &desk_channels::Model,
    external_id: &str,
    contact_id: Option<i64>,
) -> ServiceResult<desk_visitors::Model> {
    let find = || {
        desk_visitors::Entity::find()
            .filter(desk_visitors::Column::ChannelId.eq(channel.id))
            .filter(desk_visitors::Column::ExternalId.eq(external_id))
    };
    if let Some(visitor) = find().one(&ctx.db).await? {
        return Ok(visitor);
    }
    let contact = match contact_id {
        Some(id) => contacts::Entity::find_by_id(id).one(&ctx.db).await?,
        None => None,
    };
    let now = ctx.clock.now_db();
    let inserted = desk_visitors::Entity::insert(desk_visitors::ActiveModel {
        channel_id: Set(channel.id),
        external_id: Set(external_id.chars().take(128).collect()),
        nickname: Set(contact.as_ref().and_then(|c| c.nickname.clone())),
        avatar_url: Set(contact.as_ref().and_then(|c| c.avatar_url.clone())),
        source_scene: Set(None),
        contact_id: Set(contact_id),
        tags: Set(None),
        notes: Set(None),
        visits: Set(0),
        first_seen_at: Set(now),
        last_seen_at: Set(now),
        ..Default::default()
    })
    .exec(&ctx.db)
    .await;
    if let Err(e) = inserted {
        let e: crate::ServiceError = e.into();
        if !e.is_unique_violation() {
            return Err(e);
        }
    }
    find()
        .one(&ctx.db)
        .await?
        .ok_or(crate::ServiceError::NotFound("visitor"))
}
