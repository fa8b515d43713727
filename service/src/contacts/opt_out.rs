//! Marketing opt-out (退订). A contact opts out by sending one of the configured keywords in a
//! private message (on any channel), or a user opts them out or back in; broadcasts then skip
//! them with the reason `unsubscribed`. Single messages (service replies) still reach them.

use chrono::NaiveDateTime;
use entity::{
    contacts, message_receivers, message_tasks,
    states::{ReceiverStatus, TaskType},
    wework_instances,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
    sea_query::{Expr, SimpleExpr},
};
use serde::Deserialize;

use super::{ContactView, find, find_visible, views};
use crate::{
    Context, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::{Actor, RequestMeta},
    rbac::perm,
    validate::{self, Violations},
};

/// Longest opt-out message or reason kept (the column's width).
const MESSAGE_CHARS: usize = 500;

/// A text as compared with the keywords: full-width forms folded to ASCII (ＴＤ → TD), the
/// ideographic space to a space, surrounding whitespace and punctuation-free case ignored.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect::<String>()
        .trim()
        .to_lowercase()
}

/// Whether `text` is exactly one of `keywords` (after [`normalize`] on both sides).
pub fn is_opt_out(text: &str, keywords: &[String]) -> bool {
    let text = normalize(text);
    !text.is_empty() && keywords.iter().any(|k| normalize(k) == text)
}

/// Columns that mark a contact opted out now, through `source`, with `message`.
fn opted_out(
    now: NaiveDateTime,
    source: &str,
    message: Option<&str>,
) -> [(contacts::Column, SimpleExpr); 3] {
    [
        (contacts::Column::UnsubscribedAt, Expr::value(Some(now))),
        (
            contacts::Column::UnsubscribeSource,
            Expr::value(Some(source.to_owned())),
        ),
        (
            contacts::Column::UnsubscribeMessage,
            Expr::value(message.map(|m| m.chars().take(MESSAGE_CHARS).collect::<String>())),
        ),
    ]
}

/// Opts out the contacts (by account and wxid) still subscribed; the first opt-out's time and
/// message are kept. Returns how many changed.
pub async fn opt_out_wxids<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    wxids: &[String],
    now: NaiveDateTime,
    source: &str,
    message: Option<&str>,
) -> ServiceResult<u64> {
    let mut changed = 0;
    for chunk in wxids.chunks(500) {
        let mut update = contacts::Entity::update_many();
        for (column, value) in opted_out(now, source, message) {
            update = update.col_expr(column, value);
        }
        changed += update
            .col_expr(contacts::Column::UpdatedAt, Expr::value(now))
            .filter(contacts::Column::AccountId.eq(account_id))
            .filter(contacts::Column::Wxid.is_in(chunk.iter().cloned()))
            .filter(contacts::Column::UnsubscribedAt.is_null())
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok(changed)
}

/// Subscribes the contacts (by account and wxid) again. Returns how many changed.
pub async fn opt_in_wxids<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    wxids: &[String],
    now: NaiveDateTime,
) -> ServiceResult<u64> {
    let mut changed = 0;
    for chunk in wxids.chunks(500) {
        changed += contacts::Entity::update_many()
            .col_expr(
                contacts::Column::UnsubscribedAt,
                Expr::value(Option::<NaiveDateTime>::None),
            )
            .col_expr(
                contacts::Column::UnsubscribeSource,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                contacts::Column::UnsubscribeMessage,
                Expr::value(Option::<String>::None),
            )
            .col_expr(contacts::Column::UpdatedAt, Expr::value(now))
            .filter(contacts::Column::AccountId.eq(account_id))
            .filter(contacts::Column::Wxid.is_in(chunk.iter().cloned()))
            .filter(contacts::Column::UnsubscribedAt.is_not_null())
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok(changed)
}

/// An inbound private message from a contact: when it is an opt-out keyword, the contact is
/// opted out (once) and, when configured, told so. Returns whether it opted the contact out.
pub async fn on_inbound_message(
    ctx: &Context,
    instance: &wework_instances::Model,
    contact: InboundContact<'_>,
    content: &str,
) -> ServiceResult<bool> {
    let settings = &ctx.settings.contacts;
    if !is_opt_out(content, &settings.opt_out_keywords) {
        return Ok(false);
    }
    let now = ctx.clock.now_db();
    let source = instance.kind.to_string();
    let changed = opt_out_wxids(
        &ctx.db,
        contact.account_id,
        &[contact.wxid.to_owned()],
        now,
        &source,
        Some(content),
    )
    .await?;
    if changed == 0 {
        return Ok(false);
    }
    tracing::info!(
        contact = contact.id,
        source,
        "contact opted out of broadcasts"
    );
    let reply = settings.opt_out_reply.trim();
    // Only agents chat one to one on their own; a WeCom app reaches an external contact only
    // through a mass message its member must confirm, which is no way to answer a 退订.
    if !reply.is_empty() && instance.kind == entity::states::InstanceKind::Agent {
        send_reply(ctx, contact, reply).await;
    }
    Ok(true)
}

/// Queues the confirmation reply as a single message (rate limits, retries and exactly-once as
/// any send), on behalf of the user whose broadcast last reached the contact: the campaign that
/// prompted the 退订 answers it. Without such a broadcast there is nobody to send as, and no
/// reply. A reply that cannot be queued is logged; the opt-out stands either way.
async fn send_reply(ctx: &Context, contact: InboundContact<'_>, reply: &str) {
    let author: Result<Option<i64>, sea_orm::DbErr> = message_receivers::Entity::find()
        .select_only()
        .column(message_tasks::Column::CreatedBy)
        .join(
            JoinType::InnerJoin,
            message_receivers::Relation::MessageTasks.def(),
        )
        .filter(message_receivers::Column::ContactId.eq(contact.id))
        .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Sent))
        .filter(message_tasks::Column::TaskType.ne(TaskType::Single))
        .order_by_desc(message_receivers::Column::Id)
        .into_tuple()
        .one(&ctx.db)
        .await;
    let author = match author {
        Ok(Some(user)) => user,
        Ok(None) => {
            tracing::info!(
                contact = contact.id,
                "no broadcast reached the contact: no opt-out reply"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(contact = contact.id, error = %e, "opt-out reply not queued");
            return;
        }
    };
    let mut platform = Actor::system(RequestMeta::default());
    platform.user_id = Some(author);
    platform.permissions = std::sync::Arc::new(["messages:send".to_owned()].into());
    let input = crate::messages::MessageInput {
        contact_id: Some(contact.id),
        group_id: None,
        account_id: Some(contact.account_id),
        channel: entity::states::Channel::Direct,
        template_id: None,
        message_type: None,
        content: Some(reply.to_owned()),
        payload: None,
        variables: serde_json::Map::new(),
        scheduled_time: None,
    };
    if let Err(e) = crate::messages::send(ctx, &platform, input).await {
        tracing::warn!(contact = contact.id, error = %e, "opt-out reply not queued");
    }
}

/// The sender of an inbound message, as the callback knows them.
#[derive(Debug, Clone, Copy)]
pub struct InboundContact<'a> {
    pub id: i64,
    pub account_id: i64,
    pub wxid: &'a str,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutInput {
    /// Why (e.g. "asked by phone"); kept with the opt-out, at most 500 characters.
    pub reason: Option<String>,
}

/// A user opts a contact out of broadcasts (`manual`), audited with before and after.
pub async fn opt_out(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    input: OptOutInput,
) -> ServiceResult<ContactView> {
    let mut v = Violations::new();
    let reason = v
        .take(validate::optional_text(
            "reason",
            input.reason.as_deref(),
            MESSAGE_CHARS,
        ))
        .flatten();
    v.finish()?;
    change(ctx, actor, id, "contact.opt_out", move |row, now| {
        if row.unsubscribed_at.is_none() {
            row.unsubscribed_at = Some(now);
            row.unsubscribe_source = Some("manual".to_owned());
            row.unsubscribe_message = reason;
        }
    })
    .await
}

/// A user subscribes a contact to broadcasts again, audited with before and after.
pub async fn opt_in(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<ContactView> {
    change(ctx, actor, id, "contact.opt_in", |row, _| {
        row.unsubscribed_at = None;
        row.unsubscribe_source = None;
        row.unsubscribe_message = None;
    })
    .await
}

async fn change(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    action: &'static str,
    apply: impl FnOnce(&mut contacts::Model, NaiveDateTime),
) -> ServiceResult<ContactView> {
    let entry = AuditEntry::new(action, OperationType::Update, "contact").target(id);
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::ContactsUpdate)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        // The row is read locked (SQLite's immediate transaction holds the only write lock):
        // an opt-out by message or another user's click committing meanwhile is seen, not
        // overwritten with what was read before it.
        if crate::db::row_locks(&txn) {
            contacts::Entity::find_by_id(id)
                .lock_exclusive()
                .one(&txn)
                .await?;
        }
        let row = find_visible(&txn, actor, id).await?;
        let before = views(&txn, vec![row.clone()]).await?.remove(0);
        let mut next = row;
        apply(&mut next, now);
        contacts::Entity::update(contacts::ActiveModel {
            id: Set(id),
            unsubscribed_at: Set(next.unsubscribed_at),
            unsubscribe_source: Set(next.unsubscribe_source),
            unsubscribe_message: Set(next.unsubscribe_message),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let after = views(&txn, vec![find(&txn, id).await?]).await?.remove(0);
        audit::commit_updated(
            txn,
            actor,
            &entry,
            id,
            after.wxid.clone(),
            &before,
            after,
            now,
        )
        .await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords() -> Vec<String> {
        ["TD", "退订", "unsubscribe"].map(str::to_owned).to_vec()
    }

    #[test]
    fn keywords_match_exactly_after_trimming_full_width_and_case() {
        for text in [
            "TD",
            "td",
            " TD\n",
            "ＴＤ",
            "ｔｄ",
            "\u{3000}退订\u{3000}",
            "Unsubscribe",
        ] {
            assert!(is_opt_out(text, &keywords()), "{text:?}");
        }
    }

    #[test]
    fn longer_texts_and_empty_ones_do_not_opt_out() {
        for text in ["", "   ", "TD!", "我想退订", "退订了吗？", "TDK", "t d"] {
            assert!(!is_opt_out(text, &keywords()), "{text:?}");
        }
    }
}
