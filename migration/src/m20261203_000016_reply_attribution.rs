//! Reply attribution: an inbound message from a receiver within the window after a broadcast
//! reached them counts on that receiver (first reply time, how many replies, an opt-out).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            date_time_null("replied_at"),
            integer("reply_count").default(0).to_owned(),
            date_time_null("opted_out_at"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("message_receivers")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["opted_out_at", "reply_count", "replied_at"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("message_receivers")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
