//! Inbound events are claimed with a lease and retried: an apply that failed on a passing fault
//! (the database or an instance away) or a worker that died mid-apply no longer loses the event.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            "inbound_events",
            vec![
                integer("attempts").default(0).to_owned(),
                date_time_null("lease_until"),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(manager, "inbound_events", &["lease_until", "attempts"]).await
    }
}
