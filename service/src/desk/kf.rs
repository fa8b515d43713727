//! Channels on 微信客服 (WeChat customer service) accounts. WeCom's callback only says "there is
//! something new" (`kf_msg_or_event` with a token); the desk then pulls the account's log with
//! `kf/sync_msg` from the cursor it keeps on the account (`sync_cursor`), and stores every entry
//! as an inbound event keyed by WeCom's `msgid` — an entry pulled twice (two callbacks, two
//! processes, a resend) is stored once, and the worker applies it like any callback event.
//! Besides callbacks, the worker pulls every channel every `SAFETY_SYNC_SECS`, so a callback
//! lost while the instance or the database was down delays messages but loses none.
//!
//! WeCom's rules the desk keeps: it may write to a visitor only within 48 hours of their last
//! message and at most 5 times until they write again (`window`); the welcome answers
//! `enter_session` with its code; while the desk serves a visitor WeCom sees the session as
//! answered through the API (state 1), and closing it ends the session there (state 4), whose
//! code carries the rating prompt.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use entity::{
    contacts, desk_channels, desk_conversations, desk_visitors, messages,
    states::{CloseReason, MessageStatus},
    wework_accounts, wework_instances,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Context, ServiceError, ServiceResult,
    drivers::{self, KfServiceState, wecom::kf::open_kfid},
    instances::accounts::driver_failure,
};

/// WeCom lets the desk write this long after the visitor's last message…
pub const WINDOW_HOURS: i64 = 48;
/// …and this many times until they write again.
pub const WINDOW_REPLIES: i32 = 5;
/// How often the worker pulls every 微信客服 channel, callback or not.
pub const SAFETY_SYNC_SECS: u64 = 30;
/// Pages of one pull (1,000 entries each); the rest waits for the next pull.
const MAX_PAGES: usize = 20;

/// Where a 微信客服 conversation stands with WeCom's send window.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendWindow {
    /// 48 hours after the visitor's last message.
    pub closes_at: DateTime<Utc>,
    /// Messages the desk may still send before the visitor writes again (0–5); the window is
    /// open while this is above 0 and `closes_at` is ahead.
    pub replies_left: i32,
}

pub fn window(conversation: &desk_conversations::Model) -> SendWindow {
    let closes = conversation.last_visitor_message_at + TimeDelta::hours(WINDOW_HOURS);
    SendWindow {
        closes_at: crate::clock::to_utc(closes),
        replies_left: std::cmp::max(WINDOW_REPLIES - conversation.replies_since_visitor, 0),
    }
}

/// Refuses a message WeCom would drop: outside 48 hours, or the sixth before the visitor writes.
pub fn check_window(
    conversation: &desk_conversations::Model,
    now: NaiveDateTime,
) -> ServiceResult<()> {
    if window(conversation).replies_left == 0 {
        return Err(ServiceError::conflict(
            "content",
            format!(
                "微信客服 lets the desk send {WINDOW_REPLIES} messages until the visitor writes again; wait for their answer"
            ),
        ));
    }
    if now >= conversation.last_visitor_message_at + TimeDelta::hours(WINDOW_HOURS) {
        return Err(ServiceError::conflict(
            "content",
            format!(
                "微信客服 lets the desk write only within {WINDOW_HOURS} hours of the visitor's last message"
            ),
        ));
    }
    Ok(())
}

/// Takes one message of the window in a single conditional update, so replies at once cannot
/// exceed it; refused (as `check_window` says why) when it is shut.
pub async fn reserve(ctx: &Context, conversation_id: i64) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let taken = desk_conversations::Entity::update_many()
        .col_expr(
            desk_conversations::Column::RepliesSinceVisitor,
            Expr::col(desk_conversations::Column::RepliesSinceVisitor).add(1),
        )
        .filter(desk_conversations::Column::Id.eq(conversation_id))
        .filter(desk_conversations::Column::RepliesSinceVisitor.lt(WINDOW_REPLIES))
        .filter(
            desk_conversations::Column::LastVisitorMessageAt
                .gt(now - TimeDelta::hours(WINDOW_HOURS)),
        )
        .exec(&ctx.db)
        .await?
        .rows_affected;
    if taken == 1 {
        return Ok(());
    }
    let current = super::conversations::find(&ctx.db, conversation_id).await?;
    check_window(&current, now)?;
    Err(ServiceError::conflict(
        "content",
        "the send window just closed",
    ))
}

/// Gives back a reserved message whose send could not be queued.
pub async fn release(ctx: &Context, conversation_id: i64) -> ServiceResult<()> {
    desk_conversations::Entity::update_many()
        .col_expr(
            desk_conversations::Column::RepliesSinceVisitor,
            Expr::col(desk_conversations::Column::RepliesSinceVisitor).sub(1),
        )
        .filter(desk_conversations::Column::Id.eq(conversation_id))
        .filter(desk_conversations::Column::RepliesSinceVisitor.gt(0))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// The channels whose account is a 微信客服 account, with those accounts (channels are few).
async fn kf_channels<C: ConnectionTrait>(
    conn: &C,
) -> ServiceResult<Vec<(desk_channels::Model, wework_accounts::Model)>> {
    let channels = desk_channels::Entity::find().all(conn).await?;
    let accounts = wework_accounts::Entity::find()
        .filter(wework_accounts::Column::Id.is_in(channels.iter().map(|c| c.account_id)))
        .filter(wework_accounts::Column::Wxid.starts_with(drivers::wecom::kf::ACCOUNT_PREFIX))
        .all(conn)
        .await?;
    Ok(channels
        .into_iter()
        .filter_map(|c| {
            let account = accounts.iter().find(|a| a.id == c.account_id)?.clone();
            Some((c, account))
        })
        .collect())
}

/// The ids of 微信客服 channels.
pub async fn channel_ids<C: ConnectionTrait>(conn: &C) -> ServiceResult<HashSet<i64>> {
    Ok(kf_channels(conn)
        .await?
        .into_iter()
        .map(|(c, _)| c.id)
        .collect())
}

/// The channel's account and instance when it is a 微信客服 channel.
async fn kf_side(
    ctx: &Context,
    channel_id: i64,
) -> ServiceResult<Option<(wework_instances::Model, wework_accounts::Model)>> {
    let Some(channel) = desk_channels::Entity::find_by_id(channel_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    let Some(account) = wework_accounts::Entity::find_by_id(channel.account_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    if open_kfid(&account.wxid).is_none() {
        return Ok(None);
    }
    let instance = crate::instances::find_live(&ctx.db, account.instance_id).await?;
    Ok(Some((instance, account)))
}

/// `kf_msg_or_event`: pulls the account's new entries when it is an enabled channel.
pub async fn on_callback(
    ctx: &Context,
    instance: &wework_instances::Model,
    open_kfid: &str,
    token: Option<&str>,
) -> ServiceResult<()> {
    let account = kf_account(ctx, instance.id, open_kfid).await?;
    if super::intake::enabled_channel(ctx, account.id)
        .await?
        .is_none()
    {
        return Ok(());
    }
    sync(ctx, instance, &account, token).await.map(|_| ())
}

async fn kf_account(
    ctx: &Context,
    instance_id: i64,
    open_kfid: &str,
) -> ServiceResult<wework_accounts::Model> {
    let wxid = format!("{}{open_kfid}", drivers::wecom::kf::ACCOUNT_PREFIX);
    wework_accounts::Entity::find()
        .filter(wework_accounts::Column::InstanceId.eq(instance_id))
        .filter(wework_accounts::Column::Wxid.eq(wxid.as_str()))
        .one(&ctx.db)
        .await?
        .ok_or_else(|| {
            ServiceError::invalid(
                "open_kfid",
                format!("`{open_kfid}` is not a synced 微信客服 account of this instance"),
            )
        })
}

/// Pulls the account's log from its cursor and stores each entry once; returns how many were
/// new. The cursor moves only after a page is stored.
pub async fn sync(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    token: Option<&str>,
) -> ServiceResult<usize> {
    let open_kfid = open_kfid(&account.wxid)
        .ok_or_else(|| ServiceError::invalid("account", "is not a 微信客服 account"))?;
    let driver = drivers::for_instance(ctx, instance).await?;
    let mut cursor = account.sync_cursor.clone();
    let mut stored = 0;
    for _ in 0..MAX_PAGES {
        let page = drivers::with_retries(3, || driver.kf_sync(open_kfid, cursor.as_deref(), token))
            .await
            .map_err(driver_failure)?;
        learn_visitors(ctx, instance, account, driver.as_ref(), &page.entries).await;
        for entry in &page.entries {
            let Some(msgid) = entry["msgid"].as_str().filter(|m| !m.is_empty()) else {
                continue;
            };
            let kind = match entry["msgtype"].as_str() {
                Some("event") => format!(
                    "kf.{}",
                    entry["event"]["event_type"].as_str().unwrap_or("event")
                ),
                Some(other) => format!("kf.{other}"),
                None => "kf".to_owned(),
            };
            let key = format!("kf:{msgid}");
            if crate::callbacks::store(ctx, instance.id, &key, &kind, &entry.to_string()).await?
                == crate::callbacks::Stored::New
            {
                stored += 1;
            }
        }
        if let Some(next) = page.next_cursor.clone() {
            wework_accounts::Entity::update_many()
                .col_expr(
                    wework_accounts::Column::SyncCursor,
                    Expr::value(next.as_str()),
                )
                .col_expr(
                    wework_accounts::Column::LastSyncTime,
                    Expr::value(ctx.clock.now_db()),
                )
                .filter(wework_accounts::Column::Id.eq(account.id))
                .exec(&ctx.db)
                .await?;
            cursor = Some(next);
        }
        if !page.has_more {
            break;
        }
    }
    Ok(stored)
}

/// Visitors seen for the first time get their WeCom profile (nickname, avatar, gender) as a
/// contact of the account before their entries are applied, so their desk profile carries it.
/// Best effort: without it they are contacts under their id.
async fn learn_visitors(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    driver: &dyn drivers::InstanceDriver,
    entries: &[Value],
) {
    let mut ids: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            e["external_userid"]
                .as_str()
                .or_else(|| e["event"]["external_userid"].as_str())
        })
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return;
    }
    let known: HashSet<String> = match contacts::Entity::find()
        .select_only()
        .column(contacts::Column::Wxid)
        .filter(contacts::Column::AccountId.eq(account.id))
        .filter(contacts::Column::Wxid.is_in(ids.clone()))
        .filter(contacts::Column::Nickname.is_not_null())
        .into_tuple::<String>()
        .all(&ctx.db)
        .await
    {
        Ok(known) => known.into_iter().collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the visitors' contacts");
            return;
        }
    };
    ids.retain(|id| !known.contains(id));
    if ids.is_empty() {
        return;
    }
    match driver.kf_customers(&ids).await {
        Ok(profiles) => {
            if let Err(e) = crate::sync::upsert_contacts(ctx, instance, account, &profiles).await {
                tracing::warn!(error = %e, "the visitors' profiles could not be stored");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the visitors' profiles could not be read"),
    }
}

pub(super) fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// What the desk shows of a visitor's message: its text, or a short description of media.
pub(super) fn content_of(entry: &Value) -> Option<String> {
    match entry["msgtype"].as_str()? {
        "text" => text(entry, "/text/content"),
        "link" => Some(format!(
            "{} {}",
            text(entry, "/link/title").unwrap_or_default(),
            text(entry, "/link/url").unwrap_or_default()
        )),
        "location" => Some(format!(
            "[location] {} {}",
            text(entry, "/location/name").unwrap_or_default(),
            text(entry, "/location/address").unwrap_or_default()
        )),
        "miniprogram" => text(entry, "/miniprogram/title").map(|t| format!("[miniprogram] {t}")),
        other => Some(format!("[{other}]")),
    }
}

/// Applies one stored entry of a 微信客服 log (an inbound event keyed `kf:<msgid>`).
pub async fn apply_entry(
    ctx: &Context,
    instance: &wework_instances::Model,
    entry: &Value,
) -> ServiceResult<()> {
    let Some(open_kfid) = text(entry, "/open_kfid") else {
        return Ok(());
    };
    let account = kf_account(ctx, instance.id, &open_kfid).await?;
    match entry["origin"].as_i64() {
        // A WeChat user wrote.
        Some(3) => {
            let Some(from) = text(entry, "/external_userid") else {
                return Ok(());
            };
            crate::callbacks::process::store_inbound(
                ctx,
                instance,
                &account,
                &from,
                None,
                entry["msgtype"].as_str().unwrap_or("text"),
                content_of(entry),
                text(entry, "/msgid"),
            )
            .await
        }
        Some(4) => apply_event(ctx, instance, &account, &entry["event"]).await,
        // A receptionist wrote in the WeCom client: shown in the conversation too.
        Some(5) => super::kf_mirror::receptionist_message(ctx, &account, entry).await,
        _ => Ok(()),
    }
}

async fn apply_event(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    event: &Value,
) -> ServiceResult<()> {
    let visitor = text(event, "/external_userid");
    match (event["event_type"].as_str().unwrap_or_default(), visitor) {
        ("enter_session", Some(visitor)) => {
            enter_session(ctx, instance, account, &visitor, event).await
        }
        // Ended in WeCom (by a receptionist, or WeCom's own timeout): closed here too.
        ("session_status_change", Some(visitor)) if event["change_type"].as_i64() == Some(3) => {
            close_for_channel(ctx, account, &visitor).await
        }
        ("user_recall_msg" | "servicer_recall_msg", _) => {
            super::kf_mirror::recall(ctx, account, event).await
        }
        ("msg_send_fail", _) => {
            if let Some(failed) = text(event, "/fail_msgid") {
                tracing::warn!(account = account.id, msgid = %failed, "微信客服 could not deliver a message");
                messages::Entity::update_many()
                    .col_expr(
                        messages::Column::SendStatus,
                        Expr::value(MessageStatus::Failed),
                    )
                    .col_expr(
                        messages::Column::ErrorMessage,
                        Expr::value(format!(
                            "微信客服 reported the message undeliverable (fail_type {})",
                            event["fail_type"].as_i64().unwrap_or_default()
                        )),
                    )
                    .filter(messages::Column::InstanceId.eq(instance.id))
                    .filter(messages::Column::RemoteMsgId.eq(failed.as_str()))
                    .exec(&ctx.db)
                    .await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The visitor opened the chat (from a link or QR code): their profile records where from, and
/// the channel's welcome answers with the event's code (once, within 20 seconds).
async fn enter_session(
    ctx: &Context,
    instance: &wework_instances::Model,
    account: &wework_accounts::Model,
    visitor: &str,
    event: &Value,
) -> ServiceResult<()> {
    let Some(channel) = super::intake::enabled_channel(ctx, account.id).await? else {
        return Ok(());
    };
    let contact_id = super::intake::ensure_contact(ctx, instance, account, visitor).await?;
    let profile = super::intake::visitor_for(ctx, &channel, visitor, contact_id).await?;
    if let Some(scene) = text(event, "/scene_param").or_else(|| text(event, "/scene")) {
        desk_visitors::Entity::update_many()
            .col_expr(
                desk_visitors::Column::SourceScene,
                Expr::value(scene.chars().take(128).collect::<String>()),
            )
            .filter(desk_visitors::Column::Id.eq(profile.id))
            .exec(&ctx.db)
            .await?;
    }
    if let (Some(code), Some(welcome)) = (text(event, "/welcome_code"), channel.welcome_message) {
        let driver = drivers::for_instance(ctx, instance).await?;
        if let Err(e) = driver.kf_send_on_event(&code, &welcome).await {
            tracing::warn!(channel = channel.id, error = %e, "the 微信客服 welcome could not be sent");
        }
    }
    Ok(())
}

async fn close_for_channel(
    ctx: &Context,
    account: &wework_accounts::Model,
    visitor: &str,
) -> ServiceResult<()> {
    let Some((_, open)) = super::kf_mirror::open_conversations(ctx, account, visitor).await? else {
        return Ok(());
    };
    for conversation in open {
        super::conversations::close_as(ctx, &conversation, CloseReason::Channel).await?;
    }
    Ok(())
}

/// The desk took the visitor's new conversation: WeCom sees the session answered through the
/// API (its 智能助手 state), where only the API may write. Best effort: a session WeCom already
/// has there, or a failing instance, leaves it as it was.
pub async fn serve_session(ctx: &Context, conversation: &desk_conversations::Model) {
    if let Err(e) = set_state(ctx, conversation, KfServiceState::Api).await {
        tracing::warn!(conversation = conversation.id, error = %e, "the 微信客服 session state could not be set");
    }
}

/// Ends the visitor's WeCom session; with `prompt`, sends it as the session's closing message
/// (WeCom's 结束语 code). Whether the prompt went out that way.
pub async fn end_session(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    prompt: Option<&str>,
) -> bool {
    let code = match set_state(ctx, conversation, KfServiceState::Ended).await {
        Ok(Some(code)) => code,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(conversation = conversation.id, error = %e, "the 微信客服 session could not be ended");
            return false;
        }
    };
    let Some(prompt) = prompt else {
        return false;
    };
    let sent = async {
        let Some((instance, _)) = kf_side(ctx, conversation.channel_id).await? else {
            return Ok::<_, ServiceError>(false);
        };
        let driver = drivers::for_instance(ctx, &instance).await?;
        driver
            .kf_send_on_event(&code, prompt)
            .await
            .map_err(driver_failure)?;
        super::conversations::note_desk_text(ctx, conversation, prompt.to_owned()).await?;
        Ok(true)
    }
    .await;
    sent.unwrap_or_else(|e| {
        tracing::warn!(conversation = conversation.id, error = %e, "the closing prompt could not go out with the session's code");
        false
    })
}

/// Sets the session state; `Ok(None)` for channels that are not 微信客服, or no code.
async fn set_state(
    ctx: &Context,
    conversation: &desk_conversations::Model,
    state: KfServiceState,
) -> ServiceResult<Option<String>> {
    let Some((instance, account)) = kf_side(ctx, conversation.channel_id).await? else {
        return Ok(None);
    };
    let Some(visitor) = desk_visitors::Entity::find_by_id(conversation.visitor_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    let open_kfid = open_kfid(&account.wxid).unwrap_or_default();
    let driver = drivers::for_instance(ctx, &instance).await?;
    driver
        .kf_set_state(open_kfid, &visitor.external_id, state)
        .await
        .map_err(driver_failure)
}

/// The worker's pull of every enabled 微信客服 channel, at most every `SAFETY_SYNC_SECS` per
/// process. Returns the entries stored.
pub async fn sync_all(ctx: &Context) -> ServiceResult<usize> {
    // Per context (its settings are one allocation, shared by its clones): several contexts in
    // one process — tests, the bench — each keep their own pace.
    static LAST: LazyLock<Mutex<HashMap<usize, Instant>>> = LazyLock::new(Mutex::default);
    {
        let Ok(mut last) = LAST.lock() else {
            return Ok(0);
        };
        let key = Arc::as_ptr(&ctx.settings) as usize;
        if last
            .get(&key)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(SAFETY_SYNC_SECS))
        {
            return Ok(0);
        }
        last.insert(key, Instant::now());
    }
    let mut stored = 0;
    for (_, account) in kf_channels(&ctx.db)
        .await?
        .into_iter()
        .filter(|(channel, _)| channel.enabled)
    {
        let instance = match crate::instances::find_live(&ctx.db, account.instance_id).await {
            Ok(instance) => instance,
            Err(_) => continue,
        };
        match sync(ctx, &instance, &account, None).await {
            Ok(n) => stored += n,
            Err(e) => {
                tracing::warn!(account = account.id, error = %e, "微信客服 pull failed; the next one retries")
            }
        }
    }
    Ok(stored)
}
