//! Dependencies lost in the middle of a broadcast, each on a server of the test's own so the
//! servers other tests share stay up.
//!
//! - Redis holds the dispatch queue, the chain marks and the shared rate-limit slots, not the
//!   receivers: while it is away the API keeps answering and sends stop (nothing is marked
//!   failed); when it comes back — empty, as a restarted Redis without persistence is — the
//!   feeder queues the run again and every receiver still gets the message exactly once.
//! - The database (PostgreSQL, crashed with an immediate shutdown and started again): requests
//!   answer 503 `database_unavailable` with Retry-After, sends stop, chunks that were in flight
//!   keep their leases; after the restart the broadcast finishes exactly once (resends carry
//!   their idempotency keys) and the access log lines of the outage reach the log store.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use entity::states::TaskStatus;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, TestSim, problem};

/// A `redis-server` of this test's own on a fixed port, so it can be killed and started again
/// without touching the Redis other tests share.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = free_port();
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
    i64::from(app.task(id).await.counts.success)
}

/// The sent count once it stops moving: three reads a second apart agree (a slow chunk under
/// load can take longer than one second).
async fn settled(app: &TestApp, id: i64) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = success(app, id).await;
    let mut unchanged = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = success(app, id).await;
        if now == last {
            unchanged += 1;
            if unchanged == 2 {
                return now;
            }
        } else {
            unchanged = 0;
        }
        assert!(std::time::Instant::now() < deadline, "sends never stopped");
        last = now;
    }
}

#[tokio::test]
async fn a_broadcast_waits_out_a_redis_outage_and_finishes_exactly_once() {
    let mut redis = PrivateRedis::start().await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[redis]\nurl = \"{}\"\n[dispatch]\nchunk_size = 10\nconcurrency = 2\njob_slice_ms = 500\nrate_limits = false\n[metrics]\nbearer_token = \"ops-token\"\n",
        redis.url()
    ))
    .await;
    let agent = app.with_synced_agent(&sim).await;
    let id = app.start_slow_broadcast(&sim, agent, "缓存故障演练").await;
    app.wait_sent(id, 40).await;

    redis.kill().await;
    let ready = app
        .request(reqwest::Method::GET, "/readyz", Some("ops-token"))
        .send()
        .await
        .unwrap();
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
    // The slices in flight end; then no job can be queued and no chain started.
    let stalled = settled(&app, id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = app.task(id).await;
    assert_eq!(
        during.status,
        TaskStatus::Running,
        "the API answers without Redis"
    );
    assert_eq!(
        i64::from(during.counts.success),
        stalled,
        "sends wait for Redis: {during:?}"
    );
    assert_eq!(during.counts.failed, 0, "nothing is failed for it");
    assert!(
        stalled < 240,
        "the outage landed before the end: {during:?}"
    );

    redis.restart().await;
    app.assert_completed_exactly_once(&sim, id, 240).await;
    app.stop_worker().await;
}

/// A PostgreSQL cluster of this test's own (initdb in a temporary directory), run as the
/// `postgres` user when the tests run as root, as PostgreSQL refuses to run as root.
struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = crate::helpers::tests_dir().join(format!("pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = Self {
            dir,
            bin,
            port: free_port(),
        };
        if is_root() {
            run(
                "chown",
                &["-R", "postgres:postgres", &pg.dir.display().to_string()],
            )
            .await;
        }
        pg.pg(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )
        .await;
        pg.restart().await;
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        )
        .await;
    }

    /// An immediate shutdown: the server stops at once, as in a crash, and recovers from its
    /// write-ahead log at the next start.
    async fn crash(&self) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
        .await;
    }

    async fn pg(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool).display().to_string();
        if is_root() {
            let mut all = vec!["-u", "postgres", "--", tool.as_str()];
            all.extend_from_slice(args);
            run("runuser", &all).await;
        } else {
            run(&tool, args).await;
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&pg_ctl)
                .args(args)
                .output()
        } else {
            std::process::Command::new(&pg_ctl).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

async fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(Path::new("/"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_broadcast_waits_out_a_database_crash_and_finishes_exactly_once() {
    // One pass is enough (the server is the test's own): the PostgreSQL one.
    if std::env::var("WEWORK_TEST_BACKEND").as_deref() != Ok("postgres") {
        return;
    }
    let pg = PrivatePostgres::start().await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!(
        "[database]\nurl = \"{}\"\n[dispatch]\nchunk_size = 10\nconcurrency = 2\nlease_secs = 10\nrate_limits = false\n",
        pg.url()
    ))
    .await;
    let agent = app.with_synced_agent(&sim).await;
    let admin = app.admin_token().await;
    let id = app
        .start_slow_broadcast(&sim, agent, "数据库故障演练")
        .await;
    app.wait_sent(id, 40).await;

    pg.crash().await;
    let down = app.get(&format!("/api/v1/tasks/{id}"), &admin).await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        down.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let request_id = down
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = problem(down, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["code"], "database_unavailable", "{body}");
    let ready = app.anonymous_get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_secs(2)).await;

    pg.restart().await;
    app.assert_completed_exactly_once(&sim, id, 240).await;
    let during = app.task(id).await;
    assert_eq!(during.counts.failed, 0, "nothing is failed for it");

    // The 503's access log line waited in the spool and reached SQL after the restart.
    let request_id = request_id.or_else(|| body["request_id"].as_str().map(str::to_owned));
    let request_id = request_id.expect("a request id on the 503");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        app.ctx.telemetry.flush().await;
        let found = app
            .get_json(
                &format!("/api/v1/logs?kind=access&trace_id={request_id}"),
                &app.admin_token().await,
            )
            .await;
        if let Some(line) = found["items"].as_array().and_then(|i| i.first()) {
            assert_eq!(line["status"], 503, "{line}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{found}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    app.stop_worker().await;
}

/// The events worker meets the crash in the middle of a backlog: an event it had claimed (or
/// applied without marking) when the database went is taken again when it returns, and every
/// received message is stored exactly once.
#[tokio::test]
async fn callbacks_met_by_a_database_crash_are_applied_exactly_once_after_it() {
    use futures_util::StreamExt;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    if std::env::var("WEWORK_TEST_BACKEND").as_deref() != Ok("postgres") {
        return;
    }
    const EVENTS: usize = 1500;
    let pg = PrivatePostgres::start().await;
    let sim = TestSim::small();
    let mut app = TestApp::spawn_with(&format!("[database]\nurl = \"{}\"\n", pg.url())).await;
    let agent = app.with_synced_agent(&sim).await;
    // The backlog arrives while no worker applies it.
    app.stop_worker().await;
    let url = app.agent_callback_url(agent).await;
    futures_util::stream::iter(0..EVENTS)
        .map(|i| {
            let event = serde_json::json!({
                "type": "message.received", "account_wxid": "sim_user_0",
                "id": format!("evt-{i}"),
                "data": { "from": format!("wm_42_0_{}", i % 40), "msgtype": "text",
                          "content": format!("第 {i} 条"), "message_id": format!("remote-{i}") }
            });
            sim.push_event(&url, event)
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;

    let inbound = || {
        entity::messages::Entity::find()
            .filter(entity::messages::Column::Direction.eq("in"))
            .filter(entity::messages::Column::InstanceId.eq(agent))
    };
    app.start_worker();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while inbound().count(&app.ctx.db).await.unwrap() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker applies nothing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pg.crash().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.restart().await;

    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let processed = entity::inbound_events::Entity::find()
            .filter(entity::inbound_events::Column::ProcessedAt.is_not_null())
            .count(&app.ctx.db)
            .await;
        if processed.as_ref().is_ok_and(|n| *n == EVENTS as u64) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events left unapplied: {processed:?} of {EVENTS} processed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failed = entity::inbound_events::Entity::find()
        .filter(entity::inbound_events::Column::ErrorMessage.is_not_null())
        .all(&app.ctx.db)
        .await
        .unwrap();
    assert!(failed.is_empty(), "events kept an error: {failed:?}");
    let stored = inbound().all(&app.ctx.db).await.unwrap();
    let mut remote: Vec<String> = stored.into_iter().filter_map(|m| m.remote_msg_id).collect();
    remote.sort();
    let total = remote.len();
    remote.dedup();
    assert_eq!(
        total,
        EVENTS,
        "each message stored once ({} distinct)",
        remote.len()
    );
    assert_eq!(remote.len(), EVENTS);
    app.stop_worker().await;
}
