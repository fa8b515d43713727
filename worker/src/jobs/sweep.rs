//! Returns receivers of dead workers to `pending` and finishes runs a dead worker left done.

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    service::dispatch::sweeper::sweep(ctx).await?;
    Ok(())
}
