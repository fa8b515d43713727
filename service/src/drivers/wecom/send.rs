//! Sending through the official API: app messages (`message/send`, `appchat/send`), robot
//! webhooks, and customer mass messages (`add_msg_template`) with their results, reminders and
//! withdrawal.

use super::*;

impl WecomDriver {
    pub(super) fn text_of(payload: &Value, limit: usize) -> Result<String, DriverError> {
        let content = payload["content"].as_str().unwrap_or_default().to_owned();
        if content.len() > limit {
            return Err(DriverError::Permanent {
                code: "45002".into(),
                message: format!(
                    "text is {} bytes; WeCom takes at most {limit}",
                    content.len()
                ),
            });
        }
        Ok(content)
    }

    /// The `msgtype` and body of an app message (`message/send`, `appchat/send`).
    fn app_body(message: &OutboundMessage) -> Result<(String, Value), DriverError> {
        Ok(match message.msgtype {
            MessageType::Text => (
                "text".into(),
                json!({ "content": Self::text_of(&message.payload, TEXT_LIMIT_BYTES)? }),
            ),
            MessageType::Link => (
                "news".into(),
                json!({ "articles": [message.payload.clone()] }),
            ),
            MessageType::Image | MessageType::File => {
                (message.msgtype.as_str().to_owned(), message.payload.clone())
            }
            MessageType::Miniprogram => ("miniprogram_notice".into(), message.payload.clone()),
        })
    }

    pub(super) async fn deliver(
        &self,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, DriverError> {
        match message.channel {
            Channel::AppMessage => {
                let agent_id = self
                    .settings
                    .agent_id
                    .ok_or_else(|| DriverError::Permanent {
                        code: "no_agent_id".into(),
                        message: "the instance has no `agent_id` configured".into(),
                    })?;
                let (msgtype, payload) = Self::app_body(message)?;
                let mut body = json!({ "touser": message.to, "msgtype": msgtype, "agentid": agent_id, "enable_duplicate_check": 1, "duplicate_check_interval": 1800 });
                body[msgtype.as_str()] = payload;
                let response = self
                    .call(Method::POST, "/message/send", "", Some(body))
                    .await?;
                let invalid = s(&response, "invaliduser").unwrap_or_default();
                if invalid
                    .split('|')
                    .any(|u| u.eq_ignore_ascii_case(&message.to))
                {
                    return Err(DriverError::Permanent {
                        code: "81013".into(),
                        message: format!("WeCom reports `{}` as an invalid user", message.to),
                    });
                }
                Ok(SendReceipt {
                    remote_msg_id: s(&response, "msgid"),
                    ..SendReceipt::default()
                })
            }
            Channel::AppChat => {
                let (msgtype, payload) = Self::app_body(message)?;
                let mut body = json!({ "chatid": message.to, "msgtype": msgtype });
                body[msgtype.as_str()] = payload;
                self.call(Method::POST, "/appchat/send", "", Some(body))
                    .await?;
                Ok(SendReceipt::default())
            }
            Channel::CustomerMass => {
                let receipt = self
                    .send_mass(&MassMessage {
                        account_wxid: message.account_wxid.clone(),
                        targets: vec![message.to.clone()],
                        to_group: message.to_group,
                        msgtype: message.msgtype,
                        payload: message.payload.clone(),
                    })
                    .await?;
                if !receipt.rejected.is_empty() {
                    return Err(rejected_target(&message.to));
                }
                Ok(SendReceipt {
                    remote_msg_id: Some(receipt.msgid),
                    awaiting_confirmation: true,
                    replayed: false,
                })
            }
            Channel::Robot => {
                let key =
                    self.settings
                        .robot_key
                        .clone()
                        .ok_or_else(|| DriverError::Permanent {
                            code: "no_robot_key".into(),
                            message: "the instance has no `robot_key` configured".into(),
                        })?;
                let body = json!({ "msgtype": "text", "text": { "content": Self::text_of(&message.payload, TEXT_LIMIT_BYTES)? } });
                let url = format!(
                    "{}?key={}",
                    self.url("/webhook/send"),
                    url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
                );
                let response = self.http(Method::POST, &url, Some(&body)).await?;
                match response["errcode"].as_i64().unwrap_or(-1) {
                    0 => Ok(SendReceipt::default()),
                    code => Err(errors::classify(
                        code,
                        response["errmsg"].as_str().unwrap_or(""),
                    )),
                }
            }
            Channel::WecomKf => self.send_kf(message).await,
            Channel::Direct => Err(DriverError::Unsupported(
                "official WeCom apps send through app_message, app_chat, customer_mass or robot"
                    .into(),
            )),
        }
    }
    pub(super) async fn deliver_mass(
        &self,
        message: &MassMessage,
    ) -> Result<MassReceipt, DriverError> {
        let limit = if message.to_group {
            MASS_MAX_GROUPS
        } else {
            MASS_MAX_CUSTOMERS
        };
        if message.targets.is_empty() || message.targets.len() > limit {
            return Err(DriverError::Permanent {
                code: "40058".into(),
                message: format!("a mass message takes 1 to {limit} targets"),
            });
        }
        let mut body = json!({
            "chat_type": if message.to_group { "group" } else { "single" },
            "sender": message.account_wxid,
            "allow_select": false,
        });
        body[if message.to_group {
            "chat_id_list"
        } else {
            "external_userid"
        }] = json!(message.targets);
        if message.msgtype == MessageType::Text {
            body["text"] =
                json!({ "content": Self::text_of(&message.payload, MASS_TEXT_LIMIT_BYTES)? });
        } else {
            body["attachments"] = json!([{ "msgtype": message.msgtype, (message.msgtype.as_str()): message.payload }]);
        }
        let response = self
            .call(
                Method::POST,
                "/externalcontact/add_msg_template",
                "",
                Some(body),
            )
            .await?;
        let rejected: Vec<String> = response["fail_list"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        match s(&response, "msgid") {
            Some(msgid) => Ok(MassReceipt { msgid, rejected }),
            None if rejected.len() == message.targets.len() => Ok(MassReceipt {
                msgid: String::new(),
                rejected,
            }),
            None => Err(DriverError::Permanent {
                code: "no_msgid".into(),
                message: "WeCom accepted the mass message but returned no msgid".into(),
            }),
        }
    }

    pub(super) async fn fetch_mass_results(
        &self,
        msgid: &str,
    ) -> Result<Vec<MassResult>, DriverError> {
        let mut senders = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .call(
                    Method::POST,
                    "/externalcontact/get_groupmsg_task",
                    "",
                    Some(json!({ "msgid": msgid, "limit": 1000, "cursor": cursor })),
                )
                .await?;
            senders.extend(
                page["task_list"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| s(t, "userid")),
            );
            match s(&page, "next_cursor") {
                Some(next) => cursor = next,
                None => break,
            }
        }
        let mut results = Vec::new();
        for userid in senders {
            let mut cursor = String::new();
            loop {
                let page = self
                    .call(
                        Method::POST,
                        "/externalcontact/get_groupmsg_send_result",
                        "",
                        Some(
                            json!({ "msgid": msgid, "userid": userid, "limit": 1000, "cursor": cursor }),
                        ),
                    )
                    .await?;
                for item in page["send_list"].as_array().into_iter().flatten() {
                    let Some(target) = s(item, "external_userid").or_else(|| s(item, "chat_id"))
                    else {
                        continue;
                    };
                    results.push(MassResult {
                        target,
                        state: mass_state(item["status"].as_i64().unwrap_or(0)),
                    });
                }
                match s(&page, "next_cursor") {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
        }
        Ok(results)
    }

    pub(super) async fn remind_mass(&self, msgid: &str) -> Result<(), DriverError> {
        self.call(
            Method::POST,
            "/externalcontact/remind_groupmsg_send",
            "",
            Some(json!({ "msgid": msgid })),
        )
        .await
        .map(drop)
    }

    pub(super) async fn cancel_mass(&self, msgid: &str) -> Result<(), DriverError> {
        self.call(
            Method::POST,
            "/externalcontact/cancel_groupmsg_send",
            "",
            Some(json!({ "msgid": msgid })),
        )
        .await
        .map(drop)
    }
}

/// `get_groupmsg_send_result` status: 0 unsent, 1 sent, 2 not a contact any more, 3 the customer
/// already received another mass message (quota).
fn mass_state(status: i64) -> MassState {
    match status {
        1 => MassState::Sent,
        2 => MassState::Failed {
            code: "not_friend".into(),
            reason: "the customer is no longer a contact of the member".into(),
        },
        3 => MassState::Failed {
            code: "customer_quota".into(),
            reason: "the customer already received another mass message in this period".into(),
        },
        _ => MassState::Waiting,
    }
}

fn rejected_target(target: &str) -> DriverError {
    DriverError::Permanent {
        code: "40096".into(),
        message: format!("WeCom could not queue a message to `{target}`"),
    }
}
