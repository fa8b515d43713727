//! Worker processes killed with SIGKILL in the middle of a broadcast. The receivers table is the
//! truth: leases of the dead process expire, its receivers are sent again under their original
//! idempotency keys, so every receiver gets the message exactly once and the counters match.

use crate::helpers::{
    TestApp, TestSim,
    processes::{ConfigFile, kill, spawn_worker},
};

#[tokio::test]
async fn killed_workers_lose_nothing_and_deliver_nothing_twice() {
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(
        "[dispatch]\nchunk_size = 20\nconcurrency = 4\nlease_secs = 10\nrate_limits = false\n",
    )
    .await;
    let agent = app.with_synced_agent(&sim).await;
    app.stop_worker().await;
    let config = ConfigFile::of(&app);
    let admin = app.admin_token().await;
    let id = app.start_slow_broadcast(&sim, agent, "断电演练").await;

    for kill_at in [30, 90, 150] {
        let mut worker = spawn_worker(&config);
        app.wait_sent(id, kill_at).await;
        kill(&mut worker).await;
    }

    let _survivor = spawn_worker(&config);
    app.assert_completed_exactly_once(&sim, id, 240).await;
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
}
