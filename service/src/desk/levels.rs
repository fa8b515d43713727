//! The desk's service levels for the health view, read from the conversations themselves (the
//! metric sinks get the same figures point by point, see `metrics`): what waits and who serves
//! now, and over the last 24 hours the first-response and queue-wait times, handle time,
//! ratings and conversations per agent.

use chrono::{NaiveDateTime, TimeDelta};
use entity::{
    desk_agents, desk_conversations,
    states::{AgentStatus, ConversationState},
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::{Context, ServiceResult};

/// The window the figures cover.
pub const WINDOW: TimeDelta = TimeDelta::hours(24);
/// Conversations read for them at most (the newest), so the view stays cheap on a busy desk.
const MAX_ROWS: u64 = 20_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeskServiceLevels {
    /// Waiting in a queue now.
    pub queued: u64,
    /// Assigned or being answered now.
    pub serving: u64,
    /// Agents not offline.
    pub agents_online: u64,
    /// Over the last 24 hours:
    pub opened: u64,
    pub closed: u64,
    /// From opening to the first reply, median and 90th percentile (milliseconds).
    pub first_response_p50_ms: Option<i64>,
    pub first_response_p90_ms: Option<i64>,
    /// From entering the queue to being given to an agent, median (milliseconds).
    pub queue_wait_p50_ms: Option<i64>,
    /// From being taken on to closing, mean (milliseconds).
    pub handle_avg_ms: Option<i64>,
    /// Mean rating (1–5) and how many ratings.
    pub rating_avg: Option<f64>,
    pub ratings: u64,
    /// Conversations closed per agent who closed any.
    pub closed_per_agent: Option<f64>,
}

type Row = (
    NaiveDateTime,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<i32>,
    Option<i64>,
);

fn millis(from: NaiveDateTime, to: NaiveDateTime) -> i64 {
    (to - from).num_milliseconds().max(0)
}

/// The value below which `share` of the sorted values lie (nearest rank).
fn percentile(sorted: &[i64], share: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

pub async fn current(ctx: &Context) -> ServiceResult<DeskServiceLevels> {
    let now = ctx.clock.now_db();
    let since = now - WINDOW;
    let count_state = |states: Vec<ConversationState>| {
        desk_conversations::Entity::find()
            .filter(desk_conversations::Column::State.is_in(states))
            .count(&ctx.db)
    };
    let queued = count_state(vec![ConversationState::Queued]).await?;
    let serving = count_state(vec![ConversationState::Assigned, ConversationState::Active]).await?;
    let agents_online = desk_agents::Entity::find()
        .filter(desk_agents::Column::Status.ne(AgentStatus::Offline))
        .count(&ctx.db)
        .await?;
    use desk_conversations::Column as C;
    let rows: Vec<Row> = desk_conversations::Entity::find()
        .select_only()
        .columns([
            C::OpenedAt,
            C::QueuedAt,
            C::AssignedAt,
            C::AcceptedAt,
            C::FirstResponseAt,
            C::ClosedAt,
            C::Rating,
            C::AgentId,
        ])
        .filter(
            Condition::any()
                .add(C::OpenedAt.gte(since))
                .add(C::ClosedAt.gte(since)),
        )
        .order_by_desc(C::Id)
        .limit(MAX_ROWS)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut first_response = Vec::new();
    let mut queue_wait = Vec::new();
    let mut handle = Vec::new();
    let mut ratings = Vec::new();
    let mut closers = std::collections::HashSet::new();
    let (mut opened, mut closed) = (0, 0);
    for (opened_at, queued_at, assigned_at, accepted_at, first_at, closed_at, rating, agent) in rows
    {
        if opened_at >= since {
            opened += 1;
        }
        if let Some(at) = first_at.filter(|at| *at >= since) {
            first_response.push(millis(opened_at, at));
        }
        if let Some(at) = assigned_at.filter(|at| *at >= since) {
            queue_wait.push(millis(queued_at, at));
        }
        if let Some(at) = closed_at.filter(|at| *at >= since) {
            closed += 1;
            handle.push(millis(accepted_at.or(assigned_at).unwrap_or(opened_at), at));
            if let Some(agent) = agent {
                closers.insert(agent);
            }
            if let Some(rating) = rating {
                ratings.push(f64::from(rating));
            }
        }
    }
    first_response.sort_unstable();
    queue_wait.sort_unstable();
    Ok(DeskServiceLevels {
        queued,
        serving,
        agents_online,
        opened,
        closed,
        first_response_p50_ms: percentile(&first_response, 0.5),
        first_response_p90_ms: percentile(&first_response, 0.9),
        queue_wait_p50_ms: percentile(&queue_wait, 0.5),
        handle_avg_ms: mean(handle.iter().map(|h| *h as f64)).map(|m| m.round() as i64),
        rating_avg: mean(ratings.iter().copied()).map(|m| (m * 100.0).round() / 100.0),
        ratings: ratings.len() as u64,
        closed_per_agent: (!closers.is_empty())
            .then(|| (closed as f64 / closers.len() as f64 * 10.0).round() / 10.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&values, 0.5), Some(50));
        assert_eq!(percentile(&values, 0.9), Some(90));
        assert_eq!(percentile(&[7], 0.9), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn means_of_nothing_are_none() {
        assert_eq!(mean(std::iter::empty()), None);
        assert_eq!(mean([4.0, 5.0].into_iter()), Some(4.5));
    }
}
