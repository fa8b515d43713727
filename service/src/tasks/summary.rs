//! Outcomes over time: what broadcasts did per template or per sending account, day by day (in
//! the caller's time zone). A run counts on the day it started; its receivers are counted in the
//! database, grouped by run, variant and account, so a million-receiver run costs one grouped
//! query, never a read of its rows.

use std::{collections::BTreeMap, str::FromStr};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use entity::{
    message_receivers, message_task_runs, message_tasks, message_templates,
    states::{ReceiverStatus, TaskType},
    wework_accounts,
};
use sea_orm::{ColumnTrait, EntityTrait, JoinType, QueryFilter, QuerySelect, RelationTrait};
use serde::{Deserialize, Serialize};

use super::variants::{self, KEYS};
use crate::{
    Context, ServiceError, ServiceResult, auth::actor::Actor, rbac::perm, validate::Violations,
};

/// The widest range one summary covers.
pub const MAX_DAYS: i64 = 366;
/// The most runs one summary reads; a wider question must narrow its range.
pub const MAX_RUNS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SummaryGroup {
    /// By the template sent (a variant's own template counts for it; inline text has no key).
    Template,
    /// By the sending account.
    Account,
}

#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    pub group_by: SummaryGroup,
    /// RFC 3339; default 30 days before `to`.
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339, exclusive; default now.
    pub to: Option<DateTime<Utc>>,
    /// IANA time zone the days are counted in (default UTC).
    #[param(max_length = 64)]
    pub timezone: Option<String>,
}

/// One template's (or account's) results on one day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SummaryRow {
    /// The template or account id; `null` for inline text.
    pub key: Option<i64>,
    /// Its name (the template's, or the account's nickname or wxid).
    pub label: String,
    /// `YYYY-MM-DD` in the requested time zone.
    pub day: NaiveDate,
    /// Runs that started that day and sent through it.
    pub runs: i64,
    pub sent: i64,
    pub replied: i64,
    pub reply_rate: f64,
    pub opt_outs: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeSummary {
    pub group_by: SummaryGroup,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub timezone: String,
    /// By day, then by key.
    pub rows: Vec<SummaryRow>,
}

struct Window {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: chrono_tz::Tz,
}

fn window(ctx: &Context, q: &SummaryQuery) -> ServiceResult<Window> {
    let mut v = Violations::new();
    let to = q.to.unwrap_or_else(|| ctx.clock.now());
    let from = q.from.unwrap_or(to - TimeDelta::days(30));
    if from >= to {
        v.add("from", "must be before `to`");
    } else if to - from > TimeDelta::days(MAX_DAYS) {
        v.add("from", format!("the range is at most {MAX_DAYS} days"));
    }
    let zone = q.timezone.as_deref().unwrap_or("UTC");
    let tz = chrono_tz::Tz::from_str(zone).unwrap_or_else(|_| {
        v.add("timezone", format!("`{zone}` is not an IANA time zone"));
        chrono_tz::UTC
    });
    v.finish()?;
    Ok(Window { from, to, tz })
}

/// (run, task, started) of the visible broadcast runs that started in the window.
async fn runs_in(
    ctx: &Context,
    actor: &Actor,
    w: &Window,
) -> ServiceResult<Vec<(i64, i64, NaiveDateTime)>> {
    let runs: Vec<(i64, i64, NaiveDateTime)> = message_task_runs::Entity::find()
        .select_only()
        .column(message_task_runs::Column::Id)
        .column(message_task_runs::Column::TaskId)
        .column(message_task_runs::Column::StartedAt)
        .join(
            JoinType::InnerJoin,
            message_task_runs::Relation::MessageTasks.def(),
        )
        .filter(message_tasks::Column::DeletedAt.is_null())
        .filter(message_tasks::Column::TaskType.ne(TaskType::Single))
        .filter(actor.reach.on_authored(
            message_tasks::Column::CreatedBy,
            message_tasks::Column::InstanceId,
        ))
        .filter(message_task_runs::Column::StartedAt.gte(w.from.naive_utc()))
        .filter(message_task_runs::Column::StartedAt.lt(w.to.naive_utc()))
        .limit(MAX_RUNS + 1)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    if runs.len() as u64 > MAX_RUNS {
        return Err(ServiceError::invalid(
            "from",
            format!("more than {MAX_RUNS} runs in the range; narrow it"),
        ));
    }
    Ok(runs)
}

/// Sent, replied and opted-out receivers per (run, variant, account).
type Tally = (i64, Option<String>, Option<i64>, i64, i64, i64);

async fn tallies(ctx: &Context, run_ids: &[i64]) -> ServiceResult<Vec<Tally>> {
    let mut out = Vec::new();
    for chunk in run_ids.chunks(500) {
        let rows: Vec<Tally> = message_receivers::Entity::find()
            .select_only()
            .column(message_receivers::Column::RunId)
            .column(message_receivers::Column::Variant)
            .column(message_receivers::Column::AccountId)
            .column_as(message_receivers::Column::Id.count(), "sent")
            .column_as(message_receivers::Column::RepliedAt.count(), "replied")
            .column_as(message_receivers::Column::OptedOutAt.count(), "opt_outs")
            .filter(message_receivers::Column::RunId.is_in(chunk.iter().copied()))
            .filter(message_receivers::Column::SendStatus.eq(ReceiverStatus::Sent))
            .group_by(message_receivers::Column::RunId)
            .group_by(message_receivers::Column::Variant)
            .group_by(message_receivers::Column::AccountId)
            .into_tuple()
            .all(&ctx.db)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// The template a receiver of `task` got with `variant`.
fn template_of(task: &message_tasks::Model, variant: Option<&str>) -> Option<i64> {
    let listed = variants::stored(task).ok().flatten();
    match (listed, variant) {
        (Some((list, _)), Some(key)) => KEYS
            .iter()
            .position(|k| *k == key)
            .and_then(|i| list.get(i))
            .and_then(|v| v.template_id),
        _ => task.template_id,
    }
}

#[derive(Default)]
struct Sums {
    runs: std::collections::BTreeSet<i64>,
    sent: i64,
    replied: i64,
    opt_outs: i64,
}

pub async fn summary(
    ctx: &Context,
    actor: &Actor,
    q: SummaryQuery,
) -> ServiceResult<OutcomeSummary> {
    actor.require(perm::TasksRead)?;
    let w = window(ctx, &q)?;
    let runs = runs_in(ctx, actor, &w).await?;
    let run_ids: Vec<i64> = runs.iter().map(|r| r.0).collect();
    let task_ids: Vec<i64> = runs.iter().map(|r| r.1).collect();
    let tasks: BTreeMap<i64, message_tasks::Model> = message_tasks::Entity::find()
        .filter(message_tasks::Column::Id.is_in(task_ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let started: BTreeMap<i64, (i64, NaiveDate)> = runs
        .iter()
        .map(|(run, task, at)| {
            (
                *run,
                (*task, at.and_utc().with_timezone(&w.tz).date_naive()),
            )
        })
        .collect();
    let mut sums: BTreeMap<(NaiveDate, Option<i64>), Sums> = BTreeMap::new();
    for (run, variant, account, sent, replied, opt_outs) in tallies(ctx, &run_ids).await? {
        let Some((task_id, day)) = started.get(&run) else {
            continue;
        };
        let key = match q.group_by {
            SummaryGroup::Account => account,
            SummaryGroup::Template => tasks
                .get(task_id)
                .and_then(|t| template_of(t, variant.as_deref())),
        };
        let entry = sums.entry((*day, key)).or_default();
        entry.runs.insert(run);
        entry.sent += sent;
        entry.replied += replied;
        entry.opt_outs += opt_outs;
    }
    let keys: Vec<i64> = sums.keys().filter_map(|(_, k)| *k).collect();
    let labels = labels(ctx, q.group_by, keys).await?;
    let rows = sums
        .into_iter()
        .map(|((day, key), s)| SummaryRow {
            key,
            label: key
                .and_then(|k| labels.get(&k).cloned())
                .unwrap_or_else(|| key.map_or_else(|| "inline".into(), |k| format!("#{k}"))),
            day,
            runs: s.runs.len() as i64,
            sent: s.sent,
            replied: s.replied,
            reply_rate: super::outcomes::rate(s.replied, s.sent),
            opt_outs: s.opt_outs,
        })
        .collect();
    Ok(OutcomeSummary {
        group_by: q.group_by,
        from: w.from,
        to: w.to,
        timezone: w.tz.name().to_owned(),
        rows,
    })
}

async fn labels(
    ctx: &Context,
    group: SummaryGroup,
    keys: Vec<i64>,
) -> ServiceResult<BTreeMap<i64, String>> {
    Ok(match group {
        SummaryGroup::Template => message_templates::Entity::find()
            .filter(message_templates::Column::Id.is_in(keys))
            .all(&ctx.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect(),
        SummaryGroup::Account => wework_accounts::Entity::find()
            .filter(wework_accounts::Column::Id.is_in(keys))
            .all(&ctx.db)
            .await?
            .into_iter()
            .map(|a| (a.id, a.nickname.unwrap_or(a.wxid)))
            .collect(),
    })
}
