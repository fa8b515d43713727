//! Liveness, readiness and Prometheus metrics: unauthenticated so probes and scrapers can reach
//! them (metrics can require a bearer token by configuration).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use service::health::{self, Check};

use crate::{error::ApiError, extract::Public, middleware::HttpMetrics, state::AppState};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    /// Each dependency and why it failed: only for callers sending `metrics.bearer_token`
    /// (error texts name hosts and versions); anonymous probes get up or down.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz(_: Public) -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        checks: Vec::new(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Database (and Redis when configured) reachable; the checks only with `Authorization: Bearer <metrics.bearer_token>`", body = Health),
              (status = 503, description = "A dependency is down", body = Health)))]
pub async fn readyz(_: Public, req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let all = health::readiness(&state.ctx).await;
    let up = all.iter().all(|c| c.ok);
    let checks = if holds_ops_token(&req, &state) {
        all
    } else {
        Vec::new()
    };
    if up {
        HttpResponse::Ok().json(Health {
            status: "ready",
            checks,
        })
    } else {
        HttpResponse::ServiceUnavailable().json(Health {
            status: "unavailable",
            checks,
        })
    }
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
              (status = 401, description = "`metrics.bearer_token` is set and was not sent"),
              (status = 404, description = "`metrics.enabled` is off", body = crate::error::Problem)))]
pub async fn metrics(
    _: Public,
    req: HttpRequest,
    state: web::Data<AppState>,
    metrics: web::Data<HttpMetrics>,
) -> Result<HttpResponse, ApiError> {
    if !state.ctx.settings.metrics.enabled {
        return Err(ApiError::RouteNotFound);
    }
    let open = state
        .ctx
        .settings
        .metrics
        .bearer_token
        .expose_secret()
        .is_empty();
    if !open && !holds_ops_token(&req, &state) {
        return Ok(HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .finish());
    }
    let encoder = prometheus::TextEncoder::new();
    Ok(match encoder.encode_to_string(&metrics.registry.gather()) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            HttpResponse::InternalServerError().finish()
        }
    })
}

/// Whether the request carries `metrics.bearer_token` (never, when none is configured).
fn holds_ops_token(req: &HttpRequest, state: &AppState) -> bool {
    let expected = state.ctx.settings.metrics.bearer_token.expose_secret();
    let sent = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    !expected.is_empty() && subtle_eq(sent.as_bytes(), expected.as_bytes())
}

/// Constant-time equality, so the token cannot be guessed byte by byte from response times.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
