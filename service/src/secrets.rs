//! Master-key rotation: every sealed value (instance secrets, proxy passwords, TOTP seeds, alert
//! channel URLs and webhook secrets) is opened with any key of the target sealer's ring and
//! sealed under its current key, in one transaction: either all move or none does. Values
//! already under the target key are left alone, so a rerun is harmless.
//!
//! The rows are read under lock (`SELECT … FOR UPDATE`; SQLite's write transaction), so a
//! change an administrator saves meanwhile waits for the rotation instead of being overwritten
//! by the re-sealed old value; values written after it, under whichever key their process
//! holds, stay readable through the ring until the next `reseal`.

use entity::{alert_rules, instance_configs, users, wework_instances};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    Select,
};
use serde::Serialize;

use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::{Actor, RequestMeta},
    crypto::sealer::Sealer,
};

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Rotated {
    pub instance_configs: usize,
    pub proxy_passwords: usize,
    pub totp_seeds: usize,
    pub alert_channels: usize,
}

/// `sealed` under `target`'s current key, or `None` when it is already.
fn reseal(target: &Sealer, sealed: &str, what: &str) -> ServiceResult<Option<String>> {
    if target.is_current(sealed) {
        return Ok(None);
    }
    let plain = target
        .open(sealed)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("{what}: {e}")))?;
    Ok(Some(target.seal(&plain)))
}

/// The rows, locked until the rotation commits.
fn locked<E: EntityTrait>(query: Select<E>, txn: &DatabaseTransaction) -> Select<E> {
    if crate::db::row_locks(txn) {
        query.lock_exclusive()
    } else {
        query
    }
}

/// Re-seals every sealed value under `target`'s current key (`target` opens the older ones).
pub async fn rotate(ctx: &Context, target: &Sealer) -> ServiceResult<Rotated> {
    let (current, new) = (&ctx.sealer, target);
    let mut rotated = Rotated::default();
    let txn = crate::db::begin(&ctx.db).await?;
    // Every instance row first, then its configs: the order writers lock them in (an instance
    // update or config write locks the instance, then writes configs), so none deadlock.
    for row in locked(wework_instances::Entity::find(), &txn)
        .all(&txn)
        .await?
    {
        let Some(value) = &row.proxy_password_encrypted else {
            continue;
        };
        if let Some(resealed) = reseal(
            new,
            value,
            &format!("proxy password of instance {}", row.id),
        )? {
            wework_instances::Entity::update(wework_instances::ActiveModel {
                id: Set(row.id),
                proxy_password_encrypted: Set(Some(resealed)),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            rotated.proxy_passwords += 1;
        }
    }
    for row in locked(
        instance_configs::Entity::find().filter(instance_configs::Column::IsEncrypted.eq(true)),
        &txn,
    )
    .all(&txn)
    .await?
    {
        let Some(value) = &row.config_value else {
            continue;
        };
        if let Some(resealed) = reseal(
            new,
            value,
            &format!(
                "config `{}` of instance {}",
                row.config_key, row.instance_id
            ),
        )? {
            instance_configs::Entity::update(instance_configs::ActiveModel {
                id: Set(row.id),
                config_value: Set(Some(resealed)),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            rotated.instance_configs += 1;
        }
    }
    for row in locked(
        users::Entity::find().filter(users::Column::TotpSecret.is_not_null()),
        &txn,
    )
    .all(&txn)
    .await?
    {
        let Some(value) = &row.totp_secret else {
            continue;
        };
        if let Some(resealed) = reseal(new, value, &format!("TOTP seed of user {}", row.id))? {
            users::Entity::update(users::ActiveModel {
                id: Set(row.id),
                totp_secret: Set(Some(resealed)),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            rotated.totp_seeds += 1;
        }
    }
    for row in locked(
        alert_rules::Entity::find().filter(alert_rules::Column::Channels.is_not_null()),
        &txn,
    )
    .all(&txn)
    .await?
    {
        let mut channels = crate::alerts::rules::stored_channels(&row).map_err(|e| {
            ServiceError::Internal(anyhow::anyhow!("cannot reseal the channels of {e}"))
        })?;
        let mut changed = 0;
        for (i, channel) in channels.iter_mut().enumerate() {
            let what = format!("channel {i} of alert rule {}", row.id);
            let url = reseal(new, &channel.url, &what)?;
            let secret = match &channel.secret {
                Some(secret) => reseal(new, secret, &what)?,
                None => None,
            };
            if url.is_some() || secret.is_some() {
                changed += 1;
            }
            if let Some(url) = url {
                channel.url = url;
            }
            if secret.is_some() {
                channel.secret = secret;
            }
        }
        if changed > 0 {
            alert_rules::Entity::update(alert_rules::ActiveModel {
                id: Set(row.id),
                channels: Set(Some(serde_json::to_value(&channels).map_err(|e| {
                    ServiceError::Internal(anyhow::anyhow!("alert channels: {e}"))
                })?)),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            rotated.alert_channels += changed;
        }
    }
    let actor = Actor::system(RequestMeta {
        ip: "127.0.0.1".to_owned(),
        ..Default::default()
    });
    let entry = AuditEntry::new(
        "secrets.rotate_master_key",
        OperationType::Security,
        "master_key",
    )
    .extra(serde_json::json!({ "from": current.key_id(), "to": new.key_id(), "rotated": rotated }));
    audit::record(&txn, &actor, entry, ctx.clock.now_db()).await?;
    txn.commit().await?;
    Ok(rotated)
}
