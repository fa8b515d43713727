//! The simulator for a test, on a free port.

use super::*;

/// A simulator on a free port.
pub struct TestSim {
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

impl TestSim {
    pub fn start(config: sim::SimConfig) -> Self {
        let simulator = sim::Simulator::start(sim::SimConfig { port: 0, ..config }).unwrap();
        let base = format!("http://127.0.0.1:{}", simulator.port());
        let handle = simulator.handle();
        tokio::spawn(simulator.run());
        Self { base, handle }
    }

    pub fn small() -> Self {
        Self::start(sim::SimConfig {
            accounts: 2,
            contacts_per_account: 120,
            groups_per_account: 2,
            members_per_group: 4,
            ..Default::default()
        })
    }

    /// Stops answering, as a crashed instance would.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// The simulator's delivery counts (`/_sim/stats`'s `deliveries`).
    pub async fn deliveries(&self) -> Value {
        let stats: Value = self
            .control(Method::GET, "/stats", json!({}))
            .await
            .json()
            .await
            .unwrap();
        stats["deliveries"].clone()
    }

    /// Has the simulator sign and deliver an agent event (`type`, `account_wxid`, `data`, an
    /// optional `id`) to `url`, and checks the platform took it.
    pub async fn push_event(&self, url: &str, mut event: Value) {
        event["url"] = url.into();
        let pushed: Value = self
            .control(Method::POST, "/events", event)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            pushed["status"], 200,
            "the platform refused the event: {pushed}"
        );
    }

    pub async fn control(&self, method: Method, path: &str, body: Value) -> Response {
        reqwest::Client::new()
            .request(method, format!("{}/_sim{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}
