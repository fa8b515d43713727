//! The official WeCom server API driver. Every response carries `errcode`; HTTP 200 alone means
//! nothing. Token problems refresh the token once and retry the call once.

pub mod errors;
pub mod kf;
mod send;
pub mod token;

use entity::states::{AccountStatus, MessageType};
use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use self::token::TokenCache;
use super::{
    Channel, DriverError, Health, InstanceDriver, KfPage, KfServiceState, LoginQr, MassMessage,
    MassReceipt, MassResult, MassState, OutboundMessage, RemoteAccount, RemoteContact, RemoteGroup,
    RemoteMember, RemotePage, RemoteTag, SendReceipt,
};
use crate::net::client::OutboundClient;

/// Text content limit of app and robot messages, in bytes.
pub const TEXT_LIMIT_BYTES: usize = 2048;
/// Text content limit of customer mass messages, in bytes.
pub const MASS_TEXT_LIMIT_BYTES: usize = 4000;
/// Most targets one `add_msg_template` call takes: customers, or customer group chats.
pub const MASS_MAX_CUSTOMERS: usize = 10_000;
pub const MASS_MAX_GROUPS: usize = 2_000;

#[derive(Debug, Clone)]
pub struct WecomSettings {
    /// e.g. `https://qyapi.weixin.qq.com/cgi-bin`
    pub base: String,
    pub corp_id: String,
    pub corp_secret: String,
    pub agent_id: Option<i64>,
    pub robot_key: Option<String>,
    /// The 微信客服 secret: its token is the only one the `kf/*` calls take.
    pub kf_secret: Option<String>,
}

/// One secret of the corp and the key of its cached token.
struct Credential {
    secret: String,
    token_key: String,
}

pub struct WecomDriver {
    client: OutboundClient,
    settings: WecomSettings,
    tokens: TokenCache,
    app: Credential,
    kf: Option<Credential>,
    /// Corp tag id → (group name, tag name), loaded once per driver.
    tags: OnceCell<HashMap<String, (String, String)>>,
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl WecomDriver {
    pub fn new(client: OutboundClient, settings: WecomSettings, tokens: TokenCache) -> Self {
        let credential = |secret: &String| Credential {
            secret: secret.clone(),
            token_key: token::key_for(&settings.base, &settings.corp_id, secret),
        };
        let app = credential(&settings.corp_secret);
        let kf = settings.kf_secret.as_ref().map(credential);
        Self {
            client,
            settings,
            tokens,
            app,
            kf,
            tags: OnceCell::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base.trim_end_matches('/'))
    }

    async fn http(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, DriverError> {
        let mut request =
            self.client
                .request(method, url)
                .map_err(|refused| DriverError::Permanent {
                    code: "refused_url".into(),
                    message: refused.0,
                })?;
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| DriverError::from_http(&e))?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(DriverError::Transient {
                code: format!("http_{}", status.as_u16()),
                message: "WeCom answered with an HTTP error".into(),
                retry_after: None,
            });
        }
        let body = crate::net::client::read_body(response, crate::net::client::MAX_RESPONSE_BYTES)
            .await
            .map_err(DriverError::from_body)?;
        serde_json::from_slice::<Value>(&body).map_err(|e| DriverError::Transient {
            code: "bad_response".into(),
            message: format!("unreadable WeCom response ({status}): {e}"),
            retry_after: None,
        })
    }

    async fn fetch_token(&self, secret: &str) -> Result<(String, i64), DriverError> {
        let url = format!(
            "{}?corpid={}&corpsecret={}",
            self.url("/gettoken"),
            url::form_urlencoded::byte_serialize(self.settings.corp_id.as_bytes())
                .collect::<String>(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        let body = self.http(Method::GET, &url, None).await?;
        let code = body["errcode"].as_i64().unwrap_or(-1);
        if code != 0 {
            return Err(errors::classify(
                code,
                body["errmsg"].as_str().unwrap_or(""),
            ));
        }
        let token = s(&body, "access_token").ok_or_else(|| DriverError::Transient {
            code: "bad_response".into(),
            message: "gettoken returned no access_token".into(),
            retry_after: None,
        })?;
        Ok((token, body["expires_in"].as_i64().unwrap_or(7200)))
    }

    async fn token(&self, credential: &Credential) -> Result<String, DriverError> {
        self.tokens
            .get(&credential.token_key, || {
                self.fetch_token(&credential.secret)
            })
            .await
    }

    /// Calls `path` with the app's access token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Value>,
    ) -> Result<Value, DriverError> {
        self.call_as(&self.app, method, path, query, body).await
    }

    /// Calls `path` with the token of `credential`; on a token error refreshes once and retries
    /// once.
    async fn call_as(
        &self,
        credential: &Credential,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Value>,
    ) -> Result<Value, DriverError> {
        let mut retried = false;
        loop {
            let token = self.token(credential).await?;
            let url = format!("{}?access_token={token}{query}", self.url(path));
            let response = self.http(method.clone(), &url, body.as_ref()).await?;
            let code = response["errcode"].as_i64().unwrap_or(0);
            if code == 0 {
                return Ok(response);
            }
            if errors::is_token_error(code) && !retried {
                self.tokens.invalidate(&credential.token_key, &token).await;
                retried = true;
                continue;
            }
            if errors::needs_attention(code) {
                tracing::warn!(
                    errcode = code,
                    path,
                    "WeCom refused the call: check the instance's configuration"
                );
            }
            return Err(errors::classify(
                code,
                response["errmsg"].as_str().unwrap_or(""),
            ));
        }
    }

    async fn corp_tags(&self) -> Result<&HashMap<String, (String, String)>, DriverError> {
        self.tags
            .get_or_try_init(|| async {
                let body = self
                    .call(
                        Method::POST,
                        "/externalcontact/get_corp_tag_list",
                        "",
                        Some(json!({})),
                    )
                    .await?;
                let mut map = HashMap::new();
                for group in body["tag_group"].as_array().into_iter().flatten() {
                    let group_name = s(group, "group_name").unwrap_or_default();
                    for tag in group["tag"].as_array().into_iter().flatten() {
                        if let (Some(id), Some(name)) = (s(tag, "id"), s(tag, "name")) {
                            map.insert(id, (group_name.clone(), name));
                        }
                    }
                }
                Ok(map)
            })
            .await
    }

    async fn group_detail(&self, chat_id: &str) -> Result<RemoteGroup, DriverError> {
        let body = self
            .call(
                Method::POST,
                "/externalcontact/groupchat/get",
                "",
                Some(json!({ "chat_id": chat_id, "need_name": 1 })),
            )
            .await?;
        let g = &body["group_chat"];
        let admins: Vec<String> = g["admin_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| s(a, "userid"))
            .collect();
        let owner = s(g, "owner");
        let members: Vec<RemoteMember> = g["member_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let wxid = s(m, "userid")?;
                let role = if owner.as_deref() == Some(wxid.as_str()) {
                    "owner"
                } else if admins.contains(&wxid) {
                    "admin"
                } else {
                    "member"
                };
                Some(RemoteMember {
                    role: role.to_owned(),
                    member_type: if m["type"].as_i64() == Some(1) {
                        "internal"
                    } else {
                        "external"
                    }
                    .to_owned(),
                    nickname: s(m, "name"),
                    group_nickname: s(m, "group_nickname"),
                    join_time: m["join_time"].as_i64(),
                    left: false,
                    wxid,
                })
            })
            .collect();
        Ok(RemoteGroup {
            group_wxid: chat_id.to_owned(),
            name: s(g, "name"),
            owner_wxid: owner,
            notice: s(g, "notice"),
            member_count: i32::try_from(members.len()).ok(),
            create_time: g["create_time"].as_i64(),
            members: Some(members),
            deleted: false,
        })
    }
}

#[async_trait::async_trait]
impl InstanceDriver for WecomDriver {
    async fn health(&self) -> Result<Health, DriverError> {
        let body = self
            .call(
                Method::GET,
                "/externalcontact/get_follow_user_list",
                "",
                None,
            )
            .await?;
        let total = body["follow_user"]
            .as_array()
            .map(|a| i32::try_from(a.len()).unwrap_or(i32::MAX));
        Ok(Health {
            version: Some("wecom-api".into()),
            accounts_total: total,
            accounts_online: total,
        })
    }

    async fn accounts(&self) -> Result<Vec<RemoteAccount>, DriverError> {
        let body = self
            .call(
                Method::GET,
                "/externalcontact/get_follow_user_list",
                "",
                None,
            )
            .await?;
        let mut accounts = Vec::new();
        for userid in body["follow_user"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let query = format!(
                "&userid={}",
                url::form_urlencoded::byte_serialize(userid.as_bytes()).collect::<String>()
            );
            let detail = self
                .call(Method::GET, "/user/get", &query, None)
                .await
                .unwrap_or(Value::Null);
            let active = detail["status"].as_i64().is_none_or(|s| s == 1);
            accounts.push(RemoteAccount {
                wxid: userid.to_owned(),
                nickname: s(&detail, "name"),
                avatar_url: s(&detail, "avatar"),
                phone: s(&detail, "mobile"),
                email: s(&detail, "email"),
                status: if active {
                    AccountStatus::Online
                } else {
                    AccountStatus::Offline
                },
                is_logged_in: active,
            });
        }
        accounts.extend(self.kf_accounts().await?);
        Ok(accounts)
    }

    async fn login_qr(&self, _account: Option<&str>) -> Result<LoginQr, DriverError> {
        Err(DriverError::Unsupported(
            "official WeCom apps have no QR login: members sign in to the WeCom client themselves"
                .into(),
        ))
    }

    async fn contacts(
        &self,
        account: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteContact>, DriverError> {
        if kf::open_kfid(account).is_some() {
            // 微信客服 visitors are not listed: they arrive with their messages.
            return Ok(RemotePage::default());
        }
        let body =
            json!({ "userid_list": [account], "cursor": cursor.unwrap_or_default(), "limit": 100 });
        let response = self
            .call(
                Method::POST,
                "/externalcontact/batch/get_by_user",
                "",
                Some(body),
            )
            .await?;
        let tags = self.corp_tags().await?;
        let items = response["external_contact_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let c = &item["external_contact"];
                let f = &item["follow_info"];
                let remote_tags = f["tag_id"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter_map(|id| {
                        tags.get(id).map(|(group, name)| RemoteTag {
                            id: Some(id.to_owned()),
                            group: group.clone(),
                            name: name.clone(),
                        })
                    })
                    .collect();
                Some(RemoteContact {
                    wxid: s(c, "external_userid")?,
                    nickname: s(c, "name"),
                    remark: s(f, "remark"),
                    avatar_url: s(c, "avatar"),
                    phone: f["remark_mobiles"]
                        .as_array()
                        .and_then(|m| m.first())
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    gender: c["gender"].as_i64().and_then(|g| i16::try_from(g).ok()),
                    region: None,
                    corp_name: s(c, "corp_name"),
                    contact_type: "external".into(),
                    tags: remote_tags,
                    add_time: f["createtime"].as_i64(),
                    deleted: false,
                })
            })
            .collect();
        Ok(RemotePage {
            items,
            next_cursor: s(&response, "next_cursor"),
        })
    }

    async fn groups(
        &self,
        account: &str,
        cursor: Option<String>,
    ) -> Result<RemotePage<RemoteGroup>, DriverError> {
        if kf::open_kfid(account).is_some() {
            return Ok(RemotePage::default());
        }
        let body = json!({ "status_filter": 0, "owner_filter": { "userid_list": [account] }, "cursor": cursor.unwrap_or_default(), "limit": 100 });
        let response = self
            .call(
                Method::POST,
                "/externalcontact/groupchat/list",
                "",
                Some(body),
            )
            .await?;
        let mut items = Vec::new();
        for chat in response["group_chat_list"].as_array().into_iter().flatten() {
            if let Some(chat_id) = s(chat, "chat_id") {
                items.push(self.group_detail(&chat_id).await?);
            }
        }
        Ok(RemotePage {
            items,
            next_cursor: s(&response, "next_cursor"),
        })
    }

    async fn group_members(
        &self,
        _account: &str,
        group: &str,
        _cursor: Option<String>,
    ) -> Result<RemotePage<RemoteMember>, DriverError> {
        let detail = self.group_detail(group).await?;
        Ok(RemotePage {
            items: detail.members.unwrap_or_default(),
            next_cursor: None,
        })
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, DriverError> {
        self.deliver(message).await
    }

    async fn send_mass(&self, message: &MassMessage) -> Result<MassReceipt, DriverError> {
        self.deliver_mass(message).await
    }

    async fn mass_results(&self, msgid: &str) -> Result<Vec<MassResult>, DriverError> {
        self.fetch_mass_results(msgid).await
    }

    async fn mass_remind(&self, msgid: &str) -> Result<(), DriverError> {
        self.remind_mass(msgid).await
    }

    async fn mass_cancel(&self, msgid: &str) -> Result<(), DriverError> {
        self.cancel_mass(msgid).await
    }

    async fn kf_sync(
        &self,
        open_kfid: &str,
        cursor: Option<&str>,
        token: Option<&str>,
    ) -> Result<KfPage, DriverError> {
        self.sync_kf(open_kfid, cursor, token).await
    }

    async fn kf_send_on_event(&self, code: &str, text: &str) -> Result<(), DriverError> {
        self.send_kf_on_event(code, text).await
    }

    async fn kf_set_state(
        &self,
        open_kfid: &str,
        external_userid: &str,
        state: KfServiceState,
    ) -> Result<Option<String>, DriverError> {
        self.set_kf_state(open_kfid, external_userid, state).await
    }

    async fn kf_customers(&self, ids: &[String]) -> Result<Vec<RemoteContact>, DriverError> {
        self.kf_customer_profiles(ids).await
    }
}
