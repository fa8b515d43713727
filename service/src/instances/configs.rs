//! Typed per-instance configuration. Secret values are sealed with AES-256-GCM before they are
//! stored and never leave the service again except to the drivers that need them.

use crate::rbac::perm;
use std::collections::BTreeMap;

use entity::{instance_configs, wework_instances};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use serde::Deserialize;
use serde_json::Value;

use super::{ConfigEntryView, InstanceKind, find_live, find_visible};
use crate::{
    Context, FieldError, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
};

/// A key the platform understands.
pub struct KnownKey {
    pub key: &'static str,
    pub kind: InstanceKind,
    pub value_type: &'static str,
    pub secret: bool,
    pub required: bool,
    pub description: &'static str,
}

pub const KNOWN: &[KnownKey] = &[
    KnownKey {
        key: "agent_secret",
        kind: InstanceKind::Agent,
        value_type: "string",
        secret: true,
        required: true,
        description: "Shared secret signing agent-protocol requests and events (HMAC-SHA256)",
    },
    KnownKey {
        key: "corp_id",
        kind: InstanceKind::Wecom,
        value_type: "string",
        secret: false,
        required: true,
        description: "企业ID (corp id)",
    },
    KnownKey {
        key: "corp_secret",
        kind: InstanceKind::Wecom,
        value_type: "string",
        secret: true,
        required: true,
        description: "Secret of the self-built app or of customer contact",
    },
    KnownKey {
        key: "agent_id",
        kind: InstanceKind::Wecom,
        value_type: "number",
        secret: false,
        required: false,
        description: "AgentId of the app, needed for app messages",
    },
    KnownKey {
        key: "callback_token",
        kind: InstanceKind::Wecom,
        value_type: "string",
        secret: true,
        required: false,
        description: "Token of the callback (接收消息) configuration",
    },
    KnownKey {
        key: "callback_aes_key",
        kind: InstanceKind::Wecom,
        value_type: "string",
        secret: true,
        required: false,
        description: "EncodingAESKey of the callback configuration (43 characters)",
    },
    KnownKey {
        key: "robot_key",
        kind: InstanceKind::Wecom,
        value_type: "string",
        secret: true,
        required: false,
        description: "Key of a group robot (群机器人) webhook",
    },
    KnownKey {
        key: "kf_secret",
        kind: InstanceKind::Wecom,
        value_type: "string",
        secret: true,
        required: false,
        description: "Secret of 微信客服 (WeChat customer service): its accounts become service-desk channels",
    },
];

pub fn known(key: &str) -> Option<&'static KnownKey> {
    KNOWN.iter().find(|k| k.key == key)
}

const MASK: &str = "******";

pub fn entry_view(m: instance_configs::Model) -> ConfigEntryView {
    let value = if m.is_encrypted {
        Some(Value::String(MASK.to_owned()))
    } else {
        m.config_value
            .as_deref()
            .map(|raw| decode(&m.config_type, raw))
    };
    ConfigEntryView {
        key: m.config_key,
        value,
        value_type: m.config_type,
        secret: m.is_encrypted,
        description: m.description,
    }
}

fn decode(value_type: &str, raw: &str) -> Value {
    match value_type {
        "number" | "boolean" | "json" => {
            serde_json::from_str(raw).unwrap_or(Value::String(raw.to_owned()))
        }
        _ => Value::String(raw.to_owned()),
    }
}

/// One value to store, already checked.
#[derive(Debug, Clone)]
pub struct ConfigValue {
    pub value_type: &'static str,
    pub text: String,
    pub secret: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigPut {
    /// A string, number, boolean or any JSON value.
    pub value: Value,
    /// `string`, `number`, `boolean` or `json`; inferred from the value when omitted. Fixed for
    /// known keys.
    pub value_type: Option<String>,
    /// Seal the value and never show it again. Fixed for known keys.
    pub secret: Option<bool>,
    pub description: Option<String>,
}

/// Validates a key and value for an instance of `kind`; `field` names it in errors.
pub fn check(
    kind: InstanceKind,
    key: &str,
    input: &ConfigPut,
    field: &str,
) -> Result<ConfigValue, FieldError> {
    let valid_key = (1..=100).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if !valid_key {
        return Err(FieldError::new(
            field,
            "keys are 1 to 100 of a-z, 0-9, '_' and '.'",
        ));
    }
    let spec = known(key);
    if let Some(spec) = spec.filter(|s| s.kind != kind) {
        return Err(FieldError::new(
            field,
            format!("`{}` belongs to {} instances", spec.key, spec.kind.as_str()),
        ));
    }
    let value_type = match (spec, input.value_type.as_deref()) {
        (Some(spec), _) => spec.value_type,
        (None, Some("string")) => "string",
        (None, Some("number")) => "number",
        (None, Some("boolean")) => "boolean",
        (None, Some("json")) => "json",
        (None, Some(_)) => {
            return Err(FieldError::new(
                format!("{field}.value_type"),
                "must be string, number, boolean or json",
            ));
        }
        (None, None) => match &input.value {
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "boolean",
            _ => "json",
        },
    };
    let text = match (value_type, &input.value) {
        ("string", Value::String(s)) if !s.is_empty() && s.len() <= 4096 => s.clone(),
        ("string", _) => {
            return Err(FieldError::new(
                format!("{field}.value"),
                "must be a non-empty string of at most 4096 bytes",
            ));
        }
        ("number", Value::Number(n)) => n.to_string(),
        ("number", _) => {
            return Err(FieldError::new(
                format!("{field}.value"),
                "must be a number",
            ));
        }
        ("boolean", Value::Bool(b)) => b.to_string(),
        ("boolean", _) => {
            return Err(FieldError::new(
                format!("{field}.value"),
                "must be true or false",
            ));
        }
        (_, v) => {
            let text = v.to_string();
            if text.len() > 65_536 {
                return Err(FieldError::new(
                    format!("{field}.value"),
                    "must be at most 64 KiB of JSON",
                ));
            }
            text
        }
    };
    if key == "callback_aes_key" && text.len() != 43 {
        return Err(FieldError::new(
            format!("{field}.value"),
            "an EncodingAESKey is 43 characters",
        ));
    }
    let secret = spec.map_or(input.secret.unwrap_or(false), |s| s.secret);
    let description = input
        .description
        .clone()
        .or_else(|| spec.map(|s| s.description.to_owned()));
    Ok(ConfigValue {
        value_type,
        text,
        secret,
        description,
    })
}

/// Inserts or replaces one entry inside `txn`.
pub async fn upsert(
    ctx: &Context,
    txn: &DatabaseTransaction,
    instance_id: i64,
    key: &str,
    value: &ConfigValue,
) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let stored = if value.secret {
        ctx.sealer.seal(&value.text)
    } else {
        value.text.clone()
    };
    let existing = instance_configs::Entity::find()
        .filter(instance_configs::Column::InstanceId.eq(instance_id))
        .filter(instance_configs::Column::ConfigKey.eq(key))
        .one(txn)
        .await?;
    let mut row = instance_configs::ActiveModel {
        instance_id: Set(instance_id),
        config_key: Set(key.to_owned()),
        config_value: Set(Some(stored)),
        config_type: Set(value.value_type.to_owned()),
        is_encrypted: Set(value.secret),
        is_system: Set(known(key).is_some()),
        description: Set(value.description.clone()),
        updated_at: Set(now),
        ..Default::default()
    };
    match existing {
        Some(e) => {
            row.id = Set(e.id);
            instance_configs::Entity::update(row).exec(txn).await?;
        }
        None => {
            row.created_at = Set(now);
            instance_configs::Entity::insert(row)
                .exec_without_returning(txn)
                .await?;
        }
    }
    Ok(())
}

/// Required keys of `kind` missing from `present`, as field errors.
pub fn missing_required<'a>(
    kind: InstanceKind,
    present: impl Iterator<Item = &'a str> + Clone,
) -> Vec<FieldError> {
    KNOWN
        .iter()
        .filter(|k| k.kind == kind && k.required && !present.clone().any(|p| p == k.key))
        .map(|k| {
            FieldError::new(
                format!("config.{}", k.key),
                "is required for this kind of instance",
            )
        })
        .collect()
}

pub async fn list(
    ctx: &Context,
    actor: &Actor,
    instance_id: i64,
) -> ServiceResult<Vec<ConfigEntryView>> {
    actor.require(perm::InstancesRead)?;
    find_visible(&ctx.db, actor, instance_id).await?;
    Ok(
        super::view(ctx, &ctx.db, find_live(&ctx.db, instance_id).await?)
            .await?
            .config,
    )
}

pub async fn put(
    ctx: &Context,
    actor: &Actor,
    instance_id: i64,
    key: &str,
    input: ConfigPut,
) -> ServiceResult<ConfigEntryView> {
    let entry = AuditEntry::new("instance.config.put", OperationType::Update, "instance")
        .target(instance_id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::InstancesUpdate)?;
        let instance = find_visible(&ctx.db, actor, instance_id).await?;
        let kind = instance.kind;
        let value = check(kind, key, &input, key).map_err(|e| ServiceError::Validation(vec![e]))?;
        let txn = crate::db::begin(&ctx.db).await?;
        // Waits for a move of the instance in flight, so it checks the secrets stored after this.
        super::lock_live(&txn, instance_id).await?;
        upsert(ctx, &txn, instance_id, key, &value).await?;
        let shown = if value.secret {
            Value::String(MASK.to_owned())
        } else {
            decode(value.value_type, &value.text)
        };
        let entry = entry
            .clone()
            .resource(instance_id, instance.name.clone())
            .new_values(&serde_json::json!({ "key": key, "value": shown }));
        audit::record(&txn, actor, entry, ctx.clock.now_db()).await?;
        txn.commit().await?;
        let row = find_entry(&ctx.db, instance_id, key)
            .await?
            .ok_or(ServiceError::NotFound("config key"))?;
        Ok(entry_view(row))
    })
    .await
}

pub async fn delete(
    ctx: &Context,
    actor: &Actor,
    instance_id: i64,
    key: &str,
) -> ServiceResult<()> {
    let entry = AuditEntry::new("instance.config.delete", OperationType::Delete, "instance")
        .target(instance_id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::InstancesUpdate)?;
        let instance = find_visible(&ctx.db, actor, instance_id).await?;
        if known(key).is_some_and(|k| k.required) {
            return Err(ServiceError::conflict(
                "key",
                format!("`{key}` is required; replace it instead"),
            ));
        }
        let txn = crate::db::begin(&ctx.db).await?;
        let removed = instance_configs::Entity::delete_many()
            .filter(instance_configs::Column::InstanceId.eq(instance_id))
            .filter(instance_configs::Column::ConfigKey.eq(key))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            return Err(ServiceError::NotFound("config key"));
        }
        let entry = entry
            .clone()
            .resource(instance_id, instance.name)
            .old(&serde_json::json!({ "key": key }));
        audit::record(&txn, actor, entry, ctx.clock.now_db()).await?;
        txn.commit().await?;
        Ok(())
    })
    .await
}

/// Deletes `keys` of an instance inside `txn`.
pub async fn remove(
    txn: &DatabaseTransaction,
    instance_id: i64,
    keys: &[String],
) -> ServiceResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    instance_configs::Entity::delete_many()
        .filter(instance_configs::Column::InstanceId.eq(instance_id))
        .filter(instance_configs::Column::ConfigKey.is_in(keys.iter().cloned()))
        .exec(txn)
        .await?;
    Ok(())
}

async fn find_entry<C: ConnectionTrait>(
    conn: &C,
    instance_id: i64,
    key: &str,
) -> ServiceResult<Option<instance_configs::Model>> {
    Ok(instance_configs::Entity::find()
        .filter(instance_configs::Column::InstanceId.eq(instance_id))
        .filter(instance_configs::Column::ConfigKey.eq(key))
        .one(conn)
        .await?)
}

/// Every value of an instance in plain text, secrets opened: for drivers only.
pub async fn load_plain<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    instance: &wework_instances::Model,
) -> ServiceResult<BTreeMap<String, String>> {
    let rows = instance_configs::Entity::find()
        .filter(instance_configs::Column::InstanceId.eq(instance.id))
        .all(conn)
        .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let Some(raw) = row.config_value else {
            continue;
        };
        let plain = if row.is_encrypted {
            ctx.sealer.open(&raw).map_err(|e| {
                ServiceError::Internal(anyhow::anyhow!(
                    "config `{}` of instance {}: {e}",
                    row.config_key,
                    instance.id
                ))
            })?
        } else {
            raw
        };
        out.insert(row.config_key, plain);
    }
    Ok(out)
}
