//! Redis lost in the middle of a broadcast. Redis holds the dispatch queue, the chain marks and
//! the shared rate-limit slots, not the receivers: while it is away the API keeps answering and
//! sends stop (nothing is marked failed); when it comes back — empty, as a restarted Redis
//! without persistence is — the feeder queues the run again and every receiver still gets the
//! message exactly once.

use std::{net::TcpListener, process::Stdio, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, TestSim};

/// A `redis-server` of this test's own on a fixed port, so it can be killed and started again
/// without touching the Redis other tests share.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (with no persistence: it comes back empty) and waits for its PONG.
    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (the machine's Redis, see scripts/services)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: whatever it held is gone.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }
}

async fn success(app: &TestApp, id: i64) -> i64 {
    app.task(id).await["counts"]["success"]
        .as_i64()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_broadcast_waits_out_a_redis_outage_and_finishes_exactly_once() {
    let mut redis = PrivateRedis::start().await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[redis]\nurl = \"{}\"\n[dispatch]\nchunk_size = 10\nconcurrency = 2\njob_slice_ms = 500\nrate_limits = false\n",
        redis.url()
    ))
    .await;
    let (agent, _) = app.register_sim(&sim, 60).await;
    app.start_worker();
    assert_eq!(app.sync(agent).await["status"], "succeeded");
    let id = app.start_slow_broadcast(&sim, agent, "缓存故障演练").await;
    app.wait_sent(id, 40).await;

    redis.kill().await;
    // The in-flight slices end; then no job can be queued and no chain started.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ready = app.anonymous_get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let checks: Value = ready.json().await.unwrap();
    assert!(
        checks["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["component"] == "redis" && c["ok"] == false),
        "{checks}"
    );
    let stalled = success(&app, id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = app.task(id).await;
    assert_eq!(during["status"], "running", "the API answers without Redis");
    assert_eq!(
        during["counts"]["success"], stalled,
        "sends wait for Redis: {during}"
    );
    assert_eq!(during["counts"]["failed"], 0, "nothing is failed for it");
    assert!(stalled < 240, "the outage landed before the end: {during}");

    redis.restart().await;
    app.assert_completed_exactly_once(&sim, id, 240).await;
    app.stop_worker().await;
}
