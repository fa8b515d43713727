//! `/api/v1/tasks`: message tasks, their control, progress (JSON and SSE) and reports.

use entity::states::{ReceiverStatus, TaskStatus, TaskType};

use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use service::{
    pagination::{Page, PageRequest},
    rbac::perm,
    tasks::{
        self as task_service, TaskFilter, TaskInput, TaskView,
        control::{self, RemindReport, WinnerChoice},
        estimate::{self, AudienceEstimate, EstimateInput},
        outcomes::{self, OutcomeFilter, TaskOutcomes},
        report::{self, ReceiverFilter, ReceiverView, RunView},
        summary::{self, OutcomeSummary, SummaryQuery},
    },
};

use super::{PageQuery, no_content};
use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, Id, IdempotencyKey, ValidJson, ValidQuery},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    pub task_type: Option<TaskType>,
    /// Substring of the name.
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tasks", tag = "messaging", params(TaskQuery),
    responses((status = 200, body = Page<TaskView>), (status = 422, body = Problem)))]
pub async fn list_tasks(
    auth: Authorized<perm::TasksRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<TaskQuery>,
) -> Result<web::Json<Page<TaskView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        task_service::list(
            &state.ctx,
            &auth.actor,
            TaskFilter {
                status: q.status,
                task_type: q.task_type,
                q: q.q,
            },
            page,
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "messaging", request_body = TaskInput,
    responses((status = 201, body = TaskView), (status = 422, body = Problem)))]
pub async fn create_task(
    auth: Authorized<perm::TasksCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<TaskInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "tasks.create", body, |body| {
        task_service::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 200, description = "With counts, progress and an ETA", body = TaskView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_task(
    auth: Authorized<perm::TasksRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<TaskView>, ApiError> {
    Ok(web::Json(
        task_service::get(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_task(
    auth: Authorized<perm::TasksDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    control::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseIn {
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/pause", tag = "messaging", params(("id" = i64, Path)), request_body = PauseIn,
    responses((status = 200, description = "Paused within one chunk; stays paused across restarts", body = TaskView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn pause_task(
    auth: Authorized<perm::TasksControl>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<PauseIn>,
) -> Result<web::Json<TaskView>, ApiError> {
    Ok(web::Json(
        control::pause(&state.ctx, &auth.actor, id, body.reason).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/resume", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 200, body = TaskView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resume_task(
    auth: Authorized<perm::TasksControl>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<TaskView>, ApiError> {
    Ok(web::Json(
        control::resume(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 200, description = "Receivers not yet sent are skipped as cancelled", body = TaskView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_task(
    auth: Authorized<perm::TasksControl>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<TaskView>, ApiError> {
    Ok(web::Json(
        control::cancel(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry-failed", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 200, description = "A new run of the latest run's failed receivers", body = TaskView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry_failed(
    auth: Authorized<perm::TasksControl>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<TaskView>, ApiError> {
    Ok(web::Json(
        control::retry_failed(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/remind", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 200, description = "Members reminded to confirm the task's customer mass messages (at most 3 times per message per 24 hours)", body = RemindReport), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remind_task(
    auth: Authorized<perm::TasksControl>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<RemindReport>, ApiError> {
    Ok(web::Json(
        control::remind(&state.ctx, &auth.actor, id).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/runs", tag = "messaging", params(("id" = i64, Path), PageQuery),
    responses((status = 200, body = Page<RunView>), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_runs(
    auth: Authorized<perm::TasksRead>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<web::Json<Page<RunView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(
        report::runs(&state.ctx, &auth.actor, id, page).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceiverQuery {
    pub run_id: Option<i64>,
    pub status: Option<ReceiverStatus>,
    pub error_code: Option<String>,
    pub q: Option<String>,
    /// Only receivers of this A/B variant (`A`…`E`, or `?` for those held for a test's winner).
    #[param(pattern = r"^[A-E?]$")]
    pub variant: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/receivers", tag = "messaging", params(("id" = i64, Path), ReceiverQuery),
    responses((status = 200, body = Page<ReceiverView>), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_receivers(
    auth: Authorized<perm::TasksRead>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(q): ValidQuery<ReceiverQuery>,
) -> Result<web::Json<Page<ReceiverView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = ReceiverFilter {
        run_id: q.run_id,
        status: q.status,
        error_code: q.error_code,
        q: q.q,
        variant: q.variant,
    };
    Ok(web::Json(
        report::receivers(&state.ctx, &auth.actor, id, &filter, page).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/outcomes", tag = "messaging", params(("id" = i64, Path), OutcomeFilter),
    responses((status = 200, description = "What the task did: replies attributed to it within `contacts.reply_window_hours`, reply rate, time to first reply, opt-outs, failures and skips by reason", body = TaskOutcomes), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn task_outcomes(
    auth: Authorized<perm::TasksRead>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(filter): ValidQuery<OutcomeFilter>,
) -> Result<web::Json<TaskOutcomes>, ApiError> {
    Ok(web::Json(
        outcomes::outcomes(&state.ctx, &auth.actor, id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/outcomes", tag = "messaging", params(SummaryQuery),
    responses((status = 200, description = "Broadcast outcomes per template or per sending account and per day (in `timezone`): runs, reached, replied, reply rate, opt-outs", body = OutcomeSummary), (status = 422, body = Problem)))]
pub async fn outcome_summary(
    auth: Authorized<perm::TasksRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<SummaryQuery>,
) -> Result<web::Json<OutcomeSummary>, ApiError> {
    Ok(web::Json(
        summary::summary(&state.ctx, &auth.actor, q).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/variants/winner", tag = "messaging", params(("id" = i64, Path)), request_body = WinnerChoice,
    responses((status = 200, description = "The run's winner is recorded and its held receivers get it now", body = TaskView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn pick_variant_winner(
    auth: Authorized<perm::TasksControl>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<WinnerChoice>,
) -> Result<web::Json<TaskView>, ApiError> {
    Ok(web::Json(
        control::pick_winner(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/report.csv", tag = "messaging", params(("id" = i64, Path), ReceiverFilter),
    responses((status = 200, description = "Every receiver and its outcome, UTF-8 CSV", content_type = "text/csv"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn report_csv(
    auth: Authorized<perm::TasksExport>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidQuery(filter): ValidQuery<ReceiverFilter>,
) -> Result<HttpResponse, ApiError> {
    let stream = report::report_csv(&state.ctx, &auth.actor, id, filter).await?;
    let body = stream.map(|chunk| {
        chunk
            .map(web::Bytes::from)
            .map_err(|e| std::io::Error::other(e.to_string()))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"task-{id}.csv\""),
        ))
        .streaming(body))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/progress", tag = "messaging", params(("id" = i64, Path)),
    responses((status = 200, description = "Server-sent events: a `progress` event with the task every second until it stops running, or until the session ends or loses `tasks:read`", content_type = "text/event-stream"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 429, description = "You hold the maximum of open progress streams", body = Problem)))]
pub async fn progress_stream(
    auth: Authorized<perm::TasksRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    // The task is looked up before a stream slot is taken: a 404 costs no slot.
    let first = task_service::get(&state.ctx, &auth.actor, id).await?;
    let slot = state.streams.take(auth.actor.user_id()?).await.ok_or(
        service::error::ServiceError::TooManyRequests {
            retry_after_secs: 5,
        },
    )?;
    let views = task_service::progress::follow(&state.ctx, &auth.actor, first, slot);
    let events = views.map(|view| {
        let frame = format!(
            "event: progress\ndata: {}\n\n",
            serde_json::to_string(&view).unwrap_or_default()
        );
        Ok::<_, std::io::Error>(web::Bytes::from(frame))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(events))
}

#[utoipa::path(post, path = "/api/v1/tasks/estimate", tag = "messaging", request_body = EstimateInput,
    responses((status = 200, description = "What a task with this audience and rate would do now", body = AudienceEstimate),
              (status = 422, body = Problem)))]
pub async fn estimate_task(
    auth: Authorized<perm::TasksCreate>,
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<EstimateInput>,
) -> Result<web::Json<AudienceEstimate>, ApiError> {
    Ok(web::Json(
        estimate::estimate(&state.ctx, &auth.actor, body).await?,
    ))
}
