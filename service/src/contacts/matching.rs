//! Which contacts an audience filter selects, as conditions on a contacts query. One place for
//! the broadcast expansion, the estimate, segments' live counts and the contact list, so a
//! segment counts in the console exactly what a broadcast to it will reach.

use entity::{chat_groups, contacts, group_members, message_receivers, states::ReceiverStatus};
use sea_orm::{
    ColumnTrait, DbBackend, QueryFilter, Select,
    sea_query::{Condition, Expr, ExprTrait, Query},
};

use crate::tasks::spec::AudienceFilter;

/// `query` narrowed to the contacts `filter` selects. Reach, deletion and the sending account
/// are the caller's business.
pub fn narrow(
    mut query: Select<contacts::Entity>,
    filter: &AudienceFilter,
    backend: DbBackend,
) -> Select<contacts::Entity> {
    if let Some(keyword) = super::keyword::Keyword::parse(backend, filter.q.as_deref()) {
        query = query.filter(keyword.condition());
    }
    // Counts and expansions read every match: collecting the tags' contacts suits them.
    if !filter.tags_any.is_empty() {
        query = query.filter(super::tag_filter::with_any(filter.tags_any.clone(), false));
    }
    for tag in &filter.tags_all {
        query = query.filter(super::tag_filter::with_any(vec![*tag], false));
    }
    if let Some(t) = filter.contact_type {
        query = query.filter(contacts::Column::ContactType.eq(t));
    }
    if !filter.account_ids.is_empty() {
        query = query.filter(contacts::Column::AccountId.is_in(filter.account_ids.clone()));
    }
    if !filter.instance_ids.is_empty() {
        query = query.filter(contacts::Column::InstanceId.is_in(filter.instance_ids.clone()));
    }
    if !filter.group_ids.is_empty() {
        query = query.filter(in_groups(filter.group_ids.clone()));
    }
    match filter.unsubscribed {
        Some(true) => query = query.filter(contacts::Column::UnsubscribedAt.is_not_null()),
        Some(false) => query = query.filter(contacts::Column::UnsubscribedAt.is_null()),
        None => {}
    }
    if let Some(r) = filter.replied {
        let replied = if r.replied {
            message_receivers::Column::RepliedAt.is_not_null()
        } else {
            message_receivers::Column::RepliedAt.is_null()
        };
        let receivers = Query::select()
            .column(message_receivers::Column::ContactId)
            .from(message_receivers::Entity)
            .and_where(message_receivers::Column::TaskId.eq(r.task_id))
            .and_where(message_receivers::Column::ContactId.is_not_null())
            .and_where(message_receivers::Column::SendStatus.eq(ReceiverStatus::Sent))
            .and_where(replied)
            .to_owned();
        query = query.filter(contacts::Column::Id.in_subquery(receivers));
    }
    if let Some(after) = filter.last_chat_after {
        query = query.filter(contacts::Column::LastChatTime.gte(after.naive_utc()));
    }
    if let Some(before) = filter.last_chat_before {
        query = query.filter(
            Condition::any()
                .add(contacts::Column::LastChatTime.is_null())
                .add(contacts::Column::LastChatTime.lt(before.naive_utc())),
        );
    }
    query
}

/// Contacts still in any of `group_ids`, as contacts of the account that has the group: the
/// same WeChat user under another account is another conversation, not a member of this group.
fn in_groups(group_ids: Vec<i64>) -> Expr {
    let members = Query::select()
        .expr(Expr::val(1))
        .from(group_members::Entity)
        .inner_join(
            chat_groups::Entity,
            Expr::col((chat_groups::Entity, chat_groups::Column::Id))
                .equals((group_members::Entity, group_members::Column::GroupId)),
        )
        .and_where(group_members::Column::GroupId.is_in(group_ids))
        .and_where(group_members::Column::LeftAt.is_null())
        .and_where(
            Expr::col((group_members::Entity, group_members::Column::MemberWxid))
                .equals((contacts::Entity, contacts::Column::Wxid)),
        )
        .and_where(
            Expr::col((chat_groups::Entity, chat_groups::Column::AccountId))
                .equals((contacts::Entity, contacts::Column::AccountId)),
        )
        .to_owned();
    Expr::exists(members)
}
