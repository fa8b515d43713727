//! Broadcasts at real per-account rates with backlogs far larger than one rate window, on every
//! backend with Redis (shared limiter, two worker processes) and without (in-process limiter).
//!
//! A send books its rate slot only when it will wait for it (`dispatch.max_slot_wait_secs`,
//! 1 s here); a receiver whose slot is further away books nothing and goes back to pending. So
//! the limiter's schedule never runs more than that wait plus one interval ahead of the clock —
//! checked all through the run — and the broadcast takes what the rate implies, no less (the
//! limit held) and not minutes more (nothing stalled).

use std::time::{Duration, Instant};

use entity::states::TaskStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::tasks::TaskView;
use tokio::process::Child;

use crate::helpers::{
    TestApp, TestSim,
    processes::{ConfigFile, RemoteApi, kill, spawn_api, spawn_worker},
};

/// Sends per minute per account: half a second apart (WeCom allows 30 per member).
const RATE: u64 = 120;
const PER_ACCOUNT: u64 = 40;
const RECEIVERS: i64 = 80;
/// One rate window (the longest slot wait, 1 s) holds 2–3 sends of an account: the backlog is
/// 16× that. One chunk claims every receiver and asks for all their slots at once (64 in
/// flight): 20 s of sending per account, twice the lease.
const CONFIG: &str =
    "[dispatch]\nchunk_size = 100\nconcurrency = 64\nlease_secs = 10\nmax_slot_wait_secs = 1\n";

fn with_redis() -> bool {
    !std::env::var("WEWORK_TEST_REDIS_URL")
        .unwrap_or_default()
        .is_empty()
}

/// Worker processes a deployment runs on this backend: two sharing Redis, or the one process
/// that owns the embedded queue and the in-process limiter.
fn worker_processes() -> usize {
    if with_redis() { 2 } else { 1 }
}

/// A simulator with 2 accounts × 40 contacts.
fn simulator() -> TestSim {
    TestSim::start(sim::SimConfig {
        accounts: 2,
        contacts_per_account: PER_ACCOUNT as usize,
        groups_per_account: 0,
        members_per_group: 0,
        ..Default::default()
    })
}

/// The app with the simulator's contacts synced; returns the agent's id and its
/// account ids.
async fn synced(app: &mut TestApp, sim: &TestSim) -> (i64, Vec<i64>) {
    let (agent, _) = app.register_sim(sim, 60).await;
    app.start_worker();
    app.sync(agent).await;
    (agent, app.account_ids(agent).await)
}

fn broadcast(agent: i64) -> Value {
    json!({ "name": "限速群发", "task_type": "broadcast", "content": "{{ nickname }}，新品上架",
            "audience": { "filter": { "instance_ids": [agent] } }, "rate_per_minute": RATE })
}

/// How far the furthest account's rate schedule runs ahead of the clock.
async fn furthest_ahead(app: &TestApp, accounts: &[i64]) -> Duration {
    let mut furthest = Duration::ZERO;
    for account in accounts {
        furthest = furthest.max(app.ctx.limiter.ahead(&format!("account:{account}")).await);
    }
    furthest
}

#[tokio::test]
async fn a_backlog_far_beyond_the_rate_window_goes_out_at_the_rate() {
    let sim = simulator();
    let mut app = TestApp::spawn_with(CONFIG).await;
    let (agent, accounts) = synced(&mut app, &sim).await;
    // With Redis the limiter's state is shared, so this test reads what two worker processes
    // book; without, it reads the in-process worker's own limiter.
    let config = ConfigFile::of(&app);
    let mut workers = Vec::new();
    if with_redis() {
        app.stop_worker().await;
        workers = (0..worker_processes())
            .map(|_| spawn_worker(&config))
            .collect();
    }
    let admin = app.admin_token().await;
    let started = Instant::now();
    let task: TaskView = app.post_as("/api/v1/tasks", &admin, broadcast(agent)).await;
    let id = task.id;
    let bound = Duration::from_secs(1) + Duration::from_secs_f64(60.0 / RATE as f64);
    let mut peak = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ahead = furthest_ahead(&app, &accounts).await;
        peak = peak.max(ahead);
        assert!(
            ahead <= bound + Duration::from_millis(20),
            "a rate schedule ran {ahead:?} ahead of the clock: capacity was booked for sends that did not happen"
        );
        if app.task(id).await.status == TaskStatus::Completed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broadcast stalled: {:?}",
            app.task(id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    // Each account's 40 sends are 0.5 s apart: the last one cannot go before 19.5 s.
    let floor = Duration::from_secs_f64((PER_ACCOUNT - 1) as f64 * 60.0 / RATE as f64);
    assert!(
        elapsed >= floor,
        "{elapsed:?}: faster than {RATE}/min per account allows"
    );
    eprintln!(
        "{RECEIVERS} receivers at {RATE}/min per account over {} accounts: {elapsed:?} (the rate implies {floor:?}); schedule at most {peak:?} ahead",
        accounts.len()
    );
    app.assert_completed_exactly_once(&sim, id, RECEIVERS).await;
    let deliveries = sim.deliveries().await;
    assert_eq!(
        deliveries["replayed_keys"], 0,
        "no receiver reached the instance twice (a chunk outliving its lease is resent by another): {deliveries}"
    );
    for mut worker in workers {
        kill(&mut worker).await;
    }
}

/// A `wework api` and the deployment's worker processes.
async fn start_all(config: &ConfigFile) -> (Child, String, Vec<Child>) {
    let (api, base) = spawn_api(config).await;
    let workers = (0..worker_processes())
        .map(|_| spawn_worker(config))
        .collect();
    (api, base, workers)
}

async fn sent(app: &TestApp, id: i64) -> i64 {
    i64::from(app.task(id).await.counts.success)
}

#[tokio::test]
async fn a_paused_broadcast_survives_killing_every_process_and_resumes_to_completion() {
    let sim = simulator();
    sim.control(
        Method::PUT,
        "/faults",
        json!({ "latency_ms_min": 5, "latency_ms_max": 40 }),
    )
    .await;
    let mut app = TestApp::spawn_with(CONFIG).await;
    let (agent, _) = synced(&mut app, &sim).await;
    app.stop_worker().await;
    let config = ConfigFile::of(&app);
    let (mut api, base, mut workers) = start_all(&config).await;
    let remote = RemoteApi::login(&base).await;
    let created: TaskView = remote
        .post("/api/v1/tasks", broadcast(agent), StatusCode::CREATED)
        .await;
    let id = created.id;
    app.wait_sent(id, 20).await;
    let paused: TaskView = remote
        .post(
            &format!("/api/v1/tasks/{id}/pause"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(paused.status, TaskStatus::Paused);

    // kill -9 of the API and every worker, with chunks in flight and rate slots booked.
    kill(&mut api).await;
    for worker in &mut workers {
        kill(worker).await;
    }
    let at_kill = sent(&app, id).await;
    assert!(at_kill < RECEIVERS, "the kill landed before the end");

    let (_api, base, _workers) = start_all(&config).await;
    let remote = RemoteApi::login(&base).await;
    // Restarted and paused: leases of the dead chunks run out (10 s) and nothing goes out.
    // (Rate slots booked before the kill are at most 1.5 s ahead: they do not hold it back.)
    tokio::time::sleep(Duration::from_secs(12)).await;
    let view = app.task(id).await;
    assert_eq!(view.status, TaskStatus::Paused, "{view:?}");
    assert_eq!(
        sent(&app, id).await,
        at_kill,
        "nothing is sent while paused"
    );

    let resumed: TaskView = remote
        .post(
            &format!("/api/v1/tasks/{id}/resume"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(resumed.status, TaskStatus::Running);
    app.assert_completed_exactly_once(&sim, id, RECEIVERS).await;
}
