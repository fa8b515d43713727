//! Applies inbound callback events in arrival order.

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    while service::callbacks::process::pending(ctx, 100).await? > 0 {}
    Ok(())
}
