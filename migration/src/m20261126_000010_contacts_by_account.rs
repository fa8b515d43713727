//! Contacts by (account, id): audience expansion walks each sending account's contacts in id
//! order to interleave accounts in the receiver order (so every chunk spans accounts and their
//! rate limits work in parallel), and account views list contacts the same way.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_contacts_account";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("contacts")
                    .col("account_id")
                    .col("id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table("contacts").to_owned())
            .await
    }
}
