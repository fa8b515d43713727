//! Expands the audiences of new runs into receivers, as soon as the scheduler creates them.

use std::time::Duration;

/// One pass over every run waiting for expansion; returns how long to wait before looking again
/// (the scheduler's signal cuts it short).
pub async fn run(ctx: &service::Context, worker: &str) -> anyhow::Result<Duration> {
    while let Some(run) = service::tasks::expand::claim(ctx, worker).await? {
        service::tasks::expand::expand(ctx, &run).await?;
    }
    Ok(Duration::from_secs(1))
}
