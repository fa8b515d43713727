//! Applies stored inbound events: messages received, delivery reports, account status, contact
//! and group changes. A worker claims an event with a lease and marks it processed once applied.
//! An apply that fails on a passing fault (the database or an instance away) is retried with a
//! growing delay, and an event whose worker died mid-apply is taken again when its lease ends;
//! every apply is idempotent, so a retry never stores a message twice. An event that cannot be
//! applied (an unknown account, a malformed payload) or failed `MAX_ATTEMPTS` times is marked
//! processed with its error.

use std::time::Duration;

use chrono::TimeDelta;
use entity::states::{AccountStatus, ChatType, FriendStatus, MessageDirection, MessageStatus};
use entity::{contacts, inbound_events, messages, wework_accounts, wework_instances};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use serde_json::Value;

use super::wecom_crypto::xml_field;
use crate::{Context, ServiceError, ServiceResult, drivers::RemoteContact};

/// How long a claimed event stays with its worker before another may take it (a worker that
/// died mid-apply).
const LEASE_SECS: i64 = 60;
/// Applies of one event before it is given up and kept with its last error.
pub const MAX_ATTEMPTS: i32 = 8;

/// Applies up to `limit` due events; returns how many were handled.
pub async fn pending(ctx: &Context, limit: u64) -> ServiceResult<usize> {
    let now = ctx.clock.now_db();
    let events = inbound_events::Entity::find()
        .filter(inbound_events::Column::ProcessedAt.is_null())
        .filter(
            Condition::any()
                .add(inbound_events::Column::LeaseUntil.is_null())
                .add(inbound_events::Column::LeaseUntil.lte(now)),
        )
        .order_by_asc(inbound_events::Column::Id)
        .limit(limit)
        .all(&ctx.db)
        .await?;
    let count = events.len();
    for event in events {
        // Claim it: a second worker racing for the same event finds the attempt count moved
        // and updates nothing.
        let claimed = inbound_events::Entity::update_many()
            .col_expr(
                inbound_events::Column::Attempts,
                Expr::value(event.attempts + 1),
            )
            .col_expr(
                inbound_events::Column::LeaseUntil,
                Expr::value(ctx.clock.now_db() + TimeDelta::seconds(LEASE_SECS)),
            )
            .filter(inbound_events::Column::Id.eq(event.id))
            .filter(inbound_events::Column::ProcessedAt.is_null())
            .filter(inbound_events::Column::Attempts.eq(event.attempts))
            .exec(&ctx.db)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        let attempt = event.attempts + 1;
        let outcome = apply(ctx, &event).await;
        if let Err(e) = &outcome {
            tracing::warn!(event.id = event.id, event.r#type = %event.event_type, attempt, error = %e, "inbound event could not be applied");
        }
        settle(ctx, event.id, attempt, outcome).await?;
    }
    Ok(count)
}

/// Whether a failed apply may succeed later: the database or an instance was away, not the
/// event itself at fault.
fn passing(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::Database(_) | ServiceError::Unavailable(_) | ServiceError::Internal(_)
    )
}

/// Delay before the next attempt: 2, 4, 8 … seconds, at most 256.
fn backoff(attempt: i32) -> TimeDelta {
    TimeDelta::seconds(1_i64 << attempt.clamp(1, 8))
}

/// Records how an attempt ended. The database may be the thing that failed: the record is
/// tried again for a while, and if it still cannot be written the lease hands the event to a
/// later pass.
async fn settle(
    ctx: &Context,
    id: i64,
    attempt: i32,
    outcome: ServiceResult<()>,
) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let update = inbound_events::Entity::update_many();
    let update = match &outcome {
        Ok(()) => update
            .col_expr(inbound_events::Column::ProcessedAt, Expr::value(now))
            .col_expr(
                inbound_events::Column::ErrorMessage,
                Expr::value(Option::<String>::None),
            ),
        Err(e) if passing(e) && attempt < MAX_ATTEMPTS => update
            .col_expr(
                inbound_events::Column::LeaseUntil,
                Expr::value(now + backoff(attempt)),
            )
            .col_expr(
                inbound_events::Column::ErrorMessage,
                Expr::value(e.to_string()),
            ),
        Err(e) => update
            .col_expr(inbound_events::Column::ProcessedAt, Expr::value(now))
            .col_expr(
                inbound_events::Column::ErrorMessage,
                Expr::value(e.to_string()),
            ),
    }
    .filter(inbound_events::Column::Id.eq(id))
    .filter(inbound_events::Column::Attempts.eq(attempt));
    let mut tries = 0;
    loop {
        match update.clone().exec(&ctx.db).await {
            Ok(_) => return Ok(()),
            Err(e) if tries >= 30 => return Err(e.into()),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn apply(ctx: &Context, event: &inbound_events::Model) -> ServiceResult<()> {
    let instance = wework_instances::Entity::find_by_id(event.instance_id)
        .one(&ctx.db)
        .await?
        .ok_or(ServiceError::NotFound("instance"))?;
    if event.event_key.starts_with("kf:") {
        let entry: Value = serde_json::from_str(&event.payload)
            .map_err(|e| ServiceError::invalid("payload", e.to_string()))?;
        crate::desk::kf::apply_entry(ctx, &instance, &entry).await
    } else if event.event_key.starts_with("agent:") {
        let body: Value = serde_json::from_str(&event.payload)
            .map_err(|e| ServiceError::invalid("payload", e.to_string()))?;
        apply_agent(ctx, &instance, &body).await
    } else {
        apply_wecom(ctx, &instance, &event.payload).await
    }
}

async fn account(
    ctx: &Context,
    instance_id: i64,
    wxid: &str,
) -> ServiceResult<wework_accounts::Model> {
    wework_accounts::Entity::find()
        .filter(wework_accounts::Column::InstanceId.eq(instance_id))
        .filter(wework_accounts::Column::Wxid.eq(wxid))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| {
            ServiceError::invalid(
                "account_wxid",
                format!("`{wxid}` is not a synced account of this instance"),
            )
        })
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

async fn apply_agent(
    ctx: &Context,
    instance: &wework_instances::Model,
    body: &Value,
) -> ServiceResult<()> {
    let kind = body["type"].as_str().unwrap_or_default();
    let wxid = body["account_wxid"].as_str().unwrap_or_default();
    let data = &body["data"];
    match kind {
        "message.received" => {
            let account = account(ctx, instance.id, wxid).await?;
            let from = text(data, "from").unwrap_or_default();
            let group = text(data, "group");
            store_inbound(
                ctx,
                instance,
                &account,
                &from,
                group.as_deref(),
                text(data, "msgtype").as_deref().unwrap_or("text"),
                text(data, "content"),
                text(data, "message_id"),
            )
            .await
        }
        "message.delivered" | "message.failed" => {
            let status = if kind == "message.delivered" {
                MessageStatus::Delivered
            } else {
                MessageStatus::Failed
            };
            let Some(remote) = text(data, "message_id") else {
                return Ok(());
            };
            messages::Entity::update_many()
                .col_expr(messages::Column::SendStatus, Expr::value(status))
                .col_expr(
                    messages::Column::ErrorMessage,
                    Expr::value(text(data, "error")),
                )
                .col_expr(messages::Column::UpdatedAt, Expr::value(ctx.clock.now_db()))
                .filter(messages::Column::InstanceId.eq(instance.id))
                .filter(messages::Column::RemoteMsgId.eq(remote.as_str()))
                .exec(&ctx.db)
                .await?;
            // A send the agent had answered `pending`: the report settles its receiver (and
            // its message row) and moves the task's counters.
            let resolution = if kind == "message.delivered" {
                crate::dispatch::confirm::Resolution::Sent
            } else {
                crate::dispatch::confirm::Resolution::Failed {
                    code: "agent_failed".into(),
                    reason: text(data, "error")
                        .unwrap_or_else(|| "the agent reported a failure".into()),
                }
            };
            crate::dispatch::confirm::resolve_remote(ctx, instance.id, &remote, resolution).await?;
            Ok(())
        }
        "account.online" | "account.offline" => {
            let online = kind == "account.online";
            if online && account(ctx, instance.id, wxid).await.is_err() {
                // A newly logged-in account: pull it (and its contacts) now.
                crate::sync::queue(ctx, instance.id, None).await?;
                return Ok(());
            }
            wework_accounts::Entity::update_many()
                .col_expr(
                    wework_accounts::Column::Status,
                    Expr::value(if online {
                        AccountStatus::Online
                    } else {
                        AccountStatus::Offline
                    }),
                )
                .col_expr(wework_accounts::Column::IsLoggedIn, Expr::value(online))
                .col_expr(
                    wework_accounts::Column::UpdatedAt,
                    Expr::value(ctx.clock.now_db()),
                )
                .filter(wework_accounts::Column::InstanceId.eq(instance.id))
                .filter(wework_accounts::Column::Wxid.eq(wxid))
                .exec(&ctx.db)
                .await?;
            Ok(())
        }
        "contact.added" | "contact.updated" => {
            let account = account(ctx, instance.id, wxid).await?;
            let contact: RemoteContact = serde_json::from_value(data["contact"].clone())
                .map_err(|e| ServiceError::invalid("data.contact", e.to_string()))?;
            crate::sync::upsert_contacts(ctx, instance, &account, &[contact])
                .await
                .map(|_| ())
        }
        "contact.deleted" => {
            let account = account(ctx, instance.id, wxid).await?;
            mark_contact_deleted(ctx, account.id, &text(data, "wxid").unwrap_or_default()).await
        }
        // Group changes and anything newer than this version are kept for the next sync to settle.
        _ => Ok(()),
    }
}

async fn apply_wecom(
    ctx: &Context,
    instance: &wework_instances::Model,
    xml: &str,
) -> ServiceResult<()> {
    let msg_type = xml_field(xml, "MsgType").unwrap_or_default();
    if msg_type == "event" {
        let event = xml_field(xml, "Event").unwrap_or_default();
        let change = xml_field(xml, "ChangeType").unwrap_or_default();
        if event == "kf_msg_or_event" {
            // 微信客服: the callback only announces news; the desk pulls it.
            let Some(open_kfid) = xml_field(xml, "OpenKfId") else {
                return Ok(());
            };
            let token = xml_field(xml, "Token");
            return crate::desk::kf::on_callback(ctx, instance, &open_kfid, token.as_deref()).await;
        }
        if event != "change_external_contact" {
            return Ok(());
        }
        let (Some(user), Some(external)) =
            (xml_field(xml, "UserID"), xml_field(xml, "ExternalUserID"))
        else {
            return Ok(());
        };
        let account = account(ctx, instance.id, &user).await?;
        return match change.as_str() {
            "add_external_contact" | "edit_external_contact" | "add_half_external_contact" => {
                let contact = RemoteContact {
                    add_time: xml_field(xml, "CreateTime").and_then(|t| t.parse().ok()),
                    ..RemoteContact::external(&external)
                };
                crate::sync::upsert_contacts(ctx, instance, &account, &[contact])
                    .await
                    .map(|_| ())
            }
            "del_external_contact" | "del_follow_user" => {
                mark_contact_deleted(ctx, account.id, &external).await
            }
            _ => Ok(()),
        };
    }
    // A member wrote to the app: store it as an inbound message of that member's account.
    let Some(from) = xml_field(xml, "FromUserName") else {
        return Ok(());
    };
    let Ok(account) = account(ctx, instance.id, &from).await else {
        return Ok(());
    };
    store_inbound(
        ctx,
        instance,
        &account,
        &from,
        None,
        &msg_type,
        xml_field(xml, "Content"),
        xml_field(xml, "MsgId"),
    )
    .await
}

async fn mark_contact_deleted(ctx: &Context, account_id: i64, wxid: &str) -> ServiceResult<()> {
    contacts::Entity::update_many()
        .col_expr(
            contacts::Column::FriendStatus,
            Expr::value(FriendStatus::Deleted),
        )
        .col_expr(contacts::Column::UpdatedAt, Expr::value(ctx.clock.now_db()))
        .filter(contacts::Column::AccountId.eq(account_id))
        .filter(contacts::Column::Wxid.eq(wxid))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// Whether an inbound message with this remote id is already stored (an event applied again).
async fn already_stored(
    ctx: &Context,
    instance_id: i64,
    remote_id: Option<&str>,
) -> ServiceResult<bool> {
    let Some(remote) = remote_id else {
        return Ok(false);
    };
    Ok(messages::Entity::find()
        .filter(messages::Column::InstanceId.eq(instance_id))
        .filter(messages::Column::RemoteMsgId.eq(remote))
        .filter(messages::Column::Direction.eq(MessageDirection::In))
        .count(&ctx.db)
        .await?
        > 0)
}

/// Stores a received message and what follows from it (the desk, an opt-out, the reply counted
/// to a broadcast, the contact's last chat time). Idempotent by remote id, so a retried event
/// does each part once: the message and its counting are one transaction, the desk keeps its
/// own deduplication.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn store_inbound(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    from: &str,
    group: Option<&str>,
    msgtype: &str,
    content: Option<String>,
    remote_id: Option<String>,
) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let chat = group.unwrap_or(from);
    let contact_id = crate::desk::intake::contact_id(&ctx.db, account.id, from).await?;
    if !already_stored(ctx, instance.id, remote_id.as_deref()).await? {
        let opted_out = match (contact_id, group, content.as_deref()) {
            (Some(id), None, Some(text)) => {
                let sender = crate::contacts::opt_out::InboundContact {
                    id,
                    account_id: account.id,
                    wxid: from,
                };
                crate::contacts::opt_out::on_inbound_message(ctx, instance, sender, text).await?
            }
            _ => false,
        };
        let row = messages::ActiveModel {
            message_uuid: Set(crate::messages::new_message_uuid()),
            direction: Set(MessageDirection::In),
            instance_id: Set(instance.id),
            account_id: Set(account.id),
            chat_type: Set(if group.is_some() {
                ChatType::Group
            } else {
                ChatType::Private
            }),
            chat_wxid: Set(chat.chars().take(100).collect()),
            contact_id: Set(contact_id),
            sender_wxid: Set(Some(from.chars().take(100).collect())),
            remote_msg_id: Set(remote_id.as_ref().map(|r| r.chars().take(100).collect())),
            message_type: Set(msgtype.chars().take(20).collect()),
            message_content: Set(content.clone()),
            send_status: Set(MessageStatus::Received),
            receive_time: Set(Some(now)),
            retry_count: Set(0),
            is_scheduled: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let txn = crate::db::begin(&ctx.db).await?;
        messages::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
        let mut attributed = None;
        if let Some(id) = contact_id {
            if group.is_none() && content.is_some() {
                attributed =
                    crate::tasks::outcomes::attribute_reply(ctx, &txn, id, now, opted_out).await?;
            }
            contacts::Entity::update_many()
                .col_expr(contacts::Column::LastChatTime, Expr::value(now))
                .filter(contacts::Column::AccountId.eq(account.id))
                .filter(contacts::Column::Wxid.eq(from))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        if let Some(reply) = attributed {
            reply.emit(ctx).await;
        }
    }
    if group.is_none() {
        // A private message to an account that is a service-desk channel joins a conversation.
        crate::desk::intake::on_inbound(
            ctx,
            crate::desk::intake::Inbound {
                instance,
                account,
                from,
                contact_id,
                msgtype,
                content: content.as_deref(),
                remote_id: remote_id.as_deref(),
            },
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_faults_are_retried() {
        assert!(passing(&ServiceError::Database(sea_orm::DbErr::Custom(
            "connection refused".into()
        ))));
        assert!(passing(&ServiceError::Unavailable(
            "instance offline".into()
        )));
        assert!(!passing(&ServiceError::invalid("account_wxid", "unknown")));
        assert!(!passing(&ServiceError::NotFound("instance")));
    }

    #[test]
    fn retries_back_off_up_to_a_bound() {
        let delays: Vec<i64> = (1..=MAX_ATTEMPTS + 2)
            .map(|a| backoff(a).num_seconds())
            .collect();
        assert_eq!(delays[..4], [2, 4, 8, 16]);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), 256);
    }
}
