//! `/api/v1/messages`: send one message; read messages and conversations.

use actix_web::{HttpResponse, web};
use service::{
    messages::{self, MessageFilter, MessageInput, MessageView},
    pagination::Page,
    rbac::perm,
    tasks::TaskView,
};

use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, IdempotencyKey, ValidJson, ValidQuery},
    state::AppState,
};

#[utoipa::path(post, path = "/api/v1/messages", tag = "messaging", request_body = MessageInput,
    responses((status = 201, description = "Queued as a single task; follow it at /api/v1/tasks/{id}", body = TaskView), (status = 422, body = Problem)))]
pub async fn send_message(
    auth: Authorized<perm::MessagesSend>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<MessageInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "messages.send", body, |body| {
        messages::send(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/messages", tag = "messaging", params(MessageFilter),
    responses((status = 200, description = "Newest first; filter by contact_id for a conversation", body = Page<MessageView>), (status = 422, body = Problem)))]
pub async fn list_messages(
    auth: Authorized<perm::MessagesRead>,
    state: web::Data<AppState>,
    ValidQuery(filter): ValidQuery<MessageFilter>,
) -> Result<web::Json<Page<MessageView>>, ApiError> {
    Ok(web::Json(
        messages::list(&state.ctx, &auth.actor, filter).await?,
    ))
}
