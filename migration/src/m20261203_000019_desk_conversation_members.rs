//! Colleagues serving one visitor together (协同接待, the seed's service group chat): the agents a
//! conversation's agent (or a supervisor) brings in, each with their own unread count. The
//! conversation's messages are the group's shared history.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, fk, table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create(
            manager,
            table("desk_conversation_members")
                .col(big_integer("conversation_id"))
                .col(big_integer("agent_id"))
                .col(big_integer_null("invited_by"))
                .col(integer("unread").default(0))
                .col(date_time("joined_at"))
                .foreign_key(&mut fk(
                    "desk_conversation_members",
                    "conversation_id",
                    "desk_conversations",
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "desk_conversation_members",
                    "agent_id",
                    "desk_agents",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
            "desk_conversation_members",
            &[
                ("pair", &["conversation_id", "agent_id"], true),
                ("agent", &["agent_id"], false),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(manager, &["desk_conversation_members"]).await
    }
}
