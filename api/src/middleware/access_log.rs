//! One access log line per request (`log.access_log`), shipped in the background to
//! Elasticsearch or the `access_logs` table. The path is logged without its query string, which
//! may carry secrets.

use std::time::Instant;

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use service::telemetry::{LogDoc, LogKind};

use super::AuthOutcome;
use crate::{extract::client::request_meta, state::AppState};

pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .filter(|s| s.ctx.settings.log.access_log)
        .cloned();
    let started = Instant::now();
    let response = next.call(req).await?;
    if let Some(state) = state {
        let request = response.request();
        let meta = request_meta(request, &state.ctx.settings.server.trusted_proxies);
        let status = response.status().as_u16();
        let method = request.method().to_string();
        let path: String = request.path().chars().take(500).collect();
        let mut doc = LogDoc::new(
            LogKind::Access,
            service::logs::access_level(i32::from(status)),
            "api",
            format!("{method} {path} {status}"),
        );
        doc.module = request.match_pattern();
        doc.user_id = match request.extensions().get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated(actor)) => actor.user_id,
            _ => None,
        };
        doc.trace_id = meta.request_id;
        doc.ip = Some(meta.ip);
        doc.method = Some(method);
        doc.path = Some(path);
        doc.status = Some(i32::from(status));
        doc.duration_ms = Some(i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX));
        doc.user_agent = meta.user_agent;
        state.ctx.telemetry.log(doc);
    }
    Ok(response)
}
