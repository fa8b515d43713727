//! Inbound callbacks: WeCom (signed and AES-encrypted XML) and agent events (Standard Webhooks
//! signed JSON). Verified before anything is parsed, stored once per event (the same event may
//! arrive again), answered at once, and applied later by the worker (`process`).

pub mod process;
pub mod wecom_crypto;

use entity::{inbound_events, wework_instances};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use sha2::{Digest, Sha256};

use self::wecom_crypto::{CryptoError, WecomCrypto, xml_field};
use crate::{
    Context, ServiceError, ServiceResult,
    drivers::signing,
    instances::{self, InstanceKind, configs},
};

/// Callback timestamps further than this from now are refused (replays).
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

fn refuse(instance_id: i64, why: impl std::fmt::Display) -> ServiceError {
    tracing::warn!(instance.id = instance_id, reason = %why, "callback refused");
    ServiceError::Forbidden(format!("callback refused: {why}"))
}

async fn instance_of(
    ctx: &Context,
    uuid: uuid::Uuid,
    kind: InstanceKind,
) -> ServiceResult<wework_instances::Model> {
    let instance = instances::find_by_uuid(&ctx.db, uuid).await?;
    if instance.kind != kind {
        return Err(ServiceError::NotFound("instance"));
    }
    Ok(instance)
}

async fn wecom_crypto(
    ctx: &Context,
    instance: &wework_instances::Model,
) -> ServiceResult<WecomCrypto> {
    let config = configs::load_plain(ctx, &ctx.db, instance).await?;
    let (Some(token), Some(key), Some(corp)) = (
        config.get("callback_token"),
        config.get("callback_aes_key"),
        config.get("corp_id"),
    ) else {
        return Err(refuse(
            instance.id,
            "the instance has no callback_token / callback_aes_key configured",
        ));
    };
    WecomCrypto::new(token, key, corp).map_err(|e| refuse(instance.id, e))
}

fn check_skew(ctx: &Context, instance_id: i64, timestamp: &str) -> ServiceResult<()> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| refuse(instance_id, "timestamp is not a number"))?;
    if (ctx.clock.now().timestamp() - ts).abs() > MAX_SKEW_SECS {
        return Err(refuse(instance_id, "timestamp is stale"));
    }
    Ok(())
}

/// The query of a WeCom callback URL.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WecomParams {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    /// Only on URL verification (GET).
    pub echostr: Option<String>,
}

/// URL verification: returns the decrypted `echostr`, to be answered as bare text.
pub async fn wecom_verify(
    ctx: &Context,
    uuid: uuid::Uuid,
    params: &WecomParams,
) -> ServiceResult<String> {
    let instance = instance_of(ctx, uuid, InstanceKind::Wecom).await?;
    check_skew(ctx, instance.id, &params.timestamp)?;
    let echostr = params
        .echostr
        .as_deref()
        .ok_or_else(|| ServiceError::invalid("echostr", "is required"))?;
    let crypto = wecom_crypto(ctx, &instance).await?;
    crypto
        .verify_url(
            &params.msg_signature,
            &params.timestamp,
            &params.nonce,
            echostr,
        )
        .map_err(|e| refuse(instance.id, e))
}

/// An event: verified, decrypted and stored for the worker.
pub async fn wecom_event(
    ctx: &Context,
    uuid: uuid::Uuid,
    params: &WecomParams,
    body: &str,
) -> ServiceResult<Stored> {
    let instance = instance_of(ctx, uuid, InstanceKind::Wecom).await?;
    check_skew(ctx, instance.id, &params.timestamp)?;
    let crypto = wecom_crypto(ctx, &instance).await?;
    let plain = crypto
        .decrypt_message(
            &params.msg_signature,
            &params.timestamp,
            &params.nonce,
            body,
        )
        .map_err(|e| match e {
            CryptoError::Parse => {
                ServiceError::invalid("body", "is not a WeCom callback (no <Encrypt>)")
            }
            other => refuse(instance.id, other),
        })?;
    // The same event redelivered has the same content: its hash (or MsgId) is the key.
    let key = xml_field(&plain, "MsgId").unwrap_or_else(|| {
        Sha256::digest(plain.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    });
    let event_type = match (
        xml_field(&plain, "MsgType"),
        xml_field(&plain, "Event"),
        xml_field(&plain, "ChangeType"),
    ) {
        (Some(t), Some(e), Some(c)) if t == "event" => format!("{e}.{c}"),
        (Some(t), Some(e), None) if t == "event" => e,
        (Some(t), _, _) => format!("message.{t}"),
        _ => "unknown".to_owned(),
    };
    store(
        ctx,
        instance.id,
        &format!("wecom:{key}"),
        &event_type,
        &plain,
    )
    .await
}

/// An agent event, signed with the instance's `agent_secret`.
pub async fn agent_event(
    ctx: &Context,
    uuid: uuid::Uuid,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
) -> ServiceResult<Stored> {
    let instance = instance_of(ctx, uuid, InstanceKind::Agent).await?;
    let config = configs::load_plain(ctx, &ctx.db, &instance).await?;
    let secret = config
        .get("agent_secret")
        .ok_or_else(|| refuse(instance.id, "no agent_secret configured"))?;
    signing::verify(
        secret,
        id,
        timestamp,
        signature,
        body,
        ctx.clock.now().timestamp(),
    )
    .map_err(|e| refuse(instance.id, e))?;
    let event: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ServiceError::invalid("body", format!("is not JSON: {e}")))?;
    let event_type = event["type"]
        .as_str()
        .filter(|t| !t.is_empty() && t.len() <= 50)
        .ok_or_else(|| ServiceError::invalid("type", "is required (at most 50 characters)"))?;
    if id.len() > 100 {
        return Err(ServiceError::invalid(
            "webhook-id",
            "must be at most 100 characters",
        ));
    }
    let payload = String::from_utf8_lossy(body).into_owned();
    store(
        ctx,
        instance.id,
        &format!("agent:{id}"),
        event_type,
        &payload,
    )
    .await
}

async fn exists(ctx: &Context, instance_id: i64, key: &str) -> ServiceResult<bool> {
    Ok(inbound_events::Entity::find()
        .filter(inbound_events::Column::InstanceId.eq(instance_id))
        .filter(inbound_events::Column::EventKey.eq(key))
        .count(&ctx.db)
        .await?
        > 0)
}

/// Stores an event once per (instance, key); the worker applies it.
pub(crate) async fn store(
    ctx: &Context,
    instance_id: i64,
    key: &str,
    event_type: &str,
    payload: &str,
) -> ServiceResult<Stored> {
    if exists(ctx, instance_id, key).await? {
        return Ok(Stored::Duplicate);
    }
    let row = inbound_events::ActiveModel {
        instance_id: Set(instance_id),
        event_key: Set(key.chars().take(128).collect()),
        event_type: Set(event_type.chars().take(50).collect()),
        payload: Set(payload.to_owned()),
        received_at: Set(ctx.clock.now_db()),
        attempts: Set(0),
        ..Default::default()
    };
    match inbound_events::Entity::insert(row)
        .exec_without_returning(&ctx.db)
        .await
    {
        Ok(_) => Ok(Stored::New),
        // Two deliveries racing: the unique key let one in.
        Err(_) if exists(ctx, instance_id, key).await? => Ok(Stored::Duplicate),
        Err(e) => Err(e.into()),
    }
}
