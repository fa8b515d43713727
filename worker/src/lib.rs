//! Background work: periodic jobs that each claim their work in the database (so any number of
//! worker processes can run side by side) and are supervised (a panic or error restarts the loop,
//! it never ends the worker). Message dispatch runs on apalis (see `dispatch`).

pub mod dispatch;
pub mod jobs;

use std::{future::Future, sync::Arc, time::Duration};

use service::Context;
use tokio::sync::watch;

/// A name unique to this process: lease owners and logs tell workers apart, and a restarted
/// process never inherits its predecessor's leases by name.
pub fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Runs every job until `shutdown` turns true.
pub async fn run(ctx: Context, shutdown: watch::Receiver<bool>) {
    let name = worker_name();
    tracing::info!(worker = %name, "worker started");
    let housekeeping = Duration::from_secs(ctx.settings.worker.housekeeping_interval_secs);
    let confirm_every = Duration::from_secs(ctx.settings.dispatch.confirm_poll_secs);
    let alerts_every = Duration::from_secs(ctx.settings.worker.alert_interval_secs);
    let tasks = vec![
        supervise("housekeeping", housekeeping, shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::housekeeping::run(&ctx).await }
            }
        }),
        supervise("heartbeats", Duration::from_secs(1), shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::heartbeats::run(&ctx).await }
            }
        }),
        supervise("sync", Duration::from_secs(1), shutdown.clone(), {
            let ctx = ctx.clone();
            let name = name.clone();
            move || {
                let ctx = ctx.clone();
                let name = name.clone();
                async move { jobs::sync::run(&ctx, &name).await }
            }
        }),
        supervise_paced(
            "schedule",
            Some((ctx.clone(), ctx.schedule_signal.clone())),
            shutdown.clone(),
            {
                let ctx = ctx.clone();
                move || {
                    let ctx = ctx.clone();
                    async move { jobs::schedule::run(&ctx).await }
                }
            },
        ),
        supervise_paced(
            "expand",
            Some((ctx.clone(), ctx.expand_signal.clone())),
            shutdown.clone(),
            {
                let ctx = ctx.clone();
                let name = name.clone();
                move || {
                    let ctx = ctx.clone();
                    let name = name.clone();
                    async move { jobs::expand::run(&ctx, &name).await }
                }
            },
        ),
        supervise("alerts", alerts_every, shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::alerts::run(&ctx).await }
            }
        }),
        supervise("audit-ship", Duration::from_secs(5), shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::audit_ship::run(&ctx).await }
            }
        }),
        supervise("confirm", confirm_every, shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::confirm::run(&ctx).await }
            }
        }),
        supervise("sweep", Duration::from_secs(5), shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::sweep::run(&ctx).await }
            }
        }),
        supervise("desk", Duration::from_secs(5), shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::desk::run(&ctx).await }
            }
        }),
        supervise("events", Duration::from_millis(500), shutdown.clone(), {
            let ctx = ctx.clone();
            move || {
                let ctx = ctx.clone();
                async move { jobs::events::run(&ctx).await }
            }
        }),
        tokio::spawn(dispatch::run(
            ctx.clone(),
            name.clone(),
            shutdown.clone(),
            None,
        )),
    ];
    for task in tasks {
        let _ = task.await;
    }
    tracing::info!(worker = %name, "worker stopped");
}

/// Calls `job` every `every` until shutdown. An error is logged and the loop goes on; a panic is
/// caught by running each pass in its own task.
fn supervise<F, Fut>(
    name: &'static str,
    every: Duration,
    shutdown: watch::Receiver<bool>,
    job: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    supervise_paced(name, None, shutdown, move || {
        let pass = job();
        async move { pass.await.map(|()| every) }
    })
}

/// Like [`supervise`], with each pass saying how long its loop may wait before the next (the
/// scheduler sleeps until the next task is due), and `wake` cutting the wait short when raised.
/// After a failed pass the next one follows in a second.
fn supervise_paced<F, Fut>(
    name: &'static str,
    wake: Option<(Context, Arc<service::wake::Signal>)>,
    mut shutdown: watch::Receiver<bool>,
    job: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<Duration>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let wait = match tokio::spawn(job()).await {
                Ok(Ok(wait)) => wait,
                Ok(Err(e)) => {
                    tracing::warn!(job = name, error = %e, "job pass failed; retrying");
                    Duration::from_secs(1)
                }
                Err(e) => {
                    tracing::error!(job = name, error = %e, "job pass panicked; restarting");
                    Duration::from_secs(1)
                }
            };
            let waited = async {
                match &wake {
                    Some((ctx, signal)) => signal.wait(ctx, wait).await,
                    None => tokio::time::sleep(wait).await,
                }
            };
            tokio::select! {
                () = waited => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
    })
}
