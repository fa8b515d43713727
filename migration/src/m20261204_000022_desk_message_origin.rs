//! 微信客服 messages a receptionist wrote in the WeCom client are mirrored into the desk's
//! conversation (who wrote it), and a recalled message is marked so, not deleted.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{add_columns, drop_columns};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            "desk_messages",
            vec![
                string_len_null("servicer_userid", 64),
                date_time_null("recalled_at"),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(
            manager,
            "desk_messages",
            &["recalled_at", "servicer_userid"],
        )
        .await
    }
}
