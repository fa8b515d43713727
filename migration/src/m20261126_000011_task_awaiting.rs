//! A task's own count of receivers waiting for a member's confirmation. It moves in the same
//! UPDATE as the task's other counters, so one row read gives counts that add up; summing the
//! runs' counts in a second query could see a confirmation commit in between.

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
                    .add_column(integer("awaiting_count").default(0).to_owned())
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE message_tasks SET awaiting_count = COALESCE((SELECT SUM(r.awaiting_count) \
                 FROM message_task_runs r WHERE r.task_id = message_tasks.id), 0)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("message_tasks")
                    .drop_column("awaiting_count")
                    .to_owned(),
            )
            .await
    }
}
