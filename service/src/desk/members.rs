//! Colleagues serving one visitor together (协同接待, the service group chat of the seed): the
//! conversation's agent or a supervisor brings other agents in; each member reads the shared
//! history (the conversation's messages), writes to the visitor, and has an unread count of
//! their own — the visitor's messages and the other members' replies they have not read. The
//! agent who owns the conversation keeps the conversation's own count; only they (or a
//! supervisor) transfer or close it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{desk_conversation_members, desk_conversations, states::ConversationState};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};

use super::{
    conversations::{self, ConversationView},
    events::{self, EventKind},
};
use crate::{Context, ServiceError, ServiceResult, auth::actor::Actor, clock::to_utc};

/// One colleague serving the conversation besides its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationMember {
    pub agent_id: i64,
    /// The visitor's messages and other members' replies this member has not read.
    pub unread: i32,
    /// The user who brought them in.
    pub invited_by: Option<i64>,
    pub joined_at: DateTime<Utc>,
}

impl From<desk_conversation_members::Model> for ConversationMember {
    fn from(m: desk_conversation_members::Model) -> Self {
        Self {
            agent_id: m.agent_id,
            unread: m.unread,
            invited_by: m.invited_by,
            joined_at: to_utc(m.joined_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    /// The colleague (an agent who is not offline).
    pub agent_id: i64,
}

/// The members of each conversation, oldest first.
pub async fn of_conversations<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
) -> ServiceResult<HashMap<i64, Vec<ConversationMember>>> {
    let mut by_conversation: HashMap<i64, Vec<ConversationMember>> = HashMap::new();
    for row in desk_conversation_members::Entity::find()
        .filter(desk_conversation_members::Column::ConversationId.is_in(ids))
        .order_by_asc(desk_conversation_members::Column::Id)
        .all(conn)
        .await?
    {
        by_conversation
            .entry(row.conversation_id)
            .or_default()
            .push(row.into());
    }
    Ok(by_conversation)
}

/// The open conversations the agent serves as a member.
pub async fn open_memberships<C: ConnectionTrait>(
    conn: &C,
    agent_id: i64,
) -> ServiceResult<Vec<i64>> {
    let ids: Vec<i64> = desk_conversation_members::Entity::find()
        .select_only()
        .column(desk_conversation_members::Column::ConversationId)
        .filter(desk_conversation_members::Column::AgentId.eq(agent_id))
        .into_tuple()
        .all(conn)
        .await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    Ok(desk_conversations::Entity::find()
        .select_only()
        .column(desk_conversations::Column::Id)
        .filter(desk_conversations::Column::Id.is_in(ids))
        .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
        .into_tuple()
        .all(conn)
        .await?)
}

pub async fn is_member<C: ConnectionTrait>(
    conn: &C,
    conversation_id: i64,
    agent_id: i64,
) -> ServiceResult<bool> {
    Ok(desk_conversation_members::Entity::find()
        .filter(desk_conversation_members::Column::ConversationId.eq(conversation_id))
        .filter(desk_conversation_members::Column::AgentId.eq(agent_id))
        .one(conn)
        .await?
        .is_some())
}

/// A message in the conversation: unread for every member but its author.
pub(super) async fn count_message<C: ConnectionTrait>(
    conn: &C,
    conversation_id: i64,
    author: Option<i64>,
) -> ServiceResult<()> {
    let mut update = desk_conversation_members::Entity::update_many()
        .col_expr(
            desk_conversation_members::Column::Unread,
            Expr::col(desk_conversation_members::Column::Unread).add(1),
        )
        .filter(desk_conversation_members::Column::ConversationId.eq(conversation_id));
    if let Some(author) = author {
        update = update.filter(desk_conversation_members::Column::AgentId.ne(author));
    }
    update.exec(conn).await?;
    Ok(())
}

/// The member read the conversation; whether they are one.
pub(super) async fn read<C: ConnectionTrait>(
    conn: &C,
    conversation_id: i64,
    agent_id: i64,
) -> ServiceResult<bool> {
    Ok(desk_conversation_members::Entity::update_many()
        .col_expr(desk_conversation_members::Column::Unread, Expr::value(0))
        .filter(desk_conversation_members::Column::ConversationId.eq(conversation_id))
        .filter(desk_conversation_members::Column::AgentId.eq(agent_id))
        .exec(conn)
        .await?
        .rows_affected
        > 0)
}

/// A colleague who now owns the conversation (a transfer to them) is no longer a member.
pub(super) async fn drop_owner<C: ConnectionTrait>(
    conn: &C,
    conversation_id: i64,
    agent_id: i64,
) -> ServiceResult<()> {
    desk_conversation_members::Entity::delete_many()
        .filter(desk_conversation_members::Column::ConversationId.eq(conversation_id))
        .filter(desk_conversation_members::Column::AgentId.eq(agent_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The conversation's agent or a supervisor brings a colleague in. Inviting someone twice at
/// once makes one membership (the unique pair decides); the other answer is a 409.
pub async fn invite(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    input: InviteInput,
) -> ServiceResult<ConversationView> {
    let conversation = conversations::find(&ctx.db, id).await?;
    let role = conversations::role_on(ctx, actor, &conversation).await?;
    if !role.owner && !role.supervisor {
        return Err(ServiceError::NotFound("conversation"));
    }
    if !matches!(
        conversation.state,
        ConversationState::Assigned | ConversationState::Active
    ) {
        return Err(ServiceError::conflict(
            "state",
            "colleagues join a conversation an agent serves (not a queued or closed one)",
        ));
    }
    let colleague = super::agents::find(&ctx.db, input.agent_id)
        .await
        .map_err(|_| ServiceError::invalid("agent_id", "no such agent"))?;
    if conversation.agent_id == Some(colleague.id) {
        return Err(ServiceError::invalid(
            "agent_id",
            "the conversation is already theirs",
        ));
    }
    if colleague.status == entity::states::AgentStatus::Offline {
        return Err(ServiceError::conflict("agent_id", "the agent is offline"));
    }
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let inserted =
        desk_conversation_members::Entity::insert(desk_conversation_members::ActiveModel {
            conversation_id: Set(id),
            agent_id: Set(colleague.id),
            invited_by: Set(actor.user_id().ok()),
            unread: Set(0),
            joined_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await;
    if let Err(e) = inserted {
        let e: ServiceError = e.into();
        return Err(if e.is_unique_violation() {
            ServiceError::conflict("agent_id", "the agent already serves this conversation")
        } else {
            e
        });
    }
    let view = conversations::record_change(&txn, now, id, EventKind::MemberJoined).await?;
    txn.commit().await?;
    events::announce(ctx).await;
    Ok(view)
}

/// A member leaves (or the conversation's agent or a supervisor takes them out).
pub async fn remove(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    agent_id: i64,
) -> ServiceResult<ConversationView> {
    let conversation = conversations::find(&ctx.db, id).await?;
    let role = conversations::role_on(ctx, actor, &conversation).await?;
    let themselves = role.agent_id == Some(agent_id);
    if !role.owner && !role.supervisor && !themselves {
        return Err(ServiceError::NotFound("conversation"));
    }
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let removed = desk_conversation_members::Entity::delete_many()
        .filter(desk_conversation_members::Column::ConversationId.eq(id))
        .filter(desk_conversation_members::Column::AgentId.eq(agent_id))
        .exec(&txn)
        .await?
        .rows_affected;
    if removed == 0 {
        txn.rollback().await?;
        return Err(ServiceError::NotFound("member"));
    }
    let view = conversations::record_change(&txn, now, id, EventKind::MemberLeft).await?;
    txn.commit().await?;
    events::announce(ctx).await;
    Ok(view)
}
