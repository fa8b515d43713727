//! Desk figures for the metric sinks (InfluxDB, or SQL by default): one `desk_conversations`
//! point per moment that counts — a conversation assigned (its queue wait), answered the first
//! time (first-response time), closed (handle time, why) and rated — tagged by skill group,
//! agent and channel, so dashboards chart service levels without reading the conversations.

use chrono::NaiveDateTime;
use entity::desk_conversations;

use crate::{Context, telemetry::Point};

/// What happened to the conversation.
pub enum Moment {
    /// Given to an agent: how long it queued.
    Assigned,
    /// The agent's first reply: how long after it opened.
    FirstResponse,
    /// Closed: how long the agent handled it, and why it ended.
    Closed,
    /// The visitor's rating.
    Rated(i32),
}

fn millis(from: NaiveDateTime, to: NaiveDateTime) -> i64 {
    (to - from).num_milliseconds().max(0)
}

/// Writes the point for `moment` of the conversation as it is now.
pub fn record(ctx: &Context, conversation: &desk_conversations::Model, moment: Moment) {
    let mut point = Point::new("desk_conversations", ctx.clock.now())
        .tag("skill_group", conversation.skill_group_id)
        .tag("channel", conversation.channel_id)
        .tag(
            "agent",
            conversation
                .agent_id
                .map(|a| a.to_string())
                .unwrap_or_default(),
        );
    point = match moment {
        Moment::Assigned => match conversation.assigned_at {
            Some(at) => point.int("queue_wait_ms", millis(conversation.queued_at, at)),
            None => return,
        },
        Moment::FirstResponse => match conversation.first_response_at {
            Some(at) => point.int("first_response_ms", millis(conversation.opened_at, at)),
            None => return,
        },
        Moment::Closed => {
            let Some(closed) = conversation.closed_at else {
                return;
            };
            let start = conversation
                .accepted_at
                .or(conversation.assigned_at)
                .unwrap_or(conversation.opened_at);
            point
                .tag(
                    "reason",
                    conversation
                        .close_reason
                        .map(|r| r.as_str())
                        .unwrap_or_default(),
                )
                .int("closed", 1)
                .int("handle_ms", millis(start, closed))
        }
        Moment::Rated(rating) => point.int("rating", i64::from(rating)),
    };
    ctx.telemetry.metric(point);
}
