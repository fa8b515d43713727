//! Single messages (a one-receiver task underneath, so they get the same rate limits, retries,
//! idempotency and crash safety as broadcasts) and the message log in both directions, readable
//! per contact as a conversation.

use crate::rbac::perm;
use chrono::{DateTime, Utc};
use entity::messages;
use entity::states::{Channel, ChatType, MessageDirection, MessageStatus, MessageType, TaskType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult,
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    tasks::{self, TaskInput, TaskView, spec::Audience},
};

/// A new message's uuid (a receiver's, then its `messages` row's; also the idempotency key of
/// its send). Time-ordered (UUIDv7, 74 random bits): each table's uuid index then takes new
/// keys at its end, in pages already in memory, where random ones landed on a page anywhere in
/// an index of millions.
pub fn new_message_uuid() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// One of contact_id and group_id.
    pub contact_id: Option<i64>,
    pub group_id: Option<i64>,
    /// The sending account; default: the account that has the contact or group.
    pub account_id: Option<i64>,
    /// `direct` for agents; for WeCom apps app_message, app_chat, customer_mass or robot.
    #[serde(default)]
    pub channel: Channel,
    pub template_id: Option<i64>,
    pub message_type: Option<MessageType>,
    pub content: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// Send at this time instead of now.
    pub scheduled_time: Option<DateTime<Utc>>,
}

/// Queues one message; it is sent by the dispatcher like any task.
pub async fn send(ctx: &Context, actor: &Actor, input: MessageInput) -> ServiceResult<TaskView> {
    actor.require(perm::MessagesSend)?;
    let (contact_ids, group_ids) = match (input.contact_id, input.group_id) {
        (Some(c), None) => (vec![c], vec![]),
        (None, Some(g)) => (vec![], vec![g]),
        _ => {
            return Err(ServiceError::invalid(
                "contact_id",
                "give exactly one of contact_id and group_id",
            ));
        }
    };
    let task = TaskInput {
        name: format!(
            "message to {}",
            input.contact_id.map_or_else(
                || format!("group {}", group_ids[0]),
                |c| format!("contact {c}")
            )
        ),
        task_type: TaskType::Single,
        channel: input.channel,
        account_id: input.account_id,
        template_id: input.template_id,
        message_type: input.message_type,
        content: input.content,
        payload: input.payload,
        variables: input.variables,
        audience: Audience {
            contact_ids,
            group_ids,
            filter: None,
            segment_id: None,
            group_filter: None,
        },
        scheduled_time: input.scheduled_time,
        cron: None,
        timezone: None,
        priority: Some(1),
        send_interval: None,
        rate_per_minute: None,
        max_retry: None,
        quiet_hours: None,
        variants: None,
        variant_test: None,
        frequency_cap: None,
        auto_pause: None,
    };
    // Sending a message needs messages:send, not the broader task permissions.
    let mut creator = actor.clone();
    let mut permissions = (*actor.permissions).clone();
    permissions.insert("tasks:create".into());
    creator.permissions = std::sync::Arc::new(permissions);
    tasks::create(ctx, &creator, task).await
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: i64,
    pub message_uuid: uuid::Uuid,
    pub direction: MessageDirection,
    pub instance_id: i64,
    pub account_id: i64,
    pub chat_type: ChatType,
    pub chat_wxid: String,
    pub contact_id: Option<i64>,
    pub group_id: Option<i64>,
    pub sender_wxid: Option<String>,
    pub message_type: String,
    pub message_content: Option<String>,
    pub send_status: MessageStatus,
    pub task_id: Option<i64>,
    pub send_time: Option<DateTime<Utc>>,
    pub receive_time: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<messages::Model> for MessageView {
    fn from(m: messages::Model) -> Self {
        Self {
            id: m.id,
            message_uuid: m.message_uuid,
            direction: m.direction,
            instance_id: m.instance_id,
            account_id: m.account_id,
            chat_type: m.chat_type,
            chat_wxid: m.chat_wxid,
            contact_id: m.contact_id,
            group_id: m.group_id,
            sender_wxid: m.sender_wxid,
            message_type: m.message_type,
            message_content: m.message_content,
            send_status: m.send_status,
            task_id: m.task_id,
            send_time: m.send_time.map(to_utc),
            receive_time: m.receive_time.map(to_utc),
            error_message: m.error_message,
            created_at: to_utc(m.created_at),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageFilter {
    /// A contact's conversation (both directions).
    pub contact_id: Option<i64>,
    pub group_id: Option<i64>,
    pub account_id: Option<i64>,
    pub task_id: Option<i64>,
    pub direction: Option<MessageDirection>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    filter: MessageFilter,
) -> ServiceResult<Page<MessageView>> {
    actor.require(perm::MessagesRead)?;
    let page = PageRequest::parse(filter.limit, filter.cursor.as_deref())?;
    let mut query = messages::Entity::find().filter(
        actor
            .reach
            .on_authored(messages::Column::CreatedBy, messages::Column::InstanceId),
    );
    if let Some(c) = filter.contact_id {
        query = query.filter(messages::Column::ContactId.eq(c));
    }
    if let Some(g) = filter.group_id {
        query = query.filter(messages::Column::GroupId.eq(g));
    }
    if let Some(a) = filter.account_id {
        query = query.filter(messages::Column::AccountId.eq(a));
    }
    if let Some(t) = filter.task_id {
        query = query.filter(messages::Column::TaskId.eq(t));
    }
    if let Some(d) = filter.direction {
        query = query.filter(messages::Column::Direction.eq(d));
    }
    if let Some(before) = page.before {
        query = query.filter(messages::Column::Id.lt(before));
    }
    let rows = query
        .order_by_desc(messages::Column::Id)
        .limit(page.fetch())
        .all(&ctx.db)
        .await?;
    Ok(Page::from_rows(page, rows, |r| r.id, MessageView::from))
}
