//! Starts due tasks and cron firings, then expands the audiences of new runs.

pub async fn run(ctx: &service::Context, worker: &str) -> anyhow::Result<()> {
    service::tasks::schedule::tick(ctx).await?;
    while let Some(run) = service::tasks::expand::claim(ctx, worker).await? {
        service::tasks::expand::expand(ctx, &run).await?;
    }
    Ok(())
}
