//! `awaiting_confirmation` (21 characters) is a status of tasks, runs and outbound messages;
//! their status columns were 16 wide. SQLite does not enforce lengths and cannot alter columns,
//! so only MySQL/MariaDB and PostgreSQL change.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &[(&str, &str)] = &[
    ("message_tasks", "status"),
    ("message_task_runs", "status"),
    ("messages", "send_status"),
];

async fn set_width(manager: &SchemaManager<'_>, width: u32) -> Result<(), DbErr> {
    if manager.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        return Ok(());
    }
    for (table, column) in COLUMNS {
        manager
            .alter_table(
                Table::alter()
                    .table(*table)
                    .modify_column(string_len(*column, width).default("pending"))
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_width(manager, 24).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_width(manager, 16).await
    }
}
