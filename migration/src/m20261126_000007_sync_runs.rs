//! Sync runs: a request to pull accounts, contacts and groups from an instance, claimed and
//! executed by a worker, with its progress and outcome.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, fk, table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let runs = table("sync_runs")
            .col(big_integer("instance_id"))
            .col(string_len("status", 16).default("pending"))
            .col(big_integer_null("requested_by"))
            .col(integer("accounts").default(0))
            .col(integer("contacts").default(0))
            .col(integer("groups").default(0))
            .col(integer("members").default(0))
            .col(integer("removed").default(0))
            .col(text_null("error_message"))
            .col(string_len_null("lease_owner", 100))
            .col(date_time_null("lease_expires_at"))
            .col(date_time("created_at"))
            .col(date_time_null("started_at"))
            .col(date_time_null("finished_at"))
            .foreign_key(&mut fk(
                "sync_runs",
                "instance_id",
                "wework_instances",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            runs,
            "sync_runs",
            &[
                ("status", &["status", "id"], false),
                ("instance", &["instance_id", "id"], false),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(manager, &["sync_runs"]).await
    }
}
