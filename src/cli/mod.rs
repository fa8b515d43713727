//! Command-line interface.

mod bench;
mod bench_api;
mod bench_broadcast;
mod bench_desk;
mod bench_login;
mod bench_schedule;
mod config;
mod migrate;
mod run;
mod secrets;
mod sim;
mod user;

pub use bench::seed_tagged_contacts;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use service::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "wework",
    version,
    about = "WeCom (企业微信) automation and broadcast platform"
)]
pub struct Cli {
    /// Configuration file layered over the embedded defaults (optional when it does not exist).
    #[arg(
        long,
        global = true,
        env = "WEWORK_CONFIG",
        default_value = "wework.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// API, workers and scheduler in one process (the embedded default).
    Serve,
    /// The HTTP API only (run several behind a load balancer).
    Api,
    /// Background workers only.
    Worker,
    /// Database schema migrations.
    Migrate {
        #[command(subcommand)]
        action: migrate::Action,
    },
    /// Account recovery from the command line.
    User {
        #[command(subcommand)]
        action: user::Action,
    },
    /// Master-key rotation for sealed secrets.
    Secrets {
        #[command(subcommand)]
        action: secrets::Action,
    },
    /// The WeCom / agent simulator (a real HTTP server) for demos, tests and benchmarks.
    Sim(Box<sim::Args>),
    /// Benchmarks (see docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        action: bench::Action,
    },
    /// Prints the OpenAPI document (the console's types are generated from it).
    Openapi,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: config::Action,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let explicit = std::env::var_os("WEWORK_CONFIG").is_some()
        || cli.config != std::path::Path::new("wework.toml");
    let settings = Settings::load(Some(&cli.config), explicit)?;
    crate::telemetry::init(&settings.log);
    match cli.command {
        Command::Serve => run::serve(settings, run::Mode::All).await,
        Command::Api => run::serve(settings, run::Mode::Api).await,
        Command::Worker => run::serve(settings, run::Mode::Worker).await,
        Command::Migrate { action } => migrate::run(settings, action).await,
        Command::User { action } => user::run(settings, action).await,
        Command::Config { action } => config::run(&settings, action),
        Command::Secrets { action } => secrets::run(settings, action).await,
        Command::Sim(args) => sim::run(*args).await,
        Command::Bench { action } => bench::run(action).await,
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(api::openapi::document())?
            );
            Ok(())
        }
    }
}
