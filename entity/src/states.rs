//! Every state and kind the platform stores in a string column, one enum each, so a status is
//! compared as a type and never as a literal. Hand-written (`scripts/gen-entities` keeps this
//! file and points the generated columns at these types through `entity/column-types`).
//!
//! Each enum is a string-backed sea-orm `ActiveEnum` (the stored text is the variant's value),
//! serialises as that same text, and documents itself in the OpenAPI document.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Declares a string-backed state enum: the stored, serialised and documented value of each
/// variant is written once, next to it. (`tt`, not `literal`: a `literal` fragment reaches the
/// derives wrapped in an invisible group, which utoipa's attribute parser does not see through.)
macro_rules! state_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $value:tt ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, EnumIter, DeriveActiveEnum,
            Serialize, Deserialize, utoipa::ToSchema,
        )]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[sea_orm(string_value = $value)]
                #[serde(rename = $value)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored and serialised text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value),+
                }
            }

            /// The variant whose text is `value`, if any.
            pub fn parse(value: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == value)
            }

            /// "a, b, c": the allowed values, for error messages.
            pub fn list() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

state_enum! {
    /// Where a message task stands.
    TaskStatus {
        /// Waiting for its time or its next cron firing.
        Scheduled = "scheduled",
        Running = "running",
        /// Everything went out as customer mass messages that members still have to confirm.
        AwaitingConfirmation = "awaiting_confirmation",
        Paused = "paused",
        Completed = "completed",
        Cancelled = "cancelled",
        Failed = "failed",
    }
}

impl TaskStatus {
    /// Still moving: a progress stream keeps following a task in these states.
    pub const fn is_in_progress(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }

    /// A task that may be paused.
    pub const fn is_pausable(self) -> bool {
        matches!(self, Self::Running | Self::Scheduled)
    }

    /// A task that may be cancelled.
    pub const fn is_cancellable(self) -> bool {
        matches!(
            self,
            Self::Scheduled | Self::Running | Self::Paused | Self::AwaitingConfirmation
        )
    }

    /// A task whose failed receivers may be sent again.
    pub const fn allows_retry(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Scheduled | Self::Paused | Self::Failed
        )
    }
}

state_enum! {
    /// Where one run (one firing, or one retry of failed receivers) of a task stands.
    RunStatus {
        /// Its audience is being written out as receivers.
        Expanding = "expanding",
        Running = "running",
        AwaitingConfirmation = "awaiting_confirmation",
        Completed = "completed",
        Cancelled = "cancelled",
        Failed = "failed",
    }
}

impl RunStatus {
    /// The run still has work ahead of it.
    pub const fn is_in_progress(self) -> bool {
        matches!(self, Self::Expanding | Self::Running)
    }

    /// The state a task takes from its current run: sending while the run expands or sends;
    /// done (a one-shot task) or waiting for the next firing (a recurring one) once it ended.
    pub const fn task_status(self, recurring: bool) -> TaskStatus {
        match self {
            Self::Expanding | Self::Running => TaskStatus::Running,
            _ if recurring => TaskStatus::Scheduled,
            Self::AwaitingConfirmation => TaskStatus::AwaitingConfirmation,
            _ => TaskStatus::Completed,
        }
    }
}

state_enum! {
    /// Where one receiver of a run stands.
    ReceiverStatus {
        Pending = "pending",
        /// Leased by a worker that is sending it.
        Claimed = "claimed",
        Sent = "sent",
        Failed = "failed",
        Skipped = "skipped",
        AwaitingConfirmation = "awaiting_confirmation",
    }
}

impl ReceiverStatus {
    /// Reached the contact, or is waiting only for the member's confirmation: counts against
    /// frequency caps and quotas.
    pub const fn counts_as_delivered(self) -> bool {
        matches!(self, Self::Sent | Self::AwaitingConfirmation)
    }

    /// Not settled yet: a worker will still send it.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Claimed)
    }
}

state_enum! {
    /// Where a stored message stands.
    MessageStatus {
        Pending = "pending",
        Sent = "sent",
        Failed = "failed",
        /// The instance reported it delivered.
        Delivered = "delivered",
        /// An inbound message.
        Received = "received",
        AwaitingConfirmation = "awaiting_confirmation",
    }
}

state_enum! {
    /// Whether a message went out or came in.
    MessageDirection {
        In = "in",
        Out = "out",
    }
}

state_enum! {
    /// A one-to-one chat or a group chat.
    ChatType {
        Private = "private",
        Group = "group",
    }
}

state_enum! {
    /// What a receiver of a task is.
    ReceiverType {
        Contact = "contact",
        Group = "group",
    }
}

state_enum! {
    /// How an instance is reached.
    InstanceKind {
        /// A hook- or protocol-based WeCom client speaking our agent protocol.
        Agent = "agent",
        /// An official WeCom self-built app (corp id, secret, agent id).
        Wecom = "wecom",
    }
}

state_enum! {
    /// The health of an instance.
    InstanceStatus {
        Offline = "offline",
        Online = "online",
        /// Reachable but refusing (bad credentials, IP not allowed).
        Error = "error",
        /// Set by an operator; heartbeats leave it alone.
        Maintenance = "maintenance",
    }
}

state_enum! {
    /// The state of a WeCom account as its instance reports it.
    AccountStatus {
        Online = "online",
        Offline = "offline",
        Banned = "banned",
    }
}

state_enum! {
    /// Where a contact and group sync of an instance stands.
    SyncStatus {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

impl SyncStatus {
    /// Queued or running: a second request joins it.
    pub const OPEN: [Self; 2] = [Self::Pending, Self::Running];
}

state_enum! {
    /// Where an alert stands.
    AlertStatus {
        Active = "ACTIVE",
        Acknowledged = "ACKNOWLEDGED",
        Resolved = "RESOLVED",
    }
}

impl AlertStatus {
    /// Not resolved yet: it may still be acknowledged or resolved.
    pub const fn is_open(self) -> bool {
        !matches!(self, Self::Resolved)
    }
}

state_enum! {
    /// What an alert rule watches.
    AlertRuleType {
        /// Instances that missed `threshold` heartbeats in a row.
        HeartbeatMissing = "heartbeat_missing",
        /// Instances in status `error`.
        InstanceError = "instance_error",
        /// An instance metric's average over the window compared to `threshold`.
        MetricThreshold = "metric_threshold",
        /// Tasks whose recent sends failed more than `threshold` (a share).
        TaskFailureRate = "task_failure_rate",
        /// Service-desk skill groups whose oldest queued conversation has waited more than
        /// `threshold` seconds.
        DeskQueueWait = "desk_queue_wait",
    }
}

state_enum! {
    /// How loud an alert is.
    AlertLevel {
        Info = "INFO",
        Warning = "WARNING",
        Critical = "CRITICAL",
    }
}

state_enum! {
    /// Where an alert's notification goes.
    AlertChannelKind {
        /// A WeCom group robot webhook URL (markdown message).
        WecomRobot = "wecom_robot",
        /// A JSON POST, HMAC-SHA256-signed when the channel has a secret.
        Webhook = "webhook",
    }
}

state_enum! {
    /// How an audited change ended.
    AuditResult {
        Success = "SUCCESS",
        Failure = "FAILURE",
    }
}

state_enum! {
    /// Whether a user may sign in.
    UserStatus {
        Active = "active",
        Disabled = "disabled",
    }
}

state_enum! {
    /// Whether a template may be used by new tasks.
    TemplateStatus {
        Active = "active",
        Disabled = "disabled",
    }
}

state_enum! {
    /// The shape of a task's audience.
    TaskType {
        Single = "single",
        Batch = "batch",
        Broadcast = "broadcast",
    }
}

state_enum! {
    /// How a message reaches its receiver.
    Channel {
        /// One-to-one chat through an agent instance.
        Direct = "direct",
        /// A WeCom app message to members.
        AppMessage = "app_message",
        /// A WeCom app group chat.
        AppChat = "app_chat",
        /// A customer mass message each member confirms in the WeCom client.
        CustomerMass = "customer_mass",
        /// A group robot webhook.
        Robot = "robot",
        /// A 微信客服 (WeChat customer service) message to a WeChat user, sent by the service
        /// desk only (WeCom lets it write within 48 hours of the user's last message, at most
        /// 5 times until they write again).
        WecomKf = "wecom_kf",
    }
}

/// What a task sends through when it names no channel.
impl Default for Channel {
    fn default() -> Self {
        Self::Direct
    }
}

state_enum! {
    /// The content kind of a task or template.
    MessageType {
        Text = "text",
        Image = "image",
        Link = "link",
        File = "file",
        Miniprogram = "miniprogram",
    }
}

state_enum! {
    /// The type of a template variable.
    VariableType {
        String = "string",
        Number = "number",
        Boolean = "boolean",
        /// `YYYY-MM-DD`.
        Date = "date",
    }
}

/// A variable declared without a type takes any text.
impl Default for VariableType {
    fn default() -> Self {
        Self::String
    }
}

state_enum! {
    /// What a contact is to the account that holds it.
    ContactType {
        Friend = "friend",
        External = "external",
        GroupMember = "group_member",
        Official = "official",
    }
}

state_enum! {
    /// Whether a contact can still be reached.
    FriendStatus {
        Normal = "normal",
        Deleted = "deleted",
        Blocked = "blocked",
    }
}

state_enum! {
    /// Where an idempotency key stands.
    IdempotencyState {
        /// Its request is being handled.
        InProgress = "in_progress",
        /// Its answer is stored for replays.
        Completed = "completed",
    }
}

state_enum! {
    /// Whether a customer-service agent takes new conversations.
    AgentStatus {
        /// Takes new conversations up to their maximum.
        Online = "online",
        /// Keeps their conversations, takes no new ones.
        Busy = "busy",
        /// Stepped away: keeps their conversations, takes no new ones.
        Away = "away",
        /// Signed off or silent: takes nothing; conversations not yet accepted go back to the queue.
        Offline = "offline",
    }
}

state_enum! {
    /// Why an agent's status changed (the work log).
    AgentStatusCause {
        /// The agent set it.
        Agent = "agent",
        /// The workbench stopped sending heartbeats.
        Heartbeat = "heartbeat",
        /// A supervisor or administrator set it.
        Supervisor = "supervisor",
    }
}

state_enum! {
    /// Which online agent of a skill group gets the next queued conversation.
    AssignmentRule {
        /// The agent who was given a conversation longest ago.
        RoundRobin = "round_robin",
        /// The agent with the fewest open conversations.
        LeastBusy = "least_busy",
        /// The agent who last served the visitor when they can take it, else the least busy.
        Sticky = "sticky",
    }
}

state_enum! {
    /// Where a customer-service conversation stands.
    ConversationState {
        /// Waiting for an agent of its skill group.
        Queued = "queued",
        /// Given to an agent who has not accepted it yet.
        Assigned = "assigned",
        /// Being served by its agent.
        Active = "active",
        Closed = "closed",
    }
}

state_enum! {
    /// Who or what closed a conversation.
    CloseReason {
        Agent = "agent",
        Supervisor = "supervisor",
        /// The visitor wrote nothing for the skill group's inactivity timeout.
        VisitorTimeout = "visitor_timeout",
        /// The channel ended it (its account or channel was removed or disabled).
        Channel = "channel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_through_every_representation() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(*status));
            assert_eq!(status.to_value(), status.as_str());
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(AlertStatus::Active.as_str(), "ACTIVE");
        assert_eq!(TaskStatus::parse("nope"), None);
    }

    #[test]
    fn the_openapi_schema_lists_the_stored_values() {
        let schema = serde_json::to_value(<TaskStatus as utoipa::PartialSchema>::schema()).unwrap();
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let stored: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(listed, stored);
    }

    #[test]
    fn a_task_follows_its_current_run() {
        use RunStatus as R;
        use TaskStatus as T;
        assert_eq!(R::Running.task_status(false), T::Running);
        assert_eq!(R::Expanding.task_status(true), T::Running);
        assert_eq!(R::Completed.task_status(false), T::Completed);
        assert_eq!(R::Cancelled.task_status(false), T::Completed);
        assert_eq!(R::Completed.task_status(true), T::Scheduled);
        assert_eq!(
            R::AwaitingConfirmation.task_status(false),
            T::AwaitingConfirmation
        );
        assert_eq!(R::AwaitingConfirmation.task_status(true), T::Scheduled);
    }
}
