//! Agents: users who answer on the desk, with an agent number, skill groups, a maximum of
//! concurrent conversations and a status they set themselves (online, busy, away, offline). The
//! workbench sends a heartbeat; an agent whose heartbeats stop is set offline by the sweep, and
//! the conversations they had not accepted yet go back to the queue. Every status change is a
//! row of the work log.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{
    desk_agent_groups, desk_agent_status_log, desk_agents, desk_conversations,
    states::{AgentStatus, AgentStatusCause, ConversationState},
    users,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};

use super::events::{self, EventKind, Scope};
use crate::{
    Context, ServiceError, ServiceResult,
    audit::{self, AuditEntry, OperationType},
    auth::actor::Actor,
    clock::to_utc,
    pagination::{Page, PageRequest},
    rbac::perm,
    validate::Violations,
};

/// An agent whose workbench has sent no heartbeat for this long is set offline.
pub const HEARTBEAT_TIMEOUT: TimeDelta = TimeDelta::seconds(60);
const MAX_CONCURRENT: i32 = 100;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub nickname: Option<String>,
    /// The agent's number (工号), shown to colleagues and in reports.
    pub agent_no: String,
    pub max_concurrent: i32,
    pub status: AgentStatus,
    pub status_changed_at: DateTime<Utc>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Conversations assigned to or being served by the agent now.
    pub active_conversations: i32,
    pub skill_group_ids: Vec<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    pub user_id: i64,
    /// 1 to 32 of letters, digits, `-` and `_`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub agent_no: String,
    /// 1 to 100; default 5.
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrent: Option<i32>,
    #[serde(default)]
    pub skill_group_ids: Vec<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub agent_no: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrent: Option<i32>,
    pub skill_group_ids: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    pub status: AgentStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkLogEntry {
    pub id: i64,
    pub agent_id: i64,
    pub from_status: AgentStatus,
    pub to_status: AgentStatus,
    pub cause: AgentStatusCause,
    pub at: DateTime<Utc>,
}

async fn view<C: ConnectionTrait>(conn: &C, m: desk_agents::Model) -> ServiceResult<AgentView> {
    views(conn, vec![m])
        .await?
        .pop()
        .ok_or(ServiceError::NotFound("agent"))
}

/// The agents' views, their users and groups read in one query each.
async fn views<C: ConnectionTrait>(
    conn: &C,
    agents: Vec<desk_agents::Model>,
) -> ServiceResult<Vec<AgentView>> {
    let ids: Vec<i64> = agents.iter().map(|a| a.id).collect();
    let users: std::collections::HashMap<i64, users::Model> = users::Entity::find()
        .filter(users::Column::Id.is_in(agents.iter().map(|a| a.user_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let mut groups: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for link in desk_agent_groups::Entity::find()
        .filter(desk_agent_groups::Column::AgentId.is_in(ids))
        .order_by_asc(desk_agent_groups::Column::SkillGroupId)
        .all(conn)
        .await?
    {
        groups
            .entry(link.agent_id)
            .or_default()
            .push(link.skill_group_id);
    }
    agents
        .into_iter()
        .map(|m| {
            let user = users
                .get(&m.user_id)
                .ok_or(ServiceError::NotFound("user"))?;
            Ok(AgentView {
                id: m.id,
                user_id: m.user_id,
                username: user.username.clone(),
                nickname: user.nickname.clone(),
                agent_no: m.agent_no,
                max_concurrent: m.max_concurrent,
                status: m.status,
                status_changed_at: to_utc(m.status_changed_at),
                last_heartbeat_at: m.last_heartbeat_at.map(to_utc),
                active_conversations: m.active_conversations,
                skill_group_ids: groups.remove(&m.id).unwrap_or_default(),
            })
        })
        .collect()
}

pub async fn find<C: ConnectionTrait>(conn: &C, id: i64) -> ServiceResult<desk_agents::Model> {
    desk_agents::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("agent"))
}

/// Every agent; anyone on the desk reads the list (to see who is online and transfer).
pub async fn list(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<AgentView>> {
    if !actor.has(perm::DeskManage) && !actor.has(perm::DeskSupervise) {
        actor.require(perm::DeskWork)?;
    }
    let rows = desk_agents::Entity::find()
        .order_by_asc(desk_agents::Column::AgentNo)
        .all(&ctx.db)
        .await?;
    views(&ctx.db, rows).await
}

fn check_no(v: &mut Violations, no: &str) -> Option<String> {
    let no = no.trim();
    let ok = (1..=32).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Some(no.to_owned())
    } else {
        v.add(
            "agent_no",
            "must be 1 to 32 of letters, digits, `-` and `_`",
        );
        None
    }
}

fn check_max(v: &mut Violations, max: Option<i32>) {
    if let Some(max) = max
        && !(1..=MAX_CONCURRENT).contains(&max)
    {
        v.add(
            "max_concurrent",
            format!("must be between 1 and {MAX_CONCURRENT}"),
        );
    }
}

async fn check_groups<C: ConnectionTrait>(
    conn: &C,
    v: &mut Violations,
    ids: &[i64],
) -> ServiceResult<()> {
    for (i, id) in ids.iter().enumerate() {
        if entity::desk_skill_groups::Entity::find_by_id(*id)
            .one(conn)
            .await?
            .is_none()
        {
            v.add(format!("skill_group_ids[{i}]"), "no such skill group");
        }
    }
    Ok(())
}

async fn set_groups<C: ConnectionTrait>(conn: &C, agent_id: i64, ids: &[i64]) -> ServiceResult<()> {
    desk_agent_groups::Entity::delete_many()
        .filter(desk_agent_groups::Column::AgentId.eq(agent_id))
        .exec(conn)
        .await?;
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    for group in unique {
        desk_agent_groups::Entity::insert(desk_agent_groups::ActiveModel {
            agent_id: Set(agent_id),
            skill_group_id: Set(group),
            ..Default::default()
        })
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

fn taken(e: ServiceError) -> ServiceError {
    if e.is_unique_violation() {
        ServiceError::conflict(
            "agent_no",
            "the user is already an agent, or the number is taken",
        )
    } else {
        e
    }
}

pub async fn create(ctx: &Context, actor: &Actor, input: AgentInput) -> ServiceResult<AgentView> {
    let entry = AuditEntry::new("desk.agent.create", OperationType::Create, "agent");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let no = check_no(&mut v, &input.agent_no);
        check_max(&mut v, input.max_concurrent);
        if users::Entity::find_by_id(input.user_id)
            .filter(users::Column::DeletedAt.is_null())
            .one(&ctx.db)
            .await?
            .is_none()
        {
            v.add("user_id", "no such user");
        }
        check_groups(&ctx.db, &mut v, &input.skill_group_ids).await?;
        v.finish()?;
        let Some(no) = no else {
            return Err(ServiceError::invalid("agent_no", "is invalid"));
        };
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let id = desk_agents::Entity::insert(desk_agents::ActiveModel {
            user_id: Set(input.user_id),
            agent_no: Set(no.clone()),
            max_concurrent: Set(input.max_concurrent.unwrap_or(5)),
            status: Set(AgentStatus::Offline),
            status_changed_at: Set(now),
            last_heartbeat_at: Set(None),
            active_conversations: Set(0),
            last_assigned_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(|e| taken(e.into()))?
        .last_insert_id;
        set_groups(&txn, id, &input.skill_group_ids).await?;
        let created = view(&txn, find(&txn, id).await?).await?;
        audit::commit_created(txn, actor, &entry, id, no, created, now).await
    })
    .await
}

pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    patch: AgentPatch,
) -> ServiceResult<AgentView> {
    let entry = AuditEntry::new("desk.agent.update", OperationType::Update, "agent");
    let updated = audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let mut v = Violations::new();
        let no = patch.agent_no.as_deref().and_then(|n| check_no(&mut v, n));
        check_max(&mut v, patch.max_concurrent);
        if let Some(groups) = &patch.skill_group_ids {
            check_groups(&ctx.db, &mut v, groups).await?;
        }
        v.finish()?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before_row = find(&txn, id).await?;
        let before = view(&txn, before_row.clone()).await?;
        let mut row: desk_agents::ActiveModel = before_row.into();
        if let Some(no) = no {
            row.agent_no = Set(no);
        }
        if let Some(max) = patch.max_concurrent {
            row.max_concurrent = Set(max);
        }
        row.updated_at = Set(now);
        desk_agents::Entity::update(row)
            .exec(&txn)
            .await
            .map_err(|e| taken(e.into()))?;
        if let Some(groups) = &patch.skill_group_ids {
            set_groups(&txn, id, groups).await?;
        }
        let after = view(&txn, find(&txn, id).await?).await?;
        let no = after.agent_no.clone();
        audit::commit_updated(txn, actor, &entry, id, no, &before, after, now).await
    })
    .await?;
    // More room or new groups may take queued conversations now.
    super::assign::drain_for_agent(ctx, id).await?;
    Ok(updated)
}

/// An agent with open conversations cannot be removed (transfer them first).
pub async fn delete(ctx: &Context, actor: &Actor, id: i64) -> ServiceResult<()> {
    let entry = AuditEntry::new("desk.agent.delete", OperationType::Delete, "agent");
    audit::guard(ctx, actor, entry.clone(), async {
        actor.require(perm::DeskManage)?;
        let now = ctx.clock.now_db();
        let txn = crate::db::begin(&ctx.db).await?;
        let before = view(&txn, find(&txn, id).await?).await?;
        let open = desk_conversations::Entity::find()
            .filter(desk_conversations::Column::AgentId.eq(id))
            .filter(desk_conversations::Column::State.ne(ConversationState::Closed))
            .count(&txn)
            .await?;
        if open > 0 {
            return Err(ServiceError::conflict(
                "id",
                format!("the agent still has {open} open conversation(s); transfer them first"),
            ));
        }
        // Closed conversations keep their history without the agent.
        desk_conversations::Entity::update_many()
            .col_expr(
                desk_conversations::Column::AgentId,
                Expr::value(Option::<i64>::None),
            )
            .filter(desk_conversations::Column::AgentId.eq(id))
            .exec(&txn)
            .await?;
        desk_agents::Entity::delete_by_id(id).exec(&txn).await?;
        let no = before.agent_no.clone();
        audit::commit_deleted(txn, actor, &entry, id, no, &before, now).await
    })
    .await
}

/// A supervisor sets an agent's status (logged with the cause `supervisor`).
pub async fn set_status(
    ctx: &Context,
    actor: &Actor,
    id: i64,
    status: AgentStatus,
) -> ServiceResult<AgentView> {
    actor.require(perm::DeskSupervise)?;
    let agent = find(&ctx.db, id).await?;
    change_status(ctx, agent, status, AgentStatusCause::Supervisor).await?;
    view(&ctx.db, find(&ctx.db, id).await?).await
}

/// The signed-in agent's own profile.
pub async fn me(ctx: &Context, actor: &Actor) -> ServiceResult<AgentView> {
    actor.require(perm::DeskWork)?;
    let agent = super::my_agent(&ctx.db, actor).await?;
    view(&ctx.db, agent).await
}

/// The agent sets their own status; going online also counts as a heartbeat.
pub async fn set_my_status(
    ctx: &Context,
    actor: &Actor,
    status: AgentStatus,
) -> ServiceResult<AgentView> {
    actor.require(perm::DeskWork)?;
    let agent = super::my_agent(&ctx.db, actor).await?;
    let id = agent.id;
    if status != AgentStatus::Offline {
        touch(ctx, id).await?;
    }
    change_status(ctx, agent, status, AgentStatusCause::Agent).await?;
    view(&ctx.db, find(&ctx.db, id).await?).await
}

/// The workbench is open: keeps the agent's status.
pub async fn heartbeat(ctx: &Context, actor: &Actor) -> ServiceResult<AgentView> {
    actor.require(perm::DeskWork)?;
    let agent = super::my_agent(&ctx.db, actor).await?;
    touch(ctx, agent.id).await?;
    view(&ctx.db, find(&ctx.db, agent.id).await?).await
}

async fn touch(ctx: &Context, id: i64) -> ServiceResult<()> {
    desk_agents::Entity::update_many()
        .col_expr(
            desk_agents::Column::LastHeartbeatAt,
            Expr::value(ctx.clock.now_db()),
        )
        .filter(desk_agents::Column::Id.eq(id))
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// Moves an agent to `to` (a no-op when already there): logs it, announces it, gives back the
/// conversations an agent going offline had not accepted, and hands queued conversations to an
/// agent coming online.
pub async fn change_status(
    ctx: &Context,
    agent: desk_agents::Model,
    to: AgentStatus,
    cause: AgentStatusCause,
) -> ServiceResult<()> {
    let now = ctx.clock.now_db();
    let txn = crate::db::begin(&ctx.db).await?;
    // Only the row still in the status read moves: a concurrent change wins once.
    let moved = desk_agents::Entity::update_many()
        .col_expr(desk_agents::Column::Status, Expr::value(to))
        .col_expr(desk_agents::Column::StatusChangedAt, Expr::value(now))
        .col_expr(desk_agents::Column::UpdatedAt, Expr::value(now))
        .filter(desk_agents::Column::Id.eq(agent.id))
        .filter(desk_agents::Column::Status.eq(agent.status))
        .filter(desk_agents::Column::Status.ne(to))
        .exec(&txn)
        .await?
        .rows_affected;
    if moved == 0 {
        txn.commit().await?;
        if to == AgentStatus::Online {
            super::assign::drain_for_agent(ctx, agent.id).await?;
        }
        return Ok(());
    }
    desk_agent_status_log::Entity::insert(desk_agent_status_log::ActiveModel {
        agent_id: Set(agent.id),
        from_status: Set(agent.status),
        to_status: Set(to),
        cause: Set(cause),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
    events::record(
        &txn,
        now,
        EventKind::AgentStatus,
        Scope {
            agent_id: Some(agent.id),
            ..Scope::default()
        },
        &serde_json::json!({"agent_id": agent.id, "agent_no": agent.agent_no, "from": agent.status, "to": to, "cause": cause}),
    )
    .await?;
    txn.commit().await?;
    events::announce(ctx).await;
    if to == AgentStatus::Offline {
        super::assign::requeue_unaccepted(ctx, agent.id).await?;
    }
    if to == AgentStatus::Online {
        super::assign::drain_for_agent(ctx, agent.id).await?;
    }
    Ok(())
}

/// Sets offline every agent whose heartbeats stopped; returns how many.
pub async fn sweep_silent(ctx: &Context) -> ServiceResult<usize> {
    let cutoff = ctx.clock.now_db() - HEARTBEAT_TIMEOUT;
    let silent = desk_agents::Entity::find()
        .filter(desk_agents::Column::Status.ne(AgentStatus::Offline))
        .filter(
            Condition::any()
                .add(desk_agents::Column::LastHeartbeatAt.lt(cutoff))
                .add(desk_agents::Column::LastHeartbeatAt.is_null()),
        )
        .limit(500)
        .all(&ctx.db)
        .await?;
    let count = silent.len();
    for agent in silent {
        change_status(
            ctx,
            agent,
            AgentStatus::Offline,
            AgentStatusCause::Heartbeat,
        )
        .await?;
    }
    Ok(count)
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkLogQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

/// An agent's status changes, newest first: supervisors read anyone's, an agent their own.
pub async fn work_log(
    ctx: &Context,
    actor: &Actor,
    agent_id: i64,
    page: PageRequest,
) -> ServiceResult<Page<WorkLogEntry>> {
    let agent = find(&ctx.db, agent_id).await?;
    if !actor.has(perm::DeskSupervise) {
        actor.require(perm::DeskWork)?;
        if Some(agent.user_id) != actor.user_id {
            return Err(ServiceError::NotFound("agent"));
        }
    }
    let mut query = desk_agent_status_log::Entity::find()
        .filter(desk_agent_status_log::Column::AgentId.eq(agent_id))
        .order_by_desc(desk_agent_status_log::Column::Id)
        .limit(page.fetch());
    if let Some(before) = page.before {
        query = query.filter(desk_agent_status_log::Column::Id.lt(before));
    }
    let rows = query.all(&ctx.db).await?;
    Ok(Page::from_rows(
        page,
        rows,
        |r| r.id,
        |r| WorkLogEntry {
            id: r.id,
            agent_id: r.agent_id,
            from_status: r.from_status,
            to_status: r.to_status,
            cause: r.cause,
            at: to_utc(r.created_at),
        },
    ))
}
