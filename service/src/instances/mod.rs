//! WeWork instances: an external agent (`agent`, our HTTP agent protocol) or an official WeCom
//! app (`wecom`), with typed configuration, status from heartbeats, and their accounts.

pub mod accounts;
pub mod configs;
pub mod destination;
pub mod heartbeat;
pub mod manage;

use chrono::{DateTime, Utc};
use entity::{instance_configs, wework_instances};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

use crate::{Context, ServiceError, ServiceResult, clock::to_utc};

pub use entity::states::{InstanceKind, InstanceStatus};

pub const OFFICIAL_WECOM_API: &str = "https://qyapi.weixin.qq.com/cgi-bin";

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigEntryView {
    pub key: String,
    /// The value; secrets are always shown as `******`.
    pub value: Option<serde_json::Value>,
    /// `string`, `number`, `boolean` or `json`.
    pub value_type: String,
    pub secret: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceView {
    pub id: i64,
    pub uuid: uuid::Uuid,
    pub name: String,
    pub description: Option<String>,
    pub kind: InstanceKind,
    pub version: Option<String>,
    pub status: InstanceStatus,
    pub enabled: bool,
    pub api_url: Option<String>,
    /// Where this instance sends events: configure it in the agent or the WeCom admin console.
    pub callback_url: String,
    pub proxy_host: Option<String>,
    pub proxy_port: Option<i32>,
    pub proxy_username: Option<String>,
    pub proxy_password_set: bool,
    pub max_accounts: i32,
    pub current_accounts: i32,
    pub heartbeat_interval: i32,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub heartbeat_latency_ms: Option<i32>,
    pub missed_heartbeats: i32,
    pub error_message: Option<String>,
    pub restart_count: i32,
    pub total_messages: i64,
    pub today_messages: i32,
    pub config: Vec<ConfigEntryView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn callback_url(ctx: &Context, instance: &wework_instances::Model) -> String {
    format!(
        "{}/api/v1/callbacks/{}/{}",
        ctx.settings.server.public_url.trim_end_matches('/'),
        instance.kind,
        instance.instance_uuid
    )
}

pub async fn view<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    m: wework_instances::Model,
) -> ServiceResult<InstanceView> {
    let config = instance_configs::Entity::find()
        .filter(instance_configs::Column::InstanceId.eq(m.id))
        .order_by_asc(instance_configs::Column::ConfigKey)
        .all(conn)
        .await?
        .into_iter()
        .map(configs::entry_view)
        .collect();
    Ok(InstanceView {
        id: m.id,
        uuid: m.instance_uuid,
        callback_url: callback_url(ctx, &m),
        kind: m.kind,
        name: m.name,
        description: m.description,
        version: m.version,
        status: m.status,
        enabled: m.enabled,
        api_url: m.api_url,
        proxy_host: m.proxy_host,
        proxy_port: m.proxy_port,
        proxy_username: m.proxy_username,
        proxy_password_set: m.proxy_password_encrypted.is_some(),
        max_accounts: m.max_accounts,
        current_accounts: m.current_accounts,
        heartbeat_interval: m.heartbeat_interval,
        last_heartbeat: m.last_heartbeat.map(to_utc),
        heartbeat_latency_ms: m.heartbeat_latency_ms,
        missed_heartbeats: m.missed_heartbeats,
        error_message: m.error_message,
        restart_count: m.restart_count,
        total_messages: m.total_messages,
        today_messages: m.today_messages,
        config,
        created_at: to_utc(m.created_at),
        updated_at: to_utc(m.updated_at),
    })
}

pub async fn find_live<C: ConnectionTrait>(
    conn: &C,
    id: i64,
) -> ServiceResult<wework_instances::Model> {
    wework_instances::Entity::find_by_id(id)
        .filter(wework_instances::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("instance"))
}

/// A live instance the actor may see; one out of their reach answers as one that does not exist.
pub async fn find_visible<C: ConnectionTrait>(
    conn: &C,
    actor: &crate::auth::actor::Actor,
    id: i64,
) -> ServiceResult<wework_instances::Model> {
    actor.reach.check_instance(id, "instance")?;
    find_live(conn, id).await
}

/// A live instance, its row locked until `txn` ends (SQLite's write transaction serialises
/// instead): changes to where it connects and to its secrets happen one after the other.
pub async fn lock_live(
    txn: &sea_orm::DatabaseTransaction,
    id: i64,
) -> ServiceResult<wework_instances::Model> {
    let mut query = wework_instances::Entity::find_by_id(id)
        .filter(wework_instances::Column::DeletedAt.is_null());
    if crate::db::row_locks(txn) {
        query = sea_orm::QuerySelect::lock_exclusive(query);
    }
    query
        .one(txn)
        .await?
        .ok_or(ServiceError::NotFound("instance"))
}

pub async fn find_by_uuid<C: ConnectionTrait>(
    conn: &C,
    uuid: uuid::Uuid,
) -> ServiceResult<wework_instances::Model> {
    wework_instances::Entity::find()
        .filter(wework_instances::Column::InstanceUuid.eq(uuid))
        .filter(wework_instances::Column::DeletedAt.is_null())
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("instance"))
}
