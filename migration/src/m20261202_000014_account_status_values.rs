//! Account statuses became an enum (`online`, `offline`, `banned`); earlier versions stored
//! whatever an instance reported (cut to 16 characters). Such values read as `offline` now, so
//! they are rewritten to it: every stored status must be one the service can read.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::update()
                    .table("wework_accounts")
                    .value("status", "offline")
                    .and_where(Expr::col("status").is_not_in(["online", "offline", "banned"]))
                    .to_owned(),
            )
            .await
    }

    /// Nothing to undo: the rewritten values were never meaningful to the service.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
