//! Evaluates alert rules, then sends pending notifications (raised and resolved alerts).

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    let evaluated = service::alerts::evaluate::run(ctx).await?;
    if evaluated.raised > 0 || evaluated.resolved > 0 {
        tracing::debug!(
            raised = evaluated.raised,
            resolved = evaluated.resolved,
            "alert rules evaluated"
        );
    }
    service::alerts::notify::run(ctx).await?;
    Ok(())
}
