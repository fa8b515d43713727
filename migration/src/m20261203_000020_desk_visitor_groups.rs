//! Groups of visitors (粉丝分组 in seed 003): named groups an agent files a visitor under, to find
//! and serve them as such.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, table, with_timestamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(
            manager,
            with_timestamps(
                table("desk_visitor_groups")
                    .col(string_len("name", 50))
                    .col(string_len_null("description", 200))
                    .to_owned(),
            ),
            "desk_visitor_groups",
            &[("name", &["name"], true)],
        )
        .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("desk_visitors")
                    .add_column(big_integer_null("group_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_desk_visitors_group")
                    .table("desk_visitors")
                    .col("group_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_desk_visitors_group")
                    .table("desk_visitors")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("desk_visitors")
                    .drop_column("group_id")
                    .to_owned(),
            )
            .await?;
        drop_all(manager, &["desk_visitor_groups"]).await
    }
}
