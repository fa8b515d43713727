//! `wework sim`: run the simulator.

use clap::Args as ClapArgs;
use sim::{Faults, SimConfig, Simulator};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 9100)]
    port: u16,
    /// Seed of the generated data: the same seed always gives the same accounts and contacts.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 3)]
    accounts: usize,
    /// Contacts per account.
    #[arg(long, default_value_t = 1000)]
    contacts: usize,
    /// Groups per account.
    #[arg(long, default_value_t = 5)]
    groups: usize,
    /// Customers per group (plus the owning account).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Shared secret of the agent protocol (configure it as the instance's `agent_secret`).
    #[arg(long, default_value = "sim-agent-secret")]
    agent_secret: String,
    #[arg(long, default_value = "wwsimcorp")]
    corp_id: String,
    #[arg(long, default_value = "sim-corp-secret")]
    corp_secret: String,
    /// The 微信客服 secret (its token alone opens the kf/* calls).
    #[arg(long, default_value = "sim-kf-secret")]
    kf_secret: String,
    /// 微信客服 accounts (wksim0, wksim1, …).
    #[arg(long, default_value_t = 2)]
    kf_accounts: usize,
    /// The platform's agent callback URL, for events pushed with POST /_sim/events.
    #[arg(long)]
    push_url: Option<String>,
    /// Latency added to each answer, in milliseconds (uniform between min and max).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0)]
    latency_max_ms: u64,
    /// Share of calls answered with a retryable error (WeCom -1, agent 503).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of calls answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    server_error_rate: f64,
    /// Share of calls that hang for --timeout-ms.
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// Share of calls whose connection is cut.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Sends per account per minute before WeCom 45009 / agent 429.
    #[arg(long)]
    rate_limit_per_minute: Option<u32>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = SimConfig {
        host: args.host.clone(),
        port: args.port,
        seed: args.seed,
        accounts: args.accounts,
        contacts_per_account: args.contacts,
        groups_per_account: args.groups,
        members_per_group: args.members,
        agent_secret: args.agent_secret,
        corp_id: args.corp_id,
        corp_secret: args.corp_secret,
        kf_secret: args.kf_secret,
        kf_accounts: args.kf_accounts,
        push_url: args.push_url,
        faults: Faults {
            latency_ms_min: args.latency_ms,
            latency_ms_max: args.latency_max_ms.max(args.latency_ms),
            error_rate: args.error_rate,
            server_error_rate: args.server_error_rate,
            timeout_rate: args.timeout_rate,
            timeout_ms: args.timeout_ms,
            drop_rate: args.drop_rate,
            rate_limit_per_minute: args.rate_limit_per_minute,
            offline: false,
            offline_message: None,
            kf_repeat: false,
        },
    };
    let simulator = Simulator::start(config)?;
    let base = format!("http://{}:{}", args.host, simulator.port());
    println!("wework sim listening on {base}");
    println!("  agent protocol: {base}/agent   WeCom API: {base}/cgi-bin   control: {base}/_sim");
    let handle = simulator.handle();
    let server = tokio::spawn(simulator.run());
    let _ = tokio::signal::ctrl_c().await;
    handle.stop(true).await;
    let _ = server.await;
    Ok(())
}
