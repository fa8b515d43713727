//! Tells people: every alert whose latest change (raised or resolved) has not reached its
//! rule's channels yet is sent to each of them — a WeCom group robot (markdown) or a generic
//! webhook (JSON, signed `X-Wework-Signature: sha256=HMAC(secret, "{timestamp}.{body}")`).
//! Failures are retried with exponential back-off, up to `MAX_ATTEMPTS`; a worker claims an
//! alert before sending, so several workers never notify twice at once.

use chrono::TimeDelta;
use entity::states::{AlertChannelKind, AlertLevel, AlertStatus};
use entity::{alert_records, alert_rules};
use hmac::{Hmac, Mac};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde_json::{Value, json};
use sha2::Sha256;

use super::rules::{SealedChannel, stored_channels};
use crate::{Context, ServiceResult, net::client::describe};

pub const MAX_ATTEMPTS: i32 = 8;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notified {
    pub sent: usize,
    pub failed: usize,
}

/// Seconds to wait after attempt `n` failed: 5, 10, 20, … capped at 10 minutes.
fn backoff(attempts: i32) -> i64 {
    std::cmp::min(5i64 << attempts.clamp(0, 7), 600)
}

pub async fn run(ctx: &Context) -> ServiceResult<Notified> {
    let now = ctx.clock.now_db();
    let due = alert_records::Entity::find()
        .filter(alert_records::Column::NotificationSent.eq(false))
        .filter(alert_records::Column::NotificationAttempts.lt(MAX_ATTEMPTS))
        .order_by_asc(alert_records::Column::Id)
        .limit(100)
        .all(&ctx.db)
        .await?;
    let mut result = Notified::default();
    for alert in due {
        if let Some(last) = alert.last_notified_at
            && last + TimeDelta::seconds(backoff(alert.notification_attempts - 1)) > now
        {
            continue;
        }
        // Claim: only the worker whose update lands sends this round.
        let claimed = alert_records::Entity::update_many()
            .col_expr(alert_records::Column::LastNotifiedAt, Expr::value(now))
            .col_expr(
                alert_records::Column::NotificationAttempts,
                Expr::col(alert_records::Column::NotificationAttempts).add(1),
            )
            .filter(alert_records::Column::Id.eq(alert.id))
            .filter(alert_records::Column::NotificationSent.eq(false))
            .filter(alert_records::Column::NotificationAttempts.eq(alert.notification_attempts))
            .exec(&ctx.db)
            .await?
            .rows_affected
            == 1;
        if !claimed {
            continue;
        }
        let mut errors = Vec::new();
        let channels = match alert.rule_id {
            Some(rule) => alert_rules::Entity::find_by_id(rule)
                .one(&ctx.db)
                .await?
                .map(|r| stored_channels(&r))
                .unwrap_or(Ok(Vec::new()))
                .unwrap_or_else(|e| {
                    errors.push(e);
                    Vec::new()
                }),
            None => Vec::new(),
        };
        for channel in &channels {
            if let Err(e) = send(ctx, channel, &alert).await {
                errors.push(format!("{} {}: {e}", channel.kind, channel.target));
            }
        }
        if errors.is_empty() {
            alert_records::Entity::update_many()
                .col_expr(alert_records::Column::NotificationSent, Expr::value(true))
                .filter(alert_records::Column::Id.eq(alert.id))
                .exec(&ctx.db)
                .await?;
            result.sent += 1;
        } else {
            result.failed += 1;
            let last = alert.notification_attempts + 1 >= MAX_ATTEMPTS;
            tracing::warn!(alert.id = alert.id, errors = %errors.join("; "), giving_up = last, "alert notification failed");
        }
    }
    Ok(result)
}

fn event(alert: &alert_records::Model) -> &'static str {
    if alert.status == AlertStatus::Resolved {
        "alert.resolved"
    } else {
        "alert.raised"
    }
}

async fn send(
    ctx: &Context,
    channel: &SealedChannel,
    alert: &alert_records::Model,
) -> Result<(), String> {
    let url = ctx
        .sealer
        .open(&channel.url)
        .map_err(|_| "the channel URL cannot be decrypted with this master key".to_owned())?;
    let (body, signature) = match channel.kind {
        AlertChannelKind::WecomRobot => (robot_body(alert), None),
        AlertChannelKind::Webhook => {
            let body = serde_json::to_vec(&json!({
                "event": event(alert),
                "alert": super::view(alert.clone()),
            }))
            .map_err(|e| e.to_string())?;
            let timestamp = ctx.clock.now().timestamp().to_string();
            let signature = match &channel.secret {
                Some(sealed) => {
                    let secret = ctx
                        .sealer
                        .open(sealed)
                        .map_err(|_| "the webhook secret cannot be decrypted".to_owned())?;
                    Some((timestamp.clone(), sign(&secret, &timestamp, &body)))
                }
                None => None,
            };
            (body, signature.or(Some((timestamp, String::new()))))
        }
    };
    let mut request = ctx
        .outbound
        .request(reqwest::Method::POST, &url)
        .map_err(|refused| refused.0)?
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some((timestamp, signature)) = signature {
        request = request
            .header("x-wework-event", event(alert))
            .header("x-wework-timestamp", timestamp);
        if !signature.is_empty() {
            request = request.header("x-wework-signature", format!("sha256={signature}"));
        }
    }
    let response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    // What a webhook answers is only looked at for its status and, for robots, `errcode`.
    let text = crate::net::client::read_body(response, 64 * 1024)
        .await
        .map(|body| String::from_utf8_lossy(&body).into_owned())
        .unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    if channel.kind == AlertChannelKind::WecomRobot {
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if answer["errcode"].as_i64() != Some(0) {
            return Err(format!("robot answered {text}"));
        }
    }
    Ok(())
}

/// HMAC-SHA256 of "{timestamp}.{body}", hex.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
}

/// A WeCom group robot markdown message.
fn robot_body(alert: &alert_records::Model) -> Vec<u8> {
    let (color, state) = match (alert.status, alert.alert_level) {
        (AlertStatus::Resolved, _) => ("info", "已恢复 RESOLVED"),
        (_, AlertLevel::Critical) => ("warning", "告警 CRITICAL"),
        (_, AlertLevel::Info) => ("comment", "通知 INFO"),
        _ => ("warning", "告警 WARNING"),
    };
    let content = format!(
        "**<font color=\"{color}\">{state}</font> {}**\n> 规则 rule: {}\n> {}\n> 时间 time: {} UTC",
        alert.alert_title,
        alert.rule_name,
        alert.alert_message.chars().take(1000).collect::<String>(),
        alert.updated_at.format("%Y-%m-%d %H:%M:%S"),
    );
    serde_json::to_vec(&json!({ "msgtype": "markdown", "markdown": { "content": content } }))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_timestamp_and_body() {
        let a = sign("s3cret", "1700000000", b"{\"a\":1}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, sign("s3cret", "1700000001", b"{\"a\":1}"));
        assert_ne!(a, sign("other", "1700000000", b"{\"a\":1}"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), 5);
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(3), 40);
        assert_eq!(backoff(9), 600);
    }
}
