//! Who gets a queued conversation. Candidates are the group's agents who are online and below
//! their maximum; the group's rule orders them (round robin: given a conversation longest ago;
//! least busy: fewest open conversations; sticky: the visitor's last agent first, then least
//! busy). A seat is taken with one conditional UPDATE of the agent's counter (below the maximum,
//! still online) and the conversation moves only while it is still queued, both in one
//! transaction, so concurrent assignments never overfill an agent or assign a conversation twice.

use entity::{
    desk_agent_groups, desk_agents, desk_conversations, desk_skill_groups,
    states::{AgentStatus, AssignmentRule, ConversationState},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, NullOrdering, Order},
};

use super::events::{self, EventKind};
use crate::{Context, ServiceResult};

/// Conversations looked at per pass of a group's queue.
const DRAIN_BATCH: u64 = 50;

/// The agents who could take a conversation of `group` now, best first by the group's rule.
async fn candidates<C: ConnectionTrait>(
    conn: &C,
    group: &desk_skill_groups::Model,
    visitor_id: i64,
) -> ServiceResult<Vec<i64>> {
    let members: Vec<i64> = desk_agent_groups::Entity::find()
        .select_only()
        .column(desk_agent_groups::Column::AgentId)
        .filter(desk_agent_groups::Column::SkillGroupId.eq(group.id))
        .into_tuple()
        .all(conn)
        .await?;
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = desk_agents::Entity::find()
        .select_only()
        .column(desk_agents::Column::Id)
        .filter(desk_agents::Column::Id.is_in(members))
        .filter(desk_agents::Column::Status.eq(AgentStatus::Online))
        .filter(
            Expr::col(desk_agents::Column::ActiveConversations)
                .lt(Expr::col(desk_agents::Column::MaxConcurrent)),
        );
    query = match group.assignment_rule {
        AssignmentRule::RoundRobin => query.order_by_with_nulls(
            desk_agents::Column::LastAssignedAt,
            Order::Asc,
            NullOrdering::First,
        ),
        AssignmentRule::LeastBusy | AssignmentRule::Sticky => query
            .order_by_asc(desk_agents::Column::ActiveConversations)
            .order_by_with_nulls(
                desk_agents::Column::LastAssignedAt,
                Order::Asc,
                NullOrdering::First,
            ),
    };
    let mut ids: Vec<i64> = query
        .order_by_asc(desk_agents::Column::Id)
        .into_tuple()
        .all(conn)
        .await?;
    if group.assignment_rule == AssignmentRule::Sticky
        && let Some(last) = last_agent_of(conn, visitor_id).await?
        && let Some(at) = ids.iter().position(|id| *id == last)
    {
        let sticky = ids.remove(at);
        ids.insert(0, sticky);
    }
    Ok(ids)
}

/// The agent who served the visitor's latest conversation that had one.
async fn last_agent_of<C: ConnectionTrait>(
    conn: &C,
    visitor_id: i64,
) -> ServiceResult<Option<i64>> {
    Ok(desk_conversations::Entity::find()
        .select_only()
        .column(desk_conversations::Column::AgentId)
        .filter(desk_conversations::Column::VisitorId.eq(visitor_id))
        .filter(desk_conversations::Column::AgentId.is_not_null())
        .order_by_desc(desk_conversations::Column::Id)
        .into_tuple::<Option<i64>>()
        .one(conn)
        .await?
        .flatten())
}

/// Gives the agent back one seat (a conversation closed, moved or went back to the queue).
pub async fn release_seat<C: ConnectionTrait>(conn: &C, agent_id: i64) -> ServiceResult<()> {
    desk_agents::Entity::update_many()
        .col_expr(
            desk_agents::Column::ActiveConversations,
            Expr::col(desk_agents::Column::ActiveConversations).sub(1),
        )
        .filter(desk_agents::Column::Id.eq(agent_id))
        .filter(desk_agents::Column::ActiveConversations.gt(0))
        .exec(conn)
        .await?;
    Ok(())
}

/// Takes a seat of the agent: only while online (unless `forced`, a transfer to a named agent)
/// and below their maximum (unless forced). Whether it was taken.
pub async fn take_seat<C: ConnectionTrait>(
    conn: &C,
    agent_id: i64,
    now: chrono::NaiveDateTime,
    forced: bool,
) -> ServiceResult<bool> {
    let mut update = desk_agents::Entity::update_many()
        .col_expr(
            desk_agents::Column::ActiveConversations,
            Expr::col(desk_agents::Column::ActiveConversations).add(1),
        )
        .col_expr(desk_agents::Column::LastAssignedAt, Expr::value(now))
        .filter(desk_agents::Column::Id.eq(agent_id));
    if !forced {
        update = update
            .filter(desk_agents::Column::Status.eq(AgentStatus::Online))
            .filter(
                Expr::col(desk_agents::Column::ActiveConversations)
                    .lt(Expr::col(desk_agents::Column::MaxConcurrent)),
            );
    }
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// Assigns one queued conversation if an agent can take it; the agent's id when it did.
pub async fn try_assign(ctx: &Context, conversation_id: i64) -> ServiceResult<Option<i64>> {
    let Some(conversation) = desk_conversations::Entity::find_by_id(conversation_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(None);
    };
    if conversation.state != ConversationState::Queued {
        return Ok(None);
    }
    let group = super::setup::find_group(&ctx.db, conversation.skill_group_id).await?;
    for agent_id in candidates(&ctx.db, &group, conversation.visitor_id).await? {
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        if !take_seat(&txn, agent_id, now, false).await? {
            txn.rollback().await?;
            continue;
        }
        let moved = desk_conversations::Entity::update_many()
            .col_expr(
                desk_conversations::Column::State,
                Expr::value(ConversationState::Assigned),
            )
            .col_expr(desk_conversations::Column::AgentId, Expr::value(agent_id))
            .col_expr(desk_conversations::Column::AssignedAt, Expr::value(now))
            .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now))
            .filter(desk_conversations::Column::Id.eq(conversation_id))
            .filter(desk_conversations::Column::State.eq(ConversationState::Queued))
            .exec(&txn)
            .await?
            .rows_affected;
        if moved == 0 {
            // Someone else assigned it meanwhile: the seat goes back with the rollback.
            txn.rollback().await?;
            return Ok(None);
        }
        super::conversations::record_change(
            &txn,
            now,
            conversation_id,
            EventKind::ConversationAssigned,
        )
        .await?;
        let assigned = super::conversations::find(&txn, conversation_id).await?;
        txn.commit().await?;
        events::announce(ctx).await;
        super::metrics::record(ctx, &assigned, super::metrics::Moment::Assigned);
        return Ok(Some(agent_id));
    }
    Ok(None)
}

/// Hands a group's queue, oldest first, to whoever can take it; stops at the first
/// conversation nobody can take. How many were assigned.
pub async fn drain_group(ctx: &Context, group_id: i64) -> ServiceResult<usize> {
    let mut assigned = 0;
    loop {
        let queued: Vec<i64> = desk_conversations::Entity::find()
            .select_only()
            .column(desk_conversations::Column::Id)
            .filter(desk_conversations::Column::SkillGroupId.eq(group_id))
            .filter(desk_conversations::Column::State.eq(ConversationState::Queued))
            .order_by_asc(desk_conversations::Column::QueuedAt)
            .order_by_asc(desk_conversations::Column::Id)
            .limit(DRAIN_BATCH)
            .into_tuple()
            .all(&ctx.db)
            .await?;
        let batch = queued.len() as u64;
        let mut stuck = false;
        for id in queued {
            if try_assign(ctx, id).await?.is_some() {
                assigned += 1;
            } else if desk_conversations::Entity::find_by_id(id)
                .one(&ctx.db)
                .await?
                .is_some_and(|c| c.state == ConversationState::Queued)
            {
                stuck = true;
                break;
            }
        }
        if stuck || batch < DRAIN_BATCH {
            return Ok(assigned);
        }
    }
}

/// Drains the queues of every group the agent belongs to (they came online or got room).
pub async fn drain_for_agent(ctx: &Context, agent_id: i64) -> ServiceResult<usize> {
    let mut assigned = 0;
    for group in super::groups_of(&ctx.db, agent_id).await? {
        assigned += drain_group(ctx, group).await?;
    }
    Ok(assigned)
}

/// Puts back in the queue (keeping their place) the conversations given to the agent that
/// they have not accepted, then lets the groups' other agents take them.
pub async fn requeue_unaccepted(ctx: &Context, agent_id: i64) -> ServiceResult<usize> {
    let waiting = desk_conversations::Entity::find()
        .filter(desk_conversations::Column::AgentId.eq(agent_id))
        .filter(desk_conversations::Column::State.eq(ConversationState::Assigned))
        .all(&ctx.db)
        .await?;
    let mut groups = std::collections::BTreeSet::new();
    let mut count = 0;
    for conversation in waiting {
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let moved = desk_conversations::Entity::update_many()
            .col_expr(
                desk_conversations::Column::State,
                Expr::value(ConversationState::Queued),
            )
            .col_expr(
                desk_conversations::Column::AgentId,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                desk_conversations::Column::AssignedAt,
                Expr::value(Option::<chrono::NaiveDateTime>::None),
            )
            .col_expr(desk_conversations::Column::UpdatedAt, Expr::value(now))
            .filter(desk_conversations::Column::Id.eq(conversation.id))
            .filter(desk_conversations::Column::AgentId.eq(agent_id))
            .filter(desk_conversations::Column::State.eq(ConversationState::Assigned))
            .exec(&txn)
            .await?
            .rows_affected;
        if moved == 1 {
            release_seat(&txn, agent_id).await?;
            super::conversations::record_change(
                &txn,
                now,
                conversation.id,
                EventKind::ConversationRequeued,
            )
            .await?;
            groups.insert(conversation.skill_group_id);
            count += 1;
        }
        txn.commit().await?;
    }
    if count > 0 {
        events::announce(ctx).await;
    }
    for group in groups {
        drain_group(ctx, group).await?;
    }
    Ok(count)
}
