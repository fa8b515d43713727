//! The desk's event log and its live fan-out. Every change a workbench shows (a conversation
//! opened, assigned, accepted, transferred or closed, a message in or out, an agent's status) is
//! a row of `desk_events`, so a stream resumes from the last id its client saw and nothing is
//! lost across reconnects or API processes.
//!
//! Each process runs one [`Hub`]: a single reader that fetches new rows and hands them to every
//! open stream of the process. It wakes when this process records an event, when another
//! process announces one on Redis (`PUBLISH`, when Redis is configured), and at the latest every
//! [`TICK`], so even without Redis a process sees another's events within a second.
//!
//! Ids are given before commit, so a row with a smaller id can appear after a larger one. The
//! reader keeps a floor below which it has seen every row and re-reads above it, delivering each
//! id once; a gap older than [`GAP_PATIENCE`] is a rolled-back insert and is stepped over.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::desk_events;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{Context, ServiceResult, clock::to_utc, wake::Signal};

/// The longest a process waits before looking for other processes' events.
pub const TICK: Duration = Duration::from_millis(1000);
/// How long a missing id may still be an insert that has not committed yet.
const GAP_PATIENCE: Duration = Duration::from_secs(10);
/// How long the log keeps an event (housekeeping removes older ones): far longer than any
/// stream's resume needs, short enough that the table stays small.
pub const RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// Rows fetched per read.
const BATCH: u64 = 500;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    #[serde(rename = "conversation.opened")]
    ConversationOpened,
    #[serde(rename = "conversation.assigned")]
    ConversationAssigned,
    #[serde(rename = "conversation.accepted")]
    ConversationAccepted,
    #[serde(rename = "conversation.transferred")]
    ConversationTransferred,
    #[serde(rename = "conversation.requeued")]
    ConversationRequeued,
    #[serde(rename = "conversation.closed")]
    ConversationClosed,
    #[serde(rename = "conversation.rated")]
    ConversationRated,
    #[serde(rename = "conversation.read")]
    ConversationRead,
    /// A colleague joined to serve the visitor too (`members` of the conversation).
    #[serde(rename = "conversation.member_joined")]
    MemberJoined,
    #[serde(rename = "conversation.member_left")]
    MemberLeft,
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.sent")]
    MessageSent,
    /// The visitor or a receptionist recalled a message (`recalled_at` is set on it).
    #[serde(rename = "message.recalled")]
    MessageRecalled,
    #[serde(rename = "agent.status")]
    AgentStatus,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConversationOpened => "conversation.opened",
            Self::ConversationAssigned => "conversation.assigned",
            Self::ConversationAccepted => "conversation.accepted",
            Self::ConversationTransferred => "conversation.transferred",
            Self::ConversationRequeued => "conversation.requeued",
            Self::ConversationClosed => "conversation.closed",
            Self::ConversationRated => "conversation.rated",
            Self::ConversationRead => "conversation.read",
            Self::MemberJoined => "conversation.member_joined",
            Self::MemberLeft => "conversation.member_left",
            Self::MessageReceived => "message.received",
            Self::MessageSent => "message.sent",
            Self::MessageRecalled => "message.recalled",
            Self::AgentStatus => "agent.status",
        }
    }

    fn is_about_a_conversation(kind: &str) -> bool {
        kind.starts_with("conversation.")
    }
}

/// One event as a stream sends it (`id:` is the event id, `event:` its kind, `data:` this).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeskEvent {
    pub id: i64,
    /// One of the kinds of [`EventKind`].
    #[schema(value_type = EventKind)]
    pub kind: String,
    pub conversation_id: Option<i64>,
    /// The agent it concerns (the conversation's agent, or the agent whose status changed).
    pub agent_id: Option<i64>,
    pub skill_group_id: Option<i64>,
    /// The conversation or message or agent as it is after the change.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

impl From<desk_events::Model> for DeskEvent {
    fn from(m: desk_events::Model) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            conversation_id: m.conversation_id,
            agent_id: m.agent_id,
            skill_group_id: m.skill_group_id,
            data: m.payload,
            at: to_utc(m.created_at),
        }
    }
}

/// Where an event belongs: the conversation, its agent and its skill group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    pub conversation_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub skill_group_id: Option<i64>,
}

/// Stores an event on `conn` (inside the change's transaction when there is one). Call
/// [`announce`] once the change is committed.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    now: chrono::NaiveDateTime,
    kind: EventKind,
    scope: Scope,
    data: &impl Serialize,
) -> ServiceResult<()> {
    let payload = serde_json::to_value(data).map_err(|e| anyhow::anyhow!(e))?;
    desk_events::Entity::insert(desk_events::ActiveModel {
        kind: Set(kind.as_str().to_owned()),
        conversation_id: Set(scope.conversation_id),
        agent_id: Set(scope.agent_id),
        skill_group_id: Set(scope.skill_group_id),
        payload: Set(payload),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Wakes this process's streams now and, through Redis, every other process's.
pub async fn announce(ctx: &Context) {
    ctx.desk_hub.wake.raise(ctx).await;
}

/// One process's reader of the event log; streams subscribe to it.
pub struct Hub {
    wake: Arc<Signal>,
    sender: broadcast::Sender<Arc<DeskEvent>>,
    started: OnceLock<()>,
    /// The highest id below which every event has been delivered (the reader's floor).
    floor: Mutex<i64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            wake: Signal::new("desk-events"),
            sender: broadcast::channel(4096).0,
            started: OnceLock::new(),
            floor: Mutex::new(0),
        }
    }
}

impl Hub {
    /// Live events from now on; starts the reader on first use.
    pub async fn subscribe(ctx: &Context) -> ServiceResult<broadcast::Receiver<Arc<DeskEvent>>> {
        let hub = &ctx.desk_hub;
        let receiver = hub.sender.subscribe();
        if hub.started.get().is_none() {
            let latest: Option<i64> = desk_events::Entity::find()
                .select_only()
                .column_as(desk_events::Column::Id.max(), "max")
                .into_tuple::<Option<i64>>()
                .one(&ctx.db)
                .await?
                .flatten();
            if hub.started.set(()).is_ok() {
                *hub.floor.lock().unwrap_or_else(PoisonError::into_inner) = latest.unwrap_or(0);
                hub.wake.listen(ctx);
                tokio::spawn(read_loop(ctx.clone()));
            }
        }
        Ok(receiver)
    }
}

/// Reads new rows whenever woken (or every tick) and broadcasts each id once.
async fn read_loop(ctx: Context) {
    let hub = ctx.desk_hub.clone();
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let mut gap_since: Option<std::time::Instant> = None;
    loop {
        hub.wake.wait(&ctx, TICK).await;
        if hub.sender.receiver_count() == 0 {
            // Nobody listens: move the floor to the end so a later subscriber starts live.
            if let Ok(Some(Some(max))) = desk_events::Entity::find()
                .select_only()
                .column_as(desk_events::Column::Id.max(), "max")
                .into_tuple::<Option<i64>>()
                .one(&ctx.db)
                .await
            {
                *hub.floor.lock().unwrap_or_else(PoisonError::into_inner) = max;
                seen.clear();
            }
            continue;
        }
        let floor = *hub.floor.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cursor = floor;
        loop {
            let rows = match desk_events::Entity::find()
                .filter(desk_events::Column::Id.gt(cursor))
                .order_by_asc(desk_events::Column::Id)
                .limit(BATCH)
                .all(&ctx.db)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "desk events could not be read; retrying");
                    break;
                }
            };
            let fetched = rows.len() as u64;
            for row in rows {
                cursor = row.id;
                if seen.insert(row.id) {
                    let _ = hub.sender.send(Arc::new(DeskEvent::from(row)));
                }
            }
            if fetched < BATCH {
                break;
            }
        }
        *hub.floor.lock().unwrap_or_else(PoisonError::into_inner) =
            raise_floor(floor, &mut seen, &mut gap_since, std::time::Instant::now());
    }
}

/// The highest id with every id up to it seen, dropping those from `seen`. A gap that stays
/// open for [`GAP_PATIENCE`] is a rolled-back insert and is stepped over.
fn raise_floor(
    floor: i64,
    seen: &mut BTreeSet<i64>,
    gap_since: &mut Option<std::time::Instant>,
    now: std::time::Instant,
) -> i64 {
    let mut next = floor;
    while seen.remove(&(next + 1)) {
        next += 1;
    }
    if seen.is_empty() {
        *gap_since = None;
        return next;
    }
    let since = *gap_since.get_or_insert(now);
    if now.duration_since(since) >= GAP_PATIENCE
        && let Some(&first) = seen.iter().next()
    {
        next = first;
        seen.remove(&first);
        while seen.remove(&(next + 1)) {
            next += 1;
        }
        *gap_since = None;
    }
    next
}

/// Wakes the reader whenever another process announces an event; reconnects after a failure.
/// The events a viewer may see: supervisors all of them; an agent their own conversations and
/// status, the conversations they serve as a member (messages included), and the conversations
/// (not the messages of other agents' chats) of their groups.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    pub everything: bool,
    pub agent_id: Option<i64>,
    pub groups: BTreeSet<i64>,
    /// Open conversations the agent serves as a member.
    pub conversations: BTreeSet<i64>,
}

impl Audience {
    pub fn sees(&self, event: &DeskEvent) -> bool {
        if self.everything {
            return true;
        }
        if event.agent_id.is_some() && event.agent_id == self.agent_id {
            return true;
        }
        if event
            .conversation_id
            .is_some_and(|c| self.conversations.contains(&c))
            || self.listed_in(event)
        {
            return true;
        }
        let in_my_groups = event
            .skill_group_id
            .is_some_and(|g| self.groups.contains(&g));
        in_my_groups
            && (event.agent_id.is_none() || EventKind::is_about_a_conversation(&event.kind))
    }
}

impl Audience {
    /// Whether the event's conversation lists this agent among its members.
    fn listed_in(&self, event: &DeskEvent) -> bool {
        let Some(me) = self.agent_id else {
            return false;
        };
        EventKind::is_about_a_conversation(&event.kind)
            && event.data["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["agent_id"].as_i64() == Some(me)))
    }

    /// Follows membership as it changes: a conversation whose event lists the agent as a member
    /// is theirs to watch from then on, one that no longer lists them is not.
    pub fn track(&mut self, event: &DeskEvent) {
        let Some(conversation) = event.conversation_id else {
            return;
        };
        if !EventKind::is_about_a_conversation(&event.kind) || self.everything {
            return;
        }
        if self.listed_in(event) && event.data["state"].as_str() != Some("closed") {
            self.conversations.insert(conversation);
        } else {
            self.conversations.remove(&conversation);
        }
    }
}

/// Events after `after` that `audience` sees, oldest first, at most `limit`.
pub async fn since(
    ctx: &Context,
    audience: &Audience,
    after: i64,
    limit: u64,
) -> ServiceResult<Vec<DeskEvent>> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let rows = desk_events::Entity::find()
            .filter(desk_events::Column::Id.gt(cursor))
            .order_by_asc(desk_events::Column::Id)
            .limit(BATCH)
            .all(&ctx.db)
            .await?;
        let fetched = rows.len() as u64;
        for row in rows {
            cursor = row.id;
            let event = DeskEvent::from(row);
            if audience.sees(&event) {
                out.push(event);
                if out.len() as u64 >= limit {
                    return Ok(out);
                }
            }
        }
        if fetched < BATCH {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, agent: Option<i64>, group: Option<i64>) -> DeskEvent {
        DeskEvent {
            id: 1,
            kind: kind.as_str().into(),
            conversation_id: Some(1),
            agent_id: agent,
            skill_group_id: group,
            data: serde_json::Value::Null,
            at: Utc::now(),
        }
    }

    #[test]
    fn an_agent_sees_their_own_and_their_groups_queue_but_not_colleagues_chats() {
        let me = Audience {
            everything: false,
            agent_id: Some(7),
            groups: [1].into(),
            ..Audience::default()
        };
        assert!(me.sees(&event(EventKind::MessageSent, Some(7), Some(2))));
        assert!(me.sees(&event(EventKind::ConversationOpened, None, Some(1))));
        assert!(me.sees(&event(EventKind::MessageReceived, None, Some(1))));
        assert!(me.sees(&event(EventKind::ConversationAssigned, Some(8), Some(1))));
        assert!(!me.sees(&event(EventKind::MessageReceived, Some(8), Some(1))));
        assert!(!me.sees(&event(EventKind::ConversationOpened, None, Some(2))));
        let boss = Audience {
            everything: true,
            ..Audience::default()
        };
        assert!(boss.sees(&event(EventKind::MessageReceived, Some(8), Some(2))));
    }

    #[test]
    fn a_member_follows_the_conversations_that_list_them() {
        let mut me = Audience {
            agent_id: Some(7),
            ..Audience::default()
        };
        let message = event(EventKind::MessageReceived, Some(8), Some(2));
        assert!(!me.sees(&message));
        let mut joined = event(EventKind::MemberJoined, Some(8), Some(2));
        joined.data = serde_json::json!({ "state": "active", "members": [{ "agent_id": 7 }] });
        assert!(me.sees(&joined));
        me.track(&joined);
        assert!(me.sees(&message));
        let mut left = event(EventKind::MemberLeft, Some(8), Some(2));
        left.data = serde_json::json!({ "state": "active", "members": [] });
        me.track(&left);
        assert!(!me.sees(&message));
    }

    #[test]
    fn the_floor_waits_for_a_late_commit_then_steps_over_a_rollback() {
        let start = std::time::Instant::now();
        let mut gap = None;
        let mut seen: BTreeSet<i64> = [1, 2, 4, 5].into();
        assert_eq!(raise_floor(0, &mut seen, &mut gap, start), 2);
        assert_eq!(seen, [4, 5].into());
        let later = start + Duration::from_secs(1);
        assert_eq!(
            raise_floor(2, &mut seen, &mut gap, later),
            2,
            "3 may still commit"
        );
        seen.insert(3);
        assert_eq!(raise_floor(2, &mut seen, &mut gap, later), 5);
        assert!(gap.is_none());
        let mut seen: BTreeSet<i64> = [7, 8].into();
        assert_eq!(raise_floor(5, &mut seen, &mut gap, later), 5);
        let patience_out = later + GAP_PATIENCE;
        assert_eq!(
            raise_floor(5, &mut seen, &mut gap, patience_out),
            8,
            "6 never came"
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn kinds_serialise_as_their_names() {
        for kind in [
            EventKind::ConversationOpened,
            EventKind::AgentStatus,
            EventKind::MessageSent,
        ] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
    }
}
