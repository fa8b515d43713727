//! Worker processes killed with SIGKILL in the middle of a broadcast. The receivers table is the
//! truth: leases of the dead process expire, its receivers are sent again under their original
//! idempotency keys, so every receiver gets the message exactly once and the counters match.

use std::{process::Stdio, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, TestSim};

const BIN: &str = env!("CARGO_BIN_EXE_wework");

/// A `wework worker` process sharing the app's database, Redis and master key.
fn spawn_worker(config: &std::path::Path) -> Child {
    Command::new(BIN)
        .arg("worker")
        .env("WEWORK_CONFIG", config)
        .env("WEWORK__LOG__LEVEL", "warn")
        .env_remove("WEWORK_ADMIN_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn task(app: &TestApp, id: i64) -> Value {
    app.get_json(&format!("/api/v1/tasks/{id}"), &app.admin_token().await)
        .await
}

#[tokio::test]
async fn killed_workers_lose_nothing_and_deliver_nothing_twice() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(
        "[dispatch]\nchunk_size = 20\nconcurrency = 4\nlease_secs = 10\nrate_limits = false\n",
    )
    .await;
    let (agent, _) = app.register_sim(&sim, 60).await;
    app.start_worker();
    assert_eq!(app.sync(agent).await["status"], "succeeded");
    app.stop_worker().await;
    let config = std::env::temp_dir().join(format!(
        "wework-crash-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&config, &app.config).unwrap();
    // Slow sends, so a kill lands while chunks are in flight.
    sim.control(
        Method::PUT,
        "/faults",
        json!({ "latency_ms_min": 40, "latency_ms_max": 120 }),
    )
    .await;

    let admin = app.admin_token().await;
    let created = app
        .post_json(
            "/api/v1/tasks",
            &admin,
            json!({ "name": "断电演练", "task_type": "broadcast", "content": "{{ nickname }}，周末特惠", "audience": { "filter": { "instance_ids": [agent] } } }),
        )
        .await;
    let id = created["id"].as_i64().unwrap();

    for kill_at in [30, 90, 150] {
        let mut worker = spawn_worker(&config);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let t = task(&app, id).await;
            if t["counts"]["success"].as_i64().unwrap_or(0) >= kill_at {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no progress: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker.start_kill().unwrap();
        worker.wait().await.unwrap();
    }

    let _survivor = spawn_worker(&config);
    let done = app
        .wait_for(&format!("/api/v1/tasks/{id}"), 90, |t| {
            t["status"] == "completed"
        })
        .await;
    let c = &done["counts"];
    assert_eq!(c["target"], 240);
    assert_eq!(c["success"], 240, "{c}");
    assert_eq!(c["failed"], 0);
    assert_eq!(c["pending"], 0);
    let stats: Value = sim
        .control(Method::GET, "/stats", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let deliveries = &stats["deliveries"];
    assert_eq!(
        deliveries["delivered"], 240,
        "each receiver got the message once: {deliveries}"
    );
    let report = app
        .get(&format!("/api/v1/tasks/{id}/report.csv"), &admin)
        .await
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = report.lines().skip(1).collect();
    assert_eq!(rows.len(), 240, "one row per receiver");
    assert!(
        rows.iter().all(|r| r.contains(",sent,")),
        "every receiver sent"
    );
    let _ = std::fs::remove_file(&config);
}
