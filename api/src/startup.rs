//! Builds the HTTP server: middleware, every route scope, problem+json fallbacks, docs.

use std::net::TcpListener;

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use service::Context;
use utoipa_scalar::{Scalar, Servable};

use crate::{
    error::ApiError,
    middleware::{self, HttpMetrics},
    openapi, routes,
    state::AppState,
};
use service::stream_slots::StreamSlots;

pub struct Application {
    server: Server,
    port: u16,
}

impl Application {
    /// Binds `server.host:server.port` (port 0 picks a free one) and prepares the server.
    pub fn build(ctx: Context) -> anyhow::Result<Self> {
        let address = format!("{}:{}", ctx.settings.server.host, ctx.settings.server.port);
        let listener =
            TcpListener::bind(&address).map_err(|e| anyhow::anyhow!("binding {address}: {e}"))?;
        let port = listener.local_addr()?.port();
        let workers = match ctx.settings.server.workers {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            n => n,
        };
        let streams = StreamSlots::new(ctx.redis.clone(), &ctx.settings.redis.key_prefix);
        let state = web::Data::new(AppState { ctx, streams });
        let metrics = web::Data::new(HttpMetrics::new()?);
        let openapi = openapi::document().clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(metrics.clone())
                .wrap(from_fn(middleware::authenticate))
                .wrap(from_fn(middleware::access_log))
                .wrap(from_fn(middleware::record_metrics))
                .wrap(from_fn(middleware::request_id))
                .wrap(from_fn(middleware::security_headers))
                .route("/api/openapi.json", web::get().to(openapi_json))
                .service(Scalar::with_url("/docs", openapi.clone()))
                .configure(routes::table::register)
                .default_service(web::to(not_found))
        })
        .workers(workers)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self { server, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(openapi::document())
}

/// What no route takes: the console's files and pages (GET outside `/api/`), else problem+json
/// like everything else — a wrong method names the right ones in `Allow`.
async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    if let Some(page) = crate::console::serve(&req) {
        return Ok(page);
    }
    Err(match openapi::route_at(req.path()) {
        Some(item) => ApiError::method_not_allowed(item),
        None => ApiError::RouteNotFound,
    })
}
