//! `/api/v1/desk`: the customer-service desk. Agents (`desk:work`) take, answer, transfer and
//! close conversations and follow the desk live; supervisors (`desk:supervise`) watch the queue
//! and every agent; managers (`desk:manage`) set up skill groups, agents, channels and shared
//! quick replies.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use service::{
    desk::{
        agents::{
            self, AgentInput, AgentPatch, AgentView, StatusInput, WorkLogEntry, WorkLogQuery,
        },
        conversations::{
            self, ConversationQuery, ConversationView, DeskMessageView, DeskOverview, ReplyInput,
            TransferInput, TransferView,
        },
        events::DeskEvent,
        members::{self, InviteInput},
        quick_replies::{self, QuickReplyInput, QuickReplyView},
        setup::{
            self, DeskChannelInput, DeskChannelPatch, DeskChannelView, SkillGroupInput,
            SkillGroupPatch, SkillGroupView,
        },
        stream::{self, Frame},
        visitor_groups::{self, VisitorGroupInput, VisitorGroupPatch, VisitorGroupView},
        visitors::{self, VisitorPatch, VisitorQuery, VisitorView},
    },
    pagination::{Page, PageRequest},
    rbac::perm,
};

use super::{PageQuery, no_content};
use crate::{
    error::{ApiError, Problem},
    extract::{AgentId, Authorized, Id, IdempotencyKey, ValidJson, ValidQuery},
    state::AppState,
};

#[utoipa::path(get, path = "/api/v1/desk/skill-groups", tag = "desk",
    responses((status = 200, body = Vec<SkillGroupView>)))]
pub async fn list_skill_groups(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<SkillGroupView>>, ApiError> {
    Ok(web::Json(
        setup::list_groups(&state.ctx, &auth.actor).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/skill-groups", tag = "desk", request_body = SkillGroupInput,
    responses((status = 201, body = SkillGroupView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_skill_group(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<SkillGroupInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "desk.skill_group.create", body, |body| {
        setup::create_group(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(patch, path = "/api/v1/desk/skill-groups/{id}", tag = "desk", params(("id" = i64, Path)), request_body = SkillGroupPatch,
    responses((status = 200, body = SkillGroupView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_skill_group(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<SkillGroupPatch>,
) -> Result<web::Json<SkillGroupView>, ApiError> {
    Ok(web::Json(
        setup::update_group(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/desk/skill-groups/{id}", tag = "desk", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "The group still has channels or open conversations", body = Problem)))]
pub async fn delete_skill_group(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    setup::delete_group(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/desk/visitor-groups", tag = "desk",
    responses((status = 200, body = Vec<VisitorGroupView>)))]
pub async fn list_visitor_groups(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<VisitorGroupView>>, ApiError> {
    Ok(web::Json(
        visitor_groups::list(&state.ctx, &auth.actor).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/visitor-groups", tag = "desk", request_body = VisitorGroupInput,
    responses((status = 201, body = VisitorGroupView), (status = 409, description = "Another group has the name", body = Problem), (status = 422, body = Problem)))]
pub async fn create_visitor_group(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<VisitorGroupInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "desk.visitor_group.create", body, |body| {
        visitor_groups::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(patch, path = "/api/v1/desk/visitor-groups/{id}", tag = "desk", params(("id" = i64, Path)), request_body = VisitorGroupPatch,
    responses((status = 200, body = VisitorGroupView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_visitor_group(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<VisitorGroupPatch>,
) -> Result<web::Json<VisitorGroupView>, ApiError> {
    Ok(web::Json(
        visitor_groups::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/desk/visitor-groups/{id}", tag = "desk", params(("id" = i64, Path)),
    responses((status = 204, description = "Removed; its visitors are ungrouped"), (status = 404, body = Problem)))]
pub async fn delete_visitor_group(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    visitor_groups::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/desk/channels", tag = "desk",
    responses((status = 200, body = Vec<DeskChannelView>)))]
pub async fn list_channels(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<DeskChannelView>>, ApiError> {
    Ok(web::Json(
        setup::list_channels(&state.ctx, &auth.actor).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/channels", tag = "desk", request_body = DeskChannelInput,
    responses((status = 201, body = DeskChannelView), (status = 409, description = "The account is already a channel", body = Problem), (status = 422, body = Problem)))]
pub async fn create_channel(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<DeskChannelInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "desk.channel.create", body, |body| {
        setup::create_channel(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(patch, path = "/api/v1/desk/channels/{id}", tag = "desk", params(("id" = i64, Path)), request_body = DeskChannelPatch,
    responses((status = 200, body = DeskChannelView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_channel(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<DeskChannelPatch>,
) -> Result<web::Json<DeskChannelView>, ApiError> {
    Ok(web::Json(
        setup::update_channel(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/desk/channels/{id}", tag = "desk", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "Conversations of the channel are still open", body = Problem)))]
pub async fn delete_channel(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    setup::delete_channel(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/v1/desk/agents", tag = "desk",
    responses((status = 200, body = Vec<AgentView>)))]
pub async fn list_agents(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<AgentView>>, ApiError> {
    Ok(web::Json(agents::list(&state.ctx, &auth.actor).await?))
}

#[utoipa::path(post, path = "/api/v1/desk/agents", tag = "desk", request_body = AgentInput,
    responses((status = 201, body = AgentView), (status = 409, description = "The user is already an agent or the number is taken", body = Problem), (status = 422, body = Problem)))]
pub async fn create_agent(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<AgentInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "desk.agent.create", body, |body| {
        agents::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(patch, path = "/api/v1/desk/agents/{id}", tag = "desk", params(("id" = i64, Path)), request_body = AgentPatch,
    responses((status = 200, body = AgentView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_agent(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<AgentPatch>,
) -> Result<web::Json<AgentView>, ApiError> {
    Ok(web::Json(
        agents::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/desk/agents/{id}", tag = "desk", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, description = "The agent still has open conversations", body = Problem)))]
pub async fn delete_agent(
    auth: Authorized<perm::DeskManage>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    agents::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[utoipa::path(put, path = "/api/v1/desk/agents/{id}/status", tag = "desk", params(("id" = i64, Path)), request_body = StatusInput,
    responses((status = 200, description = "A supervisor set the agent's status", body = AgentView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_agent_status(
    auth: Authorized<perm::DeskSupervise>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<StatusInput>,
) -> Result<web::Json<AgentView>, ApiError> {
    Ok(web::Json(
        agents::set_status(&state.ctx, &auth.actor, id, body.status).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/desk/agents/{id}/work-log", tag = "desk", params(("id" = i64, Path), WorkLogQuery),
    responses((status = 200, description = "Status changes, newest first (supervisors: anyone's; agents: their own)", body = Page<WorkLogEntry>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn agent_work_log(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(q): ValidQuery<WorkLogQuery>,
) -> Result<web::Json<Page<WorkLogEntry>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        agents::work_log(&state.ctx, &auth.actor, id, page).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/desk/me", tag = "desk",
    responses((status = 200, description = "Your agent profile", body = AgentView), (status = 409, description = "You are not set up as an agent", body = Problem)))]
pub async fn desk_me(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
) -> Result<web::Json<AgentView>, ApiError> {
    Ok(web::Json(agents::me(&state.ctx, &auth.actor).await?))
}

#[utoipa::path(put, path = "/api/v1/desk/me/status", tag = "desk", request_body = StatusInput,
    responses((status = 200, description = "Going online hands you queued conversations; going offline gives back those you had not accepted", body = AgentView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_my_status(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<StatusInput>,
) -> Result<web::Json<AgentView>, ApiError> {
    Ok(web::Json(
        agents::set_my_status(&state.ctx, &auth.actor, body.status).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/me/heartbeat", tag = "desk",
    responses((status = 200, description = "The workbench is open; without one for 60 s you go offline", body = AgentView), (status = 409, body = Problem)))]
pub async fn desk_heartbeat(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
) -> Result<web::Json<AgentView>, ApiError> {
    Ok(web::Json(agents::heartbeat(&state.ctx, &auth.actor).await?))
}

#[utoipa::path(get, path = "/api/v1/desk/overview", tag = "desk",
    responses((status = 200, description = "Queue length, longest wait and load per group; every agent's status and load", body = DeskOverview)))]
pub async fn desk_overview(
    auth: Authorized<perm::DeskSupervise>,
    state: web::Data<AppState>,
) -> Result<web::Json<DeskOverview>, ApiError> {
    Ok(web::Json(
        conversations::overview(&state.ctx, &auth.actor).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/desk/conversations", tag = "desk", params(ConversationQuery),
    responses((status = 200, description = "Newest first: yours and your groups' queue, or every one for supervisors", body = Page<ConversationView>), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn list_conversations(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<ConversationQuery>,
) -> Result<web::Json<Page<ConversationView>>, ApiError> {
    Ok(web::Json(
        conversations::list(&state.ctx, &auth.actor, q).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/desk/conversations/{id}", tag = "desk", params(("id" = i64, Path)),
    responses((status = 200, body = ConversationView), (status = 404, body = Problem)))]
pub async fn get_conversation(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<ConversationView>, ApiError> {
    Ok(web::Json(
        conversations::get(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/desk/conversations/{id}/messages", tag = "desk", params(("id" = i64, Path), PageQuery),
    responses((status = 200, description = "Newest first", body = Page<DeskMessageView>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn conversation_messages(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<web::Json<Page<DeskMessageView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        conversations::messages(&state.ctx, &auth.actor, id, page).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/desk/conversations/{id}/transfers", tag = "desk", params(("id" = i64, Path)),
    responses((status = 200, description = "Oldest first", body = Vec<TransferView>), (status = 404, body = Problem)))]
pub async fn conversation_transfers(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<Vec<TransferView>>, ApiError> {
    Ok(web::Json(
        conversations::transfers(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/conversations/{id}/accept", tag = "desk", params(("id" = i64, Path)),
    responses((status = 200, description = "Accepted (assigned to you) or claimed (queued in your group)", body = ConversationView), (status = 404, body = Problem), (status = 409, description = "Taken meanwhile, or you have no free seat", body = Problem)))]
pub async fn accept_conversation(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<ConversationView>, ApiError> {
    Ok(web::Json(
        conversations::accept(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/conversations/{id}/reply", tag = "desk", params(("id" = i64, Path)), request_body = ReplyInput,
    responses((status = 201, description = "Queued to the visitor through the channel's account", body = DeskMessageView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reply_conversation(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    Id(id): Id,
    ValidJson(body): ValidJson<ReplyInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    let operation = format!("desk.reply:{id}");
    key.created(&state, actor, &operation, body, |body| {
        conversations::reply(&state.ctx, actor, id, body)
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/desk/conversations/{id}/transfer", tag = "desk", params(("id" = i64, Path)), request_body = TransferInput,
    responses((status = 200, body = ConversationView), (status = 404, body = Problem), (status = 409, description = "The agent is offline, or the conversation changed meanwhile", body = Problem), (status = 422, body = Problem)))]
pub async fn transfer_conversation(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<TransferInput>,
) -> Result<web::Json<ConversationView>, ApiError> {
    Ok(web::Json(
        conversations::transfer(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/conversations/{id}/members", tag = "desk", params(("id" = i64, Path)), request_body = InviteInput,
    responses((status = 200, description = "The colleague serves the visitor too (the conversation's `members`)", body = ConversationView), (status = 404, body = Problem), (status = 409, description = "Queued or closed, the colleague is offline, or already a member", body = Problem), (status = 422, body = Problem)))]
pub async fn invite_member(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<InviteInput>,
) -> Result<web::Json<ConversationView>, ApiError> {
    Ok(web::Json(
        members::invite(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/desk/conversations/{id}/members/{agent_id}", tag = "desk", params(("id" = i64, Path), ("agent_id" = i64, Path)),
    responses((status = 200, description = "The member left (themselves, or taken out by the conversation's agent or a supervisor)", body = ConversationView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_member(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
    AgentId(agent): AgentId,
) -> Result<web::Json<ConversationView>, ApiError> {
    Ok(web::Json(
        members::remove(&state.ctx, &auth.actor, id, agent).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/conversations/{id}/close", tag = "desk", params(("id" = i64, Path)),
    responses((status = 200, description = "Closed; the channel's rating prompt goes to the visitor", body = ConversationView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn close_conversation(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<ConversationView>, ApiError> {
    Ok(web::Json(
        conversations::close(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/conversations/{id}/read", tag = "desk", params(("id" = i64, Path)),
    responses((status = 200, description = "Its unread count is now 0", body = ConversationView), (status = 404, body = Problem)))]
pub async fn read_conversation(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<ConversationView>, ApiError> {
    Ok(web::Json(
        conversations::mark_read(&state.ctx, &auth.actor, id).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Replay the events after this id first (or send `Last-Event-ID`, as browsers do when they
    /// reconnect).
    #[param(minimum = 0)]
    pub after: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/desk/events", tag = "desk", params(EventsQuery),
    responses((status = 200, description = "Server-sent events: each desk event you may see as `id:` (resume point), `event:` (its kind) and `data:` (a DeskEvent); `reset` when you fell too far behind (reload, then carry on); a comment every 15 s", content_type = "text/event-stream", body = DeskEvent), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, description = "You hold the maximum of open streams", body = Problem)))]
pub async fn desk_events(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    req: HttpRequest,
    ValidQuery(q): ValidQuery<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let header = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = header
        .or(q.after.and_then(|a| i64::try_from(a).ok()))
        .filter(|a| *a >= 0);
    // Who the viewer is on the desk is settled before a stream slot is taken.
    service::desk::audience_of(&state.ctx, &auth.actor).await?;
    let slot = state.streams.take(auth.actor.user_id()?).await.ok_or(
        service::error::ServiceError::TooManyRequests {
            retry_after_secs: 5,
        },
    )?;
    let frames = stream::follow(&state.ctx, &auth.actor, after, slot).await?;
    let body = futures_util::StreamExt::map(frames, |frame| {
        let text = match frame {
            Frame::Event(event) => format!(
                "id: {}\nevent: {}\ndata: {}\n\n",
                event.id,
                event.kind,
                serde_json::to_string(&*event).unwrap_or_default()
            ),
            Frame::Reset => "event: reset\ndata: {}\n\n".to_owned(),
            Frame::KeepAlive => ": keep-alive\n\n".to_owned(),
        };
        Ok::<_, std::io::Error>(web::Bytes::from(text))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

#[utoipa::path(get, path = "/api/v1/desk/visitors", tag = "desk", params(VisitorQuery),
    responses((status = 200, body = Page<VisitorView>), (status = 422, body = Problem)))]
pub async fn list_visitors(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<VisitorQuery>,
) -> Result<web::Json<Page<VisitorView>>, ApiError> {
    Ok(web::Json(visitors::list(&state.ctx, &auth.actor, q).await?))
}

#[utoipa::path(get, path = "/api/v1/desk/visitors/{id}", tag = "desk", params(("id" = i64, Path)),
    responses((status = 200, body = VisitorView), (status = 404, body = Problem)))]
pub async fn get_visitor(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<VisitorView>, ApiError> {
    Ok(web::Json(visitors::get(&state.ctx, &auth.actor, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/desk/visitors/{id}", tag = "desk", params(("id" = i64, Path)), request_body = VisitorPatch,
    responses((status = 200, body = VisitorView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_visitor(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<VisitorPatch>,
) -> Result<web::Json<VisitorView>, ApiError> {
    Ok(web::Json(
        visitors::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/desk/quick-replies", tag = "desk",
    responses((status = 200, description = "Yours and the shared ones", body = Vec<QuickReplyView>)))]
pub async fn list_quick_replies(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<QuickReplyView>>, ApiError> {
    Ok(web::Json(
        quick_replies::list(&state.ctx, &auth.actor).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/desk/quick-replies", tag = "desk", request_body = QuickReplyInput,
    responses((status = 201, body = QuickReplyView), (status = 403, description = "A shared one needs desk:manage", body = Problem), (status = 422, body = Problem)))]
pub async fn create_quick_reply(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<QuickReplyInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "desk.quick_reply.create", body, |body| {
        quick_replies::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/desk/quick-replies/{id}", tag = "desk", params(("id" = i64, Path)), request_body = QuickReplyInput,
    responses((status = 200, body = QuickReplyView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_quick_reply(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<QuickReplyInput>,
) -> Result<web::Json<QuickReplyView>, ApiError> {
    Ok(web::Json(
        quick_replies::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/desk/quick-replies/{id}", tag = "desk", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_quick_reply(
    auth: Authorized<perm::DeskWork>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    quick_replies::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}
