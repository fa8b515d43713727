//! The customer-service desk: skill groups and the agents in them, channels (a WeCom account
//! whose private inbound messages open conversations), visitors, conversations with their
//! messages and transfers, the agents' work log, quick replies, and the event log the
//! workbench's live stream reads (resumable by event id). Also the `desk:*` permissions and a
//! built-in `agent` role for the people who answer.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{
    add_permissions, create, drop_all, fk, grant_to_roles, remove_permissions, table,
    with_timestamps,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const PERMISSIONS: &[(&str, &str)] = &[
    ("desk:work", "Answer customer-service conversations"),
    (
        "desk:supervise",
        "See and move every conversation, watch the queue and agents",
    ),
    (
        "desk:manage",
        "Set up skill groups, agents, channels and shared quick replies",
    ),
];

const GRANTS: &[(&str, &[&str])] = &[
    (
        "super_admin",
        &["desk:work", "desk:supervise", "desk:manage"],
    ),
    ("admin", &["desk:work", "desk:supervise", "desk:manage"]),
    ("agent", &["desk:work", "profile:self"]),
];

/// Children first, for `down`.
const TABLES: &[&str] = &[
    "desk_events",
    "desk_quick_replies",
    "desk_agent_status_log",
    "desk_transfers",
    "desk_messages",
    "desk_conversations",
    "desk_visitors",
    "desk_channels",
    "desk_agent_groups",
    "desk_agents",
    "desk_skill_groups",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(
            manager,
            with_timestamps(
                table("desk_skill_groups")
                    .col(string_len("name", 100))
                    .col(string_len_null("description", 500))
                    .col(string_len("assignment_rule", 16))
                    .col(integer("inactivity_timeout_secs"))
                    .to_owned(),
            ),
            "desk_skill_groups",
            &[("name", &["name"], true)],
        )
        .await?;
        create(
            manager,
            with_timestamps(
                table("desk_agents")
                    .col(big_integer("user_id"))
                    .col(string_len("agent_no", 32))
                    .col(integer("max_concurrent"))
                    .col(string_len("status", 16))
                    .col(date_time("status_changed_at"))
                    .col(date_time_null("last_heartbeat_at"))
                    .col(integer("active_conversations").default(0))
                    .col(date_time_null("last_assigned_at"))
                    .foreign_key(&mut fk(
                        "desk_agents",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            ),
            "desk_agents",
            &[("user", &["user_id"], true), ("no", &["agent_no"], true)],
        )
        .await?;
        create(
            manager,
            table("desk_agent_groups")
                .col(big_integer("agent_id"))
                .col(big_integer("skill_group_id"))
                .foreign_key(&mut fk(
                    "desk_agent_groups",
                    "agent_id",
                    "desk_agents",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "desk_agent_groups",
                    "skill_group_id",
                    "desk_skill_groups",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
            "desk_agent_groups",
            &[
                ("pair", &["agent_id", "skill_group_id"], true),
                ("group", &["skill_group_id"], false),
            ],
        )
        .await?;
        create(
            manager,
            with_timestamps(
                table("desk_channels")
                    .col(string_len("name", 100))
                    .col(big_integer("account_id"))
                    .col(big_integer("skill_group_id"))
                    .col(text_null("welcome_message"))
                    .col(text_null("rating_prompt"))
                    .col(boolean("enabled").default(true))
                    .col(big_integer("created_by"))
                    .foreign_key(&mut fk(
                        "desk_channels",
                        "account_id",
                        "wework_accounts",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "desk_channels",
                        "skill_group_id",
                        "desk_skill_groups",
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            ),
            "desk_channels",
            &[
                ("account", &["account_id"], true),
                ("group", &["skill_group_id"], false),
            ],
        )
        .await?;
        create(
            manager,
            table("desk_visitors")
                .col(big_integer("channel_id"))
                .col(string_len("external_id", 128))
                .col(string_len_null("nickname", 100))
                .col(string_len_null("avatar_url", 500))
                .col(string_len_null("source_scene", 64))
                .col(big_integer_null("contact_id"))
                .col(json_null("tags"))
                .col(text_null("notes"))
                .col(integer("visits").default(0))
                .col(date_time("first_seen_at"))
                .col(date_time("last_seen_at"))
                .foreign_key(&mut fk(
                    "desk_visitors",
                    "channel_id",
                    "desk_channels",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
            "desk_visitors",
            &[
                ("external", &["channel_id", "external_id"], true),
                ("seen", &["last_seen_at"], false),
            ],
        )
        .await?;
        create(
            manager,
            table("desk_conversations")
                .col(big_integer("channel_id"))
                .col(big_integer("visitor_id"))
                .col(big_integer("skill_group_id"))
                .col(big_integer_null("agent_id"))
                .col(string_len("state", 16))
                .col(date_time("opened_at"))
                .col(date_time("queued_at"))
                .col(date_time_null("assigned_at"))
                .col(date_time_null("accepted_at"))
                .col(date_time_null("first_response_at"))
                .col(date_time_null("closed_at"))
                .col(string_len_null("close_reason", 16))
                .col(date_time("last_visitor_message_at"))
                .col(date_time("last_message_at"))
                .col(integer("replies_since_visitor").default(0))
                .col(integer("unread").default(0))
                .col(integer_null("rating"))
                .col(string_len_null("rating_comment", 500))
                .col(date_time_null("rated_at"))
                .col(date_time("updated_at"))
                .foreign_key(&mut fk(
                    "desk_conversations",
                    "visitor_id",
                    "desk_visitors",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "desk_conversations",
                    "channel_id",
                    "desk_channels",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
            "desk_conversations",
            &[
                ("queue", &["state", "skill_group_id", "queued_at"], false),
                ("agent", &["agent_id", "state"], false),
                ("visitor", &["visitor_id", "state"], false),
                ("closed", &["closed_at"], false),
            ],
        )
        .await?;
        create(
            manager,
            table("desk_messages")
                .col(big_integer("conversation_id"))
                .col(big_integer("channel_id"))
                .col(string_len("direction", 8))
                .col(big_integer_null("agent_id"))
                .col(string_len("msgtype", 20))
                .col(text_null("content"))
                .col(string_len_null("remote_msg_id", 128))
                .col(big_integer_null("task_id"))
                .col(date_time("created_at"))
                .foreign_key(&mut fk(
                    "desk_messages",
                    "conversation_id",
                    "desk_conversations",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
            "desk_messages",
            &[
                ("conversation", &["conversation_id", "id"], false),
                ("remote", &["channel_id", "remote_msg_id"], true),
            ],
        )
        .await?;
        create(
            manager,
            table("desk_transfers")
                .col(big_integer("conversation_id"))
                .col(big_integer_null("from_agent_id"))
                .col(big_integer_null("to_agent_id"))
                .col(big_integer("to_skill_group_id"))
                .col(string_len("reason", 500))
                .col(big_integer_null("created_by"))
                .col(date_time("created_at"))
                .foreign_key(&mut fk(
                    "desk_transfers",
                    "conversation_id",
                    "desk_conversations",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
            "desk_transfers",
            &[("conversation", &["conversation_id"], false)],
        )
        .await?;
        create(
            manager,
            table("desk_agent_status_log")
                .col(big_integer("agent_id"))
                .col(string_len("from_status", 16))
                .col(string_len("to_status", 16))
                .col(string_len("cause", 16))
                .col(date_time("created_at"))
                .foreign_key(&mut fk(
                    "desk_agent_status_log",
                    "agent_id",
                    "desk_agents",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
            "desk_agent_status_log",
            &[("agent", &["agent_id", "created_at"], false)],
        )
        .await?;
        create(
            manager,
            with_timestamps(
                table("desk_quick_replies")
                    .col(big_integer_null("owner_user_id"))
                    .col(string_len("title", 100))
                    .col(text("body"))
                    .foreign_key(&mut fk(
                        "desk_quick_replies",
                        "owner_user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            ),
            "desk_quick_replies",
            &[("owner", &["owner_user_id"], false)],
        )
        .await?;
        create(
            manager,
            table("desk_events")
                .col(string_len("kind", 32))
                .col(big_integer_null("conversation_id"))
                .col(big_integer_null("agent_id"))
                .col(big_integer_null("skill_group_id"))
                .col(json("payload"))
                .col(date_time("created_at"))
                .to_owned(),
            "desk_events",
            &[("created", &["created_at"], false)],
        )
        .await?;
        seed(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        remove_permissions(manager, PERMISSIONS).await?;
        let agent_role = Query::select()
            .column("id")
            .from("roles")
            .and_where(Expr::col("name").eq("agent"))
            .to_owned();
        for child in ["role_permissions", "user_roles"] {
            manager
                .exec_stmt(
                    Query::delete()
                        .from_table(child)
                        .and_where(Expr::col("role_id").in_subquery(agent_role.clone()))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("roles")
                    .and_where(Expr::col("name").eq("agent"))
                    .to_owned(),
            )
            .await?;
        drop_all(manager, TABLES).await
    }
}

/// The permissions, the built-in `agent` role, and who holds what.
async fn seed(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let now = chrono::Utc::now().naive_utc();
    add_permissions(manager, "desk", 1100, PERMISSIONS).await?;
    manager
        .exec_stmt(
            Query::insert()
                .into_table("roles")
                .columns([
                    "name",
                    "display_name",
                    "description",
                    "is_system",
                    "sort_order",
                    "deletion_token",
                    "data_scope",
                    "created_at",
                    "updated_at",
                ])
                .values([
                    "agent".into(),
                    "Customer-service agent".into(),
                    "Answers conversations on the service desk".into(),
                    true.into(),
                    5i32.into(),
                    0i64.into(),
                    "all".into(),
                    now.into(),
                    now.into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .to_owned(),
        )
        .await?;
    grant_to_roles(manager, GRANTS).await
}
