//! The customer-service desk: visitors write to a WeCom account that is a desk *channel*, their
//! messages open *conversations* that queue in the channel's *skill group* and are assigned to
//! an online *agent* by the group's rule; agents accept, reply, transfer and close them, and the
//! visitor rates the service. Every change is an event of the desk's log, which the workbench
//! follows live (`events`).
//!
//! Who may do what: `desk:work` answers (an agent sees their own conversations and their
//! groups' queue), `desk:supervise` sees and moves every conversation, `desk:manage` sets up
//! groups, agents, channels and shared quick replies.

pub mod agents;
pub mod assign;
pub mod conversations;
pub mod events;
pub mod intake;
pub mod kf;
pub mod kf_mirror;
pub mod levels;
pub mod members;
pub mod metrics;
pub mod quick_replies;
pub mod setup;
pub mod stream;
pub mod visitor_groups;
pub mod visitors;

use entity::{desk_agent_groups, desk_agents};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::{Context, ServiceError, ServiceResult, auth::actor::Actor, rbac::perm};

/// Marks the desk's own sender: only it may queue 微信客服 messages, whose send window it keeps.
/// Not a permission any role can hold.
pub const SENDER_MARK: &str = "internal:desk-sender";

/// The agent profile of the signed-in user.
pub async fn my_agent<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
) -> ServiceResult<desk_agents::Model> {
    let user_id = actor.user_id()?;
    desk_agents::Entity::find()
        .filter(desk_agents::Column::UserId.eq(user_id))
        .one(conn)
        .await?
        .ok_or_else(|| {
            ServiceError::conflict(
                "agent",
                "you are not set up as an agent; an administrator adds you under Desk settings",
            )
        })
}

/// The skill groups an agent belongs to.
pub async fn groups_of<C: ConnectionTrait>(conn: &C, agent_id: i64) -> ServiceResult<Vec<i64>> {
    Ok(desk_agent_groups::Entity::find()
        .select_only()
        .column(desk_agent_groups::Column::SkillGroupId)
        .filter(desk_agent_groups::Column::AgentId.eq(agent_id))
        .into_tuple()
        .all(conn)
        .await?)
}

/// What the actor sees of the desk: everything with `desk:supervise`, else their own agent's
/// conversations and their groups' queue.
pub async fn audience_of(ctx: &Context, actor: &Actor) -> ServiceResult<events::Audience> {
    if actor.has(perm::DeskSupervise) {
        let agent = my_agent(&ctx.db, actor).await.ok();
        return Ok(events::Audience {
            everything: true,
            agent_id: agent.map(|a| a.id),
            ..Default::default()
        });
    }
    actor.require(perm::DeskWork)?;
    let agent = my_agent(&ctx.db, actor).await?;
    Ok(events::Audience {
        everything: false,
        agent_id: Some(agent.id),
        groups: groups_of(&ctx.db, agent.id).await?.into_iter().collect(),
        conversations: members::open_memberships(&ctx.db, agent.id)
            .await?
            .into_iter()
            .collect(),
    })
}
