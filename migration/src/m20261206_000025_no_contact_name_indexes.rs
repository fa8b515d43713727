//! The B-tree indexes on contacts' `nickname` and `remark` go. Search is by substring, which a
//! B-tree cannot answer (the keyword goes through the search index where the database has one,
//! `m20261205_000023_contact_search`), and nothing sorts or looks contacts up by either column;
//! yet every contact a sync writes paid for both (13 indexes on PostgreSQL).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: [&str; 2] = ["nickname", "remark"];

fn index_name(column: &str) -> String {
    format!("idx_contacts_{column}")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS {
            manager
                .drop_index(
                    Index::drop()
                        .name(index_name(column))
                        .table("contacts")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS {
            manager
                .create_index(
                    Index::create()
                        .name(index_name(column))
                        .table("contacts")
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
