//! Master-key rotation: every sealed value (instance secrets, proxy passwords, TOTP seeds, alert
//! channel URLs and webhook secrets) is
//! opened with the current key and sealed with the new one, in one transaction: either all move
//! or none does. Values already under the new key are left alone, so a rerun is harmless.

use entity::{alert_rules, instance_configs, users, wework_instances};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
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

fn reseal(
    current: &Sealer,
    new: &Sealer,
    sealed: &str,
    what: &str,
) -> ServiceResult<Option<String>> {
    if sealed.split('.').nth(1) == Some(new.key_id()) {
        return Ok(None);
    }
    let plain = current
        .open(sealed)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("{what}: {e}")))?;
    Ok(Some(new.seal(&plain)))
}

pub async fn rotate(ctx: &Context, new: &Sealer) -> ServiceResult<Rotated> {
    let current = &ctx.sealer;
    let mut rotated = Rotated::default();
    let txn = crate::db::begin(&ctx.db).await?;
    for row in instance_configs::Entity::find()
        .filter(instance_configs::Column::IsEncrypted.eq(true))
        .all(&txn)
        .await?
    {
        let Some(value) = &row.config_value else {
            continue;
        };
        if let Some(resealed) = reseal(
            current,
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
    for row in wework_instances::Entity::find()
        .filter(wework_instances::Column::ProxyPasswordEncrypted.is_not_null())
        .all(&txn)
        .await?
    {
        let Some(value) = &row.proxy_password_encrypted else {
            continue;
        };
        if let Some(resealed) = reseal(
            current,
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
    for row in users::Entity::find()
        .filter(users::Column::TotpSecret.is_not_null())
        .all(&txn)
        .await?
    {
        let Some(value) = &row.totp_secret else {
            continue;
        };
        if let Some(resealed) = reseal(
            current,
            new,
            value,
            &format!("TOTP seed of user {}", row.id),
        )? {
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
    for row in alert_rules::Entity::find()
        .filter(alert_rules::Column::Channels.is_not_null())
        .all(&txn)
        .await?
    {
        let mut channels = crate::alerts::rules::stored_channels(&row);
        let mut changed = 0;
        for (i, channel) in channels.iter_mut().enumerate() {
            let what = format!("channel {i} of alert rule {}", row.id);
            if let Some(url) = reseal(current, new, &channel.url, &what)? {
                channel.url = url;
                changed += 1;
            }
            if let Some(secret) = &channel.secret
                && let Some(resealed) = reseal(current, new, secret, &what)?
            {
                channel.secret = Some(resealed);
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
