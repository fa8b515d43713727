//! What a task would do before it is created: how many receivers its audience holds now, how
//! many of those would be skipped and why, over how many sending accounts, and how long the
//! per-account (and per-instance) rates make it take. The broadcast wizard shows it as the
//! operator edits the audience, so it counts with the database, never by loading rows.

use std::collections::BTreeMap;

use entity::{
    chat_groups, contacts,
    states::{Channel, FriendStatus},
    wework_accounts,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};

use super::{expand::filtered_contacts, spec::Audience};
use crate::{Context, ServiceResult, auth::actor::Actor, rbac::perm, validate::Violations};

/// The parts of a task that decide who receives it and how fast.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateInput {
    pub audience: Audience,
    /// The one account to send from, as in the task.
    pub account_id: Option<i64>,
    /// Sends per minute per account, as in the task (default: each account's own limit, else
    /// `dispatch.default_rate_per_minute`).
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_per_minute: Option<i32>,
    /// Minimum seconds between two sends of one account.
    #[schema(minimum = 0, maximum = 86400)]
    pub send_interval: Option<i32>,
    #[serde(default)]
    pub channel: Channel,
}

/// The audience as it stands now; a run takes its own snapshot when it starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AudienceEstimate {
    /// Receivers the audience names now (a contact named twice counts twice here, once in a run).
    pub receivers: i64,
    /// Of those, the ones that would be sent to.
    pub sendable: i64,
    /// The others, by skip reason (`blocked`, `not_friend`, `unsubscribed`, `deleted`, `inactive_group`,
    /// `not_a_contact_of_the_sending_account`).
    pub skipped: BTreeMap<String, i64>,
    /// Accounts that would send.
    pub accounts: i64,
    /// Seconds the rates imply for the busiest account or instance, from the first send (quiet
    /// hours, frequency caps and WeCom's own answers can only make it longer); null when rate
    /// limits are off.
    pub eta_seconds: Option<i64>,
}

impl EstimateInput {
    fn check(&self) -> ServiceResult<()> {
        let mut v = Violations::new();
        self.audience.check(&mut v);
        if self
            .rate_per_minute
            .is_some_and(|r| !(1..=100_000).contains(&r))
        {
            v.add("rate_per_minute", "must be 1 to 100000");
        }
        if self
            .send_interval
            .is_some_and(|s| !(0..=86_400).contains(&s))
        {
            v.add("send_interval", "must be 0 to 86400");
        }
        v.finish()
    }
}

/// One group of contacts or groups that share an account and a skip reason.
struct Bucket {
    account: i64,
    skip: Option<&'static str>,
    count: i64,
}

pub async fn estimate(
    ctx: &Context,
    actor: &Actor,
    input: EstimateInput,
) -> ServiceResult<AudienceEstimate> {
    actor.require(perm::TasksCreate)?;
    input.check()?;
    if input.audience.segment_id.is_some() {
        actor.require(perm::SegmentsRead)?;
    }
    let reach = &actor.reach;
    let audience = &input.audience;
    let mut buckets = Vec::new();
    if !audience.contact_ids.is_empty() {
        let named = contacts::Entity::find()
            .filter(contacts::Column::Id.is_in(audience.contact_ids.iter().copied()))
            .filter(reach.on_instances(contacts::Column::InstanceId));
        buckets.extend(contact_buckets(ctx, named, input.account_id).await?);
    }
    for filter in crate::segments::contact_filters(&ctx.db, audience).await? {
        let matched = filtered_contacts(
            &filter,
            input.account_id,
            reach,
            ctx.db.get_database_backend(),
        );
        buckets.extend(contact_buckets(ctx, matched, input.account_id).await?);
    }
    if !audience.group_ids.is_empty() {
        let named = chat_groups::Entity::find()
            .filter(chat_groups::Column::Id.is_in(audience.group_ids.iter().copied()))
            .filter(reach.on_instances(chat_groups::Column::InstanceId));
        buckets.extend(group_buckets(ctx, named, input.account_id).await?);
    }
    if let Some(g) = &audience.group_filter {
        let mut matched = chat_groups::Entity::find()
            .filter(chat_groups::Column::DeletedAt.is_null())
            .filter(reach.on_instances(chat_groups::Column::InstanceId));
        if !g.account_ids.is_empty() {
            matched = matched.filter(chat_groups::Column::AccountId.is_in(g.account_ids.clone()));
        }
        if !g.instance_ids.is_empty() {
            matched = matched.filter(chat_groups::Column::InstanceId.is_in(g.instance_ids.clone()));
        }
        buckets.extend(group_buckets(ctx, matched, input.account_id).await?);
    }
    summarise(ctx, &input, buckets).await
}

/// Contacts counted by sending account and by the skip reason the expansion would give them.
async fn contact_buckets(
    ctx: &Context,
    query: sea_orm::Select<contacts::Entity>,
    account: Option<i64>,
) -> ServiceResult<Vec<Bucket>> {
    let deleted = query
        .clone()
        .filter(contacts::Column::DeletedAt.is_not_null())
        .count(&ctx.db)
        .await?;
    // Counted apart by opt-out, so each group gets the expansion's reason.
    let mut rows: Vec<(i64, bool, FriendStatus, bool, i64)> = Vec::new();
    for unsubscribed in [false, true] {
        let opt_out = if unsubscribed {
            contacts::Column::UnsubscribedAt.is_not_null()
        } else {
            contacts::Column::UnsubscribedAt.is_null()
        };
        let part: Vec<(i64, bool, FriendStatus, i64)> = query
            .clone()
            .filter(contacts::Column::DeletedAt.is_null())
            .filter(opt_out)
            .select_only()
            .column(contacts::Column::AccountId)
            .column(contacts::Column::IsBlocked)
            .column(contacts::Column::FriendStatus)
            .column_as(contacts::Column::Id.count(), "n")
            .group_by(contacts::Column::AccountId)
            .group_by(contacts::Column::IsBlocked)
            .group_by(contacts::Column::FriendStatus)
            .into_tuple()
            .all(&ctx.db)
            .await?;
        rows.extend(
            part.into_iter()
                .map(|(owner, blocked, friend, n)| (owner, blocked, friend, unsubscribed, n)),
        );
    }
    let gone = Bucket {
        account: 0,
        skip: Some("deleted"),
        count: i64::try_from(deleted).unwrap_or(i64::MAX),
    };
    Ok(std::iter::once(gone)
        .chain(
            rows.into_iter()
                .map(|(owner, blocked, friend, unsubscribed, count)| Bucket {
                    account: account.unwrap_or(owner),
                    // The same order of reasons as the expansion's (an estimate is for a
                    // broadcast, which skips opted-out contacts).
                    skip: if blocked {
                        Some("blocked")
                    } else if friend != FriendStatus::Normal {
                        Some("not_friend")
                    } else if unsubscribed {
                        Some("unsubscribed")
                    } else if account.is_some_and(|a| a != owner) {
                        Some("not_a_contact_of_the_sending_account")
                    } else {
                        None
                    },
                    count,
                }),
        )
        .filter(|b| b.count > 0)
        .collect())
}

async fn group_buckets(
    ctx: &Context,
    query: sea_orm::Select<chat_groups::Entity>,
    account: Option<i64>,
) -> ServiceResult<Vec<Bucket>> {
    let deleted = query
        .clone()
        .filter(chat_groups::Column::DeletedAt.is_not_null())
        .count(&ctx.db)
        .await?;
    let rows: Vec<(i64, bool, i64)> = query
        .filter(chat_groups::Column::DeletedAt.is_null())
        .select_only()
        .column(chat_groups::Column::AccountId)
        .column(chat_groups::Column::IsActive)
        .column_as(chat_groups::Column::Id.count(), "n")
        .group_by(chat_groups::Column::AccountId)
        .group_by(chat_groups::Column::IsActive)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let gone = Bucket {
        account: 0,
        skip: Some("inactive_group"),
        count: i64::try_from(deleted).unwrap_or(i64::MAX),
    };
    Ok(std::iter::once(gone)
        .chain(rows.into_iter().map(|(owner, active, count)| Bucket {
            account: account.unwrap_or(owner),
            skip: (!active).then_some("inactive_group"),
            count,
        }))
        .filter(|b| b.count > 0)
        .collect())
}

async fn summarise(
    ctx: &Context,
    input: &EstimateInput,
    buckets: Vec<Bucket>,
) -> ServiceResult<AudienceEstimate> {
    let mut skipped = BTreeMap::new();
    let mut per_account: BTreeMap<i64, i64> = BTreeMap::new();
    let mut receivers = 0;
    for bucket in buckets {
        receivers += bucket.count;
        match bucket.skip {
            Some(reason) => *skipped.entry(reason.to_owned()).or_insert(0) += bucket.count,
            None => *per_account.entry(bucket.account).or_insert(0) += bucket.count,
        }
    }
    let sendable = per_account.values().sum();
    let eta_seconds = if ctx.settings.dispatch.rate_limits {
        Some(eta(ctx, input, &per_account).await?)
    } else {
        None
    };
    Ok(AudienceEstimate {
        receivers,
        sendable,
        skipped,
        accounts: i64::try_from(per_account.len()).unwrap_or(i64::MAX),
        eta_seconds,
    })
}

/// The longest time any account or instance needs at its rate, as dispatch paces them
/// (`dispatch::limits::send_rates`).
async fn eta(
    ctx: &Context,
    input: &EstimateInput,
    per_account: &BTreeMap<i64, i64>,
) -> ServiceResult<i64> {
    let accounts: Vec<(i64, i64, Option<i32>)> = wework_accounts::Entity::find()
        .select_only()
        .column(wework_accounts::Column::Id)
        .column(wework_accounts::Column::InstanceId)
        .column(wework_accounts::Column::RateLimitPerMinute)
        .filter(wework_accounts::Column::Id.is_in(per_account.keys().copied()))
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let dispatch = &ctx.settings.dispatch;
    let mut longest = 0.0_f64;
    let mut per_instance: BTreeMap<i64, i64> = BTreeMap::new();
    for (id, instance, own_rate) in accounts {
        let count = per_account.get(&id).copied().unwrap_or(0);
        *per_instance.entry(instance).or_insert(0) += count;
        let mut rate = f64::from(
            input
                .rate_per_minute
                .or(own_rate)
                .map_or(dispatch.default_rate_per_minute, |r| {
                    u32::try_from(r.max(1)).unwrap_or(1)
                }),
        );
        if let Some(interval) = input.send_interval.filter(|s| *s > 0) {
            rate = rate.min((60 / interval).max(1).into());
        }
        longest = longest.max(minutes_for(count, rate));
    }
    if dispatch.instance_rate_per_minute > 0 {
        for count in per_instance.values() {
            longest = longest.max(minutes_for(
                *count,
                f64::from(dispatch.instance_rate_per_minute),
            ));
        }
    }
    Ok((longest * 60.0).ceil() as i64)
}

/// Minutes `count` sends take at `per_minute`: the rate limiter spaces one account's sends
/// evenly (GCRA without burst), so the last goes `count - 1` intervals after the first.
fn minutes_for(count: i64, per_minute: f64) -> f64 {
    if count <= 1 || per_minute <= 0.0 {
        return 0.0;
    }
    (count - 1) as f64 / per_minute
}

#[cfg(test)]
mod tests {
    use super::minutes_for;

    #[test]
    fn sends_are_spaced_evenly_at_the_rate() {
        assert_eq!(minutes_for(0, 20.0), 0.0);
        assert_eq!(minutes_for(1, 20.0), 0.0);
        assert_eq!(minutes_for(21, 20.0), 1.0);
        assert_eq!(minutes_for(81, 20.0), 4.0);
    }
}
