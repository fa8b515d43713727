//! The service desk's clocks: agents whose workbench went silent go offline, and conversations
//! whose visitor stayed silent past their group's timeout close.

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    service::desk::agents::sweep_silent(ctx).await?;
    service::desk::conversations::sweep_inactive(ctx).await?;
    Ok(())
}
