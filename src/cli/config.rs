//! `wework config check`: validate configuration without starting anything.

use clap::Subcommand;
use service::config::Settings;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Load defaults, file and environment; print the effective settings with secrets redacted.
    Check,
    /// Print the embedded, commented defaults (a starting point for wework.toml).
    Defaults,
}

pub fn run(settings: &Settings, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Check => {
            println!(
                "configuration is valid (database backend: {:?})",
                settings.backend()
            );
            println!("{settings:#?}");
        }
        Action::Defaults => print!("{}", service::config::DEFAULT_CONFIG),
    }
    Ok(())
}
