//! Copies new audit log rows to Elasticsearch when logs go there.

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    while service::telemetry::audit_ship::run(ctx, 1000).await? == 1000 {}
    Ok(())
}
