//! Portable schema migrations for SQLite, MySQL 8 / MariaDB and PostgreSQL.
//!
//! Every table uses only types that map cleanly on all three backends: big-integer ids, bounded
//! strings, text, booleans, doubles, JSON and `DATETIME` values that always hold UTC.
//! Unique names that must survive soft deletion pair the name with a `deletion_token` (0 while the
//! row is live, the row id once deleted), because MySQL has no partial unique indexes.

pub use sea_orm_migration::prelude::*;

pub use lock::up_locked;

mod builders;
mod lock;
mod m20261126_000001_auth;
mod m20261126_000002_instances;
mod m20261126_000003_contacts;
mod m20261126_000004_messaging;
mod m20261126_000005_observability;
mod m20261126_000006_rbac_seed;
mod m20261126_000007_sync_runs;
mod m20261126_000008_dispatch;
mod m20261126_000009_status_width;
mod m20261126_000010_contacts_by_account;
mod m20261126_000011_task_awaiting;
mod m20261126_000012_account_metrics;
mod m20261202_000013_data_scopes;
mod m20261202_000014_account_status_values;
mod m20261203_000015_contact_opt_out;
mod m20261203_000016_reply_attribution;
mod m20261203_000017_segments_and_variants;
mod m20261203_000018_service_desk;
mod m20261203_000019_desk_conversation_members;
mod m20261203_000020_desk_visitor_groups;
mod m20261204_000021_inbound_event_leases;
mod m20261204_000022_desk_message_origin;
mod m20261205_000023_contact_search;
mod m20261205_000024_no_deleted_at_indexes;
mod m20261206_000025_no_contact_name_indexes;
mod m20261206_000026_mysql_contact_grams;
mod m20261206_000027_receiver_partial_indexes;
mod m20261206_000028_sqlite_short_keywords;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_auth::Migration),
            Box::new(m20261126_000002_instances::Migration),
            Box::new(m20261126_000003_contacts::Migration),
            Box::new(m20261126_000004_messaging::Migration),
            Box::new(m20261126_000005_observability::Migration),
            Box::new(m20261126_000006_rbac_seed::Migration),
            Box::new(m20261126_000007_sync_runs::Migration),
            Box::new(m20261126_000008_dispatch::Migration),
            Box::new(m20261126_000009_status_width::Migration),
            Box::new(m20261126_000010_contacts_by_account::Migration),
            Box::new(m20261126_000011_task_awaiting::Migration),
            Box::new(m20261126_000012_account_metrics::Migration),
            Box::new(m20261202_000013_data_scopes::Migration),
            Box::new(m20261202_000014_account_status_values::Migration),
            Box::new(m20261203_000015_contact_opt_out::Migration),
            Box::new(m20261203_000016_reply_attribution::Migration),
            Box::new(m20261203_000017_segments_and_variants::Migration),
            Box::new(m20261203_000018_service_desk::Migration),
            Box::new(m20261203_000019_desk_conversation_members::Migration),
            Box::new(m20261203_000020_desk_visitor_groups::Migration),
            Box::new(m20261204_000021_inbound_event_leases::Migration),
            Box::new(m20261204_000022_desk_message_origin::Migration),
            Box::new(m20261205_000023_contact_search::Migration),
            Box::new(m20261205_000024_no_deleted_at_indexes::Migration),
            Box::new(m20261206_000025_no_contact_name_indexes::Migration),
            Box::new(m20261206_000026_mysql_contact_grams::Migration),
            Box::new(m20261206_000027_receiver_partial_indexes::Migration),
            Box::new(m20261206_000028_sqlite_short_keywords::Migration),
        ]
    }
}
