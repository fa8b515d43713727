//! Send counters per account in SQL: `instance_monitors.account_id` is set on the
//! `dispatch_sends_*` rows (one per instance, account and batch) and empty on instance-wide
//! metrics, so the embedded default answers per-account series without InfluxDB.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_instance_monitors_account";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("instance_monitors")
                    .add_column(big_integer_null("account_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("instance_monitors")
                    .col("account_id")
                    .col("metric_name")
                    .col("collected_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table("instance_monitors")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("instance_monitors")
                    .drop_column("account_id")
                    .to_owned(),
            )
            .await
    }
}
