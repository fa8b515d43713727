//! 微信客服 (WeChat customer service) through the official API, with the token of its own
//! secret: accounts (`kf/account/list`), the message log (`kf/sync_msg`), sending
//! (`kf/send_msg`, `kf/send_msg_on_event`), session states (`kf/service_state/trans`) and
//! visitor profiles (`kf/customer/batchget`).
//!
//! A 微信客服 account is one of the instance's accounts with the wxid `kf:<open_kfid>`: WeCom
//! member ids cannot hold a colon, so the two kinds never meet.

use sha2::{Digest, Sha256};

use super::*;

/// The wxid prefix of 微信客服 accounts.
pub const ACCOUNT_PREFIX: &str = "kf:";
/// Most entries one `sync_msg` call returns.
const SYNC_LIMIT: u32 = 1000;
/// Most ids one `customer/batchget` call takes.
pub const CUSTOMERS_PER_CALL: usize = 100;

/// The `open_kfid` of a 微信客服 account's wxid; `None` for a member account.
pub fn open_kfid(wxid: &str) -> Option<&str> {
    wxid.strip_prefix(ACCOUNT_PREFIX)
        .filter(|id| !id.is_empty())
}

/// WeCom's `msgid` for a send: at most 32 characters of `[0-9a-zA-Z_-]`, the same for every
/// attempt of one message, so WeCom can tell a resend from a new message.
pub fn msgid_for(idempotency_key: &str) -> String {
    Sha256::digest(idempotency_key.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl WecomDriver {
    fn kf_credential(&self) -> Result<&Credential, DriverError> {
        self.kf.as_ref().ok_or_else(|| DriverError::Permanent {
            code: "no_kf_secret".into(),
            message: "the instance has no `kf_secret` configured".into(),
        })
    }

    async fn kf_call(&self, path: &str, body: Value) -> Result<Value, DriverError> {
        let credential = self.kf_credential()?;
        self.call_as(credential, Method::POST, path, "", Some(body))
            .await
    }

    /// The 微信客服 accounts, when the instance has the secret; none otherwise.
    pub(super) async fn kf_accounts(&self) -> Result<Vec<RemoteAccount>, DriverError> {
        if self.kf.is_none() {
            return Ok(Vec::new());
        }
        let mut accounts = Vec::new();
        let limit = 100;
        loop {
            let body = self
                .kf_call(
                    "/kf/account/list",
                    json!({ "offset": accounts.len(), "limit": limit }),
                )
                .await?;
            let page: Vec<RemoteAccount> = body["account_list"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    Some(RemoteAccount {
                        wxid: format!("{ACCOUNT_PREFIX}{}", s(a, "open_kfid")?),
                        nickname: s(a, "name"),
                        avatar_url: s(a, "avatar"),
                        phone: None,
                        email: None,
                        status: AccountStatus::Online,
                        is_logged_in: true,
                    })
                })
                .collect();
            let full = page.len() == limit;
            accounts.extend(page);
            if !full {
                return Ok(accounts);
            }
        }
    }

    pub(super) async fn sync_kf(
        &self,
        open_kfid: &str,
        cursor: Option<&str>,
        token: Option<&str>,
    ) -> Result<KfPage, DriverError> {
        let mut body = json!({ "open_kfid": open_kfid, "limit": SYNC_LIMIT, "voice_format": 0 });
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            body["cursor"] = json!(cursor);
        }
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            body["token"] = json!(token);
        }
        let response = self.kf_call("/kf/sync_msg", body).await?;
        Ok(KfPage {
            entries: response["msg_list"].as_array().cloned().unwrap_or_default(),
            next_cursor: s(&response, "next_cursor"),
            has_more: response["has_more"].as_i64() == Some(1)
                || response["has_more"].as_bool() == Some(true),
        })
    }

    /// `kf/send_msg` of one text, with a `msgid` stable across retries.
    pub(super) async fn send_kf(
        &self,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, DriverError> {
        let open_kfid = open_kfid(&message.account_wxid).ok_or_else(|| DriverError::Permanent {
            code: "not_kf_account".into(),
            message: format!("`{}` is not a 微信客服 account", message.account_wxid),
        })?;
        if message.msgtype != MessageType::Text {
            return Err(DriverError::Unsupported(
                "the service desk sends texts through 微信客服".into(),
            ));
        }
        let content = Self::text_of(&message.payload, TEXT_LIMIT_BYTES)?;
        let msgid = msgid_for(&message.idempotency_key);
        let response = self
            .kf_call(
                "/kf/send_msg",
                json!({ "touser": message.to, "open_kfid": open_kfid, "msgid": msgid, "msgtype": "text", "text": { "content": content } }),
            )
            .await?;
        Ok(SendReceipt {
            remote_msg_id: s(&response, "msgid").or(Some(msgid)),
            ..SendReceipt::default()
        })
    }

    pub(super) async fn send_kf_on_event(&self, code: &str, text: &str) -> Result<(), DriverError> {
        let content = Self::text_of(&json!({ "content": text }), TEXT_LIMIT_BYTES)?;
        self.kf_call(
            "/kf/send_msg_on_event",
            json!({ "code": code, "msgtype": "text", "text": { "content": content } }),
        )
        .await
        .map(|_| ())
    }

    pub(super) async fn set_kf_state(
        &self,
        open_kfid: &str,
        external_userid: &str,
        state: KfServiceState,
    ) -> Result<Option<String>, DriverError> {
        let response = self
            .kf_call(
                "/kf/service_state/trans",
                json!({ "open_kfid": open_kfid, "external_userid": external_userid, "service_state": state as i64 }),
            )
            .await?;
        Ok(s(&response, "msg_code"))
    }

    pub(super) async fn kf_customer_profiles(
        &self,
        ids: &[String],
    ) -> Result<Vec<RemoteContact>, DriverError> {
        let mut profiles = Vec::new();
        for chunk in ids.chunks(CUSTOMERS_PER_CALL) {
            let response = self
                .kf_call(
                    "/kf/customer/batchget",
                    json!({ "external_userid_list": chunk, "need_enter_session_context": 0 }),
                )
                .await?;
            profiles.extend(
                response["customer_list"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        Some(RemoteContact {
                            nickname: s(c, "nickname"),
                            avatar_url: s(c, "avatar"),
                            gender: c["gender"].as_i64().and_then(|g| i16::try_from(g).ok()),
                            ..RemoteContact::external(&s(c, "external_userid")?)
                        })
                    }),
            );
        }
        Ok(profiles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kf_accounts_are_told_apart_by_their_prefix() {
        assert_eq!(open_kfid("kf:wkAbc"), Some("wkAbc"));
        assert_eq!(open_kfid("zhangsan"), None);
        assert_eq!(open_kfid("kf:"), None);
    }

    #[test]
    fn send_msgids_fit_wecom_and_repeat_per_key() {
        let id = msgid_for("task:1:receiver:2");
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(id, msgid_for("task:1:receiver:2"));
        assert_ne!(id, msgid_for("task:1:receiver:3"));
    }
}
