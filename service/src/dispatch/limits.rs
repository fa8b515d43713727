//! Sending limits the platform enforces itself, because WeCom drops over-limit messages silently:
//! per account (task or account rate, send interval), per instance, per WeCom recipient (30 a
//! minute and 1,000 an hour per member for app messages), per robot (20 a minute), per-contact
//! frequency caps across tasks, and the monthly quota of customer mass messages.

use entity::states::{Channel, ReceiverStatus};
use std::time::Duration;

use chrono::{Datelike, NaiveDate, TimeDelta};
use entity::{message_receivers, message_tasks, wework_accounts};
use sea_orm::{
    ColumnTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QuerySelect, RelationTrait,
};

use super::ratelimit::Rate;
use crate::{Context, ServiceResult, tasks::spec::FrequencyCap};

/// The rate keys and limits one send must pass, longest wait wins.
pub fn send_rates(
    ctx: &Context,
    task: &message_tasks::Model,
    account: &wework_accounts::Model,
    recipient: &str,
) -> Vec<(String, Rate)> {
    if !ctx.settings.dispatch.rate_limits {
        return Vec::new();
    }
    let mut per_minute = task
        .rate_per_minute
        .or(account.rate_limit_per_minute)
        .map_or(ctx.settings.dispatch.default_rate_per_minute, |r| {
            u32::try_from(r.max(1)).unwrap_or(1)
        });
    if task.send_interval > 0 {
        per_minute = per_minute.min((60 / task.send_interval).max(1).try_into().unwrap_or(1));
    }
    let mut rates = vec![(
        format!("account:{}", account.id),
        Rate::per_minute(per_minute),
    )];
    if ctx.settings.dispatch.instance_rate_per_minute > 0 {
        rates.push((
            format!("instance:{}", account.instance_id),
            Rate::per_minute(ctx.settings.dispatch.instance_rate_per_minute),
        ));
    }
    match task.channel {
        Channel::AppMessage => {
            rates.push((
                format!("member-min:{}:{recipient}", account.instance_id),
                Rate::per_minute(30),
            ));
            rates.push((
                format!("member-hour:{}:{recipient}", account.instance_id),
                Rate::per_hour(1000).with_burst(30),
            ));
        }
        Channel::Robot => rates.push((
            format!("robot:{}", account.instance_id),
            Rate::per_minute(20),
        )),
        _ => {}
    }
    rates
}

/// Messages the contact got (or is waiting to confirm) in the last `window_hours`.
async fn recent_for_contact(
    ctx: &Context,
    contact_id: i64,
    window_hours: u32,
) -> ServiceResult<u64> {
    let since = ctx.clock.now_db() - TimeDelta::hours(i64::from(window_hours));
    Ok(message_receivers::Entity::find()
        .filter(message_receivers::Column::ContactId.eq(contact_id))
        .filter(message_receivers::Column::SendTime.gte(since))
        .filter(
            message_receivers::Column::SendStatus
                .is_in([ReceiverStatus::Sent, ReceiverStatus::AwaitingConfirmation]),
        )
        .count(&ctx.db)
        .await?)
}

/// The reason to skip a contact because of a frequency cap, if any.
pub async fn capped(
    ctx: &Context,
    task_cap: Option<FrequencyCap>,
    contact_id: i64,
) -> ServiceResult<Option<&'static str>> {
    let daily = ctx.settings.dispatch.contact_daily_cap;
    if daily > 0 && recent_for_contact(ctx, contact_id, 24).await? >= u64::from(daily) {
        return Ok(Some("contact_daily_cap"));
    }
    if let Some(cap) = task_cap
        && recent_for_contact(ctx, contact_id, cap.window_hours).await? >= u64::from(cap.max)
    {
        return Ok(Some("frequency_cap"));
    }
    Ok(None)
}

/// The quota of customer mass messages this month.
pub fn monthly_quota(ctx: &Context, today: NaiveDate) -> u64 {
    match ctx.settings.dispatch.customer_monthly_quota {
        0 => {
            let next = if today.month() == 12 {
                NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
            };
            next.and_then(|n| n.pred_opt())
                .map_or(30, |last| u64::from(last.day()))
        }
        n => u64::from(n),
    }
}

/// `true` when the contact used up this month's customer mass messages.
pub async fn over_monthly_quota(ctx: &Context, contact_id: i64) -> ServiceResult<bool> {
    let today = ctx.clock.now().date_naive();
    let month_start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    let used = message_receivers::Entity::find()
        .join(
            JoinType::InnerJoin,
            message_receivers::Relation::MessageTasks.def(),
        )
        .filter(message_tasks::Column::Channel.eq(Channel::CustomerMass))
        .filter(message_receivers::Column::ContactId.eq(contact_id))
        .filter(
            message_receivers::Column::SendStatus
                .is_in([ReceiverStatus::Sent, ReceiverStatus::AwaitingConfirmation]),
        )
        .filter(message_receivers::Column::SendTime.gte(month_start))
        .count(&ctx.db)
        .await?;
    Ok(used >= monthly_quota(ctx, today))
}

/// Exponential backoff with jitter: 5 s, 10 s, 20 s … capped at 10 minutes, ±50 %.
pub fn backoff(retry: i32) -> Duration {
    let base = 5.0 * 2f64.powi(retry.clamp(0, 10));
    let jitter = 0.5 + rand::random::<f64>();
    Duration::from_secs_f64((base * jitter).min(600.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for retry in 0..12 {
            let b = backoff(retry).as_secs_f64();
            let base = (5.0 * 2f64.powi(retry.min(10))).min(600.0);
            assert!(
                b <= 600.0 && b >= (base * 0.5).min(600.0) - 0.001,
                "retry {retry}: {b}"
            );
        }
    }
}
