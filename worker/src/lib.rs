//! Background work. For now: housekeeping (expired sessions and rotated tokens, old login
//! history, lapsed idempotency keys) on a fixed interval; message dispatch joins it with the
//! broadcast engine. Every pass is idempotent, so any number of workers may run side by side.

use std::time::Duration;

use service::{Context, housekeeping};
use tokio::sync::watch;

/// Runs until `shutdown` turns true. A failing pass is logged and retried next interval: a
/// database outage pauses housekeeping, it never ends the worker.
pub async fn run(ctx: Context, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_secs(ctx.settings.worker.housekeeping_interval_secs);
    tracing::info!(interval_secs = every.as_secs(), "worker started");
    loop {
        match housekeeping::sweep(&ctx).await {
            Ok(swept) => tracing::debug!(?swept, "housekeeping pass done"),
            Err(e) => {
                tracing::warn!(error = %e, "housekeeping pass failed; retrying next interval")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    tracing::info!("worker stopped");
}
