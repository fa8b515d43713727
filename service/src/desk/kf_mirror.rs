//! What happens in a 微信客服 chat outside the desk, mirrored into its conversation: a message a
//! receptionist wrote in the WeCom client (`origin` 5, with `servicer_userid`) shows among the
//! agents' replies under that receptionist's name, and a message the visitor or a receptionist
//! recalled (`user_recall_msg`, `servicer_recall_msg`) is marked recalled on the workbench.
//! Both are keyed by WeCom's `msgid`, so an entry applied twice changes nothing the second time.
//! Receptionists' messages do not count towards the desk's send window: WeCom limits what the
//! API sends, not what people type in its client.

use entity::{
    desk_channels, desk_conversations, desk_messages, desk_visitors,
    states::{ConversationState, MessageDirection},
    wework_accounts,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use serde_json::Value;

use super::kf::{content_of, text};
use super::{
    conversations::{self, DeskMessageView},
    events::{self, EventKind},
};
use crate::{Context, ServiceResult};

/// The channel on the account and the visitor's open conversations there (newest first), if the
/// account is a channel and knows the visitor.
pub(super) async fn open_conversations(
    ctx: &Context,
    account: &wework_accounts::Model,
    visitor: &str,
) -> ServiceResult<Option<(desk_channels::Model, Vec<desk_conversations::Model>)>> {
    let Some(channel) = super::intake::enabled_channel(ctx, account.id).await? else {
        return Ok(None);
    };
    let Some(profile) = desk_visitors::Entity::find()
        .filter(desk_visitors::Column::ChannelId.eq(channel.id))
        .filter(desk_visitors::Column::ExternalId.eq(visitor))
        .one(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    let open = desk_conversations::Entity::find()
        .filter(desk_conversations::Column::VisitorId.eq(profile.id))
        .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
        .order_by_desc(desk_conversations::Column::Id)
        .all(&ctx.db)
        .await?;
    Ok(Some((channel, open)))
}

/// A receptionist's message from the WeCom client (an entry of `origin` 5). Outside an open
/// conversation there is nothing on the desk to show it in.
pub async fn receptionist_message(
    ctx: &Context,
    account: &wework_accounts::Model,
    entry: &Value,
) -> ServiceResult<()> {
    let (Some(visitor), Some(servicer), Some(msgid)) = (
        text(entry, "/external_userid"),
        text(entry, "/servicer_userid"),
        text(entry, "/msgid"),
    ) else {
        return Ok(());
    };
    let Some((channel, open)) = open_conversations(ctx, account, &visitor).await? else {
        return Ok(());
    };
    let Some(conversation) = open.into_iter().next() else {
        return Ok(());
    };
    let txn = crate::db::begin(&ctx.db).await?;
    let seen = desk_messages::Entity::find()
        .filter(desk_messages::Column::ChannelId.eq(channel.id))
        .filter(desk_messages::Column::RemoteMsgId.eq(msgid.as_str()))
        .count(&txn)
        .await?;
    if seen > 0 {
        txn.rollback().await?;
        return Ok(());
    }
    let now = ctx.clock.now_db();
    let id = desk_messages::Entity::insert(desk_messages::ActiveModel {
        conversation_id: Set(conversation.id),
        channel_id: Set(channel.id),
        direction: Set(MessageDirection::Out),
        agent_id: Set(None),
        msgtype: Set(entry["msgtype"]
            .as_str()
            .unwrap_or("text")
            .chars()
            .take(20)
            .collect()),
        content: Set(content_of(entry)),
        remote_msg_id: Set(Some(msgid.chars().take(128).collect())),
        task_id: Set(None),
        servicer_userid: Set(Some(servicer.chars().take(64).collect())),
        created_at: Set(now),
        ..Default::default()
    })
    .exec(&txn)
    .await?
    .last_insert_id;
    desk_conversations::Entity::update_many()
        .col_expr(desk_conversations::Column::LastMessageAt, Expr::value(now))
        .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now))
        .filter(desk_conversations::Column::Id.eq(conversation.id))
        .exec(&txn)
        .await?;
    // Unread for every colleague serving the visitor, as an agent's reply is for the others.
    super::members::count_message(&txn, conversation.id, None).await?;
    let stored = desk_messages::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .map(DeskMessageView::from);
    if let Some(stored) = &stored {
        conversations::record_message(&txn, now, &conversation, EventKind::MessageSent, stored)
            .await?;
    }
    txn.commit().await?;
    events::announce(ctx).await;
    Ok(())
}

/// A recall (`user_recall_msg` or `servicer_recall_msg`): the message stays, marked recalled,
/// in whichever conversation of the channel holds it (closed ones too).
pub async fn recall(
    ctx: &Context,
    account: &wework_accounts::Model,
    event: &Value,
) -> ServiceResult<()> {
    let Some(msgid) = text(event, "/recall_msgid") else {
        return Ok(());
    };
    let Some(channel) = super::intake::enabled_channel(ctx, account.id).await? else {
        return Ok(());
    };
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let marked = desk_messages::Entity::update_many()
        .col_expr(desk_messages::Column::RecalledAt, Expr::value(now))
        .filter(desk_messages::Column::ChannelId.eq(channel.id))
        .filter(desk_messages::Column::RemoteMsgId.eq(msgid.as_str()))
        .filter(desk_messages::Column::RecalledAt.is_null())
        .exec(&txn)
        .await?;
    let message = desk_messages::Entity::find()
        .filter(desk_messages::Column::ChannelId.eq(channel.id))
        .filter(desk_messages::Column::RemoteMsgId.eq(msgid.as_str()))
        .one(&txn)
        .await?;
    let Some(message) = message.filter(|_| marked.rows_affected > 0) else {
        txn.rollback().await?;
        return Ok(());
    };
    let conversation = conversations::find(&txn, message.conversation_id).await?;
    let message = DeskMessageView::from(message);
    conversations::record_message(
        &txn,
        now,
        &conversation,
        EventKind::MessageRecalled,
        &message,
    )
    .await?;
    txn.commit().await?;
    events::announce(ctx).await;
    Ok(())
}
