//! How the platform talks to an instance: our agent protocol or the official WeCom API, behind
//! one trait so sync, heartbeats and dispatch do not care which.

pub mod agent;
pub mod signing;
pub mod wecom;

use entity::states::{AccountStatus, MessageType};
use std::time::Duration;

use entity::wework_instances;
use serde::{Deserialize, Serialize};

use crate::{
    Context, ServiceError, ServiceResult, instances::InstanceKind, net::client::OutboundClient,
};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub version: Option<String>,
    pub accounts_total: Option<i32>,
    pub accounts_online: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteAccount {
    pub wxid: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `online`, `offline` or `banned`; anything else an instance reports reads as offline.
    #[serde(default = "offline", deserialize_with = "lenient_account_status")]
    pub status: AccountStatus,
    #[serde(default)]
    pub is_logged_in: bool,
}

fn offline() -> AccountStatus {
    AccountStatus::Offline
}

/// An instance is outside our control: a status we do not know must not fail its whole sync.
fn lenient_account_status<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<AccountStatus, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text
        .as_deref()
        .and_then(AccountStatus::parse)
        .unwrap_or(AccountStatus::Offline))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginQr {
    pub login_id: String,
    pub qr_code_url: String,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemotePage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Default for RemotePage<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

/// One page of a 微信客服 account's message log (`kf/sync_msg`): messages and events as WeCom
/// wrote them, oldest first.
#[derive(Debug, Clone, Default)]
pub struct KfPage {
    pub entries: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// A 微信客服 session's state (`service_state`) as WeCom numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KfServiceState {
    /// 1: answered through the API (WeCom's 智能助手 state), where the desk keeps it open.
    Api = 1,
    /// 4: ended.
    Ended = 4,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteTag {
    /// The tag's id at the source (WeCom corp tag id), when it has one.
    pub id: Option<String>,
    #[serde(default)]
    pub group: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteContact {
    pub wxid: String,
    pub nickname: Option<String>,
    pub remark: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub gender: Option<i16>,
    pub region: Option<String>,
    pub corp_name: Option<String>,
    /// `friend`, `external`, `group_member` or `official`.
    #[serde(default = "external")]
    pub contact_type: String,
    #[serde(default)]
    pub tags: Vec<RemoteTag>,
    /// Unix seconds.
    pub add_time: Option<i64>,
    /// The contact removed the account (or was removed).
    #[serde(default)]
    pub deleted: bool,
}

impl RemoteContact {
    /// An external contact known only by id, whose profile a later sync or lookup fills in.
    pub fn external(wxid: &str) -> Self {
        Self {
            wxid: wxid.to_owned(),
            nickname: None,
            remark: None,
            avatar_url: None,
            phone: None,
            gender: None,
            region: None,
            corp_name: None,
            contact_type: external(),
            tags: Vec::new(),
            add_time: None,
            deleted: false,
        }
    }
}

fn external() -> String {
    "external".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteMember {
    pub wxid: String,
    pub nickname: Option<String>,
    pub group_nickname: Option<String>,
    /// `owner`, `admin` or `member`.
    #[serde(default = "member")]
    pub role: String,
    /// `internal` or `external`.
    #[serde(default = "external")]
    pub member_type: String,
    pub join_time: Option<i64>,
    #[serde(default)]
    pub left: bool,
}

fn member() -> String {
    "member".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteGroup {
    pub group_wxid: String,
    pub name: Option<String>,
    pub owner_wxid: Option<String>,
    pub notice: Option<String>,
    pub member_count: Option<i32>,
    pub create_time: Option<i64>,
    /// Filled when the source returns members with the group (WeCom); otherwise page them with
    /// [`InstanceDriver::group_members`].
    #[serde(default)]
    pub members: Option<Vec<RemoteMember>>,
    #[serde(default)]
    pub deleted: bool,
}

/// Which WeCom path a message takes; agents deliver everything directly.
pub use entity::states::Channel;

#[derive(Debug, Clone, Serialize)]
pub struct OutboundMessage {
    pub account_wxid: String,
    pub to: String,
    pub to_group: bool,
    pub channel: Channel,
    pub msgtype: MessageType,
    /// The type's payload, e.g. `{"content": "…"}` for text.
    pub payload: serde_json::Value,
    /// Stable per receiver: a resend after a crash carries the same key.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SendReceipt {
    pub remote_msg_id: Option<String>,
    /// The message waits for the member to confirm it (customer mass messages).
    pub awaiting_confirmation: bool,
    /// The instance had already seen this idempotency key and returned the first result.
    pub replayed: bool,
}

/// One customer mass message (WeCom `add_msg_template`) from one member to many receivers: the
/// member confirms it once in the client, rather than once per receiver.
#[derive(Debug, Clone, Serialize)]
pub struct MassMessage {
    pub account_wxid: String,
    /// External user ids, or customer group chat ids when `to_group`.
    pub targets: Vec<String>,
    pub to_group: bool,
    pub msgtype: MessageType,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MassReceipt {
    /// WeCom's id of the mass message; results, reminders and cancelling refer to it.
    pub msgid: String,
    /// Targets WeCom refused at once (`fail_list`).
    pub rejected: Vec<String>,
}

/// Where one receiver of a mass message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MassState {
    /// The member has not confirmed yet.
    Waiting,
    Sent,
    Failed {
        code: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MassResult {
    pub target: String,
    pub state: MassState,
}

/// Why a driver call failed, classified for retry decisions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Worth retrying later (timeouts, 5xx, WeCom -1).
    #[error("transient failure {code}: {message}")]
    Transient {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Slow down (429, WeCom 45009/45033).
    #[error("rate limited {code}: {message}")]
    RateLimited {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again however often it is tried.
    #[error("permanent failure {code}: {message}")]
    Permanent { code: String, message: String },
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl DriverError {
    pub fn code(&self) -> &str {
        match self {
            Self::Transient { code, .. }
            | Self::RateLimited { code, .. }
            | Self::Permanent { code, .. } => code,
            Self::Unsupported(_) => "unsupported",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::RateLimited { .. })
    }

    /// What the instance asked us to wait, if anything.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } | Self::RateLimited { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// An answer whose body could not be read: too large is permanent (the peer is not what it
    /// should be), a broken transfer transient.
    pub fn from_body(e: crate::net::client::BodyError) -> Self {
        match e {
            crate::net::client::BodyError::TooLarge(_) => Self::Permanent {
                code: "response_too_large".into(),
                message: e.to_string(),
            },
            crate::net::client::BodyError::Http(e) => Self::from_http(&e),
        }
    }

    /// Classifies a transport error (no HTTP answer, or a broken one).
    pub fn from_http(e: &reqwest::Error) -> Self {
        let code = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "http"
        };
        let message = crate::net::client::describe(e);
        if e.is_builder() {
            Self::Permanent {
                code: code.to_owned(),
                message,
            }
        } else {
            Self::Transient {
                code: code.to_owned(),
                message,
                retry_after: None,
            }
        }
    }
}

#[async_trait::async_trait]
pub trait InstanceDriver: Send + Sync {
    async fn health(&self) -> Result<Health, DriverError>;
    async fn accounts(&self) -> Result<Vec<RemoteAccount>, DriverError>;
    async fn login_qr(&self, account: Option<&str>) -> Result<LoginQr, DriverError>;
    async fn contacts(
        &self,
        account: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteContact>, DriverError>;
    async fn groups(
        &self,
        account: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteGroup>, DriverError>;
    async fn group_members(
        &self,
        account: &str,
        group: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteMember>, DriverError>;
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, DriverError>;

    /// Queues one customer mass message for many receivers.
    async fn send_mass(&self, _message: &MassMessage) -> Result<MassReceipt, DriverError> {
        Err(mass_unsupported())
    }

    /// Per-receiver results of a mass message. Receivers WeCom does not list yet are waiting.
    async fn mass_results(&self, _msgid: &str) -> Result<Vec<MassResult>, DriverError> {
        Err(mass_unsupported())
    }

    /// Reminds the member to confirm the mass message.
    async fn mass_remind(&self, _msgid: &str) -> Result<(), DriverError> {
        Err(mass_unsupported())
    }

    /// Withdraws a mass message the member has not confirmed; delivered ones stay delivered.
    async fn mass_cancel(&self, _msgid: &str) -> Result<(), DriverError> {
        Err(mass_unsupported())
    }

    /// The 微信客服 account's messages and events after `cursor` (`token`: the callback's, which
    /// WeCom rate-limits less strictly).
    async fn kf_sync(
        &self,
        _open_kfid: &str,
        _cursor: Option<&str>,
        _token: Option<&str>,
    ) -> Result<KfPage, DriverError> {
        Err(kf_unsupported())
    }

    /// Answers an event (`enter_session`'s welcome code, a state change's code) with a text.
    async fn kf_send_on_event(&self, _code: &str, _text: &str) -> Result<(), DriverError> {
        Err(kf_unsupported())
    }

    /// Moves the visitor's session to `state`; returns the code WeCom gives for an answer.
    async fn kf_set_state(
        &self,
        _open_kfid: &str,
        _external_userid: &str,
        _state: KfServiceState,
    ) -> Result<Option<String>, DriverError> {
        Err(kf_unsupported())
    }

    /// Profiles of 微信客服 visitors (nickname, avatar, gender), as contacts.
    async fn kf_customers(&self, _ids: &[String]) -> Result<Vec<RemoteContact>, DriverError> {
        Err(kf_unsupported())
    }
}

fn mass_unsupported() -> DriverError {
    DriverError::Unsupported("customer mass messages need an official WeCom app instance".into())
}

fn kf_unsupported() -> DriverError {
    DriverError::Unsupported("微信客服 needs an official WeCom instance with a `kf_secret`".into())
}

/// The driver for `instance`, with its secrets opened and its proxy applied.
pub async fn for_instance(
    ctx: &Context,
    instance: &wework_instances::Model,
) -> ServiceResult<Box<dyn InstanceDriver>> {
    let config = crate::instances::configs::load_plain(ctx, &ctx.db, instance).await?;
    let client = client_for(ctx, instance)?;
    let base = instance
        .api_url
        .clone()
        .unwrap_or_else(|| crate::instances::OFFICIAL_WECOM_API.to_owned());
    let missing = |key: &str| {
        ServiceError::conflict(
            format!("config.{key}"),
            format!("instance {} has no `{key}`", instance.id),
        )
    };
    match instance.kind {
        InstanceKind::Agent => {
            let secret = config
                .get("agent_secret")
                .cloned()
                .ok_or_else(|| missing("agent_secret"))?;
            Ok(Box::new(agent::AgentDriver::new(client, base, secret)))
        }
        InstanceKind::Wecom => {
            let corp_id = config
                .get("corp_id")
                .cloned()
                .ok_or_else(|| missing("corp_id"))?;
            let corp_secret = config
                .get("corp_secret")
                .cloned()
                .ok_or_else(|| missing("corp_secret"))?;
            let settings = wecom::WecomSettings {
                base,
                corp_id,
                corp_secret,
                agent_id: config.get("agent_id").and_then(|a| a.parse().ok()),
                robot_key: config.get("robot_key").cloned(),
                kf_secret: config.get("kf_secret").cloned(),
            };
            Ok(Box::new(wecom::WecomDriver::new(
                client,
                settings,
                ctx.tokens.clone(),
            )))
        }
    }
}

/// The shared client, or one that goes through the instance's proxy.
fn client_for(ctx: &Context, instance: &wework_instances::Model) -> ServiceResult<OutboundClient> {
    let Some(host) = instance.proxy_host.as_deref() else {
        return Ok(ctx.outbound.clone());
    };
    let port = instance.proxy_port.unwrap_or(80);
    let password = match &instance.proxy_password_encrypted {
        Some(sealed) => Some(ctx.sealer.open(sealed).map_err(|e| {
            ServiceError::Internal(anyhow::anyhow!(
                "proxy password of instance {}: {e}",
                instance.id
            ))
        })?),
        None => None,
    };
    let mut proxy = reqwest::Proxy::all(format!("http://{host}:{port}"))
        .map_err(|e| ServiceError::invalid("proxy_host", e.to_string()))?;
    if let Some(user) = &instance.proxy_username {
        proxy = proxy.basic_auth(user, password.as_deref().unwrap_or(""));
    }
    ctx.outbound
        .with_proxy(proxy)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))
}

/// Calls `fetch` again when it fails in a retryable way: up to `attempts` tries, waiting what the
/// instance asked for (at most 30 s) or 250 ms, 500 ms, 1 s, … — so one flaky page does not fail
/// a sync of a hundred thousand contacts.
pub async fn with_retries<T, F, Fut>(attempts: u32, mut fetch: F) -> Result<T, DriverError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DriverError>>,
{
    let mut tried = 1;
    loop {
        match fetch().await {
            Err(e) if e.is_retryable() && tried < attempts => {
                let backoff = Duration::from_millis(250 << (tried - 1).min(6));
                let wait = e
                    .retry_after()
                    .unwrap_or(backoff)
                    .min(Duration::from_secs(30));
                tracing::debug!(error = %e, tried, "retrying a driver call");
                tokio::time::sleep(wait).await;
                tried += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn transient() -> DriverError {
        DriverError::Transient {
            code: "-1".into(),
            message: "busy".into(),
            retry_after: Some(Duration::from_millis(1)),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_permanent_ones_are_not() {
        let calls = AtomicU32::new(0);
        let result = with_retries(5, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(transient())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(5, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(DriverError::Permanent {
                code: "40003".into(),
                message: "invalid".into(),
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(3, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
