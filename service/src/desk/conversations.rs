//! Conversations: what an agent does with one (accept, reply, transfer, close, mark read) and
//! what the desk does on its own (close a silent visitor's conversation, record a rating).
//! Every change is one transaction that also records its event, then announces it.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use entity::{
    desk_channels, desk_conversations, desk_messages, desk_skill_groups, desk_transfers,
    desk_visitors,
    states::{AgentStatus, CloseReason, ConversationState, MessageDirection},
    wework_accounts,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};

use super::{
    assign,
    events::{self, EventKind, Scope},
};
use crate::{
    Context, FieldError, ServiceError, ServiceResult,
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    rbac::perm,
    validate,
};

/// Longest reply, in characters.
pub const MAX_REPLY_CHARS: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorBrief {
    pub id: i64,
    pub external_id: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub id: i64,
    pub channel_id: i64,
    pub visitor: VisitorBrief,
    pub skill_group_id: i64,
    pub agent_id: Option<i64>,
    pub state: ConversationState,
    pub opened_at: DateTime<Utc>,
    /// When it last entered the queue (opened, or transferred to a group).
    pub queued_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<CloseReason>,
    pub last_visitor_message_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    /// Replies since the visitor last wrote.
    pub replies_since_visitor: i32,
    /// Visitor messages the agent has not read.
    pub unread: i32,
    /// 微信客服 channels only: how long and how often the desk may still write (WeCom drops
    /// what goes beyond, so the desk refuses it).
    pub send_window: Option<super::kf::SendWindow>,
    /// Colleagues serving the visitor with the conversation's agent, each with their own
    /// unread count.
    pub members: Vec<super::members::ConversationMember>,
    /// 1 (poor) to 5 (excellent), once the visitor rated.
    pub rating: Option<i32>,
    pub rating_comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeskMessageView {
    pub id: i64,
    pub conversation_id: i64,
    /// `in` from the visitor, `out` to them.
    pub direction: MessageDirection,
    /// The agent who wrote it; none for the visitor's messages and the desk's own (welcome,
    /// rating prompt).
    pub agent_id: Option<i64>,
    pub msgtype: String,
    pub content: Option<String>,
    /// The send task of an outgoing message (its delivery is that task's receiver).
    pub task_id: Option<i64>,
    /// A 微信客服 receptionist (WeCom member userid) who wrote it in the WeCom client rather
    /// than on the desk.
    pub servicer_userid: Option<String>,
    /// When the visitor or the receptionist recalled it (the text stays for the record).
    pub recalled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<desk_messages::Model> for DeskMessageView {
    fn from(m: desk_messages::Model) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            direction: m.direction,
            agent_id: m.agent_id,
            msgtype: m.msgtype,
            content: m.content,
            task_id: m.task_id,
            servicer_userid: m.servicer_userid,
            recalled_at: m.recalled_at.map(to_utc),
            created_at: to_utc(m.created_at),
        }
    }
}

pub async fn view<C: ConnectionTrait>(
    conn: &C,
    m: desk_conversations::Model,
) -> ServiceResult<ConversationView> {
    let visitor = desk_visitors::Entity::find_by_id(m.visitor_id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("visitor"))?;
    let kf = super::kf::channel_ids(conn).await?.contains(&m.channel_id);
    let members = super::members::of_conversations(conn, [m.id])
        .await?
        .remove(&m.id)
        .unwrap_or_default();
    Ok(view_with(m, visitor, kf, members))
}

fn view_with(
    m: desk_conversations::Model,
    visitor: desk_visitors::Model,
    kf: bool,
    members: Vec<super::members::ConversationMember>,
) -> ConversationView {
    let send_window = kf.then(|| super::kf::window(&m));
    ConversationView {
        id: m.id,
        channel_id: m.channel_id,
        visitor: VisitorBrief {
            id: visitor.id,
            external_id: visitor.external_id,
            nickname: visitor.nickname,
            avatar_url: visitor.avatar_url,
        },
        skill_group_id: m.skill_group_id,
        agent_id: m.agent_id,
        state: m.state,
        opened_at: to_utc(m.opened_at),
        queued_at: to_utc(m.queued_at),
        assigned_at: m.assigned_at.map(to_utc),
        accepted_at: m.accepted_at.map(to_utc),
        first_response_at: m.first_response_at.map(to_utc),
        closed_at: m.closed_at.map(to_utc),
        close_reason: m.close_reason,
        last_visitor_message_at: to_utc(m.last_visitor_message_at),
        last_message_at: to_utc(m.last_message_at),
        replies_since_visitor: m.replies_since_visitor,
        unread: m.unread,
        send_window,
        members,
        rating: m.rating,
        rating_comment: m.rating_comment,
    }
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<desk_conversations::Model> {
    desk_conversations::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("conversation"))
}

/// Records `kind` with the conversation as it is now (read inside the change's transaction).
pub async fn record_change<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    id: i64,
    kind: EventKind,
) -> ServiceResult<ConversationView> {
    let current = find(conn, id).await?;
    let scope = Scope {
        conversation_id: Some(id),
        agent_id: current.agent_id,
        skill_group_id: Some(current.skill_group_id),
    };
    let view = view(conn, current).await?;
    events::record(conn, now, kind, scope, &view).await?;
    Ok(view)
}

/// Who the actor is on a conversation: its agent, a supervisor, a colleague serving it with
/// them (a member), or (for a queued one) an agent of its group. Anyone else gets 404, as if it
/// did not exist.
pub(super) struct Role {
    pub(super) agent_id: Option<i64>,
    pub(super) supervisor: bool,
    pub(super) owner: bool,
    pub(super) member: bool,
}

pub(super) async fn role_on(
    ctx: &Context,
    actor: &Actor,
    conversation: &desk_conversations::Model,
) -> ServiceResult<Role> {
    let supervisor = actor.has(perm::DeskSupervise);
    let agent = super::my_agent(&ctx.db, actor).await.ok();
    if !supervisor {
        actor.require(perm::DeskWork)?;
    }
    let agent_id = agent.as_ref().map(|a| a.id);
    let owner = agent_id.is_some() && conversation.agent_id == agent_id;
    let member = match agent_id {
        Some(agent) if !owner => super::members::is_member(&ctx.db, conversation.id, agent).await?,
        _ => false,
    };
    if supervisor || owner || member {
        return Ok(Role {
            agent_id,
            supervisor,
            owner,
            member,
        });
    }
    if let Some(agent) = agent
        && super::groups_of(&ctx.db, agent.id)
            .await?
            .contains(&conversation.skill_group_id)
        && conversation.state == ConversationState::Queued
    {
        return Ok(Role {
            agent_id: Some(agent.id),
            supervisor,
            owner,
            member,
        });
    }
    Err(ServiceError::NotFound("conversation"))
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    pub state: Option<ConversationState>,
    /// Supervisors: one agent's conversations.
    pub agent_id: Option<i64>,
    pub skill_group_id: Option<i64>,
    pub visitor_id: Option<i64>,
    /// Rated at most this many stars (1–5): the conversations to review.
    #[param(minimum = 1, maximum = 5)]
    pub rating_max: Option<i32>,
    /// Opened at or after this instant.
    pub opened_from: Option<DateTime<Utc>>,
    /// Opened before this instant.
    pub opened_to: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// Newest first. An agent sees their own conversations and their groups' queue; a supervisor
/// every conversation.
pub async fn list(
    ctx: &Context,
    actor: &Actor,
    query: ConversationQuery,
) -> ServiceResult<Page<ConversationView>> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let mut select = desk_conversations::Entity::find();
    if !actor.has(perm::DeskSupervise) {
        let audience = super::audience_of(ctx, actor).await?;
        let mine = desk_conversations::Column::AgentId.eq(audience.agent_id);
        let queue = Condition::all()
            .add(desk_conversations::Column::State.eq(ConversationState::Queued))
            .add(desk_conversations::Column::SkillGroupId.is_in(audience.groups.iter().copied()));
        let serving = desk_conversations::Column::Id.is_in(audience.conversations.iter().copied());
        select = select.filter(Condition::any().add(mine).add(queue).add(serving));
    }
    if let Some(state) = query.state {
        select = select.filter(desk_conversations::Column::State.eq(state));
    }
    if let Some(agent) = query.agent_id {
        select = select.filter(desk_conversations::Column::AgentId.eq(agent));
    }
    if let Some(group) = query.skill_group_id {
        select = select.filter(desk_conversations::Column::SkillGroupId.eq(group));
    }
    if let Some(visitor) = query.visitor_id {
        select = select.filter(desk_conversations::Column::VisitorId.eq(visitor));
    }
    if let Some(stars) = query.rating_max {
        if !(1..=5).contains(&stars) {
            return Err(ServiceError::Validation(vec![FieldError::new(
                "rating_max",
                "must be from 1 to 5",
            )]));
        }
        select = select.filter(desk_conversations::Column::Rating.lte(stars));
    }
    if let Some(from) = query.opened_from {
        select = select.filter(desk_conversations::Column::OpenedAt.gte(from.naive_utc()));
    }
    if let Some(to) = query.opened_to {
        select = select.filter(desk_conversations::Column::OpenedAt.lt(to.naive_utc()));
    }
    if let Some(before) = page.before {
        select = select.filter(desk_conversations::Column::Id.lt(before));
    }
    let rows = select
        .order_by_desc(desk_conversations::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    // The page's visitors in one read.
    let visitors: std::collections::HashMap<i64, desk_visitors::Model> =
        desk_visitors::Entity::find()
            .filter(desk_visitors::Column::Id.is_in(rows.iter().map(|r| r.visitor_id)))
            .all(&ctx.db)
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
    let kf = super::kf::channel_ids(&ctx.db).await?;
    let mut members = super::members::of_conversations(&ctx.db, rows.iter().map(|r| r.id)).await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let visitor = visitors
            .get(&row.visitor_id)
            .cloned()
            .ok_or(ServiceError::NotFound("visitor"))?;
        let on_kf = kf.contains(&row.channel_id);
        let serving = members.remove(&row.id).unwrap_or_default();
        views.push(view_with(row, visitor, on_kf, serving));
    }
    Ok(Page::from_rows(page, views, |v| v.id, |v| v))
}

pub async fn get(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<ConversationView> {
    let conversation = find(&ctx.db, id).await?;
    role_on(ctx, actor, &conversation).await?;
    view(&ctx.db, conversation).await
}

/// The conversation's messages, newest first.
pub async fn messages(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    page: PageRequest,
) -> ServiceResult<Page<DeskMessageView>> {
    let conversation = find(&ctx.db, id).await?;
    role_on(ctx, actor, &conversation).await?;
    let mut select = desk_messages::Entity::find()
        .filter(desk_messages::Column::ConversationId.eq(id))
        .order_by_desc(desk_messages::Column::Id)
        .limit(page.fetch());
    if let Some(before) = page.before {
        select = select.filter(desk_messages::Column::Id.lt(before));
    }
    let rows = select.all(&ctx.db).await?;
    Ok(Page::from_rows(page, rows, |r| r.id, DeskMessageView::from))
}

/// Takes a conversation: accepts one assigned to the agent, or claims a queued one of their
/// group (when they have a free seat).
pub async fn accept(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<ConversationView> {
    let conversation = find(&ctx.db, id).await?;
    let role = role_on(ctx, actor, &conversation).await?;
    let Some(agent_id) = role.agent_id else {
        return Err(super::my_agent(&ctx.db, actor)
            .await
            .err()
            .unwrap_or_else(|| ServiceError::conflict("agent", "you are not set up as an agent")));
    };
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let moved = match conversation.state {
        ConversationState::Assigned if role.owner => {
            desk_conversations::Entity::update_many()
                .col_expr(
                    desk_conversations::Column::State,
                    Expr::value(ConversationState::Active),
                )
                .col_expr(desk_conversations::Column::AcceptedAt, Expr::value(now))
                .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now))
                .filter(desk_conversations::Column::Id.eq(id))
                .filter(desk_conversations::Column::AgentId.eq(agent_id))
                .filter(desk_conversations::Column::State.eq(ConversationState::Assigned))
                .exec(&txn)
                .await?
                .rows_affected
        }
        ConversationState::Queued => {
            if !assign::take_seat(&txn, agent_id, now, false).await? {
                return Err(ServiceError::conflict(
                    "agent",
                    "you have no free seat (you are not online, or at your maximum of conversations)",
                ));
            }
            desk_conversations::Entity::update_many()
                .col_expr(
                    desk_conversations::Column::State,
                    Expr::value(ConversationState::Active),
                )
                .col_expr(desk_conversations::Column::AgentId, Expr::value(agent_id))
                .col_expr(desk_conversations::Column::AssignedAt, Expr::value(now))
                .col_expr(desk_conversations::Column::AcceptedAt, Expr::value(now))
                .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now))
                .filter(desk_conversations::Column::Id.eq(id))
                .filter(desk_conversations::Column::State.eq(ConversationState::Queued))
                .exec(&txn)
                .await?
                .rows_affected
        }
        ConversationState::Active if role.owner => {
            txn.rollback().await?;
            return view(&ctx.db, conversation).await;
        }
        _ => 0,
    };
    if moved == 0 {
        txn.rollback().await?;
        return Err(ServiceError::conflict(
            "state",
            "the conversation was taken, moved or closed meanwhile",
        ));
    }
    let view = record_change(&txn, now, id, EventKind::ConversationAccepted).await?;
    txn.commit().await?;
    events::announce(ctx).await;
    Ok(view)
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyInput {
    /// The text; or give `quick_reply_id`.
    #[schema(max_length = 2000)]
    pub content: Option<String>,
    /// A quick reply to send, its variables (`{{ nickname }}`, `{{ agent_no }}`) filled in.
    pub quick_reply_id: Option<i64>,
}

/// The sender of a desk message: the replying agent, or for the desk's own messages the user
/// who set the channel up; allowed to queue exactly this one message (the desk already checked
/// they may answer this conversation).
fn sender_for(actor: Option<&Actor>, channel: &desk_channels::Model) -> Actor {
    let mut sender = match actor {
        Some(actor) => actor.clone(),
        None => {
            let mut desk = Actor::system(Default::default());
            desk.user_id = Some(channel.created_by);
            desk
        }
    };
    sender.permissions = std::sync::Arc::new(
        [
            "messages:send".to_owned(),
            "tasks:create".to_owned(),
            super::SENDER_MARK.to_owned(),
        ]
        .into_iter()
        .collect::<BTreeSet<_>>(),
    );
    sender.reach = crate::rbac::scope::Reach::All;
    sender
}

/// Queues a text to the conversation's visitor through its channel's account and stores it.
/// `by`: who writes — the user (and their agent id, when they are one), or the desk itself.
async fn send_text(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    by: Option<(Option<i64>, &Actor)>,
    text: String,
) -> ServiceResult<desk_messages::Model> {
    let channel = desk_channels::Entity::find_by_id(conversation.channel_id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("channel"))?;
    let visitor = desk_visitors::Entity::find_by_id(conversation.visitor_id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("visitor"))?;
    let Some(contact_id) = visitor.contact_id else {
        return Err(ServiceError::conflict(
            "visitor",
            "the visitor is not a contact of the channel's account yet",
        ));
    };
    let account = wework_accounts::Entity::find_by_id(channel.account_id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("account"))?;
    let kf = crate::drivers::wecom::kf::open_kfid(&account.wxid).is_some();
    // An agent instance chats directly; an official app answers the member who wrote to it
    // with an app message; a 微信客服 account through 微信客服.
    let instance = crate::instances::find_live(&ctx.db, account.instance_id).await?;
    let route = match (kf, instance.kind) {
        (true, _) => entity::states::Channel::WecomKf,
        (false, crate::instances::InstanceKind::Wecom) => entity::states::Channel::AppMessage,
        (false, crate::instances::InstanceKind::Agent) => entity::states::Channel::Direct,
    };
    if kf {
        super::kf::reserve(ctx, conversation.id).await?;
    }
    let sender = sender_for(by.map(|(_, actor)| actor), &channel);
    let queued = crate::messages::send(
        ctx,
        &sender,
        crate::messages::MessageInput {
            contact_id: Some(contact_id),
            group_id: None,
            account_id: Some(channel.account_id),
            channel: route,
            template_id: None,
            message_type: Some(entity::states::MessageType::Text),
            content: Some(text.clone()),
            payload: None,
            variables: Default::default(),
            scheduled_time: None,
        },
    )
    .await;
    let task = match queued {
        Ok(task) => task,
        Err(e) => {
            if kf {
                super::kf::release(ctx, conversation.id).await?;
            }
            return Err(e);
        }
    };
    insert_out(
        ctx,
        conversation,
        by.and_then(|(agent, _)| agent),
        text,
        Some(task.id),
    )
    .await
}

/// Stores a message to the visitor (`task_id`: the send task, when it goes out through one).
async fn insert_out(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    agent_id: Option<i64>,
    text: String,
    task_id: Option<i64>,
) -> ServiceResult<desk_messages::Model> {
    let now = ctx.clock.now_db();
    let row = desk_messages::ActiveModel {
        conversation_id: Set(conversation.id),
        channel_id: Set(conversation.channel_id),
        direction: Set(MessageDirection::Out),
        agent_id: Set(agent_id),
        msgtype: Set("text".into()),
        content: Set(Some(text)),
        remote_msg_id: Set(None),
        task_id: Set(task_id),
        created_at: Set(now),
        ..Default::default()
    };
    let id = desk_messages::Entity::insert(row)
        .exec(&ctx.db)
        .await?
        .last_insert_id;
    desk_messages::Entity::find_by_id(id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("message"))
}

/// The desk's own message (welcome, rating prompt) to the visitor, announced like a reply.
pub(super) async fn send_from_desk(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    text: String,
) -> ServiceResult<()> {
    let message = send_text(ctx, conversation, None, text).await?;
    announce_desk_text(ctx, conversation, message).await
}

/// The desk's own message that went out another way (a 微信客服 event code), recorded and
/// announced like a reply.
pub(super) async fn note_desk_text(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    text: String,
) -> ServiceResult<()> {
    let message = insert_out(ctx, conversation, None, text, None).await?;
    announce_desk_text(ctx, conversation, message).await
}

async fn announce_desk_text(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    message: desk_messages::Model,
) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    record_message(
        &ctx.db,
        now,
        conversation,
        EventKind::MessageSent,
        &message.into(),
    )
    .await?;
    events::announce(ctx).await;
    Ok(())
}

pub(crate) async fn record_message<C: ConnectionTrait>(
    conn: &C,
    now: NaiveDateTime,
    conversation: &desk_conversations::Model,
    kind: EventKind,
    message: &DeskMessageView,
) -> ServiceResult<()> {
    events::record(
        conn,
        now,
        kind,
        Scope {
            conversation_id: Some(conversation.id),
            agent_id: conversation.agent_id,
            skill_group_id: Some(conversation.skill_group_id),
        },
        message,
    )
    .await
}

/// The agent answers: the text goes out through the channel's account like any message
/// (rate limits, retries, exactly once) and the conversation counts it. Replying accepts an
/// assigned conversation.
pub async fn reply(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    input: ReplyInput,
) -> ServiceResult<DeskMessageView> {
    let conversation = find(&ctx.db, id).await?;
    let role = role_on(ctx, actor, &conversation).await?;
    if !role.owner && !role.supervisor && !role.member {
        return Err(ServiceError::conflict(
            "state",
            "accept the conversation before replying",
        ));
    }
    if conversation.state == ConversationState::Closed {
        return Err(ServiceError::conflict(
            "state",
            "the conversation is closed",
        ));
    }
    let text = match (input.content.as_deref(), input.quick_reply_id) {
        (Some(text), None) => {
            let text = text.trim();
            if text.is_empty() {
                return Err(ServiceError::invalid("content", "must not be empty"));
            }
            if text.chars().count() > MAX_REPLY_CHARS {
                return Err(ServiceError::invalid(
                    "content",
                    format!("must be at most {MAX_REPLY_CHARS} characters"),
                ));
            }
            text.to_owned()
        }
        (None, Some(quick)) => {
            super::quick_replies::render_for(ctx, actor, quick, &conversation).await?
        }
        _ => {
            return Err(ServiceError::invalid(
                "content",
                "give exactly one of content and quick_reply_id",
            ));
        }
    };
    if role.owner && conversation.state == ConversationState::Assigned {
        accept(ctx, actor, id).await?;
    }
    // A supervisor who is not an agent writes as themselves, not as the desk.
    let message = send_text(ctx, &conversation, Some((role.agent_id, actor)), text).await?;
    // 微信客服 replies were counted when their window slot was taken.
    let counted = super::kf::channel_ids(&ctx.db)
        .await?
        .contains(&conversation.channel_id);
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let mut touch = desk_conversations::Entity::update_many()
        .col_expr(desk_conversations::Column::LastMessageAt, Expr::value(now))
        .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now));
    if !counted {
        touch = touch.col_expr(
            desk_conversations::Column::RepliesSinceVisitor,
            Expr::col(desk_conversations::Column::RepliesSinceVisitor).add(1),
        );
    }
    touch
        .filter(desk_conversations::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    super::members::count_message(&txn, id, role.agent_id).await?;
    let first = desk_conversations::Entity::update_many()
        .col_expr(
            desk_conversations::Column::FirstResponseAt,
            Expr::value(now),
        )
        .filter(desk_conversations::Column::Id.eq(id))
        .filter(desk_conversations::Column::FirstResponseAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    let current = find(&txn, id).await?;
    let view = DeskMessageView::from(message);
    record_message(&txn, now, &current, EventKind::MessageSent, &view).await?;
    txn.commit().await?;
    events::announce(ctx).await;
    if first {
        super::metrics::record(ctx, &current, super::metrics::Moment::FirstResponse);
    }
    Ok(view)
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    /// To this agent (they accept it); or give `skill_group_id`.
    pub agent_id: Option<i64>,
    /// Back to the queue of this group; or give `agent_id`.
    pub skill_group_id: Option<i64>,
    /// Why, kept with the transfer record.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferView {
    pub id: i64,
    pub conversation_id: i64,
    pub from_agent_id: Option<i64>,
    pub to_agent_id: Option<i64>,
    pub to_skill_group_id: i64,
    pub reason: String,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<desk_transfers::Model> for TransferView {
    fn from(m: desk_transfers::Model) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            from_agent_id: m.from_agent_id,
            to_agent_id: m.to_agent_id,
            to_skill_group_id: m.to_skill_group_id,
            reason: m.reason,
            created_by: m.created_by,
            created_at: to_utc(m.created_at),
        }
    }
}

/// Hands the conversation to another agent (who must not be offline) or back to a group's
/// queue, keeping a transfer record with the reason.
pub async fn transfer(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    input: TransferInput,
) -> ServiceResult<ConversationView> {
    let conversation = find(&ctx.db, id).await?;
    let role = role_on(ctx, actor, &conversation).await?;
    if !role.owner && !role.supervisor {
        return Err(ServiceError::NotFound("conversation"));
    }
    let reason = validate::text("reason", &input.reason, 1, 500)
        .map_err(|e| ServiceError::Validation(vec![e]))?;
    if conversation.state == ConversationState::Closed {
        return Err(ServiceError::conflict(
            "state",
            "the conversation is closed",
        ));
    }
    let (target_agent, target_group) = match (input.agent_id, input.skill_group_id) {
        (Some(agent), None) => {
            let target = super::agents::find(&ctx.db, agent)
                .await
                .map_err(|_| ServiceError::invalid("agent_id", "no such agent"))?;
            if target.status == AgentStatus::Offline {
                return Err(ServiceError::conflict("agent_id", "the agent is offline"));
            }
            if conversation.agent_id == Some(agent) {
                return Err(ServiceError::invalid(
                    "agent_id",
                    "the conversation is already theirs",
                ));
            }
            (Some(agent), conversation.skill_group_id)
        }
        (None, Some(group)) => {
            if desk_skill_groups::Entity::find_by_id(group)
                .one(&ctx.db)
                .await?
                .is_none()
            {
                return Err(ServiceError::invalid(
                    "skill_group_id",
                    "no such skill group",
                ));
            }
            (None, group)
        }
        _ => {
            return Err(ServiceError::invalid(
                "agent_id",
                "give exactly one of agent_id and skill_group_id",
            ));
        }
    };
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    if let Some(agent) = target_agent {
        super::members::drop_owner(&txn, id, agent).await?;
    }
    let mut update = desk_conversations::Entity::update_many()
        .col_expr(
            desk_conversations::Column::AgentId,
            Expr::value(target_agent),
        )
        .col_expr(
            desk_conversations::Column::SkillGroupId,
            Expr::value(target_group),
        )
        .col_expr(
            desk_conversations::Column::AcceptedAt,
            Expr::value(Option::<NaiveDateTime>::None),
        )
        .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now));
    update = match target_agent {
        Some(_) => update
            .col_expr(
                desk_conversations::Column::State,
                Expr::value(ConversationState::Assigned),
            )
            .col_expr(desk_conversations::Column::AssignedAt, Expr::value(now)),
        None => update
            .col_expr(
                desk_conversations::Column::State,
                Expr::value(ConversationState::Queued),
            )
            .col_expr(desk_conversations::Column::QueuedAt, Expr::value(now))
            .col_expr(
                desk_conversations::Column::AssignedAt,
                Expr::value(Option::<NaiveDateTime>::None),
            ),
    };
    let moved = update
        .filter(desk_conversations::Column::Id.eq(id))
        .filter(desk_conversations::Column::State.eq(conversation.state))
        .filter(match conversation.agent_id {
            Some(a) => desk_conversations::Column::AgentId.eq(a),
            None => desk_conversations::Column::AgentId.is_null(),
        })
        .exec(&txn)
        .await?
        .rows_affected;
    if moved == 0 {
        txn.rollback().await?;
        return Err(ServiceError::conflict(
            "state",
            "the conversation changed meanwhile; reload it",
        ));
    }
    if let Some(from) = conversation.agent_id {
        assign::release_seat(&txn, from).await?;
    }
    if let Some(to) = target_agent {
        assign::take_seat(&txn, to, now, true).await?;
    }
    desk_transfers::Entity::insert(desk_transfers::ActiveModel {
        conversation_id: Set(id),
        from_agent_id: Set(conversation.agent_id),
        to_agent_id: Set(target_agent),
        to_skill_group_id: Set(target_group),
        reason: Set(reason),
        created_by: Set(actor.user_id),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
    let view = record_change(&txn, now, id, EventKind::ConversationTransferred).await?;
    // The agent it left sees it go too.
    if let Some(from) = conversation.agent_id {
        events::record(
            &txn,
            now,
            EventKind::ConversationTransferred,
            Scope {
                conversation_id: Some(id),
                agent_id: Some(from),
                skill_group_id: Some(conversation.skill_group_id),
            },
            &view,
        )
        .await?;
    }
    txn.commit().await?;
    events::announce(ctx).await;
    if target_agent.is_none() {
        assign::drain_group(ctx, target_group).await?;
    }
    if let Some(from) = conversation.agent_id {
        assign::drain_for_agent(ctx, from).await?;
    }
    Ok(view)
}

/// A conversation's transfers, oldest first.
pub async fn transfers(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<Vec<TransferView>> {
    let conversation = find(&ctx.db, id).await?;
    role_on(ctx, actor, &conversation).await?;
    Ok(desk_transfers::Entity::find()
        .filter(desk_transfers::Column::ConversationId.eq(id))
        .order_by_asc(desk_transfers::Column::Id)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(TransferView::from)
        .collect())
}

/// The agent (or a supervisor) closes the conversation; the channel's rating prompt goes out.
pub async fn close(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<ConversationView> {
    let conversation = find(&ctx.db, id).await?;
    let role = role_on(ctx, actor, &conversation).await?;
    if !role.owner && !role.supervisor {
        return Err(ServiceError::NotFound("conversation"));
    }
    let reason = if role.owner {
        CloseReason::Agent
    } else {
        CloseReason::Supervisor
    };
    let view = close_row(ctx, &conversation, reason)
        .await?
        .ok_or_else(|| ServiceError::conflict("state", "the conversation is already closed"))?;
    let prompt = desk_channels::Entity::find_by_id(conversation.channel_id)
        .one(&ctx.db)
        .await?
        .and_then(|c| c.rating_prompt);
    let closed = find(&ctx.db, id).await?;
    // On 微信客服 the prompt rides on the session's end; elsewhere (or if that fails) it is sent.
    if !super::kf::end_session(ctx, &closed, prompt.as_deref()).await
        && let Some(prompt) = prompt
        && let Err(e) = send_from_desk(ctx, &closed, prompt).await
    {
        tracing::warn!(conversation = id, error = %e, "the rating prompt could not be queued");
    }
    Ok(view)
}

/// Closes a conversation that is still open; `None` when it was closed already. Unless the
/// channel itself ended it, a 微信客服 session ends in WeCom too.
pub async fn close_as(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    reason: CloseReason,
) -> ServiceResult<Option<ConversationView>> {
    let view = close_row(ctx, conversation, reason).await?;
    if view.is_some() && reason != CloseReason::Channel {
        super::kf::end_session(ctx, conversation, None).await;
    }
    Ok(view)
}

async fn close_row(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    reason: CloseReason,
) -> ServiceResult<Option<ConversationView>> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    let moved = desk_conversations::Entity::update_many()
        .col_expr(
            desk_conversations::Column::State,
            Expr::value(ConversationState::Closed),
        )
        .col_expr(desk_conversations::Column::ClosedAt, Expr::value(now))
        .col_expr(desk_conversations::Column::CloseReason, Expr::value(reason))
        .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now))
        .filter(desk_conversations::Column::Id.eq(conversation.id))
        .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
        .exec(&txn)
        .await?
        .rows_affected;
    if moved == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let current = find(&txn, conversation.id).await?;
    if let Some(agent) = current.agent_id {
        assign::release_seat(&txn, agent).await?;
    }
    let view = record_change(&txn, now, conversation.id, EventKind::ConversationClosed).await?;
    let closed = find(&txn, conversation.id).await?;
    txn.commit().await?;
    events::announce(ctx).await;
    super::metrics::record(ctx, &closed, super::metrics::Moment::Closed);
    if let Some(agent) = current.agent_id {
        assign::drain_for_agent(ctx, agent).await?;
    }
    Ok(Some(view))
}

/// The agent read the conversation: its unread count goes to zero (a member's own count, for a
/// member).
pub async fn mark_read(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<ConversationView> {
    let conversation = find(&ctx.db, id).await?;
    let role = role_on(ctx, actor, &conversation).await?;
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    if role.member {
        // A member's own count; the conversation's is its agent's.
        super::members::read(&txn, id, role.agent_id.unwrap_or_default()).await?;
    } else {
        desk_conversations::Entity::update_many()
            .col_expr(desk_conversations::Column::Unread, Expr::value(0))
            .filter(desk_conversations::Column::Id.eq(id))
            .exec(&txn)
            .await?;
    }
    let view = record_change(&txn, now, id, EventKind::ConversationRead).await?;
    txn.commit().await?;
    events::announce(ctx).await;
    Ok(view)
}

/// Closes the conversations whose visitor has been silent for their group's timeout.
pub async fn sweep_inactive(ctx: &Context) -> ServiceResult<usize> {
    let now = ctx.clock.now_db();
    let mut closed = 0;
    for group in desk_skill_groups::Entity::find().all(&ctx.db).await? {
        let cutoff = now - TimeDelta::seconds(i64::from(group.inactivity_timeout_secs));
        let silent = desk_conversations::Entity::find()
            .filter(desk_conversations::Column::SkillGroupId.eq(group.id))
            .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
            .filter(desk_conversations::Column::LastVisitorMessageAt.lt(cutoff))
            .limit(500)
            .all(&ctx.db)
            .await?;
        for conversation in silent {
            if close_as(ctx, &conversation, CloseReason::VisitorTimeout)
                .await?
                .is_some()
            {
                closed += 1;
            }
        }
    }
    Ok(closed)
}

/// A visitor's answer to the rating prompt: `1`–`5`, optionally followed by a comment, within
/// a day of the close of their latest conversation that is not rated yet. Whether it was one.
pub async fn take_rating(ctx: &Context, visitor_id: i64, text: &str) -> ServiceResult<bool> {
    let text = text.trim();
    let mut chars = text.chars();
    let Some(score) = chars.next().and_then(|c| c.to_digit(10)) else {
        return Ok(false);
    };
    if !(1..=5).contains(&score) || chars.clone().next().is_some_and(|c| c.is_ascii_digit()) {
        return Ok(false);
    }
    let comment: String = chars.as_str().trim().chars().take(500).collect();
    let now = ctx.clock.now_db();
    let Some(last) = desk_conversations::Entity::find()
        .filter(desk_conversations::Column::VisitorId.eq(visitor_id))
        .filter(desk_conversations::Column::State.eq(ConversationState::Closed))
        .filter(desk_conversations::Column::ClosedAt.gt(now - TimeDelta::days(1)))
        .order_by_desc(desk_conversations::Column::Id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(false);
    };
    if last.rating.is_some() {
        return Ok(false);
    }
    let prompted = desk_channels::Entity::find_by_id(last.channel_id)
        .one(&ctx.db)
        .await?
        .is_some_and(|c| c.rating_prompt.is_some());
    if !prompted {
        return Ok(false);
    }
    let txn = crate::db::begin(&ctx.db).await?;
    let rated = desk_conversations::Entity::update_many()
        .col_expr(
            desk_conversations::Column::Rating,
            Expr::value(score as i32),
        )
        .col_expr(
            desk_conversations::Column::RatingComment,
            Expr::value((!comment.is_empty()).then_some(comment)),
        )
        .col_expr(desk_conversations::Column::RatedAt, Expr::value(now))
        .filter(desk_conversations::Column::Id.eq(last.id))
        .filter(desk_conversations::Column::Rating.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if rated == 1 {
        record_change(&txn, now, last.id, EventKind::ConversationRated).await?;
    }
    txn.commit().await?;
    if rated == 1 {
        super::metrics::record(ctx, &last, super::metrics::Moment::Rated(score as i32));
    }
    events::announce(ctx).await;
    Ok(rated == 1)
}

/// Each skill group with a queue: its id, name and when its oldest queued conversation queued.
pub async fn oldest_queued(ctx: &Context) -> ServiceResult<Vec<(i64, String, NaiveDateTime)>> {
    let mut out = Vec::new();
    for group in desk_skill_groups::Entity::find().all(&ctx.db).await? {
        let oldest: Option<NaiveDateTime> = desk_conversations::Entity::find()
            .select_only()
            .column_as(desk_conversations::Column::QueuedAt.min(), "oldest")
            .filter(desk_conversations::Column::SkillGroupId.eq(group.id))
            .filter(desk_conversations::Column::State.eq(ConversationState::Queued))
            .into_tuple::<Option<NaiveDateTime>>()
            .one(&ctx.db)
            .await?
            .flatten();
        if let Some(oldest) = oldest {
            out.push((group.id, group.name, oldest));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupLoad {
    pub skill_group_id: i64,
    pub name: String,
    pub queued: u64,
    /// How long the oldest queued conversation has waited, in seconds.
    pub longest_wait_secs: Option<i64>,
    pub agents_online: u64,
    pub open_conversations: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeskOverview {
    pub groups: Vec<GroupLoad>,
    pub agents: Vec<super::agents::AgentView>,
}

/// The supervisor's view: each group's queue and load, and every agent's status and load.
pub async fn overview(ctx: &Context, actor: &Actor) -> ServiceResult<DeskOverview> {
    actor.require(perm::DeskSupervise)?;
    let now = ctx.clock.now_db();
    let agents = super::agents::list(ctx, actor).await?;
    let mut groups = Vec::new();
    for group in desk_skill_groups::Entity::find()
        .order_by_asc(desk_skill_groups::Column::Name)
        .all(&ctx.db)
        .await?
    {
        let queue = desk_conversations::Entity::find()
            .filter(desk_conversations::Column::SkillGroupId.eq(group.id))
            .filter(desk_conversations::Column::State.eq(ConversationState::Queued));
        let queued = queue.clone().count(&ctx.db).await?;
        let oldest: Option<NaiveDateTime> = queue
            .select_only()
            .column_as(desk_conversations::Column::QueuedAt.min(), "oldest")
            .into_tuple::<Option<NaiveDateTime>>()
            .one(&ctx.db)
            .await?
            .flatten();
        let open_conversations = desk_conversations::Entity::find()
            .filter(desk_conversations::Column::SkillGroupId.eq(group.id))
            .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
            .count(&ctx.db)
            .await?;
        groups.push(GroupLoad {
            skill_group_id: group.id,
            name: group.name,
            queued,
            longest_wait_secs: oldest.map(|at| Ord::max((now - at).num_seconds(), 0)),
            agents_online: agents
                .iter()
                .filter(|a| {
                    a.status == AgentStatus::Online && a.skill_group_ids.contains(&group.id)
                })
                .count() as u64,
            open_conversations,
        });
    }
    Ok(DeskOverview { groups, agents })
}
