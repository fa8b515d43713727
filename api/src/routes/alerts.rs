//! `/api/v1/alert-rules` and `/api/v1/alerts`: what to watch and what fired.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use service::{
    alerts::{
        self, AlertFilter, AlertView,
        rules::{self, RuleInput, RulePatch, RuleView},
    },
    pagination::{Page, PageRequest},
    rbac::perm,
};

use super::{PageQuery, no_content};
use crate::{
    error::{ApiError, Problem},
    extract::{Authorized, Id, IdempotencyKey, ValidJson, ValidQuery},
    state::AppState,
};

#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "alerts", params(PageQuery),
    responses((status = 200, body = Page<RuleView>), (status = 422, body = Problem)))]
pub async fn list_alert_rules(
    auth: Authorized<perm::AlertRulesRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<web::Json<Page<RuleView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(web::Json(rules::list(&state.ctx, &auth.actor, page).await?))
}

#[utoipa::path(post, path = "/api/v1/alert-rules", tag = "alerts", request_body = RuleInput,
    responses((status = 201, body = RuleView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_alert_rule(
    auth: Authorized<perm::AlertRulesCreate>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    ValidJson(body): ValidJson<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    let actor = &auth.actor;
    key.created(&state, actor, "alert_rules.create", body, |body| {
        rules::create(&state.ctx, actor, body)
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/alert-rules/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = RuleView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_alert_rule(
    auth: Authorized<perm::AlertRulesRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<RuleView>, ApiError> {
    Ok(web::Json(rules::get(&state.ctx, &auth.actor, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/alert-rules/{id}", tag = "alerts", params(("id" = i64, Path)), request_body = RulePatch,
    responses((status = 200, body = RuleView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_alert_rule(
    auth: Authorized<perm::AlertRulesUpdate>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<RulePatch>,
) -> Result<web::Json<RuleView>, ApiError> {
    Ok(web::Json(
        rules::update(&state.ctx, &auth.actor, id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_alert_rule(
    auth: Authorized<perm::AlertRulesDelete>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<HttpResponse, ApiError> {
    rules::delete(&state.ctx, &auth.actor, id).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// ACTIVE, ACKNOWLEDGED or RESOLVED (any case).
    #[param(
        pattern = "^([Aa][Cc][Tt][Ii][Vv][Ee]|[Aa][Cc][Kk][Nn][Oo][Ww][Ll][Ee][Dd][Gg][Ee][Dd]|[Rr][Ee][Ss][Oo][Ll][Vv][Ee][Dd])$"
    )]
    pub status: Option<String>,
    pub rule_id: Option<i64>,
    pub instance_id: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = Page<AlertView>), (status = 422, body = Problem)))]
pub async fn list_alerts(
    auth: Authorized<perm::AlertsRead>,
    state: web::Data<AppState>,
    ValidQuery(q): ValidQuery<AlertQuery>,
) -> Result<web::Json<Page<AlertView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = AlertFilter {
        status: q.status,
        rule_id: q.rule_id,
        instance_id: q.instance_id,
    };
    Ok(web::Json(
        alerts::list(&state.ctx, &auth.actor, filter, page).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = AlertView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_alert(
    auth: Authorized<perm::AlertsRead>,
    state: web::Data<AppState>,
    Id(id): Id,
) -> Result<web::Json<AlertView>, ApiError> {
    Ok(web::Json(alerts::get(&state.ctx, &auth.actor, id).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertComment {
    pub comment: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts", params(("id" = i64, Path)), request_body = AlertComment,
    responses((status = 200, body = AlertView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn acknowledge_alert(
    auth: Authorized<perm::AlertsAck>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<AlertComment>,
) -> Result<web::Json<AlertView>, ApiError> {
    Ok(web::Json(
        alerts::acknowledge(&state.ctx, &auth.actor, id, body.comment).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts", params(("id" = i64, Path)), request_body = AlertComment,
    responses((status = 200, body = AlertView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn resolve_alert(
    auth: Authorized<perm::AlertsAck>,
    state: web::Data<AppState>,
    Id(id): Id,
    ValidJson(body): ValidJson<AlertComment>,
) -> Result<web::Json<AlertView>, ApiError> {
    Ok(web::Json(
        alerts::resolve(&state.ctx, &auth.actor, id, body.comment).await?,
    ))
}
