//! `serve`, `api` and `worker`: start, announce, run until SIGINT/SIGTERM, stop gracefully.

use api::Application;
use service::config::Settings;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    All,
    Api,
    Worker,
}

pub async fn serve(settings: Settings, mode: Mode) -> anyhow::Result<()> {
    let admin_password = std::env::var("WEWORK_ADMIN_PASSWORD").ok();
    let (ctx, bootstrap) = crate::prepare(settings, admin_password).await?;
    crate::announce(&bootstrap);
    let service_name = match mode {
        Mode::All => "serve",
        Mode::Api => "api",
        Mode::Worker => "worker",
    };
    service::telemetry::capture::install(ctx.telemetry.log_shipper(), service_name);
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = (mode != Mode::Api).then(|| tokio::spawn(worker::run(ctx.clone(), stop_rx)));
    let server = if mode == Mode::Worker {
        None
    } else {
        let app = Application::build(ctx.clone())?;
        println!(
            "wework listening on http://{}:{}",
            ctx.settings.server.host,
            app.port()
        );
        let handle = app.handle();
        Some((handle, tokio::spawn(app.run_until_stopped())))
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some((handle, task)) = server {
        handle.stop(true).await;
        let _ = task.await;
    }
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    // What is still buffered goes out now, or to the spool for the next start.
    if tokio::time::timeout(std::time::Duration::from_secs(10), ctx.telemetry.flush())
        .await
        .is_err()
    {
        tracing::warn!("telemetry flush timed out; the spool keeps the rest");
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
