//! The agent-protocol driver (docs/agent-protocol.md): signed JSON over HTTP.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use super::{
    DriverError, Health, InstanceDriver, LoginQr, OutboundMessage, RemoteAccount, RemoteContact,
    RemoteGroup, RemoteMember, RemotePage, SendReceipt, signing,
};
use crate::net::client::OutboundClient;

/// The longest `Retry-After` taken from an agent (one day).
const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// An agent's `Retry-After` in seconds, bounded: a day-long wait is already an outage to look
/// at, and a vast one would overflow the time of the retry.
fn retry_after(header: Option<&str>) -> Option<Duration> {
    header
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)))
}

pub struct AgentDriver {
    client: OutboundClient,
    base: String,
    secret: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl AgentDriver {
    pub fn new(client: OutboundClient, base: String, secret: String) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            secret,
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(T, bool), DriverError> {
        let url = format!("{}/v1{path}", self.base);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .client
            .request(method, &url)
            .map_err(|refused| DriverError::Permanent {
                code: "refused_url".into(),
                message: refused.0,
            })?
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signing::sign(&self.secret, &id, timestamp, &bytes),
            );
        if !bytes.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(bytes);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| DriverError::from_http(&e))?;
        let status = response.status();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let retry_after = retry_after(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let body = crate::net::client::read_body(response, crate::net::client::MAX_RESPONSE_BYTES)
            .await
            .map_err(DriverError::from_body)?;
        let text = String::from_utf8_lossy(&body);
        if status.is_success() {
            let value = serde_json::from_str(&text).map_err(|e| DriverError::Transient {
                code: "bad_response".into(),
                message: format!("the agent answered {status} with an unreadable body: {e}"),
                retry_after: None,
            })?;
            return Ok((value, replayed));
        }
        let (code, message) = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| (b.error.code, b.error.message))
            .unwrap_or_else(|_| {
                (
                    format!("http_{}", status.as_u16()),
                    text.chars().take(300).collect(),
                )
            });
        Err(classify(status, code, message, retry_after))
    }
}

/// 429 slows down; 408, 5xx and unknown failures are transient; other 4xx are permanent.
fn classify(
    status: StatusCode,
    code: String,
    message: String,
    retry_after: Option<Duration>,
) -> DriverError {
    match status.as_u16() {
        429 => DriverError::RateLimited {
            code,
            message,
            retry_after,
        },
        408 | 500..=599 => DriverError::Transient {
            code,
            message,
            retry_after,
        },
        _ => DriverError::Permanent { code, message },
    }
}

#[derive(Deserialize)]
struct AccountsOut {
    accounts: Vec<RemoteAccount>,
}

#[derive(Deserialize)]
struct SendOut {
    message_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

fn page_path(base: &str, cursor: Option<String>) -> String {
    match cursor {
        Some(c) => format!(
            "{base}?limit=500&cursor={}",
            url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        ),
        None => format!("{base}?limit=500"),
    }
}

/// Percent-encodes one path segment (unlike form encoding, a space is %20, never `+`).
fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[async_trait::async_trait]
impl InstanceDriver for AgentDriver {
    async fn health(&self) -> Result<Health, DriverError> {
        #[derive(Deserialize)]
        struct Out {
            status: Option<String>,
            version: Option<String>,
            accounts_total: Option<i32>,
            accounts_online: Option<i32>,
        }
        let (out, _): (Out, _) = self.call(Method::GET, "/health", None, None).await?;
        if let Some(status) = out.status.filter(|s| s != "ok") {
            return Err(DriverError::Transient {
                code: "unhealthy".into(),
                message: format!("the agent reports status `{status}`"),
                retry_after: None,
            });
        }
        Ok(Health {
            version: out.version,
            accounts_total: out.accounts_total,
            accounts_online: out.accounts_online,
        })
    }

    async fn accounts(&self) -> Result<Vec<RemoteAccount>, DriverError> {
        let (out, _): (AccountsOut, _) = self.call(Method::GET, "/accounts", None, None).await?;
        Ok(out.accounts)
    }

    async fn login_qr(&self, account: Option<&str>) -> Result<LoginQr, DriverError> {
        let (out, _) = self
            .call(
                Method::POST,
                "/accounts/login-qr",
                Some(json!({ "account_wxid": account })),
                None,
            )
            .await?;
        Ok(out)
    }

    async fn contacts(
        &self,
        account: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteContact>, DriverError> {
        let path = page_path(&format!("/accounts/{}/contacts", segment(account)), cursor);
        Ok(self.call(Method::GET, &path, None, None).await?.0)
    }

    async fn groups(
        &self,
        account: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteGroup>, DriverError> {
        let path = page_path(&format!("/accounts/{}/groups", segment(account)), cursor);
        Ok(self.call(Method::GET, &path, None, None).await?.0)
    }

    async fn group_members(
        &self,
        account: &str,
        group: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteMember>, DriverError> {
        let path = page_path(
            &format!(
                "/accounts/{}/groups/{}/members",
                segment(account),
                segment(group)
            ),
            cursor,
        );
        Ok(self.call(Method::GET, &path, None, None).await?.0)
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, DriverError> {
        // The key travels in the signed body too, so a captured request cannot be replayed under
        // a new key.
        let mut body = json!({
            "idempotency_key": message.idempotency_key,
            "to": message.to,
            "chat_type": if message.to_group { "group" } else { "private" },
            "msgtype": message.msgtype,
        });
        if let Some(map) = body.as_object_mut() {
            map.insert(message.msgtype.as_str().to_owned(), message.payload.clone());
        }
        let path = format!("/accounts/{}/messages", segment(&message.account_wxid));
        let (out, replayed): (SendOut, bool) = self
            .call(
                Method::POST,
                &path,
                Some(body),
                Some(&message.idempotency_key),
            )
            .await?;
        Ok(SendReceipt {
            remote_msg_id: out.message_id,
            awaiting_confirmation: out.status.as_deref() == Some("pending"),
            replayed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_bounded() {
        assert_eq!(retry_after(Some("30")), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after(Some("99999999999999")),
            Some(Duration::from_secs(MAX_RETRY_AFTER_SECS))
        );
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }
}
