//! Templates, message tasks and their runs, receivers (the dispatcher's source of truth),
//! messages in both directions, inbound events and API idempotency keys.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, fk, table, with_timestamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let templates = with_timestamps(
            table("message_templates")
                .col(uuid("template_uuid"))
                .col(string_len("name", 200))
                .col(string_len_null("category", 50))
                .col(string_len("message_type", 20))
                .col(text("content"))
                .col(json_null("payload"))
                .col(json_null("variables"))
                .col(text_null("preview_content"))
                .col(string_len_null("thumbnail_url", 500))
                .col(integer("use_count").default(0))
                .col(date_time_null("last_used_at"))
                .col(boolean("is_system").default(false))
                .col(boolean("is_public").default(false))
                .col(string_len("status", 16).default("active"))
                .col(integer("sort_order").default(0))
                .col(json_null("tags"))
                .col(big_integer("created_by"))
                .foreign_key(&mut fk(
                    "message_templates",
                    "created_by",
                    "users",
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            templates,
            "message_templates",
            &[
                ("uuid", &["template_uuid"], true),
                ("name", &["name"], false),
                ("category", &["category"], false),
                ("deleted", &["deleted_at"], false),
            ],
        )
        .await?;

        let tasks = with_timestamps(
            table("message_tasks")
                .col(uuid("task_uuid"))
                .col(string_len_null("task_name", 200))
                .col(string_len("task_type", 20))
                .col(big_integer_null("account_id"))
                .col(big_integer_null("instance_id"))
                .col(string_len("message_type", 20))
                .col(text_null("message_content"))
                .col(json_null("message_payload"))
                .col(big_integer_null("template_id"))
                .col(json_null("template_variables"))
                .col(json("audience"))
                .col(string_len_null("cron_expression", 100))
                .col(string_len_null("timezone", 64))
                .col(date_time_null("next_fire_at"))
                .col(integer("target_count").default(0))
                .col(integer("success_count").default(0))
                .col(integer("fail_count").default(0))
                .col(integer("skipped_count").default(0))
                .col(double("progress").default(0.0))
                .col(string_len("status", 16).default("pending"))
                .col(text_null("pause_reason"))
                .col(small_integer("priority").default(2))
                .col(integer("send_interval").default(0))
                .col(integer_null("rate_per_minute"))
                .col(integer("max_retry").default(3))
                .col(date_time_null("scheduled_time"))
                .col(json_null("quiet_hours"))
                .col(json_null("frequency_cap"))
                .col(json_null("auto_pause"))
                .col(big_integer_null("current_run_id"))
                .col(date_time_null("started_at"))
                .col(date_time_null("completed_at"))
                .col(text_null("error_message"))
                .col(big_integer("created_by"))
                .foreign_key(&mut fk(
                    "message_tasks",
                    "created_by",
                    "users",
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            tasks,
            "message_tasks",
            &[
                ("uuid", &["task_uuid"], true),
                ("due", &["status", "scheduled_time"], false),
                ("cron", &["next_fire_at"], false),
                ("creator", &["created_by", "id"], false),
            ],
        )
        .await?;

        // One row per execution; the unique (task, scheduled_for) claims each cron firing once.
        let runs = with_timestamps(
            table("message_task_runs")
                .col(big_integer("task_id"))
                .col(integer("run_number"))
                .col(date_time("scheduled_for"))
                .col(string_len("status", 16).default("pending"))
                .col(integer("target_count").default(0))
                .col(integer("success_count").default(0))
                .col(integer("fail_count").default(0))
                .col(integer("skipped_count").default(0))
                .col(date_time_null("started_at"))
                .col(date_time_null("completed_at"))
                .col(text_null("error_message"))
                .foreign_key(&mut fk(
                    "message_task_runs",
                    "task_id",
                    "message_tasks",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        );
        create(
            manager,
            runs,
            "message_task_runs",
            &[
                ("firing", &["task_id", "scheduled_for"], true),
                ("status", &["status"], false),
            ],
        )
        .await?;

        let receivers = with_timestamps(
            table("message_receivers")
                .col(big_integer("task_id"))
                .col(big_integer("run_id"))
                .col(string_len("receiver_type", 16))
                .col(big_integer_null("contact_id"))
                .col(big_integer_null("group_id"))
                .col(big_integer_null("account_id"))
                .col(string_len("receiver_wxid", 100))
                .col(string_len_null("receiver_name", 100))
                .col(uuid("message_uuid"))
                .col(big_integer_null("message_id"))
                .col(string_len("send_status", 24).default("pending"))
                .col(string_len_null("skip_reason", 100))
                .col(string_len_null("lease_owner", 100))
                .col(date_time_null("lease_expires_at"))
                .col(date_time_null("next_attempt_at"))
                .col(date_time_null("send_time"))
                .col(string_len_null("remote_msg_id", 100))
                .col(string_len_null("error_code", 50))
                .col(text_null("error_message"))
                .col(integer("retry_count").default(0))
                .col(integer("remind_count").default(0))
                .col(date_time_null("last_reminded_at"))
                .col(json_null("variables"))
                .foreign_key(&mut fk(
                    "message_receivers",
                    "task_id",
                    "message_tasks",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "message_receivers",
                    "run_id",
                    "message_task_runs",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        );
        create(
            manager,
            receivers,
            "message_receivers",
            &[
                ("uuid", &["message_uuid"], true),
                (
                    "target",
                    &["run_id", "receiver_type", "receiver_wxid"],
                    true,
                ),
                ("claim", &["run_id", "send_status", "id"], false),
                ("lease", &["send_status", "lease_expires_at"], false),
                ("task", &["task_id", "id"], false),
                ("contact", &["contact_id", "send_time"], false),
            ],
        )
        .await?;

        let messages = with_timestamps(
            table("messages")
                .col(uuid("message_uuid"))
                .col(string_len("direction", 8))
                .col(big_integer("instance_id"))
                .col(big_integer("account_id"))
                .col(string_len("chat_type", 16))
                .col(string_len("chat_wxid", 100))
                .col(big_integer_null("contact_id"))
                .col(big_integer_null("group_id"))
                .col(string_len_null("sender_wxid", 100))
                .col(string_len_null("remote_msg_id", 100))
                .col(string_len("message_type", 20))
                .col(text_null("message_content"))
                .col(string_len_null("media_url", 500))
                .col(big_integer_null("media_size"))
                .col(integer_null("media_duration"))
                .col(string_len_null("thumbnail_url", 500))
                .col(string_len_null("file_name", 255))
                .col(json_null("message_metadata"))
                .col(string_len("send_status", 16).default("pending"))
                .col(date_time_null("send_time"))
                .col(date_time_null("receive_time"))
                .col(string_len_null("error_code", 50))
                .col(text_null("error_message"))
                .col(integer("retry_count").default(0))
                .col(big_integer_null("task_id"))
                .col(big_integer_null("parent_message_id"))
                .col(json_null("at_members"))
                .col(boolean("is_scheduled").default(false))
                .col(date_time_null("scheduled_time"))
                .col(big_integer_null("created_by"))
                .foreign_key(&mut fk(
                    "messages",
                    "account_id",
                    "wework_accounts",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        );
        create(
            manager,
            messages,
            "messages",
            &[
                ("uuid", &["message_uuid"], true),
                ("chat", &["account_id", "chat_wxid", "id"], false),
                ("contact", &["contact_id", "id"], false),
                ("due", &["send_status", "scheduled_time"], false),
                ("task", &["task_id"], false),
                ("remote", &["remote_msg_id"], false),
                ("created", &["created_at"], false),
            ],
        )
        .await?;

        // Callbacks and agent events arrive at least once; the unique key makes handling idempotent.
        let events = table("inbound_events")
            .col(big_integer("instance_id"))
            .col(string_len("event_key", 128))
            .col(string_len("event_type", 50))
            .col(text("payload"))
            .col(date_time("received_at"))
            .col(date_time_null("processed_at"))
            .col(text_null("error_message"))
            .foreign_key(&mut fk(
                "inbound_events",
                "instance_id",
                "wework_instances",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            events,
            "inbound_events",
            &[
                ("key", &["instance_id", "event_key"], true),
                ("pending", &["processed_at"], false),
            ],
        )
        .await?;

        let idempotency = table("idempotency_keys")
            .col(string_len("scope", 100))
            .col(string_len("idem_key", 255))
            .col(char_len("request_hash", 64))
            .col(string_len("state", 16))
            .col(integer_null("response_status"))
            .col(text_null("response_body"))
            .col(date_time("created_at"))
            .col(date_time("expires_at"))
            .to_owned();
        create(
            manager,
            idempotency,
            "idempotency_keys",
            &[
                ("key", &["scope", "idem_key"], true),
                ("expires", &["expires_at"], false),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(
            manager,
            &[
                "idempotency_keys",
                "inbound_events",
                "messages",
                "message_receivers",
                "message_task_runs",
                "message_tasks",
                "message_templates",
            ],
        )
        .await
    }
}
