//! Removes what has expired: sessions, rotated tokens, old login history and metrics, idempotency
//! keys, processed inbound events.

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    let swept = service::housekeeping::sweep(ctx).await?;
    tracing::debug!(?swept, "housekeeping pass done");
    Ok(())
}
