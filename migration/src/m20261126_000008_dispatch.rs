//! Columns the broadcast engine needs beyond the seed design: the delivery channel of a task,
//! receivers waiting for a member's confirmation, run leases for audience expansion, and the
//! remote task id of customer mass messages.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("message_tasks")
                    .add_column(string_len("channel", 24).default("direct").to_owned())
                    .to_owned(),
            )
            .await?;
        for mut column in [
            integer("awaiting_count").default(0).to_owned(),
            string_len_null("lease_owner", 100),
            date_time_null("lease_expires_at"),
            date_time_null("last_activity_at"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("message_task_runs")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_message_task_runs_active")
                    .table("message_task_runs")
                    .col("status")
                    .col("last_activity_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_message_receivers_remote")
                    .table("message_receivers")
                    .col("send_status")
                    .col("remote_msg_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_message_receivers_remote")
                    .table("message_receivers")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_message_task_runs_active")
                    .table("message_task_runs")
                    .to_owned(),
            )
            .await?;
        for column in [
            "awaiting_count",
            "lease_owner",
            "lease_expires_at",
            "last_activity_at",
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("message_task_runs")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("message_tasks")
                    .drop_column("channel")
                    .to_owned(),
            )
            .await
    }
}
