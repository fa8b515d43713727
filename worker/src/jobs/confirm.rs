//! Settles customer mass messages: reads WeCom's per-receiver results, withdraws the ones left
//! unconfirmed past the timeout.

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    let report = service::dispatch::confirm::poll(ctx, 500).await?;
    if report.sent + report.failed + report.cancelled > 0 {
        tracing::info!(
            messages = report.messages,
            sent = report.sent,
            failed = report.failed,
            "mass message confirmations settled"
        );
    }
    Ok(())
}
