//! Marketing opt-out (退订): a contact who replied an opt-out keyword, or whom a user opted out,
//! carries when, through what and with which message; broadcasts skip them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_contacts_unsubscribed";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            date_time_null("unsubscribed_at"),
            string_len_null("unsubscribe_source", 32),
            string_len_null("unsubscribe_message", 500),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("contacts")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // The opt-out list (`unsubscribed=true`) without a scan of every contact.
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table("contacts")
                    .col("unsubscribed_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table("contacts").to_owned())
            .await?;
        for column in [
            "unsubscribe_message",
            "unsubscribe_source",
            "unsubscribed_at",
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("contacts")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
