//! The WeCom / instance simulator: a real HTTP server that speaks our agent protocol (under
//! `/agent/v1`) and the subset of the official WeCom server API the drivers use (under
//! `/cgi-bin`), with deterministic data from a seed, fault injection, and a count of every
//! delivery per idempotency key so tests can prove nothing was lost or sent twice.
//!
//! Depends on nothing of ours: it checks the platform from the outside.

mod admin;
mod agent;
mod data;
mod faults;
mod kf;
mod signing;
mod state;
mod wecom;
mod wecom_push;

use std::{net::TcpListener, sync::Arc};

use actix_web::{App, HttpServer, dev::Server, web};

pub use data::Dataset;
pub use faults::Faults;
pub use state::{DeliveryStats, SimState};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub host: String,
    pub port: u16,
    pub seed: u64,
    pub accounts: usize,
    pub contacts_per_account: usize,
    pub groups_per_account: usize,
    pub members_per_group: usize,
    /// Shared secret of the agent protocol's HMAC signatures (both directions).
    pub agent_secret: String,
    /// Credentials the WeCom API accepts at `/cgi-bin/gettoken`.
    pub corp_id: String,
    pub corp_secret: String,
    /// The 微信客服 secret, whose token alone the `kf/*` calls take.
    pub kf_secret: String,
    /// 微信客服 accounts (`wksim0`, `wksim1`, …).
    pub kf_accounts: usize,
    /// Where `POST /_sim/events` delivers signed agent events (the platform's callback URL).
    pub push_url: Option<String>,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 0,
            seed: 42,
            accounts: 2,
            contacts_per_account: 50,
            groups_per_account: 3,
            members_per_group: 5,
            agent_secret: "sim-agent-secret".to_owned(),
            corp_id: "wwsimcorp".to_owned(),
            corp_secret: "sim-corp-secret".to_owned(),
            kf_secret: "sim-kf-secret".to_owned(),
            kf_accounts: 2,
            push_url: None,
            faults: Faults::default(),
        }
    }
}

pub struct Simulator {
    server: Server,
    port: u16,
    pub state: Arc<SimState>,
}

impl Simulator {
    pub fn start(config: SimConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind((config.host.as_str(), config.port))?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(SimState::new(config));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::JsonConfig::default().limit(8 << 20))
                .service(web::scope("/agent/v1").configure(agent::configure))
                .service(web::scope("/cgi-bin").configure(wecom::configure))
                .service(web::scope("/_sim").configure(admin::configure))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self {
            server,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
