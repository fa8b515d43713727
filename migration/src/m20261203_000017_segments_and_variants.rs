//! Audience segments (saved contact filters that tasks and the contact list use by id) and A/B
//! content variants on tasks (each receiver records the variant it got; a run with a test phase
//! records the winner it chose). Also grants the new `segments:*` permissions to the built-in
//! roles that already manage or read contacts.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{
    add_permissions, create, fk, grant_to_roles, remove_permissions, table, with_timestamps,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const PERMISSIONS: &[(&str, &str)] = &[
    ("segments:read", "View audience segments"),
    ("segments:create", "Create audience segments"),
    ("segments:update", "Edit audience segments"),
    ("segments:delete", "Delete audience segments"),
];

/// Which built-in roles get which of the new permissions.
const GRANTS: &[(&str, &[&str])] = &[
    (
        "super_admin",
        &[
            "segments:read",
            "segments:create",
            "segments:update",
            "segments:delete",
        ],
    ),
    (
        "admin",
        &[
            "segments:read",
            "segments:create",
            "segments:update",
            "segments:delete",
        ],
    ),
    (
        "operator",
        &[
            "segments:read",
            "segments:create",
            "segments:update",
            "segments:delete",
        ],
    ),
    ("ops", &["segments:read"]),
    ("viewer", &["segments:read"]),
];

/// `(table, column)` pairs added one per statement (SQLite alters one thing at a time).
fn added_columns() -> Vec<(&'static str, ColumnDef)> {
    vec![
        ("message_tasks", big_integer_null("segment_id")),
        ("message_tasks", json_null("variants")),
        ("message_tasks", json_null("variant_test")),
        ("message_receivers", string_len_null("variant", 8)),
        ("message_task_runs", string_len_null("variant_winner", 8)),
        ("message_task_runs", date_time_null("variant_decided_at")),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let segments = with_timestamps(
            table("segments")
                .col(string_len("name", 100))
                .col(string_len_null("description", 500))
                .col(json("filter"))
                .col(big_integer("created_by"))
                .foreign_key(&mut fk(
                    "segments",
                    "created_by",
                    "users",
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        );
        create(manager, segments, "segments", &[("name", &["name"], true)]).await?;
        for (table, column) in added_columns() {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Deleting a segment checks the tasks that still use it.
        manager
            .create_index(
                Index::create()
                    .name("idx_message_tasks_segment")
                    .table("message_tasks")
                    .col("segment_id")
                    .to_owned(),
            )
            .await?;
        grant(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        remove_permissions(manager, PERMISSIONS).await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_message_tasks_segment")
                    .table("message_tasks")
                    .to_owned(),
            )
            .await?;
        for (table, column) in added_columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(column.get_column_name())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table("segments").to_owned())
            .await
    }
}

async fn grant(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    add_permissions(manager, "contacts", 1000, PERMISSIONS).await?;
    grant_to_roles(manager, GRANTS).await
}
