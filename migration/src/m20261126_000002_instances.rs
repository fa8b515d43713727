//! WeWork instances (agents or official WeCom apps), their typed config, metrics and accounts.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, fk, table, with_timestamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let instances = with_timestamps(
            table("wework_instances")
                .col(uuid("instance_uuid"))
                .col(string_len("name", 100))
                .col(text_null("description"))
                .col(string_len("kind", 16))
                .col(string_len_null("version", 20))
                .col(string_len("status", 16).default("offline"))
                .col(boolean("enabled").default(true))
                .col(string_len_null("api_url", 500))
                .col(string_len_null("webhook_url", 500))
                .col(string_len_null("proxy_host", 100))
                .col(integer_null("proxy_port"))
                .col(string_len_null("proxy_username", 100))
                .col(text_null("proxy_password_encrypted"))
                .col(integer("max_accounts").default(10))
                .col(integer("current_accounts").default(0))
                .col(integer("heartbeat_interval").default(30))
                .col(date_time_null("last_heartbeat"))
                .col(integer_null("heartbeat_latency_ms"))
                .col(integer("missed_heartbeats").default(0))
                .col(date_time_null("next_heartbeat_at"))
                .col(text_null("error_message"))
                .col(integer("restart_count").default(0))
                .col(date_time_null("last_restart_time"))
                .col(big_integer("total_messages").default(0))
                .col(integer("today_messages").default(0))
                .col(big_integer("created_by"))
                .col(big_integer("deletion_token").default(0))
                .foreign_key(&mut fk(
                    "wework_instances",
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
            instances,
            "wework_instances",
            &[
                ("uuid", &["instance_uuid"], true),
                ("name", &["name", "deletion_token"], true),
                ("status", &["status"], false),
                ("heartbeat", &["enabled", "next_heartbeat_at"], false),
                ("deleted", &["deleted_at"], false),
            ],
        )
        .await?;

        let configs = with_timestamps(
            table("instance_configs")
                .col(big_integer("instance_id"))
                .col(string_len("config_key", 100))
                .col(text_null("config_value"))
                .col(string_len("config_type", 20).default("string"))
                .col(boolean("is_encrypted").default(false))
                .col(boolean("is_system").default(false))
                .col(string_len_null("description", 500))
                .foreign_key(&mut fk(
                    "instance_configs",
                    "instance_id",
                    "wework_instances",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        );
        create(
            manager,
            configs,
            "instance_configs",
            &[("key", &["instance_id", "config_key"], true)],
        )
        .await?;

        // `bucket_seconds` is 0 for raw samples and the rollup width for downsampled rows.
        let monitors = table("instance_monitors")
            .col(big_integer("instance_id"))
            .col(string_len("metric_name", 50))
            .col(double("metric_value"))
            .col(string_len_null("metric_unit", 20))
            .col(integer("bucket_seconds").default(0))
            .col(integer("sample_count").default(1))
            .col(date_time("collected_at"))
            .foreign_key(&mut fk(
                "instance_monitors",
                "instance_id",
                "wework_instances",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            monitors,
            "instance_monitors",
            &[
                (
                    "series",
                    &[
                        "instance_id",
                        "metric_name",
                        "bucket_seconds",
                        "collected_at",
                    ],
                    false,
                ),
                ("collected", &["collected_at"], false),
            ],
        )
        .await?;

        let accounts = with_timestamps(
            table("wework_accounts")
                .col(big_integer("instance_id"))
                .col(string_len("wxid", 100))
                .col(string_len_null("nickname", 100))
                .col(string_len_null("avatar_url", 500))
                .col(string_len_null("phone", 20))
                .col(string_len_null("email", 100))
                .col(small_integer_null("gender"))
                .col(string_len_null("region", 100))
                .col(text_null("signature"))
                .col(string_len_null("qr_code_url", 500))
                .col(string_len("status", 16).default("offline"))
                .col(boolean("is_logged_in").default(false))
                .col(string_len_null("login_method", 20))
                .col(date_time_null("last_login_time"))
                .col(date_time_null("last_sync_time"))
                .col(string_len_null("sync_cursor", 255))
                .col(integer("contact_count").default(0))
                .col(integer("group_count").default(0))
                .col(big_integer("total_messages").default(0))
                .col(integer("today_messages").default(0))
                .col(integer_null("rate_limit_per_minute"))
                .col(text_null("remark"))
                .col(json_null("tags"))
                .foreign_key(&mut fk(
                    "wework_accounts",
                    "instance_id",
                    "wework_instances",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            accounts,
            "wework_accounts",
            &[
                ("wxid", &["instance_id", "wxid"], true),
                ("status", &["status"], false),
                ("deleted", &["deleted_at"], false),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(
            manager,
            &[
                "wework_accounts",
                "instance_monitors",
                "instance_configs",
                "wework_instances",
            ],
        )
        .await
    }
}
