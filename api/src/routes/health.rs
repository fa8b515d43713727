//! Liveness, readiness and Prometheus metrics: unauthenticated so probes and scrapers can reach
//! them (metrics can require a bearer token by configuration).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use service::health::{self, Check};

use crate::{middleware::HttpMetrics, state::AppState};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub checks: Vec<Check>,
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)), security(()))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        checks: Vec::new(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Database (and Redis when configured) reachable", body = Health),
              (status = 503, description = "A dependency is down", body = Health)), security(()))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checks = health::readiness(&state.ctx).await;
    if checks.iter().all(|c| c.ok) {
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
              (status = 401, description = "`metrics.bearer_token` is set and was not sent")),
    security(()))]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
    metrics: web::Data<HttpMetrics>,
) -> HttpResponse {
    let expected = state.ctx.settings.metrics.bearer_token.expose_secret();
    if !expected.is_empty() {
        let sent = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let matches: bool = subtle_eq(sent.as_bytes(), expected.as_bytes());
        if !matches {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .finish();
        }
    }
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode_to_string(&metrics.registry.gather()) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Constant-time equality, so the token cannot be guessed byte by byte from response times.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn configure(cfg: &mut web::ServiceConfig, metrics_enabled: bool) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
    if metrics_enabled {
        cfg.route("/metrics", web::get().to(metrics));
    }
}
