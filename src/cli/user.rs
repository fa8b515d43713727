//! `wework user reset-password`: regain access when every administrator is locked out.

use clap::Subcommand;
use service::config::Settings;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Sets a new password (from WEWORK_NEW_PASSWORD, or generated and printed), lifts any lockout
    /// and signs the user out everywhere. Audited as a system action.
    ResetPassword {
        /// Login name of the account.
        username: String,
    },
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    let (ctx, _) = crate::prepare(settings, None).await?;
    match action {
        Action::ResetPassword { username } => {
            let given = std::env::var("WEWORK_NEW_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty());
            let password =
                service::bootstrap::recover_account(&ctx, &username, given.clone()).await?;
            if given.is_some() {
                println!(
                    "password of `{username}` set from WEWORK_NEW_PASSWORD; lockout lifted, sessions revoked"
                );
            } else {
                println!("new password of `{username}`: {password}");
            }
        }
    }
    Ok(())
}
