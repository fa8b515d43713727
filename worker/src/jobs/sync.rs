//! Queues periodic syncs (`instances.auto_sync_minutes`), then claims queued sync runs (or ones
//! abandoned by a dead worker) and executes them.

pub async fn run(ctx: &service::Context, worker: &str) -> anyhow::Result<()> {
    service::sync::queue_due(ctx).await?;
    while let Some(run) = service::sync::claim_next(ctx, worker).await? {
        service::sync::execute(ctx, &run, worker).await?;
    }
    Ok(())
}
