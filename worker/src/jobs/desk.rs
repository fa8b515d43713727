//! The service desk's clocks: agents whose workbench went silent go offline, conversations
//! whose visitor stayed silent past their group's timeout close, and 微信客服 channels are
//! pulled now and then even without a callback (one lost while something was down).

pub async fn run(ctx: &service::Context) -> anyhow::Result<()> {
    service::desk::agents::sweep_silent(ctx).await?;
    service::desk::conversations::sweep_inactive(ctx).await?;
    service::desk::kf::sync_all(ctx).await?;
    Ok(())
}
