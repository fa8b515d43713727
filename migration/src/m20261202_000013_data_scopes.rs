//! Data scopes (数据权限): a role says how far its holder sees — `all` records, the instances
//! `assigned` to them, or their `own` records — and `user_instances` holds those assignments.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, fk, table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("roles")
                    .add_column(string_len("data_scope", 16).default("all"))
                    .to_owned(),
            )
            .await?;
        let user_instances = table("user_instances")
            .col(big_integer("user_id"))
            .col(big_integer("instance_id"))
            .col(big_integer_null("assigned_by"))
            .col(date_time("created_at"))
            .foreign_key(&mut fk(
                "user_instances",
                "user_id",
                "users",
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                "user_instances",
                "instance_id",
                "wework_instances",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            user_instances,
            "user_instances",
            &[
                ("user_instance", &["user_id", "instance_id"], true),
                ("instance", &["instance_id"], false),
            ],
        )
        .await?;
        // Tasks aimed at one account now record its instance, so a scoped user sees the tasks
        // of their instances; older rows get it from their account.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE message_tasks SET instance_id = (SELECT a.instance_id FROM wework_accounts a \
                 WHERE a.id = message_tasks.account_id) \
                 WHERE instance_id IS NULL AND account_id IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::builders::drop_all(manager, &["user_instances"]).await?;
        manager
            .alter_table(
                Table::alter()
                    .table("roles")
                    .drop_column("data_scope")
                    .to_owned(),
            )
            .await
    }
}
