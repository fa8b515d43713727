//! Fewer index entries written per receiver sent.
//!
//! A receiver's status changes twice on its way out (`pending` → `claimed` at the lease,
//! `claimed` → `sent` at the record), and three indexes began with it: the claim lookup
//! `(run_id, send_status, id)`, the lease sweep `(send_status, lease_expires_at)` and the
//! confirmation lookup `(send_status, remote_msg_id)`. Each status change rewrote an entry in
//! all three, for every receiver, though each lookup only ever asks for one status.
//!
//! On SQLite and PostgreSQL they become partial indexes holding only the rows in the status
//! their lookup asks for: ready receivers `(run_id, id) WHERE pending`, leased ones `(run_id,
//! lease_expires_at) WHERE claimed`, unconfirmed ones `(remote_msg_id, account_id) WHERE
//! awaiting_confirmation`, and failed ones `(run_id, id) WHERE failed` for retrying a run's
//! failures. A receiver now enters and leaves the first two once each and the others only
//! when it fails or waits for confirmation; the indexes stay as small as the work in flight
//! however large the table grows. Queries name the status as a constant
//! (`service::dispatch::status_is`): PostgreSQL's generic plan of a prepared statement can use
//! a partial index only when the condition names the index's constant. MySQL/MariaDB have no
//! partial indexes and keep the full ones.
//!
//! `idx_messages_due (send_status, scheduled_time)` goes on every database: no query reads it,
//! and every message written paid for an entry.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The full indexes replaced on SQLite and PostgreSQL: (name, columns).
const FULL: [(&str, &[&str]); 3] = [
    (
        "idx_message_receivers_claim",
        &["run_id", "send_status", "id"],
    ),
    (
        "idx_message_receivers_lease",
        &["send_status", "lease_expires_at"],
    ),
    (
        "idx_message_receivers_remote",
        &["send_status", "remote_msg_id"],
    ),
];

/// The partial indexes that replace them: (name, columns, status the rows are in).
const PARTIAL: [(&str, &str, &str); 4] = [
    ("idx_message_receivers_ready", "run_id, id", "pending"),
    (
        "idx_message_receivers_leased",
        "run_id, lease_expires_at",
        "claimed",
    ),
    (
        "idx_message_receivers_unconfirmed",
        "remote_msg_id, account_id",
        "awaiting_confirmation",
    ),
    ("idx_message_receivers_failed", "run_id, id", "failed"),
];

fn has_partial_indexes(manager: &SchemaManager<'_>) -> bool {
    matches!(
        manager.get_database_backend(),
        DbBackend::Sqlite | DbBackend::Postgres
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_index(manager, "messages", "idx_messages_due").await?;
        if !has_partial_indexes(manager) {
            return Ok(());
        }
        for (name, columns, status) in PARTIAL {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX {name} ON message_receivers ({columns}) \
                     WHERE send_status = '{status}'"
                ))
                .await?;
        }
        for (name, _) in FULL {
            drop_index(manager, "message_receivers", name).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if has_partial_indexes(manager) {
            for (name, columns) in FULL {
                let mut index = Index::create();
                index.name(name).table("message_receivers");
                for column in columns {
                    index.col(*column);
                }
                manager.create_index(index).await?;
            }
            for (name, ..) in PARTIAL {
                drop_index(manager, "message_receivers", name).await?;
            }
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_messages_due")
                    .table("messages")
                    .col("send_status")
                    .col("scheduled_time")
                    .to_owned(),
            )
            .await
    }
}

async fn drop_index(
    manager: &SchemaManager<'_>,
    table: &'static str,
    name: &'static str,
) -> Result<(), DbErr> {
    manager
        .drop_index(Index::drop().name(name).table(table).to_owned())
        .await
}
