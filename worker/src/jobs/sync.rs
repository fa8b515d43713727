//! Claims queued sync runs (or ones abandoned by a dead worker) and executes them.

pub async fn run(ctx: &service::Context, worker: &str) -> anyhow::Result<()> {
    while let Some(run) = service::sync::claim_next(ctx, worker).await? {
        service::sync::execute(ctx, &run, worker).await?;
    }
    Ok(())
}
