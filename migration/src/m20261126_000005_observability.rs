//! System, access, error and audit logs; alert rules and alert records.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, table, with_timestamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let system_logs = table("system_logs")
            .col(uuid("log_uuid"))
            .col(string_len("level", 10))
            .col(string_len("service", 50))
            .col(string_len_null("module", 50))
            .col(string_len_null("action", 100))
            .col(text("message"))
            .col(json_null("context"))
            .col(string_len_null("trace_id", 64))
            .col(string_len_null("span_id", 64))
            .col(big_integer_null("user_id"))
            .col(big_integer_null("instance_id"))
            .col(string_len_null("ip_address", 45))
            .col(date_time("created_at"))
            .to_owned();
        create(
            manager,
            system_logs,
            "system_logs",
            &[
                ("uuid", &["log_uuid"], true),
                ("level", &["level", "id"], false),
                ("trace", &["trace_id"], false),
                ("instance", &["instance_id", "id"], false),
                ("created", &["created_at"], false),
            ],
        )
        .await?;

        let access_logs = table("access_logs")
            .col(string_len("request_id", 64))
            .col(big_integer_null("user_id"))
            .col(string_len("method", 10))
            .col(string_len("path", 1000))
            .col(string_len_null("route", 200))
            .col(integer("status"))
            .col(integer("duration_ms"))
            .col(string_len("ip_address", 45))
            .col(string_len_null("user_agent", 512))
            .col(string_len_null("referer", 1000))
            .col(date_time("created_at"))
            .to_owned();
        create(
            manager,
            access_logs,
            "access_logs",
            &[
                ("user", &["user_id", "id"], false),
                ("created", &["created_at"], false),
            ],
        )
        .await?;

        let error_logs = table("error_logs")
            .col(string_len_null("request_id", 64))
            .col(string_len("service", 50))
            .col(string_len_null("path", 1000))
            .col(text("message"))
            .col(text_null("detail"))
            .col(string_len_null("ip_address", 45))
            .col(string_len_null("user_agent", 512))
            .col(date_time("created_at"))
            .to_owned();
        create(
            manager,
            error_logs,
            "error_logs",
            &[("created", &["created_at"], false)],
        )
        .await?;

        let audit_logs = table("audit_logs")
            .col(uuid("audit_uuid"))
            .col(big_integer_null("user_id"))
            .col(string_len_null("username", 50))
            .col(string_len("operation", 100))
            .col(string_len("resource_type", 50))
            .col(string_len_null("resource_id", 100))
            .col(string_len_null("resource_name", 200))
            .col(string_len("operation_type", 20))
            .col(json_null("old_values"))
            .col(json_null("new_values"))
            .col(string_len("result", 20))
            .col(text_null("error_message"))
            .col(string_len("ip_address", 45))
            .col(string_len_null("user_agent", 512))
            .col(string_len_null("session_id", 64))
            .col(string_len_null("request_id", 64))
            .col(json_null("extra_info"))
            .col(date_time("created_at"))
            .to_owned();
        create(
            manager,
            audit_logs,
            "audit_logs",
            &[
                ("uuid", &["audit_uuid"], true),
                ("user", &["user_id", "id"], false),
                ("resource", &["resource_type", "resource_id"], false),
                ("operation", &["operation"], false),
                ("created", &["created_at"], false),
            ],
        )
        .await?;

        let alert_rules = with_timestamps(
            table("alert_rules")
                .col(uuid("rule_uuid"))
                .col(string_len("name", 100))
                .col(text_null("description"))
                .col(string_len("rule_type", 30))
                .col(string_len_null("metric_name", 50))
                .col(string_len_null("comparator", 8))
                .col(double_null("threshold"))
                .col(integer("window_seconds").default(300))
                .col(big_integer_null("instance_id"))
                .col(string_len("level", 20).default("WARNING"))
                .col(boolean("enabled").default(true))
                .col(json_null("channels"))
                .col(integer("cooldown_seconds").default(300))
                .col(date_time_null("last_evaluated_at"))
                .col(big_integer("created_by"))
                .col(big_integer("deletion_token").default(0))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            alert_rules,
            "alert_rules",
            &[
                ("uuid", &["rule_uuid"], true),
                ("name", &["name", "deletion_token"], true),
            ],
        )
        .await?;

        // `resolution_token` is 0 while the alert is open, its id once resolved: one open alert
        // per dedupe key, however many evaluators race.
        let alert_records = with_timestamps(
            table("alert_records")
                .col(uuid("alert_uuid"))
                .col(big_integer_null("rule_id"))
                .col(string_len("rule_name", 100))
                .col(string_len("dedupe_key", 200))
                .col(big_integer("resolution_token").default(0))
                .col(string_len("alert_level", 20))
                .col(string_len("alert_title", 200))
                .col(text("alert_message"))
                .col(string_len_null("metric_name", 50))
                .col(double_null("metric_value"))
                .col(double_null("threshold_value"))
                .col(big_integer_null("instance_id"))
                .col(string_len("source_type", 50))
                .col(string_len_null("source_id", 100))
                .col(string_len("status", 20).default("ACTIVE"))
                .col(big_integer_null("acknowledged_by"))
                .col(date_time_null("acknowledged_at"))
                .col(text_null("acknowledged_comment"))
                .col(big_integer_null("resolved_by"))
                .col(date_time_null("resolved_at"))
                .col(text_null("resolved_comment"))
                .col(boolean("notification_sent").default(false))
                .col(integer("notification_attempts").default(0))
                .col(date_time_null("last_notified_at"))
                .to_owned(),
        );
        create(
            manager,
            alert_records,
            "alert_records",
            &[
                ("uuid", &["alert_uuid"], true),
                ("open", &["dedupe_key", "resolution_token"], true),
                ("status", &["status", "id"], false),
                ("instance", &["instance_id", "id"], false),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(
            manager,
            &[
                "alert_records",
                "alert_rules",
                "audit_logs",
                "error_logs",
                "access_logs",
                "system_logs",
            ],
        )
        .await
    }
}
