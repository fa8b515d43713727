//! Starts a heartbeat for every instance that is due; each runs in its own task with a timeout.

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    let started = service::instances::heartbeat::tick(ctx).await?;
    if started > 0 {
        tracing::trace!(started, "heartbeats started");
    }
    Ok(())
}
